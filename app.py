"""`flask --app app ...` entry point."""

import sys

from portal import ConfigError, create_app

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"configuration error: {error}")

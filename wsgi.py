"""Production entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""

import sys

from portal import ConfigError, create_app

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"configuration error: {error}")

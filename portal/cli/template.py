"""`flask --app app template ...`."""

from flask.cli import AppGroup

cli = AppGroup("template", help="template commands.")

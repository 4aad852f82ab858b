"""`flask --app app users ...`."""

from flask.cli import AppGroup

cli = AppGroup("users", help="users commands.")

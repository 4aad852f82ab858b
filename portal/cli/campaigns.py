"""`flask --app app campaigns ...`."""

from flask.cli import AppGroup

cli = AppGroup("campaigns", help="campaigns commands.")

"""Flask extensions, instantiated and nothing else: `create_app` binds them to an app; and
`db_session()`, the typed way to hand the current session to a service."""

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

from portal.models.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()
socketio = SocketIO()


def db_session() -> Session:
    """The session of the current app context (a request, a CLI command, a job).

    `db.session` is a `scoped_session` proxy, which is not a `Session` to a type checker;
    services take a `Session`, so entry points pass them this: the very session the proxy would
    forward to (the one for this app context, created on first use, removed at teardown)."""
    return db.session()

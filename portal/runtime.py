"""Which application runs jobs inside this process, if any: a registry with no dependencies.

The embedded worker (`make run`) is a thread of the web process; while it runs, jobs and the
live `pool_update` pushes must use the web process's own app (its database, its in-process
fakeredis, its Socket.IO server) rather than build another. The worker runtime (`jobs/`)
declares that app here and the domain reads it here, so neither imports the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

_embedded_app: Flask | None = None


def set_embedded_app(app: Flask | None) -> None:
    """Declare (or clear, with None) the app whose embedded worker runs jobs in this process."""
    global _embedded_app
    _embedded_app = app


def current_embedded_app() -> Flask | None:
    """The app whose embedded worker runs in this process, if any."""
    return _embedded_app

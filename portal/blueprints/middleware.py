"""WSGI layers around the application: the proxy in front, and bodies without a length.

`ProxyFix` (werkzeug) with `PROXY_FIX_HOPS` trusted proxies: behind TLS termination the
application sees the client's scheme, host and address (X-Forwarded-Proto/Host/For) instead
of the proxy's, so URLs are https, the Socket.IO same-origin check compares the right origin and
the sign-in throttle counts per real client. 0 (the default) trusts no such header: with no
proxy in front, a client could otherwise claim any address.

`CountedBody`: a chunked request carries no Content-Length, and Werkzeug then reads at most
MAX_CONTENT_LENGTH bytes and silently stops there, so a view could act on a truncated body (a
campaign was created from 1 MiB of valid JSON followed by junk). This layer reads such a body
first, up to one byte over the limit, and hands it on with the Content-Length it really has:
Werkzeug's own check then answers 413 for one over the limit, exactly as for a body that
declared its length, and nothing is created from part of a body.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
READ_CHUNK = 64 * 1024


class CountedBody:
    """Give a body without Content-Length one (see the module docstring)."""

    def __init__(self, app: WSGIApp, flask_app: Flask) -> None:
        self.app = app
        self.flask_app = flask_app

    def __call__(self, wsgi_env: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if wsgi_env.get("CONTENT_LENGTH") in (None, "") and wsgi_env.get("wsgi.input_terminated"):
            limit = self.flask_app.config.get("MAX_CONTENT_LENGTH")
            if limit is not None:
                body = self._read(wsgi_env["wsgi.input"], limit + 1)
                wsgi_env["wsgi.input"] = io.BytesIO(body)
                wsgi_env["CONTENT_LENGTH"] = str(len(body))
                # The body is now counted: Werkzeug must read it by its length, not as a
                # chunked (terminated) stream, which it would cut at the limit.
                del wsgi_env["wsgi.input_terminated"]
                wsgi_env.pop("HTTP_TRANSFER_ENCODING", None)
        return self.app(wsgi_env, start_response)

    @staticmethod
    def _read(stream: Any, most: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while size < most:
            chunk = stream.read(min(READ_CHUNK, most - size))
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)


def install_middleware(app: Flask) -> None:
    """Outermost first: ProxyFix (when configured), then CountedBody, then what was there
    (Flask-SocketIO's middleware and the Flask app)."""
    # Flask documents wrapping `wsgi_app` like this; its stub types the attribute as a method.
    app.wsgi_app = CountedBody(app.wsgi_app, app)  # type: ignore[method-assign,assignment]
    hops = app.config["SETTINGS"].proxy_fix_hops
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=0
        )

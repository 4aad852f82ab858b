"""Security headers on every response: one after-request policy (docs/security.md says why
this and not Flask-Talisman).

- `Content-Security-Policy`: scripts and styles only from this site, no inline script or
  style, no plugins, forms post only here, and `frame-ancestors 'none'` so no other site can
  frame a portal page (clickjacking of the one-click actions). The portal's own pages need no
  exception: their scripts are files under /static and the data they start from is embedded
  as `application/json`, which is not executed.
- rq-dashboard (/admin/rq), which we mount but do not fork, writes its set-up script inline,
  compiles its row templates with `new Function` (underscore's `_.template`) and sets a few
  `style` attributes. Its pages get the same policy with three additions: a per-response nonce
  that the mount puts on rq-dashboard's own inline script (and only there), `'unsafe-eval'` for
  the templates, and inline styles. The pages are for admins only, like the rest of /admin.
- `X-Frame-Options: DENY` (for browsers older than frame-ancestors), `X-Content-Type-Options:
  nosniff`, `Referrer-Policy: same-origin`, and `Strict-Transport-Security` when the site is
  served over https (`PREFERRED_URL_SCHEME=https`).
"""

from __future__ import annotations

import secrets

from flask import Flask, Response, current_app, request

PORTAL_CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "font-src": "'self'",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
RQ_DASHBOARD_PREFIX = "/admin/rq"
HSTS = "max-age=31536000"


NONCE_KEY = "portal.csp_nonce"


def csp_nonce() -> str:
    """This response's script nonce, made on first use and kept in the request's environ (not
    on `g`, which can outlive a request when an app context is shared)."""
    nonce = request.environ.get(NONCE_KEY)
    if nonce is None:
        nonce = request.environ[NONCE_KEY] = secrets.token_urlsafe(18)
    return nonce


def content_security_policy(path: str) -> str:
    """The policy for a response to `path`."""
    policy = dict(PORTAL_CSP)
    if path == RQ_DASHBOARD_PREFIX or path.startswith(RQ_DASHBOARD_PREFIX + "/"):
        policy["script-src"] = f"'self' 'nonce-{csp_nonce()}' 'unsafe-eval'"
        policy["style-src"] = "'self' 'unsafe-inline'"
    return "; ".join(f"{name} {value}" for name, value in policy.items())


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers["Content-Security-Policy"] = content_security_policy(request.path)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    if current_app.config["SETTINGS"].preferred_url_scheme == "https" and request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def install_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)

"""A gamemaster's API client for `bench --http` and the load and fault tests: one user's bearer
token, one keep-alive connection, `POST /api/v2/campaigns` timed on the monotonic clock, and the
whole reply kept (status, JSON body, the headers a client acts on), so a bench computes figures
from it and a fault test checks what a client was told.
"""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any

CREATE_PATH = "/api/v2/campaigns"
POOL_SOURCES = ("user_pool", "master_pool")
"""The `source` of a create served from a pool (the other is `seeded`: built in the request)."""


@dataclass(frozen=True)
class Reply:
    """One create as the client saw it, timed from sending to the last byte of the body.

    `status` 0 means no HTTP answer came at all (a connection error or a timeout:
    `transport_error` says which). `body` is the JSON answer, or the start of the text when the
    body was not JSON (`is_json` False)."""

    user: int  # index of the requesting user
    name: str  # the campaign name asked for
    started: float
    ended: float
    status: int
    body: Any = None
    is_json: bool = True
    retry_after: str | None = None
    content_type: str = ""
    transport_error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def ms(self) -> float:
        return self.seconds * 1000

    @property
    def created(self) -> dict[str, Any] | None:
        """The campaign a 201 returned, else None."""
        ok = self.status == 201 and self.is_json and isinstance(self.body, dict)
        return self.body if ok else None

    @property
    def campaign_id(self) -> str | None:
        return None if self.created is None else self.created.get("id")

    @property
    def source(self) -> str | None:
        """user_pool, master_pool or seeded for a created campaign, else None."""
        return None if self.created is None else self.created.get("source")

    @property
    def error(self) -> str | None:
        """What went wrong, in one short line; None for a 201 with a JSON body."""
        if not self.status:
            return self.transport_error
        if not self.is_json:
            return "invalid JSON body"
        if self.status != 201:
            return str(self.body)[:200]
        return None

    @property
    def clean_failure(self) -> bool:
        """A failure a client can act on: a JSON 503 that says why and when to come back."""
        return (
            self.status == 503
            and self.content_type.startswith("application/json")
            and isinstance(self.body, dict)
            and bool(self.body.get("message"))
            and self.retry_after is not None
        )


class Client:
    """One API client: one user's token, one keep-alive connection, reconnecting after an
    error (and after a server that closes the connection)."""

    def __init__(self, port: int, user_index: int, token: str, timeout_s: float = 30.0) -> None:
        self.port = port
        self.user_index = user_index
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        self.timeout_s = timeout_s
        self.conn: http.client.HTTPConnection | None = None

    def connect(self) -> None:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout_s)
            self.conn.connect()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def create(self, name: str) -> Reply:
        """POST one campaign named `name`; never raises for a network or server failure."""
        body = json.dumps({"campaign": {"name": name}})
        started = time.monotonic()
        try:
            self.connect()
            assert self.conn is not None
            self.conn.request("POST", CREATE_PATH, body=body, headers=self.headers)
            response = self.conn.getresponse()
            raw = response.read()
            ended = time.monotonic()
            if response.will_close:
                self.close()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            error = f"{type(exc).__name__}: {exc}"[:200]
            return Reply(self.user_index, name, started, time.monotonic(), 0, transport_error=error)
        try:
            payload, is_json = json.loads(raw), True
        except ValueError:
            payload, is_json = raw[:300].decode(errors="replace"), False
        return Reply(
            self.user_index, name, started, ended, response.status, payload, is_json,
            retry_after=response.getheader("Retry-After"),
            content_type=response.getheader("Content-Type") or "",
        )  # fmt: skip


def request_json(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> tuple[int, Any]:
    """One request on a connection of its own; (status, JSON body, None when empty). Raises
    OSError when nothing answers and ValueError when the body is not JSON."""
    sent = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, sent)
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None
    finally:
        conn.close()

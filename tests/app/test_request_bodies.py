"""Bodies over MAX_CONTENT_LENGTH are a 413 whether they declare their length or arrive chunked,
and nothing is ever created from part of a body (docs/security.md). Through a real HTTP server
(Werkzeug's, which decodes chunked bodies as gunicorn does), with http.client sending chunks."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import Campaign
from portal.services.accounts.tokens import issue_token
from portal.services.accounts.users import create_user
from tests.support.browser import LiveServer, start_live_server

LIMIT = 1024 * 1024


@pytest.fixture
def served(template_app: Flask) -> Iterator[tuple[LiveServer, str]]:
    user = create_user(db.session, "gm@example.com", "GM", "correct horse", gamemaster=True)
    token = issue_token(db.session, user)
    db.session.commit()
    server = start_live_server(template_app)
    try:
        yield server, token
    finally:
        server.stop()


def post_chunked(server: LiveServer, token: str, body: bytes) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server.server_port, timeout=60)
    try:
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        conn.request(
            "POST",
            "/api/v2/campaigns",
            body=chunks,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def campaign_names() -> list[str]:
    db.session.expire_all()
    stmt = sa.select(Campaign.name).where(Campaign.is_pool.is_(False), ~Campaign.is_master_template)
    return list(db.session.scalars(stmt))


def padded(name: str, size: int) -> bytes:
    """Valid JSON creating `name`, padded with spaces to exactly `size` bytes."""
    body = json.dumps({"campaign": {"name": name}}).encode()
    return body + b" " * (size - len(body))


def test_a_small_chunked_body_is_accepted(served) -> None:
    server, token = served
    status, body = post_chunked(
        server, token, json.dumps({"campaign": {"name": "Chunked"}}).encode()
    )
    assert status == 201, body
    assert campaign_names() == ["Chunked"]


def test_valid_json_up_to_the_limit_followed_by_junk_creates_nothing(served) -> None:
    server, token = served
    status, body = post_chunked(server, token, padded("Truncated", LIMIT) + b"junk" * 256)
    assert status == 413, body
    assert body["status"] == 413
    assert campaign_names() == []


def test_a_2_mb_chunked_body_is_413(served) -> None:
    server, token = served
    status, _ = post_chunked(server, token, padded("Big", 2 * LIMIT))
    assert status == 413
    assert campaign_names() == []


def test_exactly_the_limit_is_still_fine(served) -> None:
    server, token = served
    status, body = post_chunked(server, token, padded("Exactly", LIMIT))
    assert status == 201, body
    assert campaign_names() == ["Exactly"]

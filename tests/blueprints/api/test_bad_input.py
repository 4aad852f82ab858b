"""Bad input to the JSON API: every case a clear 4xx with a JSON body naming the problem, none a
500, and nothing written (campaigns, pool_events, api_tokens and the pool's ready count are
compared before and after each request).

All refusal cases share one copy of the template database with one ready campaign in the master
pool: a case that wrongly wrote something shows up in its own before/after comparison. Input
that is odd but legitimate (HTML, a name of exactly the maximum length, line breaks in a
description) is accepted, in tests at the bottom that get databases of their own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from portal.blueprints.api.campaigns import MAX_PAGE
from portal.extensions import db
from portal.models import ApiToken, Campaign, PoolEvent, utcnow
from portal.services.accounts.tokens import revoke_token
from portal.services.campaigns.input import DESCRIPTION_MAX, NAME_MAX
from portal.services.infra.queue import get_redis
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from tests.conftest import app_on
from tests.support.auth import DEFAULT_PASSWORD, AuthActions
from tests.support.databases import TestDatabases

CAMPAIGNS = "/api/v2/campaigns"
TOKEN_URL = "/api/v2/auth/token"
VALID = {"campaign": {"name": "Hong Kong Nights"}}
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class Bad:
    """One bad request and what it must earn: `status`, and `field` among the body's errors."""

    status: int
    field: str
    method: str = "post"
    path: str = CAMPAIGNS
    json: Any = None
    data: str | bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    token: str = "gamemaster"  # which prepared token goes in the Authorization header

    def send(self, client: FlaskClient, tokens: dict[str, str]) -> Any:
        headers = dict(self.headers)
        if self.token in tokens:
            headers.setdefault("Authorization", f"Bearer {tokens[self.token]}")
        kwargs: dict[str, Any] = {"headers": headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.data is not None:
            kwargs["data"] = self.data
        if self.content_type is not None:
            kwargs["content_type"] = self.content_type
        return getattr(client, self.method)(self.path, **kwargs)


def body(name: Any = "ok", **more: Any) -> dict[str, Any]:
    return {"campaign": {"name": name, **more}}


def token_request(status: int, field: str, **fields: Any) -> Bad:
    """A token request with the gamemaster's real credentials, except for `fields`."""
    credentials = {"email": "gm@example.com", "password": DEFAULT_PASSWORD, **fields}
    return Bad(status, field, path=TOKEN_URL, token="none", json=credentials)


def raw_json(text: str) -> Bad:
    """A campaign body written by hand, for what `json=` cannot express (escapes, garbage)."""
    return Bad(400, "base", data=text, content_type="application/json")


CASES: dict[str, Bad] = {
    # The body as a whole
    "malformed JSON": raw_json('{"campaign": {"name": '),
    "trailing garbage": raw_json('{"campaign": {"name": "x"}} and more'),
    "single quotes": raw_json("{'campaign': {'name': 'x'}}"),
    "not UTF-8": Bad(
        400, "base", data=b'{"campaign": {"name": "\xff"}}', content_type="application/json"
    ),
    "deeply nested arrays": raw_json("[" * 100_000 + "]" * 100_000),
    "deeply nested objects": raw_json('{"campaign": ' * 50_000 + "{}" + "}" * 50_000),
    "deeply nested token request": Bad(
        400,
        "base",
        path=TOKEN_URL,
        token="none",
        data="[" * 100_000,
        content_type="application/json",
    ),
    "empty body": raw_json(""),
    "whitespace body": raw_json("  \n "),
    "JSON array": raw_json("[]"),
    "JSON string": raw_json('"Hong Kong"'),
    "JSON number": raw_json("42"),
    "JSON null": raw_json("null"),
    "no body, no content type": Bad(415, "base"),
    "text/plain": Bad(415, "base", data=json.dumps(VALID), content_type="text/plain"),
    "form encoded": Bad(
        415, "base", data="campaign[name]=x", content_type="application/x-www-form-urlencoded"
    ),
    "multipart": Bad(415, "base", data={"name": "x"}, content_type="multipart/form-data"),  # type: ignore[arg-type]
    "10 MB body": Bad(
        413, "base", data=json.dumps(body("x" * TEN_MB)), content_type="application/json"
    ),
    "10 MB body, token endpoint": Bad(
        413,
        "base",
        path=TOKEN_URL,
        token="none",
        content_type="application/json",
        data=json.dumps({"email": "gm@example.com", "password": "x" * TEN_MB}),
    ),
    # `campaign`
    "campaign missing": Bad(422, "campaign", json={}),
    "campaign flat": Bad(422, "campaign", json={"name": "flat"}),
    "campaign a string": Bad(422, "campaign", json={"campaign": "Hong Kong"}),
    "campaign a list": Bad(422, "campaign", json={"campaign": [{"name": "x"}]}),
    "campaign a number": Bad(422, "campaign", json={"campaign": 7}),
    "campaign null": Bad(422, "campaign", json={"campaign": None}),
    # `name`
    "name missing": Bad(422, "name", json={"campaign": {}}),
    "name null": Bad(422, "name", json=body(None)),
    "name empty": Bad(422, "name", json=body("")),
    "name spaces": Bad(422, "name", json=body("   ")),
    "name tabs and newlines": Bad(422, "name", json=body("\t\n\r ")),
    "name a number": Bad(422, "name", json=body(42)),
    "name a float": Bad(422, "name", json=body(4.2)),
    "name true": Bad(422, "name", json=body(True)),
    "name false": Bad(422, "name", json=body(False)),
    "name a list": Bad(422, "name", json=body(["Hong Kong"])),
    "name an object": Bad(422, "name", json=body({"en": "Hong Kong"})),
    "name of 10,000 characters": Bad(422, "name", json=body("x" * 10_000)),
    "name one over the limit": Bad(422, "name", json=body("x" * (NAME_MAX + 1))),
    "name padded over the limit": Bad(422, "name", json=body(" " * NAME_MAX + "x")),
    "name with NUL": Bad(422, "name", json=body("Hong\x00Kong")),
    "name with ESC": Bad(422, "name", json=body("\x1b[31mred\x1b[0m")),
    "name with BEL": Bad(422, "name", json=body("bell\x07")),
    "name with DEL": Bad(422, "name", json=body("del\x7f")),
    "name with a newline": Bad(422, "name", json=body("two\nlines")),
    "name ending in a control that strip() eats": Bad(422, "name", json=body("unit\x1f")),
    "name with a lone surrogate": Bad(
        422, "name", data=r'{"campaign": {"name": "half \ud800"}}', content_type="application/json"
    ),
    # `description`
    "description a number": Bad(422, "description", json=body(description=3)),
    "description a list": Bad(422, "description", json=body(description=["list"])),
    "description an object": Bad(422, "description", json=body(description={})),
    "description true": Bad(422, "description", json=body(description=True)),
    "description too long": Bad(
        422, "description", json=body(description="d" * (DESCRIPTION_MAX + 1))
    ),
    "description with NUL": Bad(422, "description", json=body(description="a\x00b")),
    "description with ESC": Bad(422, "description", json=body(description="\x1b[2J")),
    "description with a lone surrogate": Bad(
        422,
        "description",
        data=r'{"campaign": {"name": "ok", "description": "\udfff"}}',
        content_type="application/json",
    ),
    # Fields nobody asked for
    "unknown campaign field": Bad(422, "owner_id", json=body(owner_id="someone")),
    "unknown campaign field is_pool": Bad(422, "is_pool", json=body(is_pool=True)),
    "unknown top-level field": Bad(422, "user_id", json={**VALID, "user_id": "someone"}),
    # Tokens and roles
    "no Authorization": Bad(401, "base", json=VALID, token="none"),
    "empty Authorization": Bad(401, "base", json=VALID, headers={"Authorization": ""}),
    "Bearer without a token": Bad(401, "base", json=VALID, headers={"Authorization": "Bearer"}),
    "Bearer and spaces": Bad(401, "base", json=VALID, headers={"Authorization": "Bearer    "}),
    "Basic credentials": Bad(
        401, "base", json=VALID, headers={"Authorization": "Basic YWRtaW46cGFzc3dvcmQ="}
    ),
    "unknown cp_ token": Bad(
        401, "base", json=VALID, headers={"Authorization": "Bearer cp_not-a-real-token"}
    ),
    "foreign token": Bad(
        401, "base", json=VALID, headers={"Authorization": "Bearer something-else"}
    ),
    "token of 10,000 characters": Bad(
        401, "base", json=VALID, headers={"Authorization": "Bearer cp_" + "x" * 10_000}
    ),
    "token with trailing words": Bad(401, "base", json=VALID, token="gamemaster+junk"),
    "revoked token": Bad(401, "base", json=VALID, token="revoked"),
    "expired token": Bad(401, "base", json=VALID, token="expired"),
    "token of a deactivated user": Bad(401, "base", json=VALID, token="deactivated"),
    "player, not a gamemaster": Bad(403, "base", json=VALID, token="player"),
    # The campaign id in the URL
    "id not a UUID": Bad(404, "campaign_id", method="get", path=f"{CAMPAIGNS}/hong-kong"),
    "id a number": Bad(404, "campaign_id", method="get", path=f"{CAMPAIGNS}/12"),
    "id a UUID with extra": Bad(404, "campaign_id", method="get", path=f"{CAMPAIGNS}/{'0' * 32}-x"),
    "id of 10,000 characters": Bad(
        404, "campaign_id", method="get", path=f"{CAMPAIGNS}/{'a' * 10_000}"
    ),
    "id with NUL": Bad(404, "campaign_id", method="get", path=f"{CAMPAIGNS}/%00"),
    "id unknown UUID": Bad(404, "base", method="get", path=f"{CAMPAIGNS}/{'1' * 32}"),
    # ?page
    **{
        f"page={page!r}": Bad(400, "page", method="get", path=f"{CAMPAIGNS}?page={page}")
        for page in (
            "abc",
            "0",
            "-1",
            "1.5",
            "",
            "1e3",
            "1_0",
            "%201",
            "%D9%A1",
            "0x1",
            str(MAX_PAGE + 1),
            "9" * 30,
        )
    },
    # The token endpoint, beyond what test_api_auth covers
    "token request with unknown field": token_request(400, "admin", admin=True),
    "token request email with NUL": token_request(400, "email", email="gm\x00@example.com"),
    "token request password with a lone surrogate": Bad(
        400,
        "password",
        path=TOKEN_URL,
        token="none",
        content_type="application/json",
        data=r'{"email": "gm@example.com", "password": "\ud800"}',
    ),
    "token name with ESC": token_request(400, "name", name="\x1b[31m"),
    "token name a number": token_request(400, "name", name=7),
    "token name padded over the limit": token_request(400, "name", name=" " * 200 + "n"),
    "email of 10,000 characters": token_request(401, "base", email="e" * 10_000),
    "email with ESC": token_request(401, "base", email="\x1b@example.com"),
}


@dataclass(frozen=True)
class Sweep:
    client: FlaskClient
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def sweep_app(databases: TestDatabases, template_golden: str, redis_url: str) -> Iterator[Flask]:
    yield from app_on(databases, template_golden, redis_url)


@pytest.fixture(scope="module")
def sweep(sweep_app: Flask) -> Sweep:
    """One template database for every refusal case: a gamemaster (whose token is the default),
    a player, a revoked token, an expired one (issued longer than API_TOKEN_TTL_DAYS ago), a
    deactivated user's token, and one ready master-pool campaign that a wrongly accepted create
    would claim."""
    client = sweep_app.test_client()
    actions = AuthActions(client)
    gm = actions.create_user("gm@example.com", admin=False, gamemaster=True, name="Gina")
    player = actions.create_user("player@example.com", admin=False, gamemaster=False)
    gone = actions.create_user("gone@example.com", admin=False, gamemaster=True)
    tokens = {
        "gamemaster": actions.token_for(gm),
        "player": actions.token_for(player),
        "revoked": actions.token_for(gm, "revoked"),
        "expired": actions.token_for(gm, "expired"),
        "deactivated": actions.token_for(gone),
    }
    tokens["gamemaster+junk"] = tokens["gamemaster"] + " junk"
    revoked_id = db.session.scalars(sa.select(ApiToken.id).where(ApiToken.name == "revoked")).one()
    revoke_token(db.session, revoked_id)
    ttl = timedelta(days=sweep_app.config["SETTINGS"].api_token_ttl_days)
    db.session.execute(
        sa.update(ApiToken)
        .where(ApiToken.name == "expired")
        .values(created_at=utcnow() - ttl - timedelta(minutes=1))
    )
    gone.active = False
    set_pool_setting(db.session, "master_target", 1)
    db.session.commit()
    replenish_pool(db.session, get_redis(), sweep_app.config["SETTINGS"], "master")
    return Sweep(client, tokens)


def written_state() -> dict[str, int]:
    """What a refused request must leave exactly as it was."""

    def count(model: type, *where: Any) -> int:
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))

    state = {
        "campaigns": count(Campaign),
        "pool_events": count(PoolEvent),
        "api_tokens": count(ApiToken),
        "live_api_tokens": count(ApiToken, ApiToken.revoked_at.is_(None)),
        "pool_ready": count(Campaign, Campaign.is_pool.is_(True), Campaign.pool_status == "ready"),
    }
    db.session.rollback()  # the next reading must see what the request committed, not a snapshot
    return state


def test_the_sweep_starts_with_a_ready_pool(sweep: Sweep) -> None:
    state = written_state()
    assert state["pool_ready"] == 1 and state["campaigns"] == 2  # the template and the pool's


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_a_clear_4xx_that_writes_nothing(sweep: Sweep, case: Bad) -> None:
    before = written_state()

    response = case.send(sweep.client, sweep.tokens)

    assert response.status_code == case.status, response.get_data(as_text=True)[:500]
    assert response.is_json, response.get_data(as_text=True)[:200]
    error = response.get_json()
    assert error["status"] == case.status and error["message"]
    assert case.field in error["errors"], error
    assert all(messages for messages in error["errors"].values())
    if case.status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert written_state() == before


# Odd but legitimate input: accepted, stored as sent, and harmless on the way out.


@pytest.fixture
def gm_client(template_app: Flask) -> FlaskClient:
    client = template_app.test_client()
    actions = AuthActions(client)
    gm = actions.create_user("gm@example.com", admin=False, gamemaster=True)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {actions.token_for(gm)}"
    return client


def test_html_is_stored_as_text_and_returned_verbatim(gm_client: FlaskClient) -> None:
    name = '<script>alert("x")</script> & <b>Kong</b>'
    description = "<img src=x onerror=alert(1)>\nSecond line\twith a tab"
    response = gm_client.post(CAMPAIGNS, json=body(name, description=description))
    assert response.status_code == 201, response.get_json()
    assert response.mimetype == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    created = response.get_json()
    assert (created["name"], created["description"]) == (name, description)
    stored = db.session.get(Campaign, uuid.UUID(created["id"]))
    assert (stored.name, stored.description) == (name, description)


def test_names_are_trimmed_and_the_limit_is_inclusive(gm_client: FlaskClient) -> None:
    longest = "é" * NAME_MAX
    assert gm_client.post(CAMPAIGNS, json=body(longest)).get_json()["name"] == longest
    padded = gm_client.post(CAMPAIGNS, json=body("  Padded  ", description=""))
    assert padded.status_code == 201
    assert (padded.get_json()["name"], padded.get_json()["description"]) == ("Padded", None)


def test_the_last_page_is_empty_not_an_error(gm_client: FlaskClient) -> None:
    response = gm_client.get(f"{CAMPAIGNS}?page={MAX_PAGE}")
    assert response.status_code == 200
    assert response.get_json() == {"campaigns": [], "meta": {"page": MAX_PAGE, "per_page": 50}}

"""Every campaign command of the Chi War CLI (progressions/chi-war-cli), replayed as it sends it.

Requests are built as `src/lib/api.ts` builds them (`createClient`: `Content-Type:
application/json`, the bearer token) for the commands in `src/commands/login.ts` and
`src/commands/campaign.ts`, and each test reads the answer the way the command does (which
fields it prints, which statuses it treats as what).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import Character, CliAuthCode, ImageBlob, Schtick, utcnow
from tests.support.auth import AuthActions, csrf_token_from
from tests.support.chiwar_clients import Cli, gamemaster


@pytest.fixture
def cli(template_app: Flask) -> Cli:
    """A CLI logged in with the device flow as a gamemaster (see the first test)."""
    gm = gamemaster(template_app)
    cli = Cli(template_app.test_client())
    cli.token = device_login(template_app, cli, gm.email)["token"]
    cli.user = gm  # type: ignore[attr-defined]
    return cli


def approve_in_browser(app: Flask, url: str, email: str) -> str:
    """The user opens the CLI's URL, signs in to the portal, and presses the button."""
    browser = app.test_client()
    AuthActions(browser).login(email=email)
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}"
    page = browser.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    code = parts.query.split("=", 1)[1]
    assert code in html  # the page shows the code the terminal shows
    done = browser.post(
        "/cli/auth", data={"csrf_token": csrf_token_from(html), "code": code, "submit": "y"}
    )
    assert done.status_code == 200, done.get_data(as_text=True)[-500:]
    return done.get_data(as_text=True)


def device_login(app: Flask, cli: Cli, email: str) -> dict:
    """`chiwar login` (login.ts): start, open the URL, poll until approved."""
    start = cli.send("POST", "/api/v2/cli/auth/start")  # no body, JSON content type
    assert start.status_code == 200, start.get_json()
    started = start.get_json()
    assert started["code"] and started["url"] and 0 < started["expires_in"] <= 600
    poll = cli.send("POST", "/api/v2/cli/auth/poll", {"code": started["code"]})
    assert poll.status_code == 200 and poll.get_json()["status"] == "pending"
    approve_in_browser(app, started["url"], email)
    result = cli.send("POST", "/api/v2/cli/auth/poll", {"code": started["code"]}).get_json()
    # login.ts saves the token only when `status === "approved" && token && user`.
    assert result["status"] == "approved" and result["token"] and result["user"]
    assert result["user"]["email"] == email and result["user"]["gamemaster"] is True
    result["code"] = started["code"]
    return result


def test_login_by_device_flow_gives_a_working_token_once(template_app: Flask) -> None:
    gm = gamemaster(template_app)
    cli = Cli(template_app.test_client())
    result = device_login(template_app, cli, gm.email)
    # "Logged in as <first_name last_name || email>"
    assert f"{result['user']['first_name']} {result['user']['last_name']}" == "Gina Master"
    again = cli.send("POST", "/api/v2/cli/auth/poll", {"code": result["code"]})
    assert again.status_code == 410  # spent: the CLI maps any 410 to "expired"
    cli.token = result["token"]
    me = cli.send("GET", "/api/v2/users/current")
    assert me.status_code == 200 and me.get_json()["id"] == str(gm.id)


def test_an_expired_or_unknown_code_is_a_410(template_app: Flask) -> None:
    cli = Cli(template_app.test_client())
    code = cli.send("POST", "/api/v2/cli/auth/start").get_json()["code"]
    db.session.execute(sa.update(CliAuthCode).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    expired = cli.send("POST", "/api/v2/cli/auth/poll", {"code": code})
    assert expired.status_code == 410
    assert expired.get_json() == {"status": "expired", "error": "Authorization code expired"}
    unknown = cli.send("POST", "/api/v2/cli/auth/poll", {"code": "NOPE-NOPE"})
    assert unknown.status_code == 410
    missing = cli.send("POST", "/api/v2/cli/auth/poll", {})
    assert missing.status_code == 400 and "code" in missing.get_json()["errors"]


def test_the_approval_page_needs_a_signed_in_user_and_csrf(template_app: Flask) -> None:
    gm = gamemaster(template_app)
    cli = Cli(template_app.test_client())
    started = cli.send("POST", "/api/v2/cli/auth/start").get_json()
    path = urlsplit(started["url"])
    stranger = template_app.test_client()
    redirect = stranger.get(f"{path.path}?{path.query}")
    assert redirect.status_code == 302 and "/login" in redirect.headers["Location"]
    browser = template_app.test_client()
    AuthActions(browser).login(email=gm.email)
    forged = browser.post("/cli/auth", data={"code": started["code"]})
    assert forged.status_code == 400
    poll = cli.send("POST", "/api/v2/cli/auth/poll", {"code": started["code"]})
    assert poll.get_json()["status"] == "pending"


def test_the_web_client_can_approve_with_its_token(template_app: Flask, cli: Cli) -> None:
    """shot-client-next authClient.ts `approveCliAuth`: POST /api/v2/cli/auth/approve."""
    other = Cli(template_app.test_client())
    code = other.send("POST", "/api/v2/cli/auth/start").get_json()["code"]
    approved = cli.send("POST", "/api/v2/cli/auth/approve", {"code": code})
    assert approved.status_code == 200 and approved.get_json() == {"success": True}
    twice = cli.send("POST", "/api/v2/cli/auth/approve", {"code": code})
    assert twice.status_code == 409
    assert other.send("POST", "/api/v2/cli/auth/poll", {"code": code}).get_json()["token"]


def test_create_show_set_update_delete(cli: Cli) -> None:
    # chiwar campaign create --name "My Campaign": reads response.data as the campaign
    created = cli.send("POST", "/api/v2/campaigns", {"campaign": {"name": "My Campaign"}})
    assert created.status_code == 201, created.get_json()
    campaign = created.get_json()
    assert campaign["name"] == "My Campaign" and campaign["id"]

    # chiwar campaign show <id>: name, ID, Description, Active, Gamemaster ID, Created
    shown = cli.send("GET", f"/api/v2/campaigns/{campaign['id']}").get_json()
    assert shown["id"] == campaign["id"] and shown["active"] is True
    assert shown["gamemaster_id"] == str(cli.user.id)  # type: ignore[attr-defined]
    datetime.fromisoformat(shown["created_at"])  # `new Date(created_at)` must parse it

    # chiwar campaign set <id>: reads response.data.campaign
    chosen = cli.send("POST", "/api/v2/campaigns/current", {"campaign_id": campaign["id"]})
    assert chosen.status_code == 200
    assert chosen.get_json()["campaign"]["name"] == "My Campaign"
    assert chosen.get_json()["user"]["current_campaign_id"] == campaign["id"]
    me = cli.send("GET", "/api/v2/users/current").get_json()
    assert me["current_campaign_id"] == campaign["id"]

    # chiwar campaign update <id> --name X: reads response.data.name
    updated = cli.send(
        "PATCH", f"/api/v2/campaigns/{campaign['id']}", {"campaign": {"name": "Renamed"}}
    )
    assert updated.status_code == 200 and updated.get_json()["name"] == "Renamed"

    # chiwar campaign delete <id> -y: GET (for the name), then DELETE
    assert cli.send("GET", f"/api/v2/campaigns/{campaign['id']}").status_code == 200
    blobs = db.session.scalar(sa.select(sa.func.count()).select_from(ImageBlob))
    deleted = cli.send("DELETE", f"/api/v2/campaigns/{campaign['id']}")
    assert deleted.status_code == 204
    db.session.rollback()
    cid = uuid.UUID(campaign["id"])
    assert db.session.scalar(sa.select(sa.func.count()).where(Schtick.campaign_id == cid)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).where(Character.campaign_id == cid)) == 0
    # The images it shared with the template stay (the template still uses them).
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImageBlob)) == blobs
    assert cli.send("GET", f"/api/v2/campaigns/{campaign['id']}").status_code == 404
    assert cli.send("GET", "/api/v2/users/current").get_json()["current_campaign_id"] is None


def test_list_prints_totals_and_pages(cli: Cli) -> None:
    for name in ("Alpha", "Bravo", "Charlie"):
        assert (
            cli.send("POST", "/api/v2/campaigns", {"campaign": {"name": name}}).status_code == 201
        )
    # chiwar campaign list --limit 2 --page 2
    listing = cli.send("GET", "/api/v2/campaigns?per_page=2&page=2").get_json()
    meta = listing["meta"]
    # "Campaigns (3 total):", "Page 2 of 2"
    assert (meta["total_count"], meta["total_pages"], meta["current_page"]) == (3, 2, 2)
    assert (meta["per_page"], meta["prev_page"], meta["next_page"]) == (2, 1, None)
    assert [c["name"] for c in listing["campaigns"]] == ["Alpha"]  # newest first by default
    default = cli.send("GET", "/api/v2/campaigns?per_page=20&page=1").get_json()
    assert default["meta"]["total_count"] == 3 and len(default["campaigns"]) == 3


def test_validation_errors_read_well_in_the_terminal(cli: Cli) -> None:
    assert cli.send("POST", "/api/v2/campaigns", {"campaign": {"name": "Twice"}}).status_code == 201
    taken = cli.send("POST", "/api/v2/campaigns", {"campaign": {"name": "Twice"}})
    assert taken.status_code == 422
    assert Cli.error_text(taken, "Failed to create campaign") == "name: has already been taken"
    blank = cli.send("POST", "/api/v2/campaigns", {"campaign": {"name": " ", "description": 5}})
    assert sorted(Cli.error_text(blank, "").split("; ")) == [
        "description: must be a string",
        "name: can't be blank",
    ]
    # `chiwar campaign create '<json>'` passes any object: unknown keys are ignored
    loose = cli.send("POST", "/api/v2/campaigns", {"campaign": {"name": "Loose", "ai": "grok"}})
    assert loose.status_code == 201


def test_someone_elses_campaign_is_not_found(template_app: Flask, cli: Cli) -> None:
    owner = gamemaster(template_app, "owner@example.com")
    theirs = Cli(
        template_app.test_client(), AuthActions(template_app.test_client()).token_for(owner)
    )
    campaign = theirs.send("POST", "/api/v2/campaigns", {"campaign": {"name": "Theirs"}}).get_json()
    path = f"/api/v2/campaigns/{campaign['id']}"
    assert cli.send("GET", path).status_code == 404
    assert cli.send("PATCH", path, {"campaign": {"name": "Mine now"}}).status_code == 404
    assert cli.send("DELETE", path).status_code == 404
    chosen = cli.send("POST", "/api/v2/campaigns/current", {"campaign_id": campaign["id"]})
    assert chosen.status_code == 404
    assert theirs.send("GET", path).get_json()["name"] == "Theirs"


def test_an_expired_session_says_so(cli: Cli) -> None:
    """api.ts `getCurrentUser`: 401 -> "Session expired. Run 'chiwar login' ..."."""
    cli.token = cli.token[:-2] + "xx"  # type: ignore[index]
    response = cli.send("GET", "/api/v2/users/current")
    assert response.status_code == 401 and json.loads(response.data)["error"]

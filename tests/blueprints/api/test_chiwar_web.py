"""The Chi War web client's campaign flow (progressions/shot-client-next), replayed as it sends it.

Sign-in as `src/app/(auth)/login/page.tsx` does it (token from the `Authorization` response
header, then `GET /api/v2/users/current`), the create form as `src/hooks/useEntity.ts`
`createEntity` builds it (multipart, `campaign` = JSON text of `defaultCampaign` merged with the
form, `image` file), the list as `src/lib/client/campaignClient.ts` `getCampaigns` asks for it,
and the update as `useEntity.updateEntity` sends the whole campaign back.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import Campaign, ImageAttachment
from portal.services.infra.queue import get_redis
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from portal.services.template.pictures import render_picture
from tests.conftest import app_on
from tests.support.chiwar_clients import WEB_DEFAULT_CAMPAIGN, Web, gamemaster
from tests.support.databases import TestDatabases

# The keys of the servers' CampaignView (shot-server-elixir views/api/v2/campaign_view.ex)
# that the web client reads, plus this project's own.
CAMPAIGN_VIEW_KEYS = {
    "id", "name", "description", "user_id", "gamemaster_id", "gamemaster", "users", "user_ids",
    "image_url", "image_positions", "entity_class", "active", "at_a_glance", "created_at",
    "updated_at", "seeding_status", "seeded_at", "is_seeding", "is_seeded",
    "seeding_images_total", "seeding_images_completed", "players", "player_ids",
    "source", "activated_at", "counts",
}  # fmt: skip


def campaign_part(**form: object) -> str:
    """The `campaign` part: `{...defaultCampaign, ...form}` without `image`/`_tempImageFile`."""
    return json.dumps({**WEB_DEFAULT_CAMPAIGN, **form})


@pytest.fixture
def web(template_app: Flask) -> Web:
    gamemaster(template_app)
    web = Web(template_app.test_client())
    response = web.sign_in("gm@example.com")
    assert response.status_code == 200, response.get_json()
    assert web.token, "no token in the Authorization header"
    return web


def test_sign_in_returns_the_token_in_the_header_and_the_body(web: Web) -> None:
    me = web.get("/api/v2/users/current")
    assert me.status_code == 200
    user = me.get_json()
    assert user["email"] == "gm@example.com" and user["gamemaster"] is True  # /campaigns needs it
    assert user["entity_class"] == "User" and user["id"]


def test_wrong_password_and_missing_credentials(template_app: Flask) -> None:
    gamemaster(template_app)
    web = Web(template_app.test_client())
    wrong = web.sign_in("gm@example.com", "not the password")
    assert wrong.status_code == 401 and web.token is None
    assert wrong.get_json()["error"]
    missing = template_app.test_client().post("/users/sign_in", json={"email": "gm@example.com"})
    assert missing.status_code == 400


def test_create_with_an_image_then_list_sort_search_and_a_duplicate(web: Web) -> None:
    png = render_picture("banner", 3)
    created = web.form(
        "POST",
        "/api/v2/campaigns",
        {
            "campaign": campaign_part(name="Jade Dragon", description="<p>Hong Kong, 1997</p>"),
            "image": (io.BytesIO(png), "cover.png", "image/png"),
        },
    )
    assert created.status_code == 201, created.get_json()
    campaign = created.get_json()
    assert set(campaign) >= CAMPAIGN_VIEW_KEYS
    assert (campaign["name"], campaign["description"]) == ("Jade Dragon", "<p>Hong Kong, 1997</p>")
    assert (campaign["seeding_status"], campaign["is_seeded"]) == ("complete", True)
    assert campaign["gamemaster"]["email"] == "gm@example.com"
    assert campaign["entity_class"] == "Campaign" and campaign["counts"]["schticks"] > 0
    # The uploaded image is the campaign's image, served where image_url says.
    served = web.client.get(campaign["image_url"])
    assert served.status_code == 200 and served.data == png
    attachments = db.session.scalars(
        sa.select(ImageAttachment).where(
            ImageAttachment.record_type == "Campaign",
            ImageAttachment.record_id == uuid.UUID(campaign["id"]),
        )
    ).all()
    assert len(attachments) == 1

    second = web.form("POST", "/api/v2/campaigns", {"campaign": campaign_part(name="Bamboo")})
    assert second.status_code == 201

    listing = web.get("/api/v2/campaigns?page=1&sort=created_at&order=desc").get_json()
    assert [c["name"] for c in listing["campaigns"]] == ["Bamboo", "Jade Dragon"]
    assert listing["meta"] == {
        "current_page": 1,
        "next_page": None,
        "prev_page": None,
        "per_page": 15,
        "total_count": 2,
        "total_pages": 1,
    }
    by_name = web.get("/api/v2/campaigns?page=1&sort=name&order=asc").get_json()
    assert [c["name"] for c in by_name["campaigns"]] == ["Bamboo", "Jade Dragon"]
    found = web.get("/api/v2/campaigns?search=DRAG").get_json()
    assert [c["name"] for c in found["campaigns"]] == ["Jade Dragon"]
    assert found["meta"]["total_count"] == 1

    duplicate = web.form("POST", "/api/v2/campaigns", {"campaign": campaign_part(name="Bamboo")})
    assert duplicate.status_code == 422
    assert duplicate.get_json()["errors"]["name"] == ["has already been taken"]


def fill_master_pool(app: Flask, size: int) -> None:
    set_pool_setting(db.session, "master_target", size)
    db.session.commit()
    replenish_pool(db.session, get_redis(), app.config["SETTINGS"], "master")


def test_a_pool_served_create_answers_with_the_campaigns_image_as_a_read_would(
    web: Web, template_app: Flask
) -> None:
    """The create reads the campaign's image inside the claim's transaction; its answer must be
    what reading the campaign afterwards shows."""
    fill_master_pool(template_app, 1)
    created = web.form("POST", "/api/v2/campaigns", {"campaign": campaign_part(name="Pooled")})
    assert created.status_code == 201, created.get_json()
    campaign = created.get_json()
    assert campaign["source"] == "master_pool"
    shown = web.get(f"/api/v2/campaigns/{campaign['id']}").get_json()
    assert campaign["image_url"] and campaign["image_url"] == shown["image_url"]
    assert campaign["image_positions"] == shown["image_positions"]
    assert campaign["gamemaster"] == shown["gamemaster"]


def test_a_pool_served_create_with_an_upload_answers_with_the_uploaded_image(
    web: Web, template_app: Flask
) -> None:
    fill_master_pool(template_app, 1)
    png = render_picture("banner", 5)
    created = web.form(
        "POST",
        "/api/v2/campaigns",
        {
            "campaign": campaign_part(name="Pooled with a cover"),
            "image": (io.BytesIO(png), "cover.png", "image/png"),
        },
    )
    assert created.status_code == 201, created.get_json()
    campaign = created.get_json()
    assert campaign["source"] == "master_pool"
    served = web.client.get(campaign["image_url"])
    assert served.status_code == 200 and served.data == png


def test_a_file_that_is_not_an_image_is_refused_and_creates_nothing(web: Web) -> None:
    before = db.session.scalar(sa.select(sa.func.count()).select_from(Campaign))
    refused = web.form(
        "POST",
        "/api/v2/campaigns",
        {
            "campaign": campaign_part(name="Script"),
            "image": (io.BytesIO(b"<svg onload=alert(1)>"), "cover.png", "image/png"),
        },
    )
    assert refused.status_code == 422
    assert "image" in refused.get_json()["errors"]
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == before


def test_update_sends_the_whole_campaign_back(web: Web) -> None:
    created = web.form("POST", "/api/v2/campaigns", {"campaign": campaign_part(name="Old")})
    campaign = created.get_json()
    edited = {**campaign, "name": "New", "description": "<p>changed</p>"}
    updated = web.form(
        "PATCH", f"/api/v2/campaigns/{campaign['id']}", {"campaign": json.dumps(edited)}
    )
    assert updated.status_code == 200, updated.get_json()
    assert (updated.get_json()["name"], updated.get_json()["description"]) == (
        "New",
        "<p>changed</p>",
    )
    # Set and clear the current campaign the web client's way.
    chosen = web.client.patch(
        f"/api/v2/campaigns/{campaign['id']}/set",
        json={"id": campaign["id"]},
        headers=web.headers(),
    )
    assert chosen.status_code == 200
    assert web.get("/api/v2/campaigns/current").get_json()["id"] == campaign["id"]
    cleared = web.client.patch("/api/v2/campaigns/set", json={"id": None}, headers=web.headers())
    assert cleared.status_code == 200 and cleared.get_json()["campaign"] is None
    assert web.get("/api/v2/campaigns/current").status_code == 404


def test_a_player_cannot_create(template_app: Flask) -> None:
    from tests.support.auth import AuthActions

    AuthActions(template_app.test_client()).create_user("player@example.com", admin=False)
    web = Web(template_app.test_client())
    assert web.sign_in("player@example.com").status_code == 200
    refused = web.form("POST", "/api/v2/campaigns", {"campaign": campaign_part(name="No")})
    assert refused.status_code == 403 and refused.get_json()["error"] == "Forbidden"


@pytest.fixture
def cors_app(databases: TestDatabases, migrated_golden: str, redis_url: str):
    yield from app_on(databases, migrated_golden, redis_url, CORS_ORIGINS="https://chiwar.example")


def preflight(app: Flask, origin: str):
    return app.test_client().options(
        "/users/sign_in",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )


def test_cors_preflight_from_a_configured_origin_passes(cors_app: Flask) -> None:
    allowed = preflight(cors_app, "https://chiwar.example")
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://chiwar.example"
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
    gamemaster(cors_app)
    signed_in = cors_app.test_client().post(
        "/users/sign_in",
        json={"user": {"email": "gm@example.com", "password": "correct horse battery"}},
        headers={"Origin": "https://chiwar.example"},
    )
    assert signed_in.headers["Access-Control-Allow-Origin"] == "https://chiwar.example"
    assert "authorization" in signed_in.headers["Access-Control-Expose-Headers"].lower()


def test_cors_preflight_from_another_origin_fails(cors_app: Flask, app: Flask) -> None:
    other = preflight(cors_app, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in other.headers
    unconfigured = preflight(app, "https://chiwar.example")  # CORS_ORIGINS unset
    assert "Access-Control-Allow-Origin" not in unconfigured.headers


def test_the_sign_in_is_throttled_and_locks_like_every_sign_in(template_app: Flask) -> None:
    """/users/sign_in shares the sign-in throttle (5 failures a minute per account by default)
    and the lockout of the one password check (docs/security.md)."""
    gamemaster(template_app)
    web = Web(template_app.test_client())
    statuses = [web.sign_in("gm@example.com", "wrong password").status_code for _ in range(6)]
    assert statuses[:5] == [401] * 5
    throttled = web.sign_in("gm@example.com", "wrong password")
    assert throttled.status_code == 429 and throttled.is_json
    assert int(throttled.headers["Retry-After"]) > 0

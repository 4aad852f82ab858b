"""`/api/v2/campaigns`: pool-served and seeded creates, errors that change nothing, ownership."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Campaign, PoolEvent
from portal.services.pool_config import set_pool_setting
from portal.services.queue import get_redis
from portal.services.replenish import replenish_pool
from tests.auth_helpers import AuthActions


@pytest.fixture
def api(template_app):
    """A test client on the template database plus a gamemaster's bearer token."""
    client = template_app.test_client()
    actions = AuthActions(client)
    gm = actions.create_user("gm@example.com", admin=False, gamemaster=True, name="Gina GM")
    token = actions.token_for(gm)
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    client.gm = gm
    client.actions = actions
    return client


def campaign_rows() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Campaign))


def post(client, body, **kwargs):
    return client.post("/api/v2/campaigns", json=body, **kwargs)


def test_create_from_the_pool(api, template_app):
    set_pool_setting(db.session, "master_target", 1)
    db.session.commit()
    replenish_pool(db.session, get_redis(), template_app.config["SETTINGS"], "master")

    response = post(api, {"campaign": {"name": "Hong Kong Nights", "description": "Café <i>"}})

    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["source"] == "master_pool"
    assert body["entity_class"] == "Campaign"
    assert body["name"] == "Hong Kong Nights" and body["description"] == "Café <i>"
    assert body["gamemaster_id"] == str(api.gm.id)
    assert body["activated_at"] and body["seeded_at"] and body["created_at"]
    assert body["counts"]["schticks"] == 643 and body["counts"]["characters"] == 40
    assert body["seeding_status"] == "complete"


def test_create_without_a_pool_seeds_in_the_request(api):
    response = post(api, {"campaign": {"name": "Fallback"}})
    assert response.status_code == 201
    body = response.get_json()
    assert body["source"] == "seeded"
    assert body["counts"]["weapons"] == 86


def test_list_and_show_only_own_campaigns(api):
    created = post(api, {"campaign": {"name": "Mine"}}).get_json()
    other = api.actions.create_user("other@example.com", admin=False, gamemaster=True)
    other_token = api.actions.token_for(other)

    listing = api.get("/api/v2/campaigns").get_json()
    assert [c["id"] for c in listing["campaigns"]] == [created["id"]]
    assert api.get(f"/api/v2/campaigns/{created['id']}").status_code == 200
    foreign = api.get(
        f"/api/v2/campaigns/{created['id']}",
        headers={"Authorization": f"Bearer {other_token}"},
    )
    assert foreign.status_code == 404
    assert api.get("/api/v2/campaigns/not-a-uuid").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"campaign": {"name": ""}}, "name"),
        ({"campaign": {"name": "   "}}, "name"),
        ({"campaign": {}}, "name"),
        ({"campaign": {"name": 42}}, "name"),
        ({"campaign": {"name": "x" * 10_000}}, "name"),
        ({"campaign": {"name": "bell\x07"}}, "name"),
        ({"campaign": {"name": "ok", "description": ["list"]}}, "description"),
        ({"campaign": {"name": "ok", "owner_id": "someone"}}, "owner_id"),
        ({"campaign": "Hong Kong"}, "campaign"),
        ({"name": "flat"}, "campaign"),
    ],
)
def test_invalid_input_is_a_422_that_writes_nothing(api, body, field):
    before = campaign_rows()
    response = post(api, body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]
    assert campaign_rows() == before


def test_name_clash_is_a_422_with_the_rails_shape(api, template_app):
    assert post(api, {"campaign": {"name": "Twice"}}).status_code == 201
    set_pool_setting(db.session, "master_target", 1)
    db.session.commit()
    replenish_pool(db.session, get_redis(), template_app.config["SETTINGS"], "master")
    before = campaign_rows()

    response = post(api, {"campaign": {"name": "Twice"}})

    assert response.status_code == 422
    assert response.get_json()["errors"] == {"name": ["has already been taken"]}
    assert campaign_rows() == before
    ready = db.session.scalar(
        sa.select(sa.func.count()).where(
            Campaign.is_pool.is_(True), Campaign.pool_status == "ready"
        )
    )
    assert ready == 1


def test_transport_errors(api):
    before = campaign_rows()
    malformed = api.post("/api/v2/campaigns", data="{not json", content_type="application/json")
    assert malformed.status_code == 400
    wrong_type = api.post("/api/v2/campaigns", data="name=x", content_type="text/plain")
    assert wrong_type.status_code == 415
    huge = api.post(
        "/api/v2/campaigns",
        data='{"campaign": {"name": "' + "x" * (2 * 1024 * 1024) + '"}}',
        content_type="application/json",
    )
    assert huge.status_code == 413
    no_token = api.post(
        "/api/v2/campaigns", json={"campaign": {"name": "x"}}, headers={"Authorization": ""}
    )
    assert no_token.status_code == 401
    assert campaign_rows() == before


def test_a_player_who_is_not_a_gamemaster_is_refused(api):
    player = api.actions.create_user("player@example.com", admin=False, gamemaster=False)
    token = api.actions.token_for(player)
    response = post(
        api, {"campaign": {"name": "Nope"}}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 403
    assert not db.session.scalar(sa.select(sa.func.count()).select_from(PoolEvent))

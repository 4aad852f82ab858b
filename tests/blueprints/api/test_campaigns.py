"""`/api/v2/campaigns`: pool-served and seeded creates, a name clash that changes nothing,
ownership. Malformed and invalid requests are swept in test_api_bad_input."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import Campaign
from portal.services.infra.queue import get_redis
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from tests.support.auth import AuthActions


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

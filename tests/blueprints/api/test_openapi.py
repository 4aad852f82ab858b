"""The OpenAPI document at /api/v2/openapi.json: valid, and complete for the routes the app has.

Completeness is checked against the app's own URL map, so a route added under /api/v2 or
/health without documentation fails here instead of drifting silently.
"""

from __future__ import annotations

import re

import schemathesis
from flask import Flask

from portal.services.campaigns.input import NAME_MAX
from tests.conftest import app_on
from tests.support.auth import AuthActions
from tests.support.databases import TestDatabases

OPENAPI_URL = "/api/v2/openapi.json"
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}  # added to every route by Flask/Werkzeug


def served_operations(app: Flask) -> set[tuple[str, str]]:
    """(path in OpenAPI spelling, lower-case method) for every route under /api/v2 and /health."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/v2/") or rule.rule == "/health"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in (rule.methods or set()) - IMPLICIT_METHODS:
            operations.add((path, method.lower()))
    return operations


def documented_operations(document: dict) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    }


def test_document_is_served_without_a_token_as_json(client):
    response = client.get(OPENAPI_URL)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json()["openapi"].startswith("3.1")


def test_every_route_is_documented_and_nothing_else(app, client):
    document = client.get(OPENAPI_URL).get_json()
    served = served_operations(app)
    assert ("/api/v2/campaigns/{campaign_id}", "get") in served  # the conversion works
    assert served == documented_operations(document)


def test_schemathesis_accepts_the_document(client):
    document = client.get(OPENAPI_URL).get_json()
    schema = schemathesis.openapi.from_dict(document)
    schema.validate()  # raises on a document that breaks the OpenAPI 3.1 meta-schema
    labels = {operation.ok().label for operation in schema.get_all_operations()}
    assert "POST /api/v2/campaigns" in labels and "GET /health" in labels


def test_document_states_the_limits_the_code_enforces(app, client):
    document = client.get(OPENAPI_URL).get_json()
    campaign = document["components"]["schemas"]["CampaignRequest"]["properties"]["campaign"]
    assert campaign["properties"]["name"]["maxLength"] == NAME_MAX
    assert str(app.config["MAX_CONTENT_LENGTH"]) in document["info"]["description"]


def test_a_pending_create_matches_the_document(
    databases: TestDatabases, template_golden: str, redis_url: str
) -> None:
    """With POOL_FALLBACK=async and an empty pool the 201 comes before seeding: a shape the
    schemathesis run (sync fallback) never sees, so it is checked against the document here."""
    for app in app_on(databases, template_golden, redis_url, POOL_FALLBACK="async"):
        client = app.test_client()
        actions = AuthActions(client)
        token = actions.token_for(actions.create_user("gm@example.com", gamemaster=True))
        response = client.post(
            "/api/v2/campaigns",
            json={"campaign": {"name": "Later"}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.get_json()
        created = response.get_json()
        assert (created["source"], created["seeding_status"]) == ("seeded", "pending")
        assert created["seeded_at"] is None
        schema = schemathesis.openapi.from_dict(client.get(OPENAPI_URL).get_json())
        schema["/api/v2/campaigns"]["POST"].validate_response(response)

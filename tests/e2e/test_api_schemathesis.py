"""schemathesis against the app's own OpenAPI document, in-process through WSGI.

Every operation of /api/v2 and /health gets generated requests, valid and invalid (schemathesis'
coverage phase of boundary cases, then Hypothesis fuzzing), sent with a real gamemaster's bearer
token to one app whose database holds the master template, so creates really seed campaigns.
Each answer must not be a 5xx and must match the document: status code, content type and body
schema. Invalid data must be refused, and valid data accepted, so the request schemas say
exactly what the server enforces. Hypothesis runs derandomized with a small example budget:
CI sees the same cases every time and the file stays well under a minute.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from portal.blueprints.api.openapi import build_openapi
from portal.extensions import db
from portal.models import User
from portal.services.accounts.tokens import issue_token
from portal.services.infra.queue import get_redis
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from tests.conftest import app_on
from tests.support.auth import AuthActions
from tests.support.databases import TestDatabases

MAX_BODY = 1024 * 1024  # MAX_CONTENT_LENGTH; test_api_openapi checks the served document
REVOKES_ITS_TOKEN = "DELETE /api/v2/auth/token"
NAME_TAKEN = {"name": ["has already been taken"]}

# Built by the function the app serves the document with; the app is a fixture handed to each
# call. (schemathesis' lazy `from_fixture` loader fails on pytest 9.2, which dropped the private
# `Node._nodeid` it rewrites.)
schema = schemathesis.openapi.from_dict(build_openapi(MAX_BODY))
cases_run: Counter[str] = Counter()
sources: Counter[str] = Counter()  # which path served the campaigns schemathesis created


def valid_data_is_accepted(ctx, response, case) -> None:
    """A request the document calls valid must not be refused as malformed (400/422). The one
    refusal valid data can earn is a name this user already has: generated names repeat."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code == 422 and response.json().get("errors") == NAME_TAKEN:
        return
    assert response.status_code not in (400, 422), (
        f"valid data refused with {response.status_code}: {response.text[:500]}"
    )


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    valid_data_is_accepted,
]


@pytest.fixture(scope="module")
def shared_app(databases: TestDatabases, template_golden: str, redis_url: str) -> Iterator[Flask]:
    """One copy of the template database for every operation of this file: cloning one per
    operation costs more than the cases themselves."""
    yield from app_on(databases, template_golden, redis_url)


@pytest.fixture(scope="module")
def ready_pool(shared_app: Flask) -> None:
    """Two ready master-pool campaigns, so the first valid creates are served by the pool
    (`source: master_pool`) and later ones by seeding: both shapes meet the document."""
    set_pool_setting(db.session, "master_target", 2)
    db.session.commit()
    replenish_pool(db.session, get_redis(), shared_app.config["SETTINGS"], "master")


@pytest.fixture(scope="module")
def gamemaster(shared_app: Flask) -> User:
    return AuthActions(shared_app.test_client()).create_user(
        "gm@example.com", admin=False, gamemaster=True, name="Gina GM"
    )


@pytest.fixture(scope="module")
def gm_token(gamemaster: User) -> str:
    token = issue_token(db.session, gamemaster, "schemathesis")
    db.session.commit()
    return token


@pytest.fixture(scope="module", autouse=True)
def report_cases() -> Iterator[None]:
    """Print how many cases ran (visible with `pytest -s`) and insist every operation ran."""
    yield
    print(f"\nschemathesis: {sum(cases_run.values())} cases over {len(cases_run)} operations")
    for label, count in sorted(cases_run.items()):
        print(f"  {count:4d}  {label}")
    print(f"  campaigns created by source: {dict(sources)}")


@schema.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_document(
    case, shared_app: Flask, ready_pool: None, gamemaster: User, gm_token: str
) -> None:
    token = gm_token
    if case.operation.label == REVOKES_ITS_TOKEN:
        # It revokes the token it is sent with, so it gets one of its own.
        token = issue_token(db.session, gamemaster, "revoked by schemathesis")
        db.session.commit()
    cases_run[case.operation.label] += 1
    response = case.call_and_validate(
        app=shared_app, headers=authorization(case, token), checks=CHECKS
    )
    if response.status_code == 201 and case.operation.label == "POST /api/v2/campaigns":
        sources[response.json()["source"]] += 1


def authorization(case, token: str) -> dict[str, str]:
    """The real token, unless the case deliberately breaks its headers (the only header the
    document declares is the bearer token): then it is sent as generated, missing or mangled,
    and the server must refuse it."""
    headers = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    if headers is not None and headers.mode.is_negative:
        return {}
    return {"Authorization": f"Bearer {token}"}


def test_schemathesis_reached_every_operation(request: pytest.FixtureRequest) -> None:
    """Every operation got cases, and creates were served both by the pool and by seeding, so
    both shapes of the 201 were checked. Runs after the parametrized test (file order)."""
    documented = {op.ok().label for op in schema.get_all_operations()}
    selected = [
        item
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_every_answer_matches_the_document"
    ]
    if len(selected) < len(documented):
        pytest.skip("only part of the schemathesis run was selected")
    assert set(cases_run) == documented
    assert sources["master_pool"] and sources["seeded"], sources

"""Behind a TLS-terminating proxy (docs/deployment.md): with PROXY_FIX_HOPS the app believes the
proxy's X-Forwarded-* headers (client address for the sign-in throttle, https for Secure cookies
and HSTS); without it, a client cannot claim another address. The deployment examples turn the
TLS settings on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.conftest import app_on
from tests.support import PROJECT_ROOT
from tests.support.databases import TestDatabases

ROOT = PROJECT_ROOT


@pytest.fixture
def make(databases: TestDatabases, migrated_golden: str, redis_url: str):
    running: list[Iterator[Flask]] = []

    def build(**settings: str) -> Flask:
        generator = app_on(databases, migrated_golden, redis_url, **settings)
        running.append(generator)
        return next(generator)

    yield build
    for generator in reversed(running):
        for _ in generator:
            pass


def guess(app: Flask, client_address: str) -> int:
    response = app.test_client().post(
        "/api/v2/auth/token",
        json={"email": f"someone-{client_address}@example.com", "password": "guess"},
        headers={"X-Forwarded-For": client_address, "X-Forwarded-Proto": "https"},
    )
    return response.status_code


def test_with_proxyfix_the_throttle_counts_each_forwarded_client(make) -> None:
    app = make(PROXY_FIX_HOPS="1", SIGN_IN_LIMIT_ACCOUNT="off", SIGN_IN_LIMIT_ADDRESS="3/minute")
    for _ in range(3):
        assert guess(app, "203.0.113.7") == 401
    assert guess(app, "203.0.113.7") == 429
    assert guess(app, "203.0.113.8") == 401


def test_without_proxyfix_forwarded_addresses_are_not_believed(make) -> None:
    app = make(SIGN_IN_LIMIT_ACCOUNT="off", SIGN_IN_LIMIT_ADDRESS="3/minute")
    for i in range(3):
        assert guess(app, f"203.0.113.{i}") == 401
    assert guess(app, "203.0.113.99") == 429  # all from the one real peer


def test_https_behind_the_proxy_gets_hsts_and_secure_cookies(make) -> None:
    app = make(PROXY_FIX_HOPS="1", PREFERRED_URL_SCHEME="https")
    response = app.test_client().get(
        "/login", base_url="http://localhost", headers={"X-Forwarded-Proto": "https"}
    )
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Secure" in response.headers["Set-Cookie"]
    plain = make(PREFERRED_URL_SCHEME="https").test_client()
    spoofed = plain.get(
        "/login", base_url="http://localhost", headers={"X-Forwarded-Proto": "https"}
    )
    assert "Strict-Transport-Security" not in spoofed.headers


def test_the_deployment_examples_turn_tls_settings_on() -> None:
    example = (ROOT / "deploy" / "campaign-pool.env.example").read_text()
    lines = {
        line.split("=", 1)[0]: line.split("=", 1)[1]
        for line in example.splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert lines["PROXY_FIX_HOPS"] == "1"
    assert lines["PREFERRED_URL_SCHEME"] == "https"
    assert lines["SESSION_COOKIE_SECURE"] == "true"
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    for name in (
        "PROXY_FIX_HOPS",
        "SESSION_COOKIE_SECURE",
        "PREFERRED_URL_SCHEME",
        "X-Forwarded-Proto",
    ):
        assert name in deployment, name

"""`/health` for the public is `{"status": ...}` only; the details are for signed-in admins and
for HEALTH_TOKEN, and no error text ever names a host, a port or a driver message
(docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from portal.extensions import db
from tests.conftest import TEST_HEALTH_TOKEN, make_app
from tests.support.auth import AuthActions


def test_the_public_answer_is_the_status_only(client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert set(response.get_json()) == {"status"}
    assert response.get_json()["status"] in ("ok", "degraded")
    wrong = client.get("/health", headers={"X-Health-Token": "not-the-token-0123456789"})
    assert set(wrong.get_json()) == {"status"}
    # A gamemaster's API token is not the health token either.
    bearer = client.get("/health", headers={"Authorization": "Bearer cp_whatever"})
    assert set(bearer.get_json()) == {"status"}


@pytest.mark.parametrize(
    "headers",
    [{"X-Health-Token": TEST_HEALTH_TOKEN}, {"Authorization": f"Bearer {TEST_HEALTH_TOKEN}"}],
)
def test_the_health_token_shows_the_details(client, headers) -> None:
    body = client.get("/health", headers=headers).get_json()
    assert {"database", "redis", "workers", "pool"} <= set(body["checks"])


def test_a_signed_in_admin_sees_the_details_and_a_gamemaster_does_not(client, auth) -> None:
    auth.create_user("gm@example.com", admin=False, gamemaster=True)
    assert auth.login("gm@example.com").status_code == 302
    assert set(client.get("/health").get_json()) == {"status"}
    admin_client = client.application.test_client()
    admins = AuthActions(admin_client)
    admins.create_user()
    assert admins.login().status_code == 302
    assert "checks" in admin_client.get("/health").get_json()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_errors_never_name_hosts_ports_or_drivers(
    backend: str, tmp_path: Path, dead_port: int
) -> None:
    database = (
        f"sqlite:///{tmp_path}/no-such-dir/db.sqlite3"
        if backend == "sqlite"
        else f"postgresql://nobody@127.0.0.1:{dead_port}/nothing"
    )
    app: Flask = make_app(database, f"redis://127.0.0.1:{dead_port}/0", HEALTH_CACHE_SECONDS=0)
    with app.app_context():
        public = app.test_client().get("/health")
        detailed = app.test_client().get("/health", headers={"X-Health-Token": TEST_HEALTH_TOKEN})
        db.engine.dispose()
    assert public.status_code == 503 and public.get_json() == {"status": "down"}
    body = detailed.get_json()
    assert body["checks"]["database"] == {"ok": False, "error": "database unreachable"}
    assert body["checks"]["redis"] == {"ok": False, "error": "redis unreachable"}
    text = detailed.text
    for leak in (str(dead_port), "127.0.0.1", "no-such-dir", "Error", "psycopg", "sqlite3"):
        assert leak not in text, leak

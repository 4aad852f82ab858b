"""`GET /metrics`: never public, parses with the client library's parser, no label carries an id,
and the figures follow what happened (pool levels, creates, builds, the refill queue).

The pool_events totals: tests/services/monitoring/test_prometheus.py; a real Prometheus server
scraping a running instance, promtool and the Grafana dashboard: tests/e2e/test_prometheus.py."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from portal.config import ConfigError, load_settings
from portal.extensions import db
from portal.services.infra.queue import get_redis
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from tests.conftest import app_on
from tests.support.auth import AuthActions
from tests.support.metrics import TOKEN, samples_of, value

UUID_RE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
# Every label name /metrics may use; a new one must be added here on purpose (bounded values).
LABEL_NAMES = {
    "pool", "status", "source", "mode", "method", "reason", "queue", "state", "alert",
    "severity", "channel", "outcome", "le", "limit",
    # the client library's own process metrics
    "generation", "implementation", "major", "minor", "patchlevel", "version",
}  # fmt: skip


@pytest.fixture
def metrics_app(databases, template_golden, redis_url) -> Iterator[Flask]:
    yield from app_on(databases, template_golden, redis_url, METRICS_TOKEN=TOKEN)


@pytest.fixture
def api(metrics_app: Flask) -> FlaskClient:
    client = metrics_app.test_client()
    actions = AuthActions(client)
    gm = actions.create_user("gm@example.com", admin=False, gamemaster=True, name="Gina GM")
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {actions.token_for(gm)}"
    return client


def scrape(client: FlaskClient, token: str | None = TOKEN) -> dict[tuple[str, tuple], float]:
    """Every sample of one scrape, keyed by (name, sorted labels)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data[:300]
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return samples_of(response.get_data(as_text=True))


def test_metrics_do_not_exist_without_a_configured_token(client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token-0123456789abcdef", f"Basic {TOKEN}", "Bearer", f"{TOKEN}"],
)
def test_metrics_refuse_a_missing_or_wrong_token(
    metrics_app: Flask, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = metrics_app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"campaign_pool" not in response.data


def test_a_short_metrics_token_stops_start_up_naming_it(tmp_path) -> None:
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        load_settings({"METRICS_TOKEN": "short"}, tmp_path)
    settings = load_settings({"METRICS_TOKEN": TOKEN}, tmp_path)
    assert settings.metrics_token == TOKEN
    assert settings.redacted()["metrics_token"] == "***"


def test_metrics_follow_builds_and_creates_and_carry_no_ids(
    api: FlaskClient, metrics_app: Flask
) -> None:
    settings = metrics_app.config["SETTINGS"]
    set_pool_setting(db.session, "master_target", 3)
    set_pool_setting(db.session, "user_target", 0)
    db.session.commit()
    report = replenish_pool(db.session, get_redis(), settings, "master")
    assert len(report.built) == 3
    before = scrape(api)
    assert value(before, "campaign_pool_ready", pool="master") == 3
    assert value(before, "campaign_pool_target", pool="master") == 3
    assert value(before, "campaign_pool_refills_built_total", pool="master") == 3
    assert value(before, "campaign_pool_seeding_duration_seconds_count", pool="master",
                 method="batch") == 3  # fmt: skip
    assert value(before, "campaign_pool_database_up") == 1
    assert value(before, "campaign_pool_redis_up") == 1

    for name in ("One", "Two"):
        assert api.post("/api/v2/campaigns", json={"campaign": {"name": name}}).status_code == 201
    assert value(scrape(api), "campaign_pool_ready", pool="master") == 1
    for name in ("Three", "Four"):  # the last one finds the pool empty
        assert api.post("/api/v2/campaigns", json={"campaign": {"name": name}}).status_code == 201
    after = scrape(api)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "campaign_pool_ready", pool="master") == 0
    assert delta("campaign_pool_creates_total", source="master_pool") == 3
    assert delta("campaign_pool_creates_total", source="seeded") == 1
    assert delta("campaign_pool_fallbacks_total", mode="sync") == 1
    assert delta("campaign_pool_claim_duration_seconds_count", pool="master") == 3
    assert delta("campaign_pool_time_in_pool_seconds_count", pool="master") == 3
    assert delta("campaign_pool_create_duration_seconds_count", source="seeded") == 1
    # each create asked for a refill of the master pool, queued once (no worker runs here); user
    # pools are off (user_target 0), so the fallback queues no refill of the gamemaster's own
    assert value(after, "campaign_pool_queue_jobs", queue="seeding", state="queued") == 1

    for (name, labels), _ in after.items():
        assert name.startswith(("campaign_pool_", "process_", "python_")), name
        for label, label_value in labels:
            assert label in LABEL_NAMES, f"{name} has an unexpected label {label}"
            assert not UUID_RE.search(label_value), f"{name}{{{label}={label_value!r}}}"
            assert "@" not in label_value

"""The application starts on a fresh database and answers /health."""

from tests.conftest import TEST_HEALTH_TOKEN


def test_health_reports_database_and_redis(client):
    response = client.get("/health", headers={"X-Health-Token": TEST_HEALTH_TOKEN})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] in ("ok", "degraded")  # degraded: a real Redis, but no worker here
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True

"""rq-dashboard hardened at the mount (docs/security.md): no state change over GET, every POST
needs the CSRF token, and its routes answer 4xx, never 500, for missing jobs, queues,
registries and bad parameters."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient
from rq import Queue
from rq.job import Job

from portal.services.infra.queue import get_redis
from tests.support.auth import AuthActions

MISSING = "00000000-no-such-job"


@pytest.fixture
def admin_client(client: FlaskClient, auth: AuthActions) -> FlaskClient:
    auth.create_user()
    assert auth.login().status_code == 302
    return client


def csrf(client: FlaskClient) -> dict[str, str]:
    page = client.get("/admin/rq/").text
    return {"X-CSRFToken": re.search(r'data-csrf-token="([^"]+)"', page).group(1)}


def failed_job(client: FlaskClient) -> tuple[Queue, Job]:
    """A job in the failed registry of the `default` queue."""
    redis = get_redis(client.application)
    queue = Queue("default", connection=redis)
    job = queue.enqueue("builtins.len", "abc")
    queue.remove(job.id)
    queue.failed_job_registry.add(job, exc_string="Traceback: boom")
    assert job.id in queue.failed_job_registry.get_job_ids()
    return queue, job


def test_requeue_all_over_get_is_refused_and_changes_nothing(admin_client) -> None:
    queue, job = failed_job(admin_client)
    response = admin_client.get("/admin/rq/requeue/default")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert job.id in queue.failed_job_registry.get_job_ids()
    assert job.id not in queue.job_ids


def test_posts_need_the_csrf_token(admin_client) -> None:
    queue, job = failed_job(admin_client)
    assert admin_client.post("/admin/rq/requeue/default").status_code == 400
    assert job.id in queue.failed_job_registry.get_job_ids()
    done = admin_client.post("/admin/rq/requeue/default", headers=csrf(admin_client))
    assert done.status_code == 200 and done.get_json()["count"] == 1
    assert job.id in queue.job_ids


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/admin/rq/queue/nothing-here/compact", 404),
        ("POST", f"/admin/rq/job/{MISSING}/requeue", 404),
        ("GET", f"/admin/rq/0/view/job/{MISSING}", 404),
        ("GET", f"/admin/rq/0/data/job/{MISSING}.json", 404),
        ("GET", "/admin/rq/0/data/jobs/default/queued/abc/asc/1.json", 400),
        ("GET", "/admin/rq/0/data/jobs/default/queued/0/asc/1.json", 400),
        ("GET", "/admin/rq/0/data/jobs/default/queued/8/asc/x.json", 400),
        ("GET", "/admin/rq/0/data/jobs/default/queued/100000/asc/1.json", 400),
        ("GET", "/admin/rq/0/data/jobs/default/nosuchregistry/8/asc/1.json", 404),
        ("GET", "/admin/rq/0/view/jobs/default/nosuchregistry/8/asc/1", 404),
        ("GET", "/admin/rq/0/data/jobs/default/queued/8/sideways/1.json", 404),
        ("POST", "/admin/rq/queue/default/nosuchregistry/empty", 404),
        ("GET", "/admin/rq/7/view/workers", 404),
        ("GET", "/admin/rq/3/data/queues.json", 404),
    ],
)
def test_bad_routes_are_4xx(admin_client, method: str, path: str, status: int) -> None:
    response = admin_client.open(path, method=method, headers=csrf(admin_client))
    assert response.status_code == status, response.text[:300]


def test_requeueing_a_job_that_did_not_fail_is_a_conflict(admin_client) -> None:
    queue = Queue("default", connection=get_redis(admin_client.application))
    job = queue.enqueue("builtins.len", "abc")
    response = admin_client.post(f"/admin/rq/job/{job.id}/requeue", headers=csrf(admin_client))
    assert response.status_code == 409


def test_good_routes_still_work(admin_client) -> None:
    queue, job = failed_job(admin_client)
    for path in (
        "/admin/rq/0/data/jobs/default/failed/8/asc/1.json",
        f"/admin/rq/0/data/job/{job.id}.json",
        f"/admin/rq/0/view/job/{job.id}",
        "/admin/rq/0/view/jobs/default/failed/8/dsc/1",
    ):
        assert admin_client.get(path).status_code == 200, path
    queue.enqueue("builtins.len", "abc")
    compact = admin_client.post("/admin/rq/queue/default/compact", headers=csrf(admin_client))
    assert compact.status_code == 200

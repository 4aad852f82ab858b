"""`seed_campaign_job` run the way production runs it: enqueued on the `seeding` queue and
executed by a real RQ worker (SimpleWorker, burst mode) on the app's Redis (fakeredis on the
embedded default, the test Redis with TEST_REDIS_URL)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from rq import SimpleWorker
from rq.job import Job, JobStatus

from portal.extensions import db
from portal.models import Campaign, Schtick
from portal.services.campaigns.records import create_campaign_shell
from portal.services.images.backend import get_image_store
from portal.services.infra.queue import get_queue, get_redis
from portal.services.seeding.verify import verify_campaign
from tests.support.small_template import build_small_template, content_counts, make_user


def committed_shell(name: str = "Async campaign") -> uuid.UUID:
    """An empty campaign as the async API path leaves it: committed, `seeded_at` NULL."""
    owner = make_user(db.session)
    shell = create_campaign_shell(db.session, owner, name)
    db.session.commit()
    return shell.id


def run_job(campaign_id: uuid.UUID | str, job_id: str | None = None) -> Job:
    """Enqueue the job by its dotted path (as the API does) and let a real worker run it."""
    queue = get_queue("seeding")
    job = queue.enqueue("jobs.seeding.seed_campaign_job", str(campaign_id), job_id=job_id)
    worker = SimpleWorker([queue], connection=get_redis())
    worker.work(burst=True)
    job.refresh()
    return job


def test_the_job_seeds_the_campaign_and_reports_progress(app):
    template = build_small_template(db.session, get_image_store())
    campaign_id = committed_shell()

    job = run_job(campaign_id, job_id=f"seed-{campaign_id}")

    assert job.get_status() == JobStatus.FINISHED, job.latest_result().exc_string
    result = job.return_value()
    assert result["status"] == "seeded" and result["method"] == "batch"
    assert result["campaign_id"] == str(campaign_id)
    db.session.expire_all()
    assert {k: v for k, v in result["rows"].items() if k != "image_blobs"} == content_counts(
        db.session, campaign_id
    )
    assert result["total_rows"] == sum(result["rows"].values()) > 0
    # The last progress report the worker saved on the job: every step done.
    assert job.meta["step"] == "campaign" and job.meta["done"] == job.meta["total"] == 12
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.seeded_at is not None and campaign.seeding_method == "batch"
    assert verify_campaign(db.session, campaign_id, template.id).ok


def test_the_job_is_idempotent(app):
    build_small_template(db.session, get_image_store())
    campaign_id = committed_shell()
    first = run_job(campaign_id)
    assert first.return_value()["status"] == "seeded"
    db.session.expire_all()
    counts = content_counts(db.session, campaign_id)

    again = run_job(campaign_id)  # a re-run or a duplicate that slipped through

    assert again.get_status() == JobStatus.FINISHED
    outcome = again.return_value()
    assert outcome["status"] == "already_seeded" and outcome["method"] == "batch"
    db.session.expire_all()
    assert content_counts(db.session, campaign_id) == counts


def test_a_deleted_campaign_is_reported_missing(app):
    build_small_template(db.session, get_image_store())
    job = run_job(uuid.uuid4())
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value()["status"] == "missing"


def test_a_failing_seed_fails_the_job_and_leaves_the_shell_empty(app):
    """No template: the job fails visibly (for RQ's retry and the dashboard), writes nothing."""
    campaign_id = committed_shell()
    job = run_job(campaign_id)
    assert job.get_status() == JobStatus.FAILED
    assert "no master template" in job.latest_result().exc_string
    db.session.expire_all()
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.seeded_at is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Schtick)) == 0


@pytest.mark.parametrize("bad_id", ["not-a-uuid"])
def test_a_malformed_id_fails_the_job(app, bad_id):
    job = run_job(bad_id)
    assert job.get_status() == JobStatus.FAILED
    assert "badly formed" in job.latest_result().exc_string

"""ImageKit failing under `IMAGE_SHARING=copy`, end to end, against real processes.

What the service-level tests already cover (test_imagekit_store.py, test_seeding_traditional.py):
the store's retry policy per error kind (5xx, 429, timeouts, drops, 4xx not retried), and the
traditional seeder's rollback plus deletion of its copies after a permanent failure. What only
the real processes add, and is tested here:

1. Where ImageKit sits on the request path. Creates (`POST /api/v2/campaigns`, pool or in-request
   fallback) and refills (the RQ job) use the batch seeder, which shares the template's files
   whatever IMAGE_SHARING says (only the traditional seeder copies). So an ImageKit outage must
   not fail a single create or refill, nor count as a refill failure towards the pool's failure
   budget: tested with gunicorn, a real `rq worker` and every ImageKit call failing.
2. The path that does copy, `flask campaigns seed --method traditional` with IMAGE_SHARING=copy
   read from the environment, as an operator runs it: with the production retry policy (no test
   shortcuts), a burst of 5xx and a dropped connection are retried and the campaign verifies
   with every copied file fetched and checked; a persistent failure
   exits 1 with one clear line, leaves no row behind, deletes the files it had already copied
   and leaves the pool alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from portal.devtools.assignment_check import check_assignments
from portal.devtools.http_client import Client
from portal.devtools.imagekit_server import OPERATIONS, LocalImageKitServer
from portal.devtools.prepare import fill_pool
from portal.devtools.processes import PROJECT_ROOT, LocalStack, log_tail
from portal.extensions import db
from portal.models import Campaign, ImageAttachment, ImageBlob, PoolEvent
from portal.services.accounts.tokens import issue_token
from portal.services.images.backend import get_image_store
from portal.services.seeding.verify import verify_campaign
from tests.conftest import TEST_SECRET
from tests.support.imagekit import IMAGEKIT_TEST_KEY
from tests.support.small_template import build_small_template, make_user

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

POOL_TARGET = 2
REFILL_DEADLINE_S = 45.0
ALWAYS = 10**6  # "every request from now on", in fail_next's terms


def app_env(app: Flask, server: LocalImageKitServer, redis_url: str) -> dict[str, str]:
    """The environment of every process of the deployment under test: this test's database and
    Redis, ImageKit at the local server, copy mode, a small master pool and no user pools."""
    return {
        "DATABASE_URL": db.engine.url.render_as_string(hide_password=False),
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "IMAGEKIT_PRIVATE_KEY": IMAGEKIT_TEST_KEY,
        "IMAGEKIT_BASE_URL": server.base_url,
        "IMAGEKIT_URL_ENDPOINT": server.url_endpoint,
        "IMAGE_SHARING": "copy",
        "POOL_MASTER_TARGET": str(POOL_TARGET),
        "POOL_LOW_WATERMARK": "1",
        "POOL_USER_TARGET": "0",
        "POOL_FALLBACK": "sync",
        "LOG_LEVEL": "warning",
        "PYTHONPATH": str(PROJECT_ROOT),
    }


@pytest.fixture
def deployment(imagekit_app: Flask, redis_url: str) -> Flask:
    """The small template with its files on the local ImageKit server, and nothing else."""
    if not redis_url:
        pytest.skip("needs a real Redis (TEST_REDIS_URL) for the RQ worker")
    build_small_template(db.session, get_image_store())
    db.session.commit()
    return imagekit_app


def template_of(session: Session) -> Campaign:
    return session.scalars(sa.select(Campaign).where(Campaign.is_master_template)).one()


def count(session: Session, model: type) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def ready_in_pool(session: Session) -> int:
    return (
        session.scalar(
            sa.select(sa.func.count()).where(
                Campaign.is_pool.is_(True), Campaign.pool_status == "ready"
            )
        )
        or 0
    )


# ---------------------------------------------------------------------------- 1. the API path


def test_an_imagekit_outage_fails_no_create_and_no_refill(
    deployment: Flask, imagekit_server: LocalImageKitServer, redis_url: str, tmp_path: Path
):
    session = db.session
    template = template_of(session)
    fill_pool(db.engine, template.id, template.user_id, POOL_TARGET)
    user = make_user(session, "gm")
    user.gamemaster = True
    token = issue_token(session, user, "faults")
    user_id = str(user.id)
    session.commit()
    blobs_before = count(session, ImageBlob)
    session.remove()
    for op in OPERATIONS:
        imagekit_server.fail_next(op, status=503, times=ALWAYS)
    calls_before = Counter(imagekit_server.calls)
    env = app_env(deployment, imagekit_server, redis_url)

    with LocalStack(
        env["DATABASE_URL"], TEST_SECRET, redis_url, tmp_path, threads=8, extra_env=env
    ) as stack:
        stack.start_worker("worker")
        client = Client(stack.port, 0, token, timeout_s=20)
        # Twice the pool: the first ones are claims, the rest claims of refilled campaigns or
        # in-request seeding, whichever the worker's pace makes them.
        replies = [client.create(f"Outage {n}") for n in range(2 * POOL_TARGET + 1)]
        client.close()  # gunicorn drops idle keep-alive connections after 5 s
        deadline = time.monotonic() + REFILL_DEADLINE_S
        while ready_in_pool(session) < POOL_TARGET:
            session.rollback()
            assert time.monotonic() < deadline, log_tail(tmp_path / "worker.log", 50)
            time.sleep(0.1)
        session.rollback()
        replies.append(client.create("Outage after the refill"))
        client.close()

    assert [r.status for r in replies] == [201] * len(replies), [r.body for r in replies]
    sources = Counter(r.body["source"] for r in replies)
    assert sources["master_pool"] >= POOL_TARGET + 1  # the last one came from a refill
    assert replies[-1].body["source"] == "master_pool"
    # Nobody asked ImageKit anything: not the creates, not the refills.
    assert Counter(imagekit_server.calls) - calls_before == Counter()
    assert count(session, ImageBlob) == blobs_before  # shared files, no copies
    problems = check_assignments(session, replies, [user_id], completeness=True).problems
    assert not problems, problems
    failures = session.scalar(
        sa.select(sa.func.count()).where(PoolEvent.kind == "replenish_failed")
    )
    refills = session.scalar(sa.select(sa.func.count()).where(PoolEvent.kind == "replenished"))
    assert failures == 0 and refills >= 1


# ---------------------------------------------------------------------------- 2. the copy path


def flask_cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`flask --app app ...` as an operator runs it, in its own process, with `env`."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_counts(session: Session, campaign_id: uuid.UUID) -> tuple[int, int]:
    """(attachments of the campaign's records, distinct blobs they use that the template's
    records do not): in copy mode the two are equal."""
    template_blobs = sa.select(ImageAttachment.blob_id).where(
        ImageAttachment.record_id.in_(_record_ids(template_of(session).id))
    )
    attachments = session.scalars(
        sa.select(ImageAttachment).where(ImageAttachment.record_id.in_(_record_ids(campaign_id)))
    ).all()
    own = {a.blob_id for a in attachments} - set(session.scalars(template_blobs))
    return len(attachments), len(own)


def _record_ids(campaign_id: uuid.UUID) -> sa.Select:
    from portal.services.campaigns.records import CONTENT_TABLES

    selects = [sa.select(m.id).where(m.campaign_id == campaign_id) for m in CONTENT_TABLES.values()]
    return sa.union_all(sa.select(sa.literal(campaign_id)), *selects)


def test_copy_seeding_retries_transient_failures_and_cleans_up_after_a_persistent_one(
    deployment: Flask, imagekit_server: LocalImageKitServer, redis_url: str, tmp_path: Path
):
    session = db.session
    template = template_of(session)
    fill_pool(db.engine, template.id, template.user_id, 1)
    owner = make_user(session, "operator-seeded")
    email = owner.email
    session.commit()
    pool_before = session.execute(
        sa.select(Campaign.id, Campaign.pool_status, Campaign.updated_at).where(Campaign.is_pool)
    ).all()
    env = app_env(deployment, imagekit_server, redis_url)

    # (a) Bursts of 5xx and dropped connections: retried (production policy), then copied.
    imagekit_server.fail_next("copy", status=503, times=2)
    imagekit_server.fail_next("list", mode="drop")
    calls_before = Counter(imagekit_server.calls)
    seeded = flask_cli(
        env, tmp_path, "campaigns", "seed", "--owner", email, "--name", "Copied",
        "--method", "traditional",
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    result = json.loads(seeded.stdout)
    assert result["image_mode"] == "copy"  # from IMAGE_SHARING, not a flag
    campaign_id = uuid.UUID(result["campaign_id"])
    calls = Counter(imagekit_server.calls) - calls_before
    session.rollback()
    attachments, copies = copy_counts(session, campaign_id)
    assert attachments == copies == result["rows"]["image_attachments"] > 0
    # Each failed attempt was retried: two copies and one listing more than the images.
    assert calls["copy"] == copies + 2 and calls["list"] == copies + 1 and calls["upload"] == 0
    report = verify_campaign(session, campaign_id, store=get_image_store())  # fetches each file
    assert report.ok, report.differences[:5]

    # (b) Every copy fails from the third one on: the seed gives up, cleanly and completely.
    session.remove()
    campaigns_before, blobs_before = count(session, Campaign), count(session, ImageBlob)
    files_before = set(imagekit_server.files)
    copies_at_start = imagekit_server.calls["copy"]
    stop = threading.Event()

    def break_after_two_copies() -> None:
        while not stop.is_set():
            if imagekit_server.calls["copy"] >= copies_at_start + 2:
                imagekit_server.fail_next("copy", status=503, times=ALWAYS)
                return
            time.sleep(0.0005)

    breaker = threading.Thread(target=break_after_two_copies, daemon=True)
    breaker.start()
    try:
        failed = flask_cli(
            env, tmp_path, "campaigns", "seed", "--owner", email, "--name", "Doomed",
            "--method", "traditional",
        )  # fmt: skip
    finally:
        stop.set()
        breaker.join()

    assert failed.returncode == 1, failed.stdout + failed.stderr[-2000:]
    error_lines = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1 and "503" in error_lines[0], failed.stderr[-2000:]
    assert "could not copy the image" in error_lines[0]
    assert "Traceback" not in failed.stderr
    copied_then_failed = imagekit_server.calls["copy"] - copies_at_start
    assert copied_then_failed >= 2 + 4  # two copies, then four attempts at the third
    session.rollback()
    assert count(session, Campaign) == campaigns_before
    assert session.scalar(sa.select(sa.func.count()).where(Campaign.name == "Doomed")) == 0
    assert count(session, ImageBlob) == blobs_before
    assert set(imagekit_server.files) == files_before  # its copies were deleted again
    pool_after = session.execute(
        sa.select(Campaign.id, Campaign.pool_status, Campaign.updated_at).where(Campaign.is_pool)
    ).all()
    assert pool_after == pool_before

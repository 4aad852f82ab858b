"""PoolMonitorJob end to end: a real pool drained below its watermark, a real SMTP server and a
local webhook, real RQ worker registrations; plus the schedule that runs it (embedded ticks and
the `rq cron` configuration) and the `pool_update` emitter."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from rq import Queue, Worker

from jobs.monitor import monitor_job
from jobs.schedule import PERIODIC_JOBS, enqueue_due, run_due_jobs
from portal import settings_of
from portal.extensions import db
from portal.models import Campaign, PoolEvent, utcnow
from portal.runtime import set_embedded_app
from portal.services.accounts.users import create_user
from portal.services.infra.queue import get_redis
from portal.services.monitoring.alerts import AlertNotifier, open_incidents
from portal.services.monitoring.live import publish_pool_update, route_for
from portal.services.monitoring.monitor import LOCK_NAME, run_monitor
from portal.services.monitoring.payload import publish_pool_payload
from portal.services.pool.claim import CampaignPoolService
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from tests.conftest import app_on
from tests.support import PROJECT_ROOT
from tests.support.databases import TestDatabases
from tests.support.smtp import RedisProcess, SmtpSink, WebhookSink

ROOT = PROJECT_ROOT


@pytest.fixture
def alert_app(
    databases: TestDatabases,
    template_golden: str,
    redis_url: str,
    smtp_server: SmtpSink,
    slack_webhook: WebhookSink,
) -> Iterator[Flask]:
    """The template database, alerts going to the test SMTP server and webhook."""
    yield from app_on(
        databases,
        template_golden,
        redis_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(smtp_server.port),
        ALERT_EMAILS="ops@example.com",
        MAIL_DEFAULT_SENDER="pool-alerts@example.com",
        SLACK_WEBHOOK_URL=slack_webhook.url,
    )


def monitor(app: Flask, **kwargs):
    kwargs.setdefault("check_workers", False)
    return run_monitor(db.session, get_redis(app), settings_of(app), **kwargs)


def fill_master(app: Flask, target: int, watermark: int) -> None:
    set_pool_setting(db.session, "master_target", target)
    set_pool_setting(db.session, "low_watermark", watermark)
    db.session.commit()
    report = replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    assert report.failed == 0 and report.level_before + len(report.built) == target


def claim(count: int) -> None:
    user = create_user(db.session, f"gm-{uuid.uuid4().hex[:6]}@example.com", "GM", "password123")
    db.session.commit()
    for i in range(count):
        assert CampaignPoolService(db.session).assign_pool_campaign(user, f"Game {i}") is not None


def alert_states() -> list[tuple[str, str]]:
    db.session.expire_all()
    return [
        (e.detail["incident"], e.detail["state"])
        for e in db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == "alert").order_by(PoolEvent.id)
        )
    ]


# --- alerts through the monitor -------------------------------------------------------------


def test_draining_below_the_watermark_alerts_once_and_refilling_recovers_once(
    alert_app: Flask, smtp_server: SmtpSink, slack_webhook: WebhookSink
) -> None:
    fill_master(alert_app, target=3, watermark=2)
    assert monitor(alert_app).alerts == []
    assert smtp_server.messages == [] and slack_webhook.posts == []

    claim(2)  # 1 ready left, below the watermark of 2
    first = monitor(alert_app)
    second = monitor(alert_app)

    assert [(a["incident"], a["state"]) for a in first.alerts] == [("pool_low:master", "open")]
    assert second.alerts == []
    assert len(smtp_server.messages) == 1 and len(slack_webhook.posts) == 1
    assert "master pool low" in smtp_server.messages[0]["Subject"]
    assert smtp_server.messages[0]["From"] == "pool-alerts@example.com"
    assert "1 ready campaign" in smtp_server.messages[0].get_content()
    assert "master pool low" in slack_webhook.posts[0]["text"]
    assert first.refill_needed and first.master["ready"] == 1

    replenish_pool(db.session, get_redis(alert_app), settings_of(alert_app), "master")
    recovered = monitor(alert_app)
    monitor(alert_app)

    assert [a["state"] for a in recovered.alerts] == ["resolved"]
    assert len(smtp_server.messages) == 2 and len(slack_webhook.posts) == 2
    assert smtp_server.messages[1]["Subject"].startswith("[Campaign Pool] RECOVERED")
    assert "back to 3 ready" in slack_webhook.posts[1]["text"]
    assert alert_states() == [("pool_low:master", "open"), ("pool_low:master", "resolved")]


def test_an_empty_pool_escalates_the_open_incident(alert_app: Flask, smtp_server: SmtpSink) -> None:
    fill_master(alert_app, target=2, watermark=2)
    claim(1)
    monitor(alert_app)
    claim(1)
    monitor(alert_app)
    monitor(alert_app)

    assert [s.split(":")[0] for s in smtp_server.subjects()] == [
        "[Campaign Pool] WARNING",
        "[Campaign Pool] CRITICAL",
    ]
    assert "master pool empty" in smtp_server.subjects()[1]
    (incident,) = open_incidents(db.session)
    assert incident["severity"] == "critical"


def test_refills_that_keep_failing_alert_until_a_build_succeeds(
    alert_app: Flask, smtp_server: SmtpSink
) -> None:
    fill_master(alert_app, target=1, watermark=0)
    for _ in range(3):
        db.session.add(
            PoolEvent(kind="replenish_failed", pool_type="master", detail={"error": "disk full"})
        )
    db.session.commit()

    report = monitor(alert_app)
    monitor(alert_app)

    assert [(a["incident"], a["state"]) for a in report.alerts] == [
        ("refill_failing:master", "open")
    ]
    assert len(smtp_server.messages) == 1
    assert "disk full" in smtp_server.messages[0].get_content()

    db.session.add(PoolEvent(kind="replenished", pool_type="master"))
    db.session.commit()
    assert [a["state"] for a in monitor(alert_app).alerts] == ["resolved"]
    assert len(smtp_server.messages) == 2


def test_no_worker_alerts_and_a_registered_worker_recovers(
    alert_app: Flask, smtp_server: SmtpSink
) -> None:
    fill_master(alert_app, target=1, watermark=0)
    connection = get_redis(alert_app)

    missing = monitor(alert_app, check_workers=True)
    assert missing.workers["count"] == 0
    assert [(a["incident"], a["state"]) for a in missing.alerts] == [("workers_missing", "open")]
    assert "No RQ worker" in smtp_server.messages[0].get_content()

    worker = Worker(["seeding", "default"], connection=connection)
    worker.register_birth()  # what a starting `rq worker` does
    try:
        back = monitor(alert_app, check_workers=True)
    finally:
        worker.register_death()
    assert back.workers["count"] == 1
    assert [(a["incident"], a["state"]) for a in back.alerts] == [("workers_missing", "resolved")]
    assert len(smtp_server.messages) == 2

    # A worker that stops during a pass's grace period does not page at once: the snapshot of
    # the pass before saw one.
    assert monitor(alert_app, check_workers=True).alerts == []


def test_a_dead_smtp_server_and_webhook_do_not_fail_the_job(
    databases: TestDatabases,
    template_golden: str,
    redis_url: str,
    dead_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret_url = f"http://127.0.0.1:{dead_port}/services/T1/B1/very-secret-path"
    for _app in app_on(
        databases,
        template_golden,
        redis_url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=str(dead_port),
        ALERT_EMAILS="ops@example.com",
        SLACK_WEBHOOK_URL=secret_url,
    ):
        set_pool_setting(db.session, "low_watermark", 1)
        db.session.commit()  # the pool is empty: an alert is due

        with caplog.at_level(logging.INFO):
            result = monitor_job()

        assert result["skipped"] is None
        # With a real Redis no worker is registered either, so "workers missing" opens too.
        alerts = {a["incident"]: a for a in result["alerts"]}
        assert "pool_low:master" in alerts
        for alert in alerts.values():
            assert alert["delivery"] == {"email": "failed", "slack": "failed"}
        incidents = {i["incident"]: i for i in open_incidents(db.session)}
        assert incidents.keys() == alerts.keys()
        assert incidents["pool_low:master"]["delivery"] == {"email": "failed", "slack": "failed"}
        logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
        assert "alert.send_failed" in logged
        assert "very-secret-path" not in logged
        failures = [r for r in caplog.records if r.getMessage() == "alert.send_failed"]
        assert {(r.incident, r.channel) for r in failures} == {
            (incident, channel) for incident in alerts for channel in ("email", "slack")
        }


# --- the rest of a pass ---------------------------------------------------------------------


def test_a_pass_reaps_stuck_builds_queues_a_refill_and_records_a_snapshot(
    alert_app: Flask,
) -> None:
    fill_master(alert_app, target=2, watermark=0)
    template_version = db.session.scalar(
        sa.select(Campaign.template_version).where(Campaign.is_master_template.is_(True))
    )
    owner = db.session.scalar(
        sa.select(Campaign.user_id).where(Campaign.is_master_template.is_(True))
    )
    stuck, fresh = uuid.uuid4(), uuid.uuid4()
    for cid, age in ((stuck, timedelta(hours=1)), (fresh, timedelta(seconds=5))):
        db.session.add(
            Campaign(
                id=cid,
                user_id=owner,
                name=f"build {cid}",
                is_pool=True,
                pool_type="master",
                pool_status="building",
                pool_created_at=utcnow() - age,
                template_version=template_version,
            )
        )
    db.session.commit()
    claim(1)

    report = monitor(alert_app)

    assert report.reaped == [str(stuck)]
    db.session.expire_all()
    assert db.session.get(Campaign, stuck).pool_status == "failed"
    assert db.session.get(Campaign, fresh).pool_status == "building"
    assert report.refill_needed is False  # 1 ready + 1 fresh build reach the target of 2
    claim(1)
    report = monitor(alert_app)
    assert report.refill_needed and report.refill_job == "replenish-all-all"
    job = Queue("seeding", connection=get_redis(alert_app)).fetch_job("replenish-all-all")
    assert job is not None and job.args == ("all", None)
    snapshots = db.session.scalars(
        sa.select(PoolEvent).where(PoolEvent.kind == "snapshot").order_by(PoolEvent.id)
    ).all()
    assert len(snapshots) == 2
    assert snapshots[-1].detail["master"]["ready"] == 0
    assert snapshots[-1].detail["master"]["target"] == 2


def test_a_pass_reads_the_pool_configuration_once(template_app: Flask) -> None:
    """Everything a pass calls (pool status, demand target, gamemasters' pools, alert
    thresholds) is handed the configuration read at its start. Counted where it matters, as
    reads of `pool_settings` reaching the database."""
    set_pool_setting(db.session, "demand_sizing", 1)  # the demand target is computed too
    db.session.commit()
    reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        if "pool_settings" in statement:
            reads.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        report = monitor(template_app)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)

    assert report.skipped is None and report.rollout is not None  # the whole pass ran
    assert len(reads) == 1, reads


def test_an_overlapping_pass_skips(alert_app: Flask, smtp_server: SmtpSink) -> None:
    lock = get_redis(alert_app).lock(LOCK_NAME, timeout=60)
    assert lock.acquire(blocking=False)
    try:
        report = monitor(alert_app)
    finally:
        lock.release()
    assert report.skipped == "locked"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PoolEvent)) == 0


def test_monitor_command_prints_its_report(alert_app: Flask) -> None:
    set_pool_setting(db.session, "low_watermark", 1)
    db.session.commit()
    result = alert_app.test_cli_runner().invoke(args=["pool", "monitor"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["master"]["ready"] == 0
    assert [a["incident"] for a in report["alerts"]][:1] == ["pool_low:master"]


# --- scheduling -----------------------------------------------------------------------------


def test_each_interval_gets_one_run_however_many_ticks(app: Flask) -> None:
    connection = get_redis(app)
    monitor_job_, replenish_job, _cleanup_job = PERIODIC_JOBS
    t = 3600.0 * 527_778  # on an interval boundary of every job
    first = enqueue_due(connection, t)
    assert sorted(first) == sorted(job.job_id(t) for job in PERIODIC_JOBS)
    assert enqueue_due(connection, t + 1) == []
    assert enqueue_due(connection, t + 59) == []
    assert enqueue_due(connection, t + 60) == [monitor_job_.job_id(t + 60)]
    assert sorted(enqueue_due(connection, t + 300)) == sorted(
        [monitor_job_.job_id(t + 300), replenish_job.job_id(t + 300)]
    )
    default = Queue("default", connection=connection)
    seeding = Queue("seeding", connection=connection)
    assert default.count == 4 and seeding.count == 2
    job = seeding.fetch_job(replenish_job.job_id(t + 300))
    assert job.func_name == "jobs.pool.replenish_pool_job" and job.args == ("all",)
    assert job.ttl == 300 and job.timeout == 600


def test_run_due_jobs_never_raises(app: Flask, dead_port: int) -> None:
    from tests.conftest import make_app

    unreachable = make_app(
        app.config["SQLALCHEMY_DATABASE_URI"], f"redis://127.0.0.1:{dead_port}/0"
    )
    assert run_due_jobs(unreachable, now=1_900_000_000.0) == []


def test_the_embedded_worker_runs_the_scheduled_monitor(
    databases: TestDatabases, template_golden: str
) -> None:
    from jobs.embedded import start_embedded_worker

    for app in app_on(databases, template_golden, ""):
        thread = start_embedded_worker(app)
        try:
            deadline = time.monotonic() + 60
            count = 0
            while time.monotonic() < deadline and not count:
                db.session.expire_all()
                count = db.session.scalar(
                    sa.select(sa.func.count()).where(PoolEvent.kind == "snapshot")
                )
                db.session.rollback()
                time.sleep(0.1)
        finally:
            thread.stop(timeout=30)
            set_embedded_app(None)
        assert count >= 1
        snapshot = db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == "snapshot")
        ).first()
        # The monitor ran inside the embedded worker thread, which counts as a worker.
        assert snapshot.detail["workers"] >= 1


def test_the_rq_cron_config_enqueues_every_periodic_job(redis_process: RedisProcess) -> None:
    """`rq cron jobs.cron_config`, the production scheduler, as a real process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "rq.cli", "cron", "jobs.cron_config", "--url", redis_process.url],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    connection = redis.Redis.from_url(redis_process.url)
    try:
        deadline = time.monotonic() + 60
        names: set[str] = set()
        while time.monotonic() < deadline and len(names) < len(PERIODIC_JOBS):
            for queue in ("default", "seeding"):
                for job in Queue(queue, connection=connection).get_jobs():
                    names.add(job.func_name)
            if process.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    assert names == {job.func for job in PERIODIC_JOBS}, err.decode()[-2000:]
    monitor = Queue("default", connection=connection)
    job = next(j for j in monitor.get_jobs() if j.func_name == "jobs.monitor.monitor_job")
    assert job.ttl == 60 and job.timeout == 240


# --- pool_update ----------------------------------------------------------------------------


def test_pool_update_from_a_worker_goes_through_the_message_queue(
    databases: TestDatabases, migrated_golden: str, redis_process: RedisProcess
) -> None:
    listener = redis.Redis.from_url(redis_process.url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe("flask-socketio")
    for app in app_on(databases, migrated_golden, redis_process.url):
        assert publish_pool_update(settings_of(app), {"marker": "from-a-worker"})
    deadline = time.monotonic() + 10
    message = None
    while message is None and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.5)
    assert message is not None
    data = json.loads(message["data"])
    assert (data["event"], data["namespace"]) == ("pool_update", "/admin")
    assert data["data"] == [{"marker": "from-a-worker"}]


def test_pool_update_in_one_process_reaches_its_dashboards(
    databases: TestDatabases, migrated_golden: str
) -> None:
    from portal.extensions import socketio
    from tests.support.auth import AuthActions

    for app in app_on(databases, migrated_golden, ""):
        client = app.test_client()
        auth = AuthActions(client)
        auth.create_user()
        auth.login()
        dashboard = socketio.test_client(app, namespace="/admin", flask_test_client=client)
        assert dashboard.is_connected("/admin")
        assert route_for(app) == "app"  # one process: the app's own Socket.IO server

        assert publish_pool_update(app, {"marker": "local"}) is True

        received = dashboard.get_received("/admin")
        dashboard.disconnect("/admin")
        updates = [r["args"][0] for r in received if r["name"] == "pool_update"]
        assert {"marker": "local"} in updates


def test_a_failure_to_emit_is_logged_not_raised(
    dead_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    from portal.config import load_settings

    settings = load_settings(
        {"REDIS_URL": f"redis://127.0.0.1:{dead_port}/0", "SECRET_KEY": "x" * 32},
        Path("/tmp"),
    )
    with caplog.at_level(logging.INFO):
        publish_pool_update(settings, {"marker": "lost"})
    assert any("Cannot publish to redis" in r.getMessage() for r in caplog.records)


def test_a_payload_that_cannot_be_built_is_logged_not_raised(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """What jobs and the portal call after changing the pool: a failed payload query costs
    the dashboards one update, never the job, and leaves the session usable."""
    db.session.execute(sa.text("DROP TABLE pool_settings"))
    db.session.commit()

    with caplog.at_level(logging.ERROR, logger="portal.monitoring"):
        assert publish_pool_payload(app, db.session, settings_of(app), None) is False

    assert [r.getMessage() for r in caplog.records] == ["pool_update.payload_failed"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 0


def test_notifier_comes_from_the_settings(alert_app: Flask, smtp_server: SmtpSink) -> None:
    notifier = AlertNotifier.from_settings(settings_of(alert_app))
    assert notifier.channels == ["email", "slack"]
    assert notifier.mail_port == smtp_server.port and notifier.recipients == ("ops@example.com",)
    assert notifier.sender == "pool-alerts@example.com"

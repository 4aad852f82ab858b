"""Template versions and rolling rebuilds, end to end, on the real template and the real jobs.

The done-when of issue 9 (versions): a template edit retires and rebuilds stale pool
campaigns without ever handing one out. The master template is edited with SQL, the monitor
and refill jobs run as an RQ worker runs them, claims are interleaved between the steps, and
every claimed campaign must be of the new version and carry the edited content.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from rq import Queue

from jobs.embedded import EmbeddedWorker
from jobs.monitor import monitor_job
from portal import settings_of
from portal.extensions import db
from portal.models import Campaign, PoolEvent, Schtick, User, utcnow
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import find_master_template
from portal.services.infra.queue import get_redis
from portal.services.monitoring.payload import admin_pool_payload
from portal.services.pool.claim import CampaignPoolService
from portal.services.pool.config import set_pool_setting
from portal.services.pool.creation import create_campaign
from portal.services.pool.replenish import replenish_pool
from portal.services.seeding.verify import verify_campaign
from tests.conftest import app_on

TARGET = 4
MAX_BUILDING = 2


@pytest.fixture
def app(databases, template_golden: str, redis_url: str) -> Iterator[Flask]:
    yield from app_on(databases, template_golden, redis_url)


def configure(master_target: int = TARGET, user_target: int = 0) -> None:
    set_pool_setting(db.session, "master_target", master_target)
    set_pool_setting(db.session, "user_target", user_target)
    set_pool_setting(db.session, "rollout_max_building", MAX_BUILDING)
    db.session.commit()


def run_jobs(app: Flask, *queues: str) -> None:
    """Run every queued job of `queues`, as a worker would, until they are empty."""
    connection = get_redis(app)
    worker = EmbeddedWorker(
        [Queue(name, connection=connection) for name in queues], connection=connection
    )
    worker.work(burst=True)
    db.session.expire_all()


def version() -> int:
    db.session.expire_all()
    return find_master_template(db.session).template_version


def count(*where: sa.ColumnElement[bool]) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Campaign).where(*where))


def ready(v: int) -> int:
    return count(
        Campaign.is_pool.is_(True), Campaign.pool_status == "ready", Campaign.template_version == v
    )


def edit_a_schtick() -> tuple[str | None, str]:
    """Rename one schtick of the master template in place, as an admin's SQL would."""
    master = find_master_template(db.session)
    schtick = db.session.scalars(
        sa.select(Schtick)
        .where(Schtick.campaign_id == master.id)
        .order_by(Schtick.category, Schtick.name)
        .limit(1)
    ).one()
    category, new_name = schtick.category, f"Edited: {schtick.name}"
    db.session.execute(
        sa.text("UPDATE schticks SET name = :name WHERE id = :id"),
        {"name": new_name, "id": schtick.id.hex if db.engine.name == "sqlite" else schtick.id},
    )
    db.session.commit()
    return category, new_name


def gamemaster() -> User:
    email = f"gm-{uuid.uuid4().hex[:8]}@example.com"
    user = create_user(db.session, email, "GM", "password123", gamemaster=True)
    db.session.commit()
    return user


def claim(user: User) -> uuid.UUID | None:
    assignment = CampaignPoolService(db.session).assign_pool_campaign(
        user, f"Campaign {uuid.uuid4().hex[:8]}"
    )
    return assignment.campaign_id if assignment else None


def assert_new_and_edited(campaign_id: uuid.UUID, v: int, edited: tuple[str | None, str]) -> None:
    campaign = db.session.get(Campaign, campaign_id)
    assert campaign.template_version == v
    report = verify_campaign(db.session, campaign_id)
    assert report.ok, report.differences[:5]
    category, name = edited
    assert db.session.scalar(
        sa.select(sa.func.count()).where(
            Schtick.campaign_id == campaign_id, Schtick.category == category, Schtick.name == name
        )
    )


def builds_in_flight_elsewhere(count: int, v: int, started: datetime) -> None:
    """Pool campaigns in the state a build of another worker has while it runs."""
    owner_id = find_master_template(db.session).user_id
    for _ in range(count):
        db.session.add(
            Campaign(
                user_id=owner_id,
                name=f"In flight {uuid.uuid4().hex[:8]}",
                is_pool=True,
                pool_type="user",
                pool_status="building",
                pool_created_at=started,
                template_version=v,
            )
        )
    db.session.commit()


def events(kind: str) -> list[PoolEvent]:
    return list(
        db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == kind).order_by(PoolEvent.id)
        )
    )


def test_a_template_edit_retires_and_rebuilds_stale_campaigns_without_handing_one_out(app):
    configure()
    run_jobs(app, "seeding")  # nothing queued yet: a no-op
    report = replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    assert len(report.built) == TARGET and version() == 1
    assert monitor_job()["template_change"] is None  # unedited: the version stays
    old_ids = set(db.session.scalars(sa.select(Campaign.id).where(Campaign.pool_status == "ready")))
    user = gamemaster()

    edited = edit_a_schtick()
    first = monitor_job()
    second = monitor_job()  # the same edit, seen again: no second bump

    assert first["template_change"]["previous"] == 1
    assert first["template_change"]["current"] == 2
    assert first["template_change"]["retired"] == TARGET
    assert second["template_change"] is None
    assert version() == 2 and len(events("template_version")) == 1
    retired = events("retired")
    assert {e.campaign_id for e in retired} == old_ids
    assert {e.detail["template_version"] for e in retired} == {1}
    assert count(Campaign.id.in_(old_ids), Campaign.pool_status == "retired") == TARGET
    # Nothing at the new version yet, and the old ones are not handed out: the claim finds
    # nothing and creation falls back to seeding from the edited template.
    assert claim(user) is None
    created = create_campaign(
        db.session, get_redis(app), settings_of(app), user, "Seeded meanwhile", None
    )
    assert created.source == "seeded"
    assert_new_and_edited(created.campaign_id, 2, edited)

    claimed: list[uuid.UUID] = []
    for _step in range(6):  # monitor -> refill -> claims, until the pool is back at target
        run_jobs(app, "seeding")
        got = claim(user)
        if got is not None:
            claimed.append(got)
        monitor_job()
    run_jobs(app, "seeding")

    assert len(claimed) == 6
    assert not set(claimed) & old_ids
    for campaign_id in claimed:
        assert_new_and_edited(campaign_id, 2, edited)
    assert ready(2) == TARGET and ready(1) == 0
    assigned_versions = {e.detail["template_version"] for e in events("assigned")}
    assert assigned_versions == {2}
    in_flight = [e.detail["in_flight"] for e in events("replenished") if "in_flight" in e.detail]
    assert in_flight and max(in_flight) <= MAX_BUILDING
    payload = admin_pool_payload(db.session, settings_of(app), get_redis(app))
    assert payload["rollout"]["in_progress"] is True  # the retired ones are still there
    assert payload["rollout"]["retired"] == TARGET and payload["rollout"]["progress"] == 1.0

    # Every pool is full: the monitor asks for the clean-up, which deletes the retired ones.
    step = monitor_job()["rollout"]
    assert step["cleanup_job"] is not None
    run_jobs(app, "default")
    assert count(Campaign.id.in_(old_ids)) == 0
    cleaned = {e.campaign_id for e in events("cleaned")}
    assert old_ids <= cleaned
    payload = admin_pool_payload(db.session, settings_of(app), get_redis(app))
    assert payload["rollout"] | {"changed_at": None} == {
        "template_version": 2,
        "previous_version": 1,
        "reason": "edited",
        "changed_at": None,
        "in_progress": False,
        "ready": TARGET,
        "target": TARGET,
        "progress": 1.0,
        "building": 0,
        "max_building": MAX_BUILDING,
        "stale": 0,
        "retired": 0,
        "stale_remaining": 0,
    }
    assert version() == 2 and len(events("template_version")) == 1


def test_a_rollout_never_starts_more_builds_than_its_cap(app):
    configure()
    replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    edit_a_schtick()
    monitor_job()
    # Two builds are in flight elsewhere (other workers): building rows of the new version.
    now = utcnow()
    builds_in_flight_elsewhere(MAX_BUILDING, 2, now)

    throttled = replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    assert (throttled.skipped, throttled.built) == ("throttled", [])
    assert count(Campaign.pool_status == "building") == MAX_BUILDING
    assert admin_pool_payload(db.session, settings_of(app))["rollout"]["building"] == MAX_BUILDING

    # Their builders died long ago: they no longer count as in flight, building resumes.
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.pool_status == "building")
        .values(pool_created_at=now - timedelta(minutes=11))
    )
    db.session.commit()
    resumed = replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    assert resumed.skipped is None and len(resumed.built) == TARGET


def test_outside_a_rollout_the_cap_does_not_apply(app):
    configure()
    builds_in_flight_elsewhere(MAX_BUILDING, 1, utcnow())
    report = replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    assert report.skipped is None and len(report.built) == TARGET


def test_the_dashboard_and_the_pool_payload_show_the_rollout(app, client, auth):
    from portal.services.template.versions import bump_template_version

    configure(master_target=2)
    replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    auth.create_user()
    auth.login()
    before = client.get("/admin/api/pool").get_json()
    assert before["rollout"]["in_progress"] is False and before["rollout"]["progress"] == 1.0

    bump_template_version(db.session, actor="ops")

    after = client.get("/admin/api/pool").get_json()
    assert set(before) == set(after)  # a new key, the existing ones untouched
    assert after["pools"]["master"]["retired"] == 2
    rollout = after["rollout"]
    assert (rollout["template_version"], rollout["previous_version"], rollout["reason"]) == (
        2,
        1,
        "bumped",
    )
    assert (rollout["in_progress"], rollout["ready"], rollout["target"]) == (True, 0, 2)
    assert (rollout["retired"], rollout["stale_remaining"], rollout["progress"]) == (2, 2, 0.0)
    page = client.get("/admin/").get_data(as_text=True)
    assert 'data-testid="card-rollout"' in page and "rolling out" in page
    assert 'data-testid="rollout-progress" max="1" value="0.0"' in page


def test_a_failed_build_of_an_old_version_is_not_a_rollout(app):
    """An old version's build that failed (left for the clean-up) is not an old campaign still
    to replace: with builds in flight elsewhere, the refill is not held to the rollout's cap."""
    configure()
    owner_id = find_master_template(db.session).user_id
    db.session.add(
        Campaign(
            user_id=owner_id,
            name="Failed long ago",
            is_pool=True,
            pool_type="master",
            pool_status="failed",
            pool_created_at=utcnow() - timedelta(hours=1),
            template_version=version() - 1,
        )
    )
    db.session.commit()
    builds_in_flight_elsewhere(MAX_BUILDING, version(), utcnow())

    report = replenish_pool(db.session, get_redis(app), settings_of(app), "master")

    assert report.skipped is None and len(report.built) == TARGET


@pytest.mark.postgres
def test_concurrent_refills_during_a_rollout_keep_within_the_cap(app):
    """Six pools refilled at once by six workers after a version change: never more than
    `rollout_max_building` builds in flight (as counted by each admission, under its lock)."""
    import threading

    from portal.services.pool.replenish import replenish_all
    from portal.services.template.versions import bump_template_version

    configure(master_target=2, user_target=1)
    gms = [gamemaster() for _ in range(5)]
    replenish_all(db.session, get_redis(app), settings_of(app), fan_out=False)
    bump_template_version(db.session)  # everything retired: a rollout is in progress
    since = db.session.scalar(sa.select(sa.func.max(PoolEvent.id)))
    pools: list[tuple[str, uuid.UUID | None]] = [("master", None)] + [("user", g.id) for g in gms]
    barrier = threading.Barrier(len(pools))
    reports: list[object] = []

    def refill(pool_type: str, user_id: uuid.UUID | None) -> None:
        with app.app_context():
            try:
                barrier.wait(30)
                reports.append(
                    replenish_pool(db.session, get_redis(app), settings_of(app), pool_type, user_id)
                )
            except BaseException as exc:
                reports.append(exc)

    threads = [threading.Thread(target=refill, args=pool) for pool in pools]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not [r for r in reports if isinstance(r, BaseException)], reports
    replenish_all(
        db.session, get_redis(app), settings_of(app), fan_out=False
    )  # the schedule finishes

    db.session.expire_all()
    rebuilt = [e for e in events("replenished") if e.id > since]
    in_flight = [e.detail["in_flight"] for e in rebuilt]
    assert len(in_flight) == 2 + 5 and max(in_flight) <= MAX_BUILDING
    assert ready(2) == 2 + 5 and ready(1) == 0

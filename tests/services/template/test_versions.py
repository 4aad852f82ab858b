"""Template versions: the content fingerprint, bumps (edit, operator, import) that happen once
and retire the old pool campaigns in the same transaction, and the races around them (a claim
or a build running while the version changes, two monitors noticing the same edit)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from portal import settings_of
from portal.extensions import db
from portal.models import (
    Campaign,
    Carry,
    Character,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    PoolEvent,
    Schtick,
    Vehicle,
    Weapon,
    utcnow,
)
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import find_master_template
from portal.services.images.backend import get_image_store
from portal.services.infra.queue import get_redis
from portal.services.monitoring.monitor import run_monitor
from portal.services.pool.claim import CampaignPoolService
from portal.services.pool.config import PoolConfigError, set_pool_setting
from portal.services.pool.replenish import (
    build_pool_campaign,
    build_reserved,
    replenish_pool,
    reserve_build,
)
from portal.services.pool.rollout import BuildSuperseded, advance_rollout, retire_old_versions
from portal.services.template import export_template, import_template
from portal.services.template.errors import TemplateError
from portal.services.template.fingerprint import template_fingerprint
from portal.services.template.versions import (
    bump_if_edited,
    bump_template_version,
    version_state,
)
from tests.conftest import app_on
from tests.support.small_template import build_small_template


@pytest.fixture
def small_app(databases, migrated_golden: str, redis_url: str) -> Iterator[Flask]:
    """The small template, written directly (so, like an upgraded deployment, without a
    stored fingerprint)."""
    for app in app_on(databases, migrated_golden, redis_url):
        build_small_template(db.session, get_image_store())
        yield app


def master() -> Campaign:
    db.session.expire_all()
    return find_master_template(db.session)


def fill(app: Flask, count: int = 2) -> list[uuid.UUID]:
    set_pool_setting(db.session, "master_target", count)
    db.session.commit()
    report = replenish_pool(db.session, get_redis(app), settings_of(app), "master")
    assert report.failed == 0 and len(report.built) == count
    return [uuid.UUID(i) for i in report.built]


def statuses(ids: list[uuid.UUID]) -> list[str]:
    db.session.expire_all()
    return [db.session.get(Campaign, i).pool_status for i in ids]


def version_events() -> list[dict]:
    return list(
        db.session.scalars(sa.select(PoolEvent.detail).where(PoolEvent.kind == "template_version"))
    )


def gamemaster():
    user = create_user(db.session, f"gm-{uuid.uuid4().hex[:6]}@example.com", "GM", "password1")
    db.session.commit()
    return user


# -- the fingerprint ---------------------------------------------------------------------------


def first_of(model: type, campaign_id: uuid.UUID):
    column = model.campaign_id
    return db.session.scalars(
        sa.select(model).where(column == campaign_id).order_by(model.id).limit(1)
    ).one()


EDITS: dict[str, Callable[[uuid.UUID], None]] = {
    "schtick name": lambda cid: setattr(first_of(Schtick, cid), "name", "Renamed"),
    "weapon damage": lambda cid: setattr(first_of(Weapon, cid), "damage", 99),
    "character JSON": lambda cid: setattr(
        first_of(Character, cid), "action_values", {"Type": "Boss", "Body": 11}
    ),
    "vehicle": lambda cid: setattr(first_of(Vehicle, cid), "name", "The Other Car"),
    "prerequisite link": lambda cid: setattr(
        first_of(Schtick, cid), "prerequisite_id", first_of(Schtick, cid).id
    ),
    "campaign description": lambda cid: setattr(
        db.session.get(Campaign, cid), "description", "<p>New</p>"
    ),
}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_every_kind_of_edit_changes_the_fingerprint(small_app, edit):
    cid = master().id
    before = template_fingerprint(db.session, cid)
    assert template_fingerprint(db.session, cid) == before  # deterministic
    EDITS[edit](cid)
    db.session.commit()
    assert template_fingerprint(db.session, cid) != before


def test_links_positions_and_attachments_count_and_timestamps_do_not(small_app):
    cid = master().id
    before = template_fingerprint(db.session, cid)
    # Touching rows (timestamps only) is not an edit.
    for model in (Schtick, Weapon, Character):
        db.session.execute(
            sa.update(model).where(model.campaign_id == cid).values(updated_at=utcnow())
        )
    db.session.commit()
    assert template_fingerprint(db.session, cid) == before

    carry = db.session.scalars(sa.select(Carry).limit(1)).one()
    db.session.delete(carry)
    db.session.commit()
    after_carry = template_fingerprint(db.session, cid)
    assert after_carry != before

    position = db.session.scalars(sa.select(ImagePosition).limit(1)).one()
    position.x_position += 1
    db.session.commit()
    after_position = template_fingerprint(db.session, cid)
    assert after_position != after_carry

    attachment = db.session.scalars(sa.select(ImageAttachment).limit(1)).one()
    other_blob = db.session.scalars(
        sa.select(ImageBlob.id).where(ImageBlob.id != attachment.blob_id).limit(1)
    ).one()
    attachment.blob_id = other_blob
    db.session.commit()
    assert template_fingerprint(db.session, cid) != after_position


def test_generate_and_import_store_the_fingerprint(template_app):
    state = version_state(db.session)
    assert state.fingerprint == state.live_fingerprint and not state.edited
    assert bump_if_edited(db.session) is None and master().template_version == 1


def test_a_template_without_a_fingerprint_gets_one_without_a_bump(small_app):
    assert master().template_fingerprint is None
    assert bump_if_edited(db.session) is None
    assert master().template_version == 1
    assert master().template_fingerprint == template_fingerprint(db.session, master().id)
    assert version_events() == []


# -- bumps -------------------------------------------------------------------------------------


def test_an_edit_bumps_once_and_retires_the_old_pool_in_the_same_commit(template_app):
    old = fill(template_app, 2)
    schtick = first_of(Schtick, master().id)
    db.session.execute(sa.update(Schtick).where(Schtick.id == schtick.id).values(name="X"))
    db.session.commit()

    change = bump_if_edited(db.session)

    assert (change.previous, change.current, change.reason, change.retired) == (1, 2, "edited", 2)
    assert master().template_version == 2 and statuses(old) == ["retired", "retired"]
    assert bump_if_edited(db.session) is None and master().template_version == 2
    assert [e["current"] for e in version_events()] == [2]
    retired = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "retired")).all()
    assert {e.campaign_id for e in retired} == set(old)


def test_template_bump_always_bumps_and_template_version_reports(template_app):
    runner = template_app.test_cli_runner()
    old = fill(template_app, 1)

    result = runner.invoke(args=["template", "bump"])

    assert result.exit_code == 0, result.output
    change = json.loads(result.stdout)
    assert (change["previous"], change["current"], change["retired"]) == (1, 2, 1)
    assert statuses(old) == ["retired"]
    assert version_events()[0]["reason"] == "bumped"
    unchanged = runner.invoke(args=["template", "bump", "--if-edited"])
    assert unchanged.exit_code == 0 and "unchanged" in unchanged.output
    state = json.loads(runner.invoke(args=["template", "version"]).stdout)
    assert (state["template_version"], state["edited"]) == (2, False)


def test_bump_without_a_template_fails_and_changes_nothing(runner):
    for args in (["template", "bump"], ["template", "version"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1
        assert "no master template" in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PoolEvent)) == 0
    # bump --if-edited is what the monitor runs: no template, nothing to do, no error
    assert runner.invoke(args=["template", "bump", "--if-edited"]).exit_code == 0


def test_import_replace_retires_the_old_pool_and_records_the_change(template_app):
    old = fill(template_app, 2)
    import_template(db.session, get_image_store(), export_template(db.session), replace=True)
    assert master().template_version == 2
    assert statuses(old) == ["retired", "retired"]
    (event,) = version_events()
    assert (event["previous"], event["current"], event["reason"], event["retired"]) == (
        1,
        2,
        "imported",
        2,
    )
    assert master().template_fingerprint == template_fingerprint(db.session, master().id)


def test_rollout_max_building_is_a_bounded_pool_setting(app):
    assert set_pool_setting(db.session, "rollout_max_building", "3") == 3
    for bad in ("0", "51", "two"):
        with pytest.raises(PoolConfigError, match="rollout_max_building"):
            set_pool_setting(db.session, "rollout_max_building", bad)


# -- races -------------------------------------------------------------------------------------


def test_after_a_bump_no_claim_takes_a_campaign_of_the_old_version(template_app):
    old = fill(template_app, 2)
    user = gamemaster()
    bump_template_version(db.session)
    assert statuses(old) == ["retired", "retired"]
    assert CampaignPoolService(db.session).assign_pool_campaign(user, "After") is None
    # Even an old-version campaign put back to ready by hand is not taken: the claim asks
    # for the master's version in the same statement.
    db.session.execute(sa.update(Campaign).where(Campaign.id == old[0]).values(pool_status="ready"))
    db.session.commit()
    assert CampaignPoolService(db.session).assign_pool_campaign(user, "Still not") is None
    assert statuses(old) == ["ready", "retired"]


def test_a_build_running_while_the_version_changes_is_never_ready(template_app):
    set_pool_setting(db.session, "master_target", 1)
    db.session.commit()
    template = find_master_template(db.session)  # the builder has read version 1 ...
    assert template.template_version == 1
    with template_app.app_context():  # ... when another process bumps it
        bump_template_version(db.session)

    with pytest.raises(BuildSuperseded, match=r"^build \S+ was made from an old template version$"):
        build_pool_campaign(db.session, template, "master", template.user_id, max_building=2)

    db.session.expire_all()
    rows = db.session.execute(
        sa.select(Campaign.pool_status, Campaign.template_version).where(Campaign.is_pool.is_(True))
    ).all()
    assert [tuple(r) for r in rows] == [("retired", 1)]
    # The refill itself moves on to the new version.
    report = replenish_pool(db.session, get_redis(template_app), settings_of(template_app))
    assert len(report.built) == 1
    assert db.session.get(Campaign, uuid.UUID(report.built[0])).template_version == 2


def reserve(pool_type: str, owner_id: uuid.UUID, count: int):
    """The reservation of one build of `count` campaigns, as a refill makes it."""
    reservation = reserve_build(
        db.session,
        master(),
        pool_type,
        owner_id,
        owner_id if pool_type == "user" else None,
        target=1000,
        batch_limit=count,
        max_parallel=10,
        rollout_cap=None,
    )
    assert len(reservation.campaign_ids) == count
    return reservation


def retired_events() -> list[PoolEvent]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == "retired").order_by(PoolEvent.id)
        )
    )


def test_a_superseded_build_retires_its_own_campaigns_and_says_why(small_app):
    gm = gamemaster()
    build = reserve("user", gm.id, 2)
    elsewhere = reserve("master", master().user_id, 1)  # another builder's, still running
    # The version changes by hand in SQL (no bump retired anything).
    db.session.execute(
        sa.update(Campaign).where(Campaign.is_master_template.is_(True)).values(template_version=2)
    )
    db.session.commit()

    with pytest.raises(BuildSuperseded):
        build_reserved(db.session, master(), build)

    assert statuses(build.campaign_ids) == ["retired", "retired"]
    assert statuses(elsewhere.campaign_ids) == ["building"]
    for campaign_id in build.campaign_ids:
        assert db.session.get(Campaign, campaign_id).updated_at > build.started_at
    events = retired_events()
    assert {e.campaign_id for e in events} == set(build.campaign_ids)
    assert {(e.user_id, e.pool_type) for e in events} == {(gm.id, "user")}
    assert [e.detail for e in events] == [
        {"reason": "superseded", "template_version": 1, "current_version": 2}
    ] * 2


def test_a_version_change_stamps_what_it_retires_with_its_own_time(small_app):
    """The retired campaigns' `updated_at` and their `retired` events carry the instant of the
    version change, as its `template_version` event does: the pool's history reads as one step,
    and the campaigns show when they stopped being handed out."""
    old = fill(small_app, 2)
    built_at = {i: db.session.get(Campaign, i).updated_at for i in old}

    bump_template_version(db.session, actor="ops")

    db.session.expire_all()
    change_at = db.session.scalar(
        sa.select(PoolEvent.created_at).where(PoolEvent.kind == "template_version")
    )
    for campaign_id in old:
        campaign = db.session.get(Campaign, campaign_id)
        assert campaign.updated_at == change_at and campaign.updated_at != built_at[campaign_id]
    assert [e.created_at for e in retired_events()] == [change_at, change_at]


def test_a_build_the_version_change_retired_is_not_retired_twice(small_app):
    build = reserve("master", master().user_id, 2)
    bump_template_version(db.session)  # retires the build's campaigns as it runs

    with pytest.raises(BuildSuperseded):
        build_reserved(db.session, master(), build)

    assert statuses(build.campaign_ids) == ["retired", "retired"]
    assert [e.detail["reason"] for e in retired_events()] == ["template_version"] * 2


def test_the_monitor_retires_what_a_version_change_missed_and_asks_for_the_cleanup(small_app):
    redis_client = get_redis(small_app)
    gm = gamemaster()
    current = reserve("master", master().user_id, 1).campaign_ids[0]
    step = advance_rollout(db.session, redis_client, 1, pools_full=True, enqueue=True)
    assert step.as_dict() == {"retired": 0, "cleanup_job": None}  # no rollout: nothing to clean
    # Stamped before an upgrade (no version), or of a version changed by hand in SQL.
    unstamped = Campaign(
        user_id=gm.id, name="Unstamped", is_pool=True, pool_type="user", pool_status="ready"
    )
    db.session.add(unstamped)
    db.session.commit()
    old = reserve("master", master().user_id, 2).campaign_ids[0]
    db.session.execute(sa.update(Campaign).where(Campaign.id == old).values(template_version=0))
    db.session.commit()

    step = advance_rollout(db.session, redis_client, 1, pools_full=False, enqueue=True)

    assert step.as_dict() == {"retired": 2, "cleanup_job": None}  # pools short: no clean-up yet
    db.session.rollback()  # committed by the monitor's step
    assert statuses([unstamped.id, old, current]) == ["retired", "retired", "building"]
    details = {(e.campaign_id, e.user_id): e.detail for e in retired_events()}
    assert details == {
        (unstamped.id, gm.id): {
            "reason": "template_version",
            "template_version": None,
            "current_version": 1,
        },
        (old, None): {"reason": "template_version", "template_version": 0, "current_version": 1},
    }
    # Pools full: the clean-up is queued, unless this pass may not queue jobs.
    step = advance_rollout(db.session, redis_client, 1, pools_full=True, enqueue=False)
    assert step.as_dict() == {"retired": 0, "cleanup_job": None}
    step = advance_rollout(db.session, redis_client, 1, pools_full=True, enqueue=True)
    assert step.as_dict() == {"retired": 0, "cleanup_job": "cleanup-now"}


def wait_for_lock_wait(app: Flask, deadline_s: float = 30) -> None:
    """Until some session of this database waits for a row lock (polling a condition, not
    guessing a duration)."""
    engine = db.engine
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        with engine.connect() as conn:
            waiting = conn.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
            )
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("no session ever waited for the lock")


@pytest.mark.postgres
def test_a_claim_during_an_uncommitted_bump_skips_the_campaigns_being_retired(template_app):
    old = fill(template_app, 2)
    user = gamemaster()
    # A bump in progress: retired, not yet committed.
    with db.engine.connect() as bumper, sa.orm.Session(bind=bumper) as session:
        session.execute(
            sa.update(Campaign)
            .where(Campaign.is_master_template.is_(True))
            .values(template_version=Campaign.template_version + 1)
        )
        retired = retire_old_versions(session, 2, reason="template_version")
        # What it retired, as its callers count and report it (the versions retired).
        assert sorted((r.id, r.pool_type, r.template_version) for r in retired) == sorted(
            (campaign_id, "master", 1) for campaign_id in old
        )
        # The claim reads version 1 and does not wait: the rows are locked, SKIP LOCKED.
        assert CampaignPoolService(db.session).assign_pool_campaign(user, "During") is None
        session.commit()
    assert CampaignPoolService(db.session).assign_pool_campaign(user, "After") is None
    assert statuses(old) == ["retired", "retired"]


@pytest.mark.postgres
def test_two_monitors_that_see_the_same_edit_bump_once(template_app):
    cid = master().id
    db.session.execute(
        sa.update(Schtick).where(Schtick.id == first_of(Schtick, cid).id).values(name="Y")
    )
    db.session.commit()
    results: list[object] = []

    def second_monitor() -> None:
        with template_app.app_context():
            try:
                results.append(bump_if_edited(db.session))
            except BaseException as exc:  # reported below
                results.append(exc)

    # The first monitor's bump is under way (row locked, not committed) when the second
    # one, having read the same version and fingerprint, tries its guarded UPDATE.
    with db.engine.connect() as first:
        first.execute(
            sa.update(Campaign)
            .where(Campaign.id == cid)
            .values(
                template_version=Campaign.template_version + 1,
                template_fingerprint=template_fingerprint(db.session, cid),
            )
        )
        db.session.rollback()
        thread = threading.Thread(target=second_monitor)
        thread.start()
        wait_for_lock_wait(template_app)
        first.commit()
    thread.join(60)
    assert results == [None]
    assert master().template_version == 2


@pytest.mark.postgres
def test_concurrent_monitor_passes_bump_once(template_app):
    """Redis down (the monitor's own lock unavailable) or two schedulers: the database guard
    alone keeps it to one bump."""
    cid = master().id
    db.session.execute(
        sa.update(Schtick).where(Schtick.id == first_of(Schtick, cid).id).values(name="Z")
    )
    db.session.commit()
    barrier = threading.Barrier(4)
    reports: list[object] = []

    def monitor() -> None:
        with template_app.app_context():
            try:
                barrier.wait(30)
                change = bump_if_edited(db.session)
                reports.append(change)
            except BaseException as exc:
                reports.append(exc)

    threads = [threading.Thread(target=monitor) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not [r for r in reports if isinstance(r, BaseException)], reports
    assert len([r for r in reports if r is not None]) == 1
    assert master().template_version == 2 and len(version_events()) == 1
    # and a whole monitor pass afterwards sees nothing new
    report = run_monitor(
        db.session, get_redis(template_app), settings_of(template_app), check_workers=False
    )
    assert report.template_change is None


def test_the_bump_is_refused_when_the_master_was_replaced_meanwhile(template_app):
    db.session.execute(sa.update(Campaign).values(is_master_template=False))
    db.session.commit()
    with pytest.raises(TemplateError):
        bump_template_version(db.session)


@pytest.mark.postgres
def test_an_import_replacing_the_template_while_a_build_runs_does_not_deadlock(template_app):
    """The build holds its pool campaign (flipped to ready, uncommitted) and then inserts the
    owner's characters (a KEY SHARE lock on the owner row, by the foreign key); the
    replacement holds the owner row and waits to retire that campaign."""
    template = master()
    owner_id, exported = template.user_id, export_template(db.session)
    building = Campaign(
        user_id=owner_id,
        name="Being built",
        is_pool=True,
        pool_type="master",
        pool_status="building",
        pool_created_at=utcnow(),
        template_version=1,
    )
    db.session.add(building)
    db.session.commit()
    building_id = building.id
    outcome: list[object] = []

    def replace() -> None:
        with template_app.app_context():
            try:
                import_template(db.session, get_image_store(), exported, replace=True)
                outcome.append("imported")
            except BaseException as exc:
                outcome.append(exc)

    with db.engine.connect() as build:
        build.execute(
            sa.update(Campaign).where(Campaign.id == building_id).values(pool_status="ready")
        )
        thread = threading.Thread(target=replace)
        thread.start()
        wait_for_lock_wait(template_app)  # the import now holds the owner row, waits for ours
        build.execute(
            sa.insert(Character).values(
                id=uuid.uuid4(),
                campaign_id=building_id,
                user_id=owner_id,
                name="A copied character",
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        build.commit()
    thread.join(120)
    assert outcome == ["imported"]
    assert master().template_version == 2
    assert db.session.get(Campaign, building_id).pool_status == "retired"

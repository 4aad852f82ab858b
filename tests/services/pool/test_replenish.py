"""Refills on the small template (fast): one build whatever the level, the helpers a refill
queues, which pools a failure run halts and for how long, and which pools a round of refills
reaches (docs/pool.md, "Refills")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from rq import Queue

from jobs.embedded import EmbeddedWorker
from portal import settings_of
from portal.extensions import db
from portal.models import Campaign, PoolEvent, User, utcnow
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import find_master_template
from portal.services.images.backend import get_image_store
from portal.services.infra.queue import get_redis
from portal.services.pool.cleanup import reap_after
from portal.services.pool.config import load_pool_config, set_pool_setting
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.replenish import (
    build_pool_campaign,
    build_reserved,
    build_timeout,
    gamemasters_needing_pools,
    replenish_all,
    replenish_pool,
    reserve_build,
)
from portal.services.pool.rollout import BuildThrottled
from portal.services.seeding.verify import verify_campaign
from tests.conftest import app_on
from tests.support.small_template import build_small_template


def small_template_app(databases, golden: str, redis_url: str, **overrides) -> Iterator[Flask]:
    for app in app_on(databases, golden, redis_url, **overrides):
        build_small_template(db.session, get_image_store())
        yield app


@pytest.fixture
def small_app(databases, migrated_golden: str, redis_url: str) -> Iterator[Flask]:
    """The small master template (version 1): builds take a fraction of a second."""
    yield from small_template_app(databases, migrated_golden, redis_url)


@pytest.fixture
def one_minute_builds_app(databases, migrated_golden: str, redis_url: str) -> Iterator[Flask]:
    """The small template, with builds that may take a minute (POOL_BUILD_TIMEOUT=60)."""
    yield from small_template_app(databases, migrated_golden, redis_url, POOL_BUILD_TIMEOUT="60")


def configure(**values: int) -> None:
    for key, value in values.items():
        set_pool_setting(db.session, key, value)
    db.session.commit()


def gamemaster(label: str = "gm", *, active: bool = True, gm: bool = True) -> User:
    user = create_user(
        db.session, f"{label}-{uuid.uuid4().hex[:6]}@example.com", label, "password1", gamemaster=gm
    )
    user.active = active
    db.session.commit()
    return user


def pool_campaign(
    owner_id: uuid.UUID,
    *,
    pool_type: str = "master",
    status: str = "building",
    version: int | None = 1,
    at: datetime | None = None,
) -> uuid.UUID:
    """A pool campaign row as a builder (or an older release) leaves it, without content."""
    campaign = Campaign(
        user_id=owner_id,
        name=f"Pool {uuid.uuid4().hex[:8]}",
        is_pool=True,
        pool_type=pool_type,
        pool_status=status,
        pool_created_at=at or utcnow(),
        pool_build_id=uuid.uuid4(),
        template_version=version,
    )
    db.session.add(campaign)
    db.session.commit()
    return campaign.id


def template_owner() -> uuid.UUID:
    return find_master_template(db.session).user_id


def events(kind: str) -> list[PoolEvent]:
    return list(
        db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == kind).order_by(PoolEvent.id)
        )
    )


def pool_rows() -> list[tuple[str | None, str | None, uuid.UUID]]:
    db.session.expire_all()
    return [
        tuple(row)
        for row in db.session.execute(
            sa.select(Campaign.pool_type, Campaign.pool_status, Campaign.user_id)
            .where(Campaign.is_pool.is_(True))
            .order_by(Campaign.created_at)
        )
    ]


# ---------------------------------------------------------------------------- one build


def test_one_build_of_a_user_pool_is_the_gamemasters_and_counts_only_that_pool(small_app):
    gm, other = gamemaster("gm"), gamemaster("other")
    pool_campaign(other.id, pool_type="user")  # another gamemaster's build in flight
    template = find_master_template(db.session)

    campaign = build_pool_campaign(db.session, template, "user", gm.id)

    db.session.expire_all()
    assert (campaign.pool_type, campaign.pool_status, campaign.user_id) == ("user", "ready", gm.id)
    assert campaign.template_version == 1 and campaign.is_pool
    assert campaign.active and not campaign.is_master_template  # as its claimer will get it
    report = verify_campaign(db.session, campaign.id)
    assert report.ok, report.differences[:5]
    (event,) = events("replenished")
    assert (event.campaign_id, event.user_id, event.pool_type) == (campaign.id, gm.id, "user")
    # Builds in flight of this gamemaster's pool, this one included: not the other's.
    assert (event.detail["pool_in_flight"], event.detail["in_flight"]) == (1, 2)


def test_one_build_during_a_rollout_stops_at_its_cap_and_writes_nothing(small_app):
    owner = template_owner()
    pool_campaign(owner, status="retired", version=0)  # not deleted yet: a rollout is on
    pool_campaign(owner)
    pool_campaign(owner)  # two builds in flight
    template = find_master_template(db.session)
    before = pool_rows()

    with pytest.raises(BuildThrottled) as refused:
        build_pool_campaign(db.session, template, "master", owner, max_building=2)

    assert (refused.value.in_flight, refused.value.limit) == (2, 2)
    assert str(refused.value) == "2 pool builds in flight, the rollout allows 2"
    assert pool_rows() == before
    # Without a cap (the bench), the same build goes ahead.
    built = build_pool_campaign(db.session, template, "master", owner)
    assert (built.pool_type, built.pool_status, built.user_id) == ("master", "ready", owner)


# ---------------------------------------------------------------------------- refills


def test_a_refill_reports_its_pool_its_target_and_where_it_started(small_app):
    configure(user_target=3, max_parallel_builds=1)
    gm, other = gamemaster("gm"), gamemaster("other")
    template = find_master_template(db.session)
    build_pool_campaign(db.session, template, "user", gm.id)  # one there already
    # Another gamemaster's pool: neither its campaigns nor its builds are this pool's.
    build_pool_campaign(db.session, template, "user", other.id)
    pool_campaign(other.id, pool_type="user")
    steps: list[tuple[int, int]] = []

    report = replenish_pool(
        db.session,
        get_redis(small_app),
        settings_of(small_app),
        "user",
        gm.id,
        progress=lambda done, total: steps.append((done, total)),
    )

    assert report.as_dict() | {"campaign_ids": None} == {
        "pool_type": "user",
        "user_id": str(gm.id),
        "target": 3,
        "level_before": 1,
        "built": 2,
        "builds": 1,  # the deficit is below K: one build
        "campaign_ids": None,
        "failed": 0,
        "skipped": None,
    }
    assert steps == [(2, 2)]
    assert pool_rows().count(("user", "ready", gm.id)) == 3


def test_a_refill_of_an_unknown_pool_or_of_nobodys_user_pool_is_refused(small_app):
    redis_client, settings = get_redis(small_app), settings_of(small_app)
    with pytest.raises(ValueError, match=r"^unknown pool type 'users'$"):
        replenish_pool(db.session, redis_client, settings, "users")
    with pytest.raises(ValueError, match=r"^a user pool needs a user_id$"):
        replenish_pool(db.session, redis_client, settings, "user")
    with pytest.raises(ValueError, match=r"^the master pool has no user_id"):
        replenish_pool(db.session, redis_client, settings, "master", gamemaster().id)
    assert pool_rows() == []


def test_a_refill_without_a_current_master_template_builds_nothing(small_app):
    configure(master_target=1, user_target=1)
    gamemaster()
    redis_client, settings = get_redis(small_app), settings_of(small_app)
    master = find_master_template(db.session)
    master.template_version = None  # written before versions existed
    db.session.commit()
    # No user pool is tried either.
    reports = replenish_all(db.session, redis_client, settings, fan_out=False)
    assert [(r.pool_type, r.skipped) for r in reports] == [("master", "no_template")]
    master.is_master_template = False  # no master template at all
    db.session.commit()
    reports = replenish_all(db.session, redis_client, settings, fan_out=False)
    assert [(r.pool_type, r.skipped) for r in reports] == [("master", "no_template")]
    assert pool_rows() == []


def test_a_refill_stops_when_the_master_template_goes_away_between_builds(small_app):
    configure(master_target=3, build_batch_size=1)

    def unmark_master(done: int, total: int) -> None:
        db.session.execute(sa.update(Campaign).values(is_master_template=False))
        db.session.commit()

    report = replenish_pool(
        db.session, get_redis(small_app), settings_of(small_app), progress=unmark_master
    )
    assert (len(report.built), report.skipped, report.failed) == (1, None, 0)


def test_a_refill_whose_builds_keep_being_superseded_gives_up_after_four(small_app, monkeypatch):
    """The version changes under every build (as if edited again and again): the refill
    retires each superseded build and stops after the fourth instead of looping."""
    from portal.services.pool import replenish

    monkeypatch.setattr(replenish, "mark_ready_if_current", lambda session, ids: [])
    configure(master_target=1, build_batch_size=1)

    report = replenish_pool(db.session, get_redis(small_app), settings_of(small_app))

    assert (report.built, report.failed, report.skipped) == ([], 0, None)
    assert pool_rows() == [("master", "retired", template_owner())] * 4


def test_a_build_older_than_the_build_timeout_no_longer_holds_its_place(one_minute_builds_app):
    configure(master_target=1, max_parallel_builds=1)
    owner = template_owner()
    dead = pool_campaign(owner, at=utcnow() - timedelta(minutes=2))  # its builder died

    report = replenish_pool(
        db.session, get_redis(one_minute_builds_app), settings_of(one_minute_builds_app)
    )

    assert (len(report.built), report.level_before, report.skipped) == (1, 0, None)
    assert db.session.get(Campaign, dead).pool_status == "building"  # the reaper's to fail


def test_campaigns_of_another_template_version_do_not_fill_the_pool(small_app):
    """Ready or building campaigns of an old version that the version change did not retire
    (stamped before an upgrade, a version changed by hand in SQL) are not counted: the refill
    builds the target at the current version."""
    configure(master_target=2)
    owner = template_owner()
    pool_campaign(owner, status="ready", version=0)
    pool_campaign(owner, status="building", version=0)

    report = replenish_pool(db.session, get_redis(small_app), settings_of(small_app))

    assert (report.level_before, len(report.built)) == (0, 2)


def test_the_build_timeout_and_the_reap_delay_without_settings_are_the_documented_defaults(
    one_minute_builds_app,
):
    """POOL_BUILD_TIMEOUT is 10 minutes unless set, and a stuck build is reaped half as long
    again after it (at most 5 minutes more): 15 minutes by default, 90 s for 1-minute builds."""
    assert build_timeout(None) == timedelta(minutes=10)
    assert reap_after(None) == timedelta(minutes=15)
    settings = settings_of(one_minute_builds_app)
    assert (build_timeout(settings), reap_after(settings)) == (
        timedelta(minutes=1),
        timedelta(seconds=90),
    )


def test_a_pool_campaign_is_named_by_its_id_and_shows_the_templates_description(small_app):
    """Until a claim names it, a pool campaign is "Pool campaign <first 12 hex digits of its
    id>" (unique, and recognisable in the portal's campaign list) with the template's
    description under it."""
    configure(master_target=2, build_batch_size=2)

    report = replenish_pool(db.session, get_redis(small_app), settings_of(small_app))

    template = find_master_template(db.session)
    assert template is not None and template.description
    built = [db.session.get(Campaign, uuid.UUID(i)) for i in report.built]
    assert [(c.name, c.description, c.active) for c in built] == [
        (f"Pool campaign {c.id.hex[:12]}", template.description, True) for c in built
    ]


def test_a_build_records_when_its_campaigns_became_ready_and_what_it_took(small_app):
    configure(master_target=2, build_batch_size=2)

    report = replenish_pool(db.session, get_redis(small_app), settings_of(small_app))

    built = [db.session.get(Campaign, uuid.UUID(i)) for i in report.built]
    replenished = events("replenished")
    assert sorted(e.campaign_id for e in replenished) == sorted(c.id for c in built)
    for event in replenished:
        campaign = db.session.get(Campaign, event.campaign_id)
        assert event.created_at == campaign.seeded_at  # its seeding transaction's time
        assert (event.user_id, event.pool_type) == (None, "master")
        assert event.duration_ms > 0
    detail = replenished[0].detail
    assert replenished[1].detail == detail  # one build, one record of it
    build = built[0]
    assert detail | {"rows": None, "build_ms": None} == {
        "method": "batch",
        "rows": None,
        "build_id": str(build.pool_build_id),
        "batch": 2,
        "started_at": build.pool_created_at.isoformat(),  # the reservation
        "build_ms": None,
        "in_flight": 1,
        "pool_in_flight": 1,
    }
    assert detail["rows"] > 0
    # The whole build: the flip to ready and the seeding, which alone took duration_ms.
    assert replenished[0].duration_ms <= detail["build_ms"] < 60_000
    # In milliseconds to a tenth, always a number with decimals for whoever reads the JSON.
    assert isinstance(detail["build_ms"], float) and detail["build_ms"] == round(
        detail["build_ms"], 1
    )


def test_a_failed_build_is_recorded_as_its_pools_and_fails_only_its_own_campaigns(
    small_app, monkeypatch
):
    from portal.services.seeding import batch

    error = "disk full " + "x" * 600

    def broken(self, targets, template, **kwargs):
        raise RuntimeError(error)

    monkeypatch.setattr(batch.CampaignBatchSeeder, "seed_many", broken)
    configure(user_target=1, build_batch_size=1, failure_budget=2)
    gm, other = gamemaster("gm"), gamemaster("other")
    elsewhere = pool_campaign(other.id, pool_type="user")  # another gamemaster's build

    report = replenish_pool(db.session, get_redis(small_app), settings_of(small_app), "user", gm.id)

    assert (report.failed, report.skipped, report.built) == (2, "halted", [])
    failures = events("replenish_failed")
    assert len(failures) == 2
    for failure in failures:
        build = uuid.UUID(failure.detail["build_id"])
        (campaign,) = db.session.scalars(sa.select(Campaign).where(Campaign.pool_build_id == build))
        assert (campaign.pool_status, campaign.user_id) == ("failed", gm.id)
        assert (failure.campaign_id, failure.user_id, failure.pool_type) == (
            campaign.id,
            gm.id,
            "user",
        )
        assert failure.detail["campaign_ids"] == [str(campaign.id)]
        assert failure.detail["error"] == f"RuntimeError: {error}"[:500]
    assert db.session.get(Campaign, elsewhere).pool_status == "building"

    # A campaign of the build retired meanwhile (a version change) stays retired.
    template = find_master_template(db.session)
    reservation = reserve_build(
        db.session,
        template,
        "master",
        template.user_id,
        None,
        target=2,
        batch_limit=2,
        max_parallel=10,
        rollout_cap=None,
    )
    retired, failing = reservation.campaign_ids
    db.session.execute(
        sa.update(Campaign).where(Campaign.id == retired).values(pool_status="retired")
    )
    db.session.commit()
    with pytest.raises(RuntimeError):
        build_reserved(db.session, template, reservation)
    db.session.expire_all()
    assert db.session.get(Campaign, retired).pool_status == "retired"
    assert db.session.get(Campaign, failing).pool_status == "failed"


def test_a_campaign_reaped_while_its_build_ran_is_left_out_of_it(small_app):
    """The build flips to ready only its campaigns still `building`: one the reaper failed
    meanwhile (its builder looked dead) stays failed and is not seeded."""
    template = find_master_template(db.session)
    reservation = reserve_build(
        db.session,
        template,
        "master",
        template.user_id,
        None,
        target=2,
        batch_limit=2,
        max_parallel=10,
        rollout_cap=None,
    )
    reaped, kept = reservation.campaign_ids
    reap = sa.update(Campaign).where(Campaign.id == reaped).values(pool_status="failed")
    db.session.execute(reap)
    db.session.commit()

    assert build_reserved(db.session, template, reservation) == [str(kept)]

    db.session.expire_all()
    assert db.session.get(Campaign, reaped).pool_status == "failed"
    assert db.session.get(Campaign, reaped).seeded_at is None
    assert db.session.get(Campaign, kept).pool_status == "ready"
    assert [e.detail["batch"] for e in events("replenished")] == [1]


def failed_builds(
    count: int, ago: timedelta, user: User | None = None, *, kind: str = "replenish_failed"
) -> None:
    """`count` builds of a pool (a gamemaster's, or the master pool) that ended `ago`."""
    for _ in range(count):
        record_pool_event(
            db.session,
            PoolEventKind(kind),
            user_id=user.id if user else None,
            pool_type="user" if user else "master",
            created_at=utcnow() - ago,
        )
    db.session.commit()


def test_failures_halt_only_the_pool_that_failed_for_fifteen_minutes(small_app):
    """A pool rests after `failure_budget` failed builds in a row, counted in the order they
    happened, of that pool alone (one gamemaster's failures do not stop another's pool, nor
    the master pool), for 15 minutes from its latest failure (not from the pool's latest event:
    the claims a resting pool still serves do not prolong its rest)."""
    configure(failure_budget=3, master_target=1, user_target=1)
    recent, later, resting, rested, short, served, claimed = (gamemaster(n) for n in "abcdefg")
    minute = timedelta(minutes=1)
    failed_builds(2, timedelta(0), short)  # below the budget
    failed_builds(3, minute, recent)
    # A success after three failures (recorded after them: a build seeded before it finished).
    failed_builds(1, 2 * minute, later, kind="replenished")
    failed_builds(3, 3 * minute, later)
    failed_builds(3, 14 * minute, resting)
    failed_builds(3, 16 * minute, rested)
    failed_builds(3, 16 * minute, served)
    failed_builds(1, minute, served, kind="assigned")  # a claim from its pool since
    failed_builds(3, 2 * minute, claimed)
    failed_builds(1, minute, claimed, kind="assigned")  # a claim is not a successful build
    # The master pool's own failures are below the budget, whatever the gamemasters' are.
    failed_builds(2, minute)

    outcome = {}
    for name, user in [
        ("master", None),  # first: before any build's success ends the other pools' runs
        ("short", short),
        ("recent", recent),
        ("later", later),
        ("resting", resting),
        ("rested", rested),
        ("served", served),
        ("claimed", claimed),
    ]:
        report = replenish_pool(
            db.session,
            get_redis(small_app),
            settings_of(small_app),
            "user" if user else "master",
            user.id if user else None,
        )
        outcome[name] = report.skipped or len(report.built)

    assert outcome == {
        "short": 1,
        "recent": "halted",
        "later": 1,
        "resting": "halted",
        "rested": 1,
        "served": 1,
        "claimed": "halted",
        "master": 1,
    }


def in_flight_elsewhere(count: int) -> None:
    """`count` master builds running on other workers, during a rollout (an old-version
    campaign retired and not yet deleted)."""
    owner = template_owner()
    pool_campaign(owner, status="retired", version=0)
    for _ in range(count):
        pool_campaign(owner)


def test_a_round_of_refills_stops_where_a_rollout_is_throttled(small_app):
    configure(master_target=3, user_target=1, rollout_max_building=2)
    first, second = gamemaster("first"), gamemaster("second")
    in_flight_elsewhere(2)  # the rollout's cap: the master pool still lacks one
    redis_client, settings = get_redis(small_app), settings_of(small_app)

    reports = replenish_all(db.session, redis_client, settings, fan_out=False)
    assert [(r.pool_type, r.skipped) for r in reports] == [("master", "throttled")]

    configure(master_target=2)  # the builds in flight fill the master pool ...
    reports = replenish_all(db.session, redis_client, settings, fan_out=False)
    # ... and the first gamemaster's refill is throttled: the others are not even tried.
    assert [(r.pool_type, r.user_id, r.skipped) for r in reports] == [
        ("master", None, None),
        ("user", str(first.id), "throttled"),
    ]
    assert second.id not in {row[2] for row in pool_rows()}


def test_a_paused_round_of_refills_tries_no_user_pool(small_app):
    configure(master_target=1, user_target=1, refills_enabled=0)
    gamemaster()
    reports = replenish_all(db.session, get_redis(small_app), settings_of(small_app), fan_out=False)
    assert [(r.pool_type, r.skipped) for r in reports] == [("master", "paused")]


def test_gamemasters_needing_pools_are_the_active_ones_short_of_their_own(small_app):
    configure(user_target=1)
    full, building, stale, short, failed = (gamemaster(n) for n in "abcde")
    gamemaster("inactive", active=False)
    gamemaster("player", gm=False)
    pool_campaign(full.id, pool_type="user", status="ready")
    pool_campaign(building.id, pool_type="user")
    pool_campaign(stale.id, pool_type="user", status="ready", version=0)
    pool_campaign(short.id, status="ready")  # a master pool campaign: not theirs to use
    pool_campaign(failed.id, pool_type="user", status="failed")

    def needing(**kwargs: object) -> list[uuid.UUID]:
        config = load_pool_config(db.session, settings_of(small_app))
        return gamemasters_needing_pools(db.session, config, 1, **kwargs)

    assert needing() == [stale.id, short.id, failed.id]  # oldest account first
    assert needing(user_ids=[failed.id, full.id]) == [failed.id]
    configure(user_target=2)
    assert needing() == [full.id, building.id, stale.id, short.id, failed.id]
    failed.created_at = full.created_at - timedelta(days=1)  # an account older than all
    db.session.commit()
    assert needing() == [failed.id, full.id, building.id, stale.id, short.id]
    configure(user_target=0)
    assert needing() == []


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def seeding_workers(small_app: Flask) -> Iterator[Callable[[int], None]]:
    """`seeding_workers(n)`: n workers registered on `seeding` (none running: the helpers a
    refill queues stay in the queue to be read)."""
    connection = get_redis(small_app)
    registered: list[EmbeddedWorker] = []

    def register(count: int) -> None:
        while registered:
            registered.pop().retire()
        for index in range(count):
            worker = EmbeddedWorker(
                [Queue("seeding", connection=connection)],
                connection=connection,
                name=f"idle-{index}-{uuid.uuid4().hex[:6]}",
            )
            worker.register_birth()
            registered.append(worker)

    yield register
    while registered:
        registered.pop().retire()


def test_a_refill_queues_a_helper_per_build_that_could_run_beside_it(small_app, seeding_workers):
    """Helpers: as many as the builds of K still missing, at most the pool's parallel builds
    beside this one, at most one per other worker."""
    queue = Queue("seeding", connection=get_redis(small_app))
    cases = [  # workers, max_parallel_builds, K, target -> helpers
        (4, 10, 1, 3, 2),  # two campaigns missing beside this build's: two helpers
        (4, 10, 2, 5, 2),  # three missing, two per build: two
        (4, 2, 1, 3, 1),  # two builds of the pool at once: one
        (2, 10, 1, 3, 1),  # one other worker: one
        (4, 10, 1, 2, 1),  # one missing beside this build's: one
        (1, 10, 1, 3, 0),  # nobody to help
    ]
    for workers, max_parallel, k, target, expected in cases:
        seeding_workers(workers)
        configure(max_parallel_builds=max_parallel, build_batch_size=k, user_target=target)
        gm = gamemaster()
        queue.empty()

        report = replenish_pool(
            db.session, get_redis(small_app), settings_of(small_app), "user", gm.id, fan_out=True
        )

        assert len(report.built) == target
        helpers = [f"replenish-user-{gm.id}-h{i}" for i in range(1, expected + 1)]
        assert sorted(queue.job_ids) == helpers, (workers, max_parallel, k, target)


def test_a_direct_refill_builds_alone_even_with_idle_workers(small_app, seeding_workers):
    """Only the refill job shares a pool's deficit with other workers; a direct call (the
    CLI's `pool replenish`, a script) builds every campaign itself and queues no helper."""
    seeding_workers(4)
    configure(master_target=3, build_batch_size=1, max_parallel_builds=10)
    queue = Queue("seeding", connection=get_redis(small_app))
    queue.empty()

    report = replenish_pool(db.session, get_redis(small_app), settings_of(small_app))

    assert (len(report.built), report.builds) == (3, 3)
    assert queue.job_ids == []


def test_a_round_of_refills_reports_progress_and_queues_helpers_for_every_pool(
    small_app, seeding_workers
):
    seeding_workers(2)
    configure(master_target=2, user_target=2, build_batch_size=1)
    gm = gamemaster()
    steps: list[tuple[int, int]] = []

    reports = replenish_all(
        db.session,
        get_redis(small_app),
        settings_of(small_app),
        progress=lambda done, total: steps.append((done, total)),
        fan_out=True,
    )

    assert [(r.pool_type, len(r.built), r.builds) for r in reports] == [
        ("master", 2, 2),
        ("user", 2, 2),
    ]
    assert steps == [(1, 2), (2, 2), (1, 2), (2, 2)]
    queue = Queue("seeding", connection=get_redis(small_app))
    assert sorted(queue.job_ids) == ["replenish-master-all-h1", f"replenish-user-{gm.id}-h1"]
    # The next round finds every pool full: the gamemaster's is not even tried.
    again = replenish_all(db.session, get_redis(small_app), settings_of(small_app), fan_out=False)
    assert [(r.pool_type, r.built) for r in again] == [("master", [])]


def test_the_reservation_log_line_keeps_its_level_and_says_the_pools(small_app, caplog):
    """The pool's level is `pool_level`: an extra field named `level` would replace the log
    level ("info") in the JSON line."""
    from portal.logs import JsonFormatter

    configure(master_target=1)
    with caplog.at_level("INFO", logger="portal.pool"):
        replenish_pool(db.session, get_redis(small_app), settings_of(small_app))
    (record,) = [r for r in caplog.records if r.getMessage() == "pool.build.reserved"]
    line = json.loads(JsonFormatter().format(record))
    assert (line["level"], line["pool_level"], line["campaigns"]) == ("info", 0, 1)


@pytest.mark.postgres
def test_a_reservation_waits_for_the_one_in_progress(small_app):
    """Reservations take turns (the advisory lock): one that starts while another holds the
    lock waits for its commit, so it counts what the other reserved."""
    import threading
    import time

    from portal.services.pool.rollout import ADMISSION_LOCK_KEY

    configure(master_target=1)
    outcome: list[object] = []

    def refill() -> None:
        with small_app.app_context():
            report = replenish_pool(db.session, get_redis(small_app), settings_of(small_app))
            outcome.append(len(report.built))

    with db.engine.connect() as other:
        other.execute(sa.select(sa.func.pg_advisory_xact_lock(ADMISSION_LOCK_KEY)))
        thread = threading.Thread(target=refill)
        thread.start()
        waiting, until = 0, time.monotonic() + 30
        while not waiting and time.monotonic() < until:
            with db.engine.connect() as look:  # a transaction sees one snapshot of the stats
                waiting = look.scalar(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event = 'advisory'"
                    )
                )
        assert waiting == 1 and not outcome  # the refill waits for the lock
        # Meanwhile the other reservation takes the pool's only place.
        other.execute(
            sa.insert(Campaign).values(
                id=uuid.uuid4(),
                user_id=template_owner(),
                name="Reserved by the other",
                is_pool=True,
                pool_type="master",
                pool_status="building",
                pool_created_at=utcnow(),
                template_version=1,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        other.commit()
    thread.join(60)
    assert outcome == [0]  # it saw the other's reservation: the pool was full

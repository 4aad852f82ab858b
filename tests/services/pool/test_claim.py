"""The campaign pool: claims, assignment, user pools first, stale versions, name clashes,
fallback, and refills that never overfill."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from portal import settings_of
from portal.extensions import db
from portal.models import (
    CONTENT_MODELS,
    Campaign,
    Character,
    ImageAttachment,
    ImagePosition,
    PoolEvent,
    utcnow,
)
from portal.services.accounts.users import create_user
from portal.services.campaigns.records import content_counts, find_master_template
from portal.services.infra.queue import get_redis
from portal.services.pool.claim import (
    OWNED_CONTENT,
    CampaignPoolService,
    ClaimedCampaign,
    NameTakenError,
    claim_statements,
)
from portal.services.pool.config import PoolConfigError, load_pool_config, set_pool_setting
from portal.services.pool.creation import create_campaign
from portal.services.pool.replenish import pool_level, replenish_pool
from portal.services.seeding.verify import verify_campaign
from tests.conftest import app_on, build_template_database
from tests.support.databases import TestDatabases


@pytest.fixture(scope="session")
def embedded_databases(
    databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestDatabases]:
    """SQLite databases whatever TEST_DATABASE_URL says: the claim has a path of its own there
    (no data-modifying CTEs, so the child resets are separate statements)."""
    if databases.backend == "sqlite":
        yield databases
        return
    embedded = TestDatabases(tmp_path_factory.mktemp("embedded"))
    embedded.server_url = None
    yield embedded
    embedded.drop_all()


@pytest.fixture
def embedded_rich_app(databases: TestDatabases, embedded_databases: TestDatabases):
    """The rich template on SQLite; skipped when the suite runs there anyway (then
    `rich_template_app` is the same)."""
    if databases.backend == "sqlite":
        pytest.skip("the suite runs on SQLite already")
    golden = embedded_databases.golden(
        "rich_template", lambda url: build_template_database(url, "rich")
    )
    yield from app_on(embedded_databases, golden, "")


# The claim on the configured database and on SQLite: its statements differ per dialect.
ON_EITHER_DATABASE = pytest.mark.parametrize(
    "claim_app", ["rich_template_app", "embedded_rich_app"], indirect=True
)


@pytest.fixture
def claim_app(request: pytest.FixtureRequest):
    return request.getfixturevalue(request.param)


def make_user(email: str, *, gamemaster: bool = True):
    user = create_user(db.session, email, email.split("@")[0], "password123", gamemaster=gamemaster)
    db.session.commit()
    return user


def fill(app, pool_type: str = "master", count: int = 2, user=None) -> list[uuid.UUID]:
    set_pool_setting(db.session, f"{pool_type}_target", count)
    db.session.commit()
    report = replenish_pool(
        db.session, get_redis(app), settings_of(app), pool_type, user.id if user else None
    )
    assert report.failed == 0, report
    return [uuid.UUID(cid) for cid in report.built]


def campaign_positions(campaign_id: uuid.UUID) -> list[ImagePosition]:
    """Every image position on the campaign or one of its records, found without the claim's
    per-type queries (so the test does not share their mistakes)."""
    record_ids = [campaign_id]
    for model in CONTENT_MODELS.values():
        record_ids += db.session.scalars(
            sa.select(model.id).where(model.campaign_id == campaign_id)
        )
    return list(
        db.session.scalars(
            sa.select(ImagePosition).where(ImagePosition.positionable_id.in_(record_ids))
        )
    )


def pool_campaigns(status: str = "ready", pool_type: str = "master") -> list[Campaign]:
    return db.session.scalars(
        sa.select(Campaign).where(
            Campaign.is_pool.is_(True),
            Campaign.pool_status == status,
            Campaign.pool_type == pool_type,
        )
    ).all()


def test_replenish_builds_ready_campaigns_that_verify(template_app):
    built = fill(template_app, count=2)
    assert len(built) == 2
    ready = pool_campaigns()
    assert {c.id for c in ready} == set(built)
    template = find_master_template(db.session)
    for campaign in ready:
        assert campaign.user_id == template.user_id
        assert campaign.template_version == template.template_version
        assert campaign.seeding_method == "batch"
        assert campaign.pool_created_at is not None
        report = verify_campaign(db.session, campaign.id)
        assert report.ok, report.differences[:5]
    assert db.session.scalar(sa.select(sa.func.count()).where(PoolEvent.kind == "replenished")) == 2


@ON_EITHER_DATABASE
def test_assignment_renames_transfers_and_refreshes_every_child(claim_app):
    """On the rich shape: image positions (and carries, vehicles) must be reset too."""
    (pool_id,) = fill(claim_app, count=1)
    # Age the pool campaign and its children so "fresh" timestamps are distinguishable.
    old = utcnow() - timedelta(days=3)
    for model in (Campaign, *CONTENT_MODELS.values()):
        column = model.id if model is Campaign else model.campaign_id
        db.session.execute(
            sa.update(model).where(column == pool_id).values(created_at=old, updated_at=old)
        )
    positions = campaign_positions(pool_id)
    assert {"Campaign", "Character", "Faction", "Juncture"} <= {
        p.positionable_type for p in positions
    }
    db.session.execute(
        sa.update(ImagePosition)
        .where(ImagePosition.id.in_([p.id for p in positions]))
        .values(created_at=old, updated_at=old)
    )
    db.session.execute(
        sa.update(Campaign).where(Campaign.id == pool_id).values(pool_created_at=old)
    )
    db.session.commit()
    gm = make_user("gm@example.com")
    before = utcnow()

    assignment = CampaignPoolService(db.session).assign_pool_campaign(
        gm, "Night of the <b>Jade</b> Dragon", "A campaign"
    )

    assert assignment is not None and assignment.campaign_id == pool_id
    assert assignment.source == "master_pool"
    db.session.expire_all()
    campaign = db.session.get(Campaign, pool_id)
    assert campaign.name == "Night of the <b>Jade</b> Dragon"
    assert campaign.user_id == gm.id
    assert (campaign.is_pool, campaign.pool_status) == (False, "assigned")
    assert campaign.created_at >= before and campaign.activated_at >= before
    assert campaign.pool_created_at == old  # the truth is kept
    for model in CONTENT_MODELS.values():
        stale = db.session.scalar(
            sa.select(sa.func.count()).where(
                model.campaign_id == pool_id,
                sa.or_(model.created_at < before, model.updated_at < before),
            )
        )
        assert stale == 0, model.__tablename__
    db.session.expire_all()
    stale_positions = [
        p.positionable_type
        for p in campaign_positions(pool_id)
        if p.created_at < before or p.updated_at < before
    ]
    assert stale_positions == []
    # The claim's own answer is what the database now holds: the API builds its response
    # from it without reading the campaign again.
    assert assignment.campaign.name == campaign.name and assignment.campaign.user_id == gm.id
    assert assignment.campaign.created_at == campaign.created_at
    # Every field of the typed snapshot, not only those two: it is read from the row by position.
    stored = ClaimedCampaign._make(getattr(campaign, name) for name in ClaimedCampaign._fields)
    assert assignment.campaign == stored
    assert assignment.counts == content_counts(db.session, pool_id, with_images=True)
    assert assignment.counts["schticks"] == 643
    owners = set(
        db.session.scalars(sa.select(Character.user_id).where(Character.campaign_id == pool_id))
    )
    assert owners == {gm.id}
    char_ids = sa.select(Character.id).where(Character.campaign_id == pool_id)
    # Attachments keep created_at (when the image link was made; see docs/pool.md) and still
    # point at their blobs, now under records the user owns.
    attached = sa.select(sa.func.count()).where(ImageAttachment.record_id.in_(char_ids))
    assert db.session.scalar(attached) == 39  # every character but the Mook has a picture
    assert (assignment.pool_created_at, assignment.activated_at) == (old, campaign.activated_at)
    event = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "assigned")).one()
    assert event.campaign_id == pool_id and event.user_id == gm.id
    assert event.pool_type == "master" and event.created_at == campaign.activated_at
    assert event.duration_ms is not None and event.duration_ms == assignment.duration_ms
    template = find_master_template(db.session)
    assert event.detail == {
        "pool_age_s": pytest.approx((campaign.activated_at - old).total_seconds(), abs=1e-3),
        "template_version": template.template_version,
    }
    assert verify_campaign(db.session, pool_id).ok
    # Nothing outside the claimed campaign changed: the template's records keep their owner
    # and their timestamps, and so do their image positions.
    assert set(
        db.session.scalars(sa.select(Character.user_id).where(Character.campaign_id == template.id))
    ) == {template.user_id}
    for model in CONTENT_MODELS.values():
        touched = db.session.scalar(
            sa.select(sa.func.count()).where(
                model.campaign_id == template.id, model.updated_at >= before
            )
        )
        assert touched == 0, model.__tablename__
    template_positions = campaign_positions(template.id)
    assert template_positions
    assert [p.positionable_type for p in template_positions if p.updated_at >= before] == []


@pytest.mark.postgres
def test_a_claim_rewrites_every_content_row_as_a_heap_only_update(rich_template_app):
    """Migration 0004's fillfactor leaves each content page room for a new version of every row on
    it, so a claim's timestamp resets are heap-only updates that add no index entries: that is most
    of what keeps a claim near the 10 ms target (docs/performance.md). An index on a column the
    claim sets, or a denser fillfactor, shows up here as updates that are not heap-only. (Characters
    and vehicles also change owner on a master-pool claim, and `user_id` is indexed, so theirs
    cannot be heap-only: 40 rows.)"""
    (pool_id,) = fill(rich_template_app, count=1)
    gm = make_user("gm@example.com")
    tables = {
        name: model.__table__.name
        for name, model in CONTENT_MODELS.items()
        if model not in OWNED_CONTENT
    }
    tables["positions"] = ImagePosition.__table__.name
    expected = content_counts(db.session, pool_id)
    expected["positions"] = len(campaign_positions(pool_id))
    db.session.commit()
    connection = db.session.connection()
    (claim,) = claim_statements("postgresql", True)
    params = {"p_user": gm.id, "p_name": "Heap only", "p_description": None, "p_now": utcnow()}
    assert connection.execute(claim, params).one().id == pool_id
    counts = {}
    for name, table in tables.items():
        updated, heap_only = connection.execute(
            sa.text(
                "SELECT pg_stat_get_xact_tuples_updated(CAST(:t AS regclass)),"
                " pg_stat_get_xact_tuples_hot_updated(CAST(:t AS regclass))"
            ),
            {"t": table},
        ).one()
        counts[name] = (updated, heap_only)
    db.session.rollback()
    assert expected["schticks"] == 643 and expected["positions"] == 60
    assert counts == {name: (expected[name], expected[name]) for name in tables}


def test_user_pool_is_used_before_the_master_pool(template_app):
    gm = make_user("gm@example.com")
    master_ids = fill(template_app, "master", 1)
    (own_id,) = fill(template_app, "user", 1, user=gm)
    assert own_id not in master_ids

    first = CampaignPoolService(db.session).assign_pool_campaign(gm, "First", None)
    second = CampaignPoolService(db.session).assign_pool_campaign(gm, "Second", None)

    assert (first.campaign_id, first.pool_type, first.source) == (own_id, "user", "user_pool")
    assert (second.campaign_id, second.pool_type, second.source) == (
        master_ids[0],
        "master",
        "master_pool",
    )


def test_find_available_pool_is_what_a_claim_would_pick(template_app):
    gm = make_user("gm@example.com")
    player = make_user("player@example.com", gamemaster=False)
    service = CampaignPoolService(db.session)
    assert service.find_available_pool(gm) is None
    (master_id,) = fill(template_app, "master", 1)
    (own_id,) = fill(template_app, "user", 1, user=gm)

    assert service.find_available_pool(gm).id == own_id
    assert service.find_available_pool(player).id == master_id
    assert service.assign_pool_campaign(gm, "Mine", None).campaign_id == own_id


def test_someone_elses_user_pool_is_never_handed_out(template_app):
    owner = make_user("owner@example.com")
    other = make_user("other@example.com")
    fill(template_app, "user", 1, user=owner)
    assert CampaignPoolService(db.session).find_available_pool(other) is None
    assert CampaignPoolService(db.session).assign_pool_campaign(other, "Mine", None) is None


def test_campaigns_of_an_old_template_version_are_not_handed_out(template_app):
    (pool_id,) = fill(template_app, count=1)
    template = find_master_template(db.session)
    template.template_version += 1
    db.session.commit()
    gm = make_user("gm@example.com")

    assert CampaignPoolService(db.session).find_available_pool(gm) is None
    assert CampaignPoolService(db.session).assign_pool_campaign(gm, "New", None) is None
    assert db.session.get(Campaign, pool_id).pool_status == "ready"


def test_a_former_gamemaster_no_longer_draws_on_their_user_pool(template_app):
    """Only gamemasters are served from their own user pool: once the role is gone, what is
    left in it is neither offered nor claimed, and the master pool serves them."""
    gm = make_user("gm@example.com")
    (master_id,) = fill(template_app, "master", 1)
    fill(template_app, "user", 1, user=gm)
    gm.gamemaster = False
    db.session.commit()
    service = CampaignPoolService(db.session)

    assert service.find_available_pool(gm).id == master_id
    assert service.assign_pool_campaign(gm, "Mine", None).campaign_id == master_id


def test_the_longest_waiting_campaign_goes_first_then_the_smallest_id(template_app):
    """First in, first out by pool_created_at; campaigns that entered the pool at the same
    moment (one refill builds several) go by id, so what the pool offers is what it claims."""
    built = sorted(fill(template_app, count=3))
    player = make_user("player@example.com", gamemaster=False)
    entered = utcnow() - timedelta(hours=1)
    # The largest id waited longest; the other two tie. Written largest id first, so that the
    # rows' physical order is not the order the pool must follow.
    for campaign_id, at in zip(
        reversed(built), (entered - timedelta(hours=1), entered, entered), strict=True
    ):
        db.session.execute(
            sa.update(Campaign).where(Campaign.id == campaign_id).values(pool_created_at=at)
        )
        db.session.commit()
    service = CampaignPoolService(db.session)

    order = []
    for i in range(3):
        offered = service.find_available_pool(player).id
        assignment = service.assign_pool_campaign(player, f"Game {i}", None)
        assert assignment.campaign_id == offered
        order.append(offered)

    assert order == [built[2], built[0], built[1]]
    assert service.find_available_pool(player) is None


def test_a_pool_campaign_without_a_pool_date_is_still_handed_out(template_app):
    """Campaigns pooled before the pool recorded when (pool_created_at NULL) are served like
    any other; their wait is unknown, not made up."""
    (pool_id,) = fill(template_app, count=1)
    db.session.execute(
        sa.update(Campaign).where(Campaign.id == pool_id).values(pool_created_at=None)
    )
    db.session.commit()
    gm = make_user("gm@example.com")

    assignment = CampaignPoolService(db.session).assign_pool_campaign(gm, "Old timer", None)

    assert assignment.campaign_id == pool_id and assignment.pool_created_at is None
    event = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "assigned")).one()
    assert event.detail["pool_age_s"] is None


def test_the_claim_times_itself_in_milliseconds(template_app, monkeypatch):
    """The assignment and its event carry the claim's wall time in milliseconds, to the
    microsecond (the latency charts and the p95 alert read it)."""
    from portal.services.pool import claim

    fill(template_app, count=1)
    gm = make_user("gm@example.com")
    ticks = iter([5.0, 5.0123456])
    monkeypatch.setattr(claim, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))

    assignment = CampaignPoolService(db.session).assign_pool_campaign(gm, "Timed", None)

    assert assignment.duration_ms == 12.346
    event = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "assigned")).one()
    assert event.duration_ms == 12.346


@pytest.mark.postgres
def test_a_claim_on_postgresql_is_one_statement_then_its_event(template_app):
    """On PostgreSQL the claim, every child reset and the content counts are one round trip;
    the pool event is the second (docs/performance.md: the claim's latency budget)."""
    fill(template_app, count=1)
    gm = make_user("gm@example.com")
    assert gm.id and gm.gamemaster  # loaded now, not by the claim
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        assignment = CampaignPoolService(db.session).assign_pool_campaign(gm, "Quick", None)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)

    assert assignment is not None and assignment.counts["schticks"] > 0
    assert len(statements) == 2, statements
    assert "pool_events" in statements[1]


def test_name_clash_is_refused_and_the_pool_is_untouched(template_app):
    gm = make_user("gm@example.com")
    fill(template_app, count=2)
    service = CampaignPoolService(db.session)
    service.assign_pool_campaign(gm, "Taken", None)
    ready_before = {c.id for c in pool_campaigns()}

    # The same words as the seeded path's refusal and the API's `errors.name`.
    with pytest.raises(NameTakenError, match=r"^has already been taken$"):
        service.assign_pool_campaign(gm, "Taken", None)

    db.session.expire_all()
    assert {c.id for c in pool_campaigns()} == ready_before
    assert db.session.scalar(sa.select(sa.func.count()).where(PoolEvent.kind == "assigned")) == 1


def test_a_claim_left_uncommitted_is_the_callers_to_keep_or_undo(template_app):
    """`commit=False` leaves the claim and its event in the caller's transaction: a rollback
    puts the campaign back in the pool and records nothing; a commit keeps both."""
    gm = make_user("gm@example.com")
    fill(template_app, count=2)
    ready_before = {c.id for c in pool_campaigns()}
    service = CampaignPoolService(db.session)

    undone = service.assign_pool_campaign(gm, "Undone", None, commit=False)
    assert undone is not None and undone.campaign_id in ready_before
    db.session.rollback()
    assert {c.id for c in pool_campaigns()} == ready_before
    assert db.session.scalar(sa.select(sa.func.count()).where(PoolEvent.kind == "assigned")) == 0

    kept = service.assign_pool_campaign(gm, "Kept", None, commit=False)
    assert kept is not None
    db.session.commit()
    db.session.expire_all()
    assert {c.id for c in pool_campaigns()} == ready_before - {kept.campaign_id}
    assert db.session.get(Campaign, kept.campaign_id).name == "Kept"


def test_empty_pool_falls_back_to_seeding_a_complete_campaign(template_app):
    gm = make_user("gm@example.com")
    created = create_campaign(
        db.session, get_redis(), settings_of(template_app), gm, "Fallback", None
    )
    assert created.source == "seeded" and not created.pending
    campaign = db.session.get(Campaign, created.campaign_id)
    assert campaign.user_id == gm.id and campaign.is_pool is False
    assert campaign.seeding_method == "batch"
    assert verify_campaign(db.session, campaign.id).ok
    kinds = list(db.session.scalars(sa.select(PoolEvent.kind)))
    assert kinds.count("fallback") == 1


def test_pool_exhaustion_serves_the_pool_then_falls_back(template_app):
    gm = make_user("gm@example.com")
    fill(template_app, count=2)
    sources = [
        create_campaign(
            db.session, get_redis(), settings_of(template_app), gm, f"C{i}", None
        ).source
        for i in range(3)
    ]
    assert sources == ["master_pool", "master_pool", "seeded"]


def test_pool_settings_override_the_environment_and_are_validated(template_app):
    settings = settings_of(template_app)
    assert load_pool_config(db.session, settings).master_target == settings.pool_master_target
    set_pool_setting(db.session, "master_target", "7")
    db.session.commit()
    assert load_pool_config(db.session, settings).master_target == 7
    for key, value in (("master_target", "-1"), ("master_target", "lots"), ("nope", 1)):
        with pytest.raises(PoolConfigError):
            set_pool_setting(db.session, key, value)
    db.session.rollback()
    assert load_pool_config(db.session, settings).master_target == 7


def test_concurrent_replenish_triggers_never_exceed_the_target(template_app):
    set_pool_setting(db.session, "master_target", 3)
    db.session.commit()
    template = find_master_template(db.session)
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def trigger() -> None:
        try:
            with template_app.app_context():
                barrier.wait(timeout=60)
                replenish_pool(db.session, get_redis(), settings_of(template_app), "master")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=trigger) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    db.session.expire_all()
    assert pool_level(db.session, "master", template.template_version) <= 3
    # Triggers that lost the race skipped; one more refill tops the pool up exactly.
    replenish_pool(db.session, get_redis(), settings_of(template_app), "master")
    assert len(pool_campaigns()) == 3


def test_a_pool_whose_builds_keep_failing_stops_and_reports(template_app, monkeypatch):
    from portal.services.seeding import batch

    def broken(self, targets, template, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(batch.CampaignBatchSeeder, "seed_many", broken)
    set_pool_setting(db.session, "master_target", 5)
    set_pool_setting(db.session, "failure_budget", 3)
    db.session.commit()

    report = replenish_pool(db.session, get_redis(), settings_of(template_app), "master")

    # A build seeds the whole deficit (5 <= K) in one transaction: three builds failed.
    assert report.failed == 3 and report.skipped == "halted" and not report.built
    assert len(pool_campaigns("failed")) == 3 * 5
    assert not pool_campaigns("ready") and not pool_campaigns("building")
    failures = db.session.scalars(
        sa.select(PoolEvent).where(PoolEvent.kind == "replenish_failed")
    ).all()
    assert len(failures) == 3 and "disk full" in failures[0].detail["error"]
    assert [len(f.detail["campaign_ids"]) for f in failures] == [5, 5, 5]

    # Halted: another trigger builds nothing ...
    again = replenish_pool(db.session, get_redis(), settings_of(template_app), "master")
    assert again.skipped == "halted" and again.failed == 0
    # ... until the cool-off has passed; then the pool tries again on its own and, with the
    # cause fixed, refills.
    monkeypatch.undo()
    db.session.execute(
        sa.update(PoolEvent)
        .where(PoolEvent.kind == "replenish_failed")
        .values(created_at=utcnow() - timedelta(minutes=16))
    )
    db.session.commit()
    resumed = replenish_pool(db.session, get_redis(), settings_of(template_app), "master")
    assert resumed.skipped is None and len(resumed.built) == 5


@pytest.mark.postgres
@pytest.mark.slow
def test_fifty_concurrent_creates_against_a_pool_of_twenty(template_app):
    """50 threads create campaigns at once against a pool of 20: 50 distinct complete
    campaigns, none handed out twice, each owned by its requester and verifying."""
    fill(template_app, count=20)
    users = [make_user(f"gm{i}@example.com", gamemaster=False) for i in range(50)]
    user_ids = [u.id for u in users]
    results: dict[int, object] = {}
    barrier = threading.Barrier(50)
    settings = settings_of(template_app)

    def create(i: int) -> None:
        with template_app.app_context():
            try:
                from portal.models import User

                user = db.session.get(User, user_ids[i])
                db.session.expunge(user)
                db.session.rollback()  # return the connection before waiting at the barrier
                barrier.wait(timeout=60)
                results[i] = create_campaign(
                    db.session, get_redis(), settings, user, f"Campaign {i}", None
                )
            except BaseException as exc:
                results[i] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)

    errors = [r for r in results.values() if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert len(results) == 50
    ids = [r.campaign_id for r in results.values()]
    assert len(set(ids)) == 50
    sources = [r.source for r in results.values()]
    # No worker runs during the burst, so exactly the 20 pooled campaigns are claimed.
    assert (sources.count("master_pool"), sources.count("seeded")) == (20, 30)
    assigned = list(
        db.session.scalars(sa.select(PoolEvent.campaign_id).where(PoolEvent.kind == "assigned"))
    )
    assert len(assigned) == len(set(assigned)) == sources.count("master_pool")
    db.session.expire_all()
    for i, result in results.items():
        campaign = db.session.get(Campaign, result.campaign_id)
        assert campaign.user_id == user_ids[i] and campaign.name == f"Campaign {i}"
        assert campaign.is_pool is False
        owners = set(
            db.session.scalars(
                sa.select(Character.user_id).where(Character.campaign_id == campaign.id)
            )
        )
        assert owners == {user_ids[i]}
        assert verify_campaign(db.session, campaign.id).ok
    # The refills the creates asked for bring the pool back to target.
    replenish_pool(db.session, get_redis(), settings, "master")
    assert len(pool_campaigns()) == 20


def test_latency_percentiles_are_nearest_rank_like_the_charts(app):
    """The cards' p50/p95 use the same nearest-rank definition as the SQL-built charts."""
    from portal.services.pool.status import assignment_metrics

    for ms in range(1, 11):
        db.session.add(PoolEvent(kind="assigned", pool_type="master", duration_ms=float(ms)))
    db.session.commit()
    latency = assignment_metrics(db.session, timedelta(hours=1))["latency_ms"]
    assert (latency["p50"], latency["p95"], latency["p99"]) == (5.0, 10.0, 10.0)


def test_pool_status_cli_prints_the_admin_api_pool_payload(template_app):
    import json

    from tests.support.auth import AuthActions

    fill(template_app, count=1)
    client = template_app.test_client()
    actions = AuthActions(client)
    actions.create_user()
    actions.login()
    served = client.get("/admin/api/pool").get_json()

    result = template_app.test_cli_runner().invoke(args=["pool", "status"])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert set(printed) == set(served)
    assert printed["pools"] == served["pools"] and printed["config"] == served["config"]

"""The batch seeder: a set-based copy of the template that verifies, shares images, and is atomic.

Run on both backends: on SQLite the ten INSERT ... SELECTs run one by one, on PostgreSQL they go
as one statement, so both code paths are covered. Failures are injected for real (a progress
callback that raises between steps, a database trigger that refuses a row, a template that
points outside itself, a campaign seeded by someone else meanwhile) rather than by mocks.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from portal.extensions import db
from portal.models import (
    Campaign,
    Character,
    CharacterSchtick,
    Faction,
    ImageAttachment,
    ImagePosition,
    Juncture,
    Schtick,
    User,
    Vehicle,
    Weapon,
    utcnow,
)
from portal.services.campaigns.records import create_campaign_shell, find_master_template
from portal.services.images.backend import get_image_store
from portal.services.seeding import batch
from portal.services.seeding.base import SeedingError
from portal.services.seeding.batch import (
    ALL_TABLES,
    CampaignBatchSeeder,
    copy_tables,
    new_uuid4_hex,
)
from portal.services.seeding.verify import verify_campaign
from tests.support.small_template import (
    FULL_SHAPE,
    RICH_SHAPE,
    build_small_template,
    content_counts,
    make_user,
)

TABLES = (
    "campaigns",
    "factions",
    "junctures",
    "schticks",
    "weapons",
    "characters",
    "vehicles",
    "character_schticks",
    "carries",
    "image_positions",
    "image_attachments",
    "image_blobs",
)


def table_counts(session: Session) -> dict[str, int]:
    """Rows in every table a seed writes to, whatever campaign they belong to."""
    return {
        name: session.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one()
        for name in TABLES
    }


def new_target(name: str = "My Campaign", *, commit_shell: bool = False) -> Campaign:
    """A shell as the API makes one (owner committed, shell only flushed), or as an async
    request or a pool refill leaves it (shell committed, `seeded_at` NULL)."""
    owner = make_user(db.session)
    db.session.commit()
    shell = create_campaign_shell(db.session, owner, name, "mine")
    if commit_shell:
        db.session.commit()
    return shell


def add_deep_chain(session: Session, template: Campaign) -> None:
    """Two five-deep prerequisite chains through names that repeat across categories, the
    second built bottom-up so creation order is not dependency order."""
    cid = template.id
    previous: Schtick | None = None
    for depth in range(1, 6):
        previous = Schtick(
            id=uuid.uuid4(),
            campaign_id=cid,
            category="Martial Arts",
            name=f"Step {depth}",
            prerequisite_id=previous.id if previous else None,
        )
        session.add(previous)
        session.flush()
    ids = [uuid.uuid4() for _ in range(5)]
    for depth in reversed(range(5)):  # the top of the chain is created first
        session.add(
            Schtick(
                id=ids[depth], campaign_id=cid, category="Scroungetech", name=f"Step {depth + 1}"
            )
        )
        session.flush()
    for depth in range(1, 5):
        session.get(Schtick, ids[depth]).prerequisite_id = ids[depth - 1]
    session.commit()


def chain_of(session: Session, schtick: Schtick) -> list[tuple[uuid.UUID, str, str]]:
    out = []
    current: Schtick | None = schtick
    while current is not None:
        out.append((current.campaign_id, current.category, current.name))
        current = session.get(Schtick, current.prerequisite_id) if current.prerequisite_id else None
    return out


@contextmanager
def failing_inserts(table: str, message: str = "injected failure") -> Iterator[None]:
    """A database trigger that refuses every INSERT into `table`, for as long as the block runs."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        statements = [
            "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$",
            f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_insert()",
        ]
        cleanup = [f"DROP TRIGGER refuse_insert ON {table}", "DROP FUNCTION refuse_insert()"]
    else:
        statements = [
            f"CREATE TRIGGER refuse_insert BEFORE INSERT ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        ]
        cleanup = ["DROP TRIGGER refuse_insert"]
    for statement in statements:
        db.session.execute(sa.text(statement))
    db.session.commit()
    try:
        yield
    finally:
        db.session.rollback()
        for statement in cleanup:
            db.session.execute(sa.text(statement))
        db.session.commit()


# ---------------------------------------------------------------------------- full template


@pytest.mark.parametrize("shape", ["production", "rich"])
def test_full_template_is_cloned_set_based_and_verifies(request, shape):
    request.getfixturevalue("template_app" if shape == "production" else "rich_template_app")
    expected = FULL_SHAPE if shape == "production" else RICH_SHAPE
    session = db.session
    template = find_master_template(session)
    template_counts = content_counts(session, template.id)
    template_blob_ids = set(session.scalars(sa.select(ImageAttachment.blob_id)))
    before = table_counts(session)
    target = new_target()
    owner_id, target_id = target.user_id, target.id
    steps: list[tuple[str, int, int]] = []

    result = CampaignBatchSeeder(session).seed(
        target, template, progress=lambda *step: steps.append(step)
    )

    assert result.method == "batch" and result.campaign_id == target_id
    assert {k: result.rows[k] for k in expected} == expected
    assert result.rows["image_blobs"] == 0 and result.total_rows == sum(expected.values())
    session.expire_all()
    assert content_counts(session, target_id) == template_counts == expected
    campaign = session.get(Campaign, target_id)
    assert campaign.seeded_at is not None and campaign.seeding_method == "batch"
    assert campaign.seeding_duration_ms == result.duration_ms > 0
    assert campaign.template_version == template.template_version == 1
    # Images are shared: no new blob, and every new attachment uses one of the template's.
    after = table_counts(session)
    assert after["image_blobs"] == before["image_blobs"]
    assert after["image_attachments"] == before["image_attachments"] + expected["image_attachments"]
    new_blob_ids = set(session.scalars(sa.select(ImageAttachment.blob_id)))
    assert new_blob_ids == template_blob_ids
    owners = session.scalars(
        sa.select(Character.user_id).where(Character.campaign_id == target_id).distinct()
    ).all()
    assert owners == [owner_id]
    # Progress: the map, every table in dependency order, then the campaign itself.
    assert [s[0] for s in steps] == ["id_map", *ALL_TABLES, "campaign"]
    assert [s[1] for s in steps] == list(range(1, len(steps) + 1))
    assert {s[2] for s in steps} == {len(steps)}

    report = verify_campaign(session, target_id)
    assert report.ok, report.differences[:10]
    assert report.counts["prerequisites"] == {"campaign": 130, "template": 130}
    assert report.counts["image_attachments"]["shared"] == expected["image_attachments"]


def test_six_deep_chains_and_repeated_names_in_the_full_template(template_app):
    session = db.session
    template = find_master_template(session)
    target = new_target()
    CampaignBatchSeeder(session).seed(target, template)

    repeated = session.execute(
        sa.select(Schtick.name)
        .where(Schtick.campaign_id == template.id)
        .group_by(Schtick.name)
        .having(sa.func.count(sa.distinct(Schtick.category)) > 1)
    ).scalars()
    assert len(list(repeated)) == 11
    deepest = 0
    for schtick in session.scalars(
        sa.select(Schtick).where(
            Schtick.campaign_id == target.id, Schtick.prerequisite_id.is_not(None)
        )
    ):
        chain = chain_of(session, schtick)
        # Every link stays in the new campaign and in the category of the one that needs it
        # (the generator chains within a category, where names are unique).
        assert {c for c, _, _ in chain} == {target.id}
        assert {category for _, category, _ in chain} == {schtick.category}
        deepest = max(deepest, len(chain))
    assert deepest == 6


def test_two_seeds_of_one_template_share_nothing_but_blobs(template_app):
    session = db.session
    template = find_master_template(session)
    first, second = new_target("One"), None
    CampaignBatchSeeder(session).seed(first, template)
    second = new_target("Two")
    CampaignBatchSeeder(session).seed(second, template)  # same connection: the map is reused

    def ids(campaign_id: uuid.UUID) -> set[uuid.UUID]:
        return set(session.scalars(sa.select(Schtick.id).where(Schtick.campaign_id == campaign_id)))

    assert ids(first.id).isdisjoint(ids(second.id))
    assert ids(first.id).isdisjoint(ids(template.id))
    for campaign in (first, second):
        assert verify_campaign(session, campaign.id).ok


# ---------------------------------------------------------------------------- small template


def test_links_are_remapped_by_id_through_repeated_names_and_deep_chains(app):
    session = db.session
    template = build_small_template(session, get_image_store())
    add_deep_chain(session, template)
    target = new_target()
    result = CampaignBatchSeeder(session).seed(target, template)
    session.expire_all()

    assert content_counts(session, target.id) == content_counts(session, template.id)
    assert {k: v for k, v in result.rows.items() if k != "image_blobs"} == content_counts(
        session, target.id
    )
    for category in ("Martial Arts", "Scroungetech"):
        top = session.scalars(
            sa.select(Schtick).filter_by(campaign_id=target.id, category=category, name="Step 5")
        ).one()
        assert chain_of(session, top) == [
            (target.id, category, f"Step {depth}") for depth in range(5, 0, -1)
        ]
    eagle_eye = session.scalars(
        sa.select(Schtick).filter_by(campaign_id=target.id, category="Fu", name="Eagle Eye")
    ).one()
    prerequisite = session.get(Schtick, eagle_eye.prerequisite_id)
    assert (prerequisite.campaign_id, prerequisite.category) == (target.id, "Fu")

    # The vehicle (the full template has none) and its links and image come along.
    taxi = session.scalars(sa.select(Vehicle).filter_by(campaign_id=target.id)).one()
    assert taxi.user_id == target.user_id
    assert session.get(Faction, taxi.faction_id).campaign_id == target.id
    assert session.get(Juncture, taxi.juncture_id).campaign_id == target.id
    position = session.scalars(
        sa.select(ImagePosition).filter_by(positionable_type="Vehicle", positionable_id=taxi.id)
    ).one()
    assert (position.x_position, position.y_position) == (1.0, 2.0)
    campaign_position = session.scalars(
        sa.select(ImagePosition).filter_by(positionable_type="Campaign", positionable_id=target.id)
    ).one()
    assert campaign_position.context == "card"
    for character in session.scalars(sa.select(Character).filter_by(campaign_id=target.id)):
        assert character.user_id == target.user_id
        links = session.scalars(
            sa.select(Schtick.campaign_id)
            .join(CharacterSchtick, CharacterSchtick.schtick_id == Schtick.id)
            .where(CharacterSchtick.character_id == character.id)
        ).all()
        assert links and set(links) == {target.id}
    # Fresh timestamps, copied content (an inactive record stays inactive).
    copied = session.scalars(sa.select(Schtick).filter_by(campaign_id=target.id)).all()
    assert {(s.created_at, s.updated_at) for s in copied} == {(copied[0].created_at,) * 2}
    original = session.scalars(sa.select(Schtick).filter_by(campaign_id=template.id)).first()
    assert copied[0].created_at > original.created_at
    blast = session.scalars(
        sa.select(Schtick).filter_by(campaign_id=target.id, category="Sorcery", name="Blast")
    ).one()
    assert blast.active is False and blast.color == "#0000aa"

    report = verify_campaign(session, target.id, template.id)
    assert report.ok, report.differences


def test_a_committed_shell_is_seeded_and_keeps_its_own_columns(app):
    """The pool and the async API commit the shell first (possibly with pool columns)."""
    session = db.session
    template = build_small_template(session, get_image_store())
    target = new_target("Pooled", commit_shell=True)
    target.pool_status = "ready"  # a pending change, as the pool refill makes before seeding
    CampaignBatchSeeder(session).seed(target, template)
    session.expire_all()
    campaign = session.get(Campaign, target.id)
    assert campaign.pool_status == "ready" and campaign.seeding_method == "batch"
    assert campaign.name == "Pooled" and campaign.description == "mine"
    assert verify_campaign(session, target.id, template.id).ok


def test_new_uuid4_hex_are_version_4_distinct_and_random_in_every_other_bit():
    """What `uuid.uuid4().hex` gives, as many as asked: 32 hex digits, version 4, the RFC 4122
    variant, and the 122 other bits random: across 2,000 ids each of them takes both values and
    none is a copy of another (for a sound generator, a chance of 2**-2000 either way)."""
    assert new_uuid4_hex(0) == [] and len(new_uuid4_hex(1)) == 1
    ids = new_uuid4_hex(2000)
    assert len(ids) == 2000 and len(set(ids)) == 2000
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and parsed.hex == value
    fixed = {79, 78, 77, 76, 63, 62}  # the version digit and the variant's two high bits
    numbers = [int(value, 16) for value in ids]
    columns = {
        bit: sum((number >> bit & 1) << n for n, number in enumerate(numbers))
        for bit in range(128)
        if bit not in fixed
    }
    assert len(columns) == 122
    assert all(0 < column < (1 << len(ids)) - 1 for column in columns.values())
    assert len(set(columns.values())) == 122


# ---------------------------------------------------------------------------- K campaigns at once


def shells(count: int, label: str) -> list[Campaign]:
    """`count` committed shells of one owner, as a pool build reserves them."""
    owner = make_user(db.session)
    targets = [create_campaign_shell(db.session, owner, f"{label} {n}") for n in range(count)]
    db.session.commit()
    return targets


def test_k_campaigns_in_one_transaction_each_verify_and_point_only_at_themselves(app):
    session = db.session
    template = build_small_template(session, get_image_store())
    add_deep_chain(session, template)
    targets = shells(3, "Batch")
    ids = [t.id for t in targets]
    expected = content_counts(session, template.id)

    results = CampaignBatchSeeder(session).seed_many(targets, template)

    assert [r.campaign_id for r in results] == ids
    assert len({r.duration_ms for r in results}) == 1  # one transaction
    for result in results:  # each campaign's own rows, as whole numbers
        assert result.rows == {**expected, "image_blobs": 0}
        assert all(type(count) is int for count in result.rows.values())
    session.expire_all()
    for target_id in ids:
        campaign = session.get(Campaign, target_id)
        assert campaign.seeded_at is not None and campaign.seeding_method == "batch"
        assert content_counts(session, target_id) == expected
        for category in ("Martial Arts", "Scroungetech"):
            top = session.scalars(
                sa.select(Schtick).filter_by(
                    campaign_id=target_id, category=category, name="Step 5"
                )
            ).one()
            assert {c for c, _, _ in chain_of(session, top)} == {target_id}
        for character in session.scalars(sa.select(Character).filter_by(campaign_id=target_id)):
            links = session.scalars(
                sa.select(Schtick.campaign_id)
                .join(CharacterSchtick, CharacterSchtick.schtick_id == Schtick.id)
                .where(CharacterSchtick.character_id == character.id)
            ).all()
            assert links and set(links) == {target_id}
        report = verify_campaign(session, target_id, template.id)
        assert report.ok, report.differences[:5]
    # Polymorphic owners stay within their campaign too.
    for target_id in ids:
        owned = {target_id} | {
            record_id
            for model in (Faction, Juncture, Schtick, Character, Vehicle)
            for record_id in session.scalars(
                sa.select(model.id).where(model.campaign_id == target_id)
            )
        }
        positions = session.scalars(
            sa.select(ImagePosition.positionable_id).where(ImagePosition.positionable_id.in_(owned))
        ).all()
        assert positions and set(positions) <= owned


def test_k_campaigns_of_the_full_template_verify(template_app):
    session = db.session
    template = find_master_template(session)
    before = table_counts(session)
    targets = shells(3, "Full batch")

    results = CampaignBatchSeeder(session).seed_many(targets, template)

    assert all({k: r.rows[k] for k in FULL_SHAPE} == FULL_SHAPE for r in results)
    after = table_counts(session)
    assert (
        after["image_attachments"]
        == before["image_attachments"] + 3 * FULL_SHAPE["image_attachments"]
    )
    assert after["image_blobs"] == before["image_blobs"]
    for target in targets:
        report = verify_campaign(session, target.id)
        assert report.ok, report.differences[:5]


def test_a_failure_in_a_k_batch_leaves_none_of_its_campaigns_seeded(app):
    session = db.session
    template = build_small_template(session, get_image_store())
    targets = shells(4, "Doomed batch")
    ids = [t.id for t in targets]
    before = table_counts(session)

    with failing_inserts("carries"), pytest.raises(sa_exc.DBAPIError, match="injected failure"):
        CampaignBatchSeeder(session).seed_many(targets, template)

    assert table_counts(session) == before
    session.expire_all()
    assert all(session.get(Campaign, i).seeded_at is None for i in ids)
    # A campaign of the batch seeded by someone else refuses the whole batch.
    CampaignBatchSeeder(session).seed(session.get(Campaign, ids[0]), template)
    before = table_counts(session)
    with pytest.raises(SeedingError, match="already seeded"):
        CampaignBatchSeeder(session).seed_many([session.get(Campaign, i) for i in ids], template)
    assert table_counts(session) == before
    results = CampaignBatchSeeder(session).seed_many(
        [session.get(Campaign, i) for i in ids[1:]], template
    )
    assert [r.campaign_id for r in results] == ids[1:]


def test_a_batch_of_several_owners_of_none_or_of_one_campaign_twice_is_refused(app):
    session = db.session
    template = build_small_template(session, get_image_store())
    mine, theirs = shells(1, "Mine")[0], shells(1, "Theirs")[0]
    before = table_counts(session)

    for targets in ([mine, theirs], []):
        with pytest.raises(SeedingError, match=r"^campaigns seeded together must have one owner$"):
            CampaignBatchSeeder(session).seed_many(targets, template)
    with pytest.raises(
        ValueError, match=r"^copy_tables needs one or more distinct target campaigns$"
    ):
        CampaignBatchSeeder(session).seed_many([mine, mine], template)

    assert table_counts(session) == before
    assert mine.seeded_at is None and theirs.seeded_at is None


def test_a_batch_with_a_campaign_seeded_meanwhile_is_refused_whole(app):
    """A refill raced another seeder on one of its campaigns: the guarded UPDATE marks the others
    but not that one, so the whole batch rolls back and says how many were lost."""
    session = db.session
    template = build_small_template(session, get_image_store())
    targets = shells(3, "Raced batch")
    ids = [t.id for t in targets]
    with db.engine.begin() as other:
        other.execute(
            sa.update(Campaign.__table__)
            .where(Campaign.__table__.c.id == ids[1])
            .values(seeded_at=sa.func.current_timestamp(), seeding_method="traditional")
        )
    session.expire_all()
    targets = [session.get(Campaign, i) for i in ids]
    set_committed_value(targets[1], "seeded_at", None)  # our stale view: "not seeded yet"
    before = table_counts(session)

    with pytest.raises(
        SeedingError, match=r"^1 of the campaigns are missing or were seeded meanwhile$"
    ):
        CampaignBatchSeeder(session).seed_many(targets, template)

    assert table_counts(session) == before
    session.expire_all()
    assert [session.get(Campaign, i).seeding_method for i in ids] == [None, "traditional", None]


def test_the_duration_is_the_copy_time_in_milliseconds_to_a_tenth(app, monkeypatch):
    """Measured from the start to the end of the copy (the commit is not in it) and kept to a
    tenth of a millisecond, in the result and on the campaign."""
    session = db.session
    template = build_small_template(session, get_image_store())
    target = new_target("Timed", commit_shell=True)
    ticks = iter(range(100))  # every reading of the clock is 12.3456 ms after the one before
    monkeypatch.setattr(
        batch, "time", SimpleNamespace(perf_counter=lambda: 1000.0 + 0.0123456 * next(ticks))
    )

    result = CampaignBatchSeeder(session).seed(target, template)

    assert result.duration_ms == 12.3
    session.expire_all()
    assert session.get(Campaign, target.id).seeding_duration_ms == 12.3


def test_a_seed_logs_its_campaigns_and_template_and_a_failure_its_error(app, caplog):
    session = db.session
    template = build_small_template(session, get_image_store())
    template_id = str(template.id)
    targets = shells(2, "Logged")
    first = str(targets[0].id)

    with caplog.at_level(logging.INFO, logger="portal.seeding"):
        results = CampaignBatchSeeder(session).seed_many(targets, template)
    started, finished = [r for r in caplog.records if r.name == "portal.seeding"]
    assert [started.getMessage(), finished.getMessage()] == ["seeding.started", "seeding.finished"]
    for record in (started, finished):
        assert (record.method, record.campaign_id, record.campaigns, record.template_id) == (
            "batch",
            first,
            2,
            template_id,
        )
    assert finished.rows == results[0].rows and finished.duration_ms == results[0].duration_ms

    def fail(step: str, done: int, total: int) -> None:
        raise InjectedFailure(f"stopped at {step}")

    caplog.clear()
    target = new_target("Logged failure", commit_shell=True)
    with caplog.at_level(logging.INFO, logger="portal.seeding"), pytest.raises(InjectedFailure):
        CampaignBatchSeeder(session).seed(target, template, progress=fail)
    _, failed = [r for r in caplog.records if r.name == "portal.seeding"]
    assert (failed.getMessage(), failed.levelno) == ("seeding.failed", logging.ERROR)
    assert (failed.method, failed.campaign_id, failed.campaigns, failed.template_id) == (
        "batch",
        str(target.id),
        1,
        template_id,
    )
    assert failed.error == "InjectedFailure: stopped at id_map"


@pytest.mark.postgres
def test_on_postgresql_a_seed_is_four_statements_whatever_the_number_of_campaigns(app):
    """Create the id map (a no-op once the connection has it), fill it, copy every table, mark
    the campaigns seeded: the round trips do not grow with the template or with K
    (docs/performance.md)."""
    session = db.session
    template = build_small_template(session, get_image_store())
    sent: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _executemany) -> None:
        sent.append(statement)

    for count in (1, 3):
        targets = shells(count, f"Counted {count}")
        for campaign in (template, *targets):  # loaded now, not by the seeder
            assert campaign.id and campaign.user_id
        sent.clear()
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            CampaignBatchSeeder(session).seed_many(targets, template)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert len(sent) == 4, sent
        assert sent[0].strip().startswith("CREATE TEMPORARY TABLE IF NOT EXISTS seed_id_map")
        assert sent[-1].startswith("UPDATE campaigns"), sent[-1]


# ---------------------------------------------------------------------------- copy_tables


def test_a_subset_of_tables_is_copied_alone_even_after_whole_seeds(app):
    """bench's baseline copies only some tables (`tables`, in any order) and not the campaign's
    own image (`with_campaign=False`), in a process that has already seeded whole campaigns: only
    those rows are copied, in dependency order, links among them remapped."""
    session = db.session
    template = build_small_template(session, get_image_store())
    CampaignBatchSeeder(session).seed(new_target("Whole"), template)
    target = new_target("Baseline", commit_shell=True)
    target_id = target.id
    steps: list[tuple[str, int, int]] = []

    rows = copy_tables(
        session,
        template_id=template.id,
        target_ids=[target_id],
        owner_id=target.user_id,
        now=utcnow(),
        tables=("image_attachments", "weapons", "schticks"),
        with_campaign=False,
        progress=lambda *step: steps.append(step),
    )
    session.commit()

    # six schticks and three weapons, and the image of each (not the campaign's)
    assert rows == {"schticks": 6, "weapons": 3, "image_attachments": 9}
    assert list(rows) == ["schticks", "weapons", "image_attachments"]
    assert steps == [("id_map", 1, 4), ("schticks", 2, 4), ("weapons", 3, 4),
                     ("image_attachments", 4, 4)]  # fmt: skip
    counts = content_counts(session, target_id)
    assert counts == dict.fromkeys(counts, 0) | rows
    copied = {
        record_id
        for model in (Schtick, Weapon)
        for record_id in session.scalars(sa.select(model.id).filter_by(campaign_id=target_id))
    }
    owners = session.scalars(
        sa.select(ImageAttachment.record_id).where(ImageAttachment.record_id.in_(copied))
    ).all()
    assert sorted(owners) == sorted(copied)
    eagle_eye = session.scalars(
        sa.select(Schtick).filter_by(campaign_id=target_id, name="Eagle Eye")
    ).one()
    assert session.get(Schtick, eagle_eye.prerequisite_id).campaign_id == target_id


def test_copy_tables_refuses_unknown_tables_and_targets_it_cannot_copy_into(app):
    session = db.session
    template = build_small_template(session, get_image_store())
    target = new_target("Refused", commit_shell=True)
    before = table_counts(session)

    def copy(target_ids: list[uuid.UUID], tables: tuple[str, ...] = ALL_TABLES) -> None:
        copy_tables(
            session,
            template_id=template.id,
            target_ids=target_ids,
            owner_id=target.user_id,
            now=utcnow(),
            tables=tables,
        )

    unknown = f"unknown tables ['images', 'pictures']; tables are {', '.join(ALL_TABLES)}"
    with pytest.raises(ValueError, match=f"^{re.escape(unknown)}$"):
        copy([target.id], ("schticks", "images", "pictures"))
    for target_ids in ([], [target.id, target.id]):
        with pytest.raises(
            ValueError, match=r"^copy_tables needs one or more distinct target campaigns$"
        ):
            copy(target_ids)
    with pytest.raises(SeedingError, match=r"^a campaign cannot be seeded from itself$"):
        copy([target.id, template.id])
    session.rollback()
    assert table_counts(session) == before


# ---------------------------------------------------------------------------- atomicity


class InjectedFailure(RuntimeError):
    pass


@pytest.mark.parametrize("fail_after", ["id_map", "schticks", "image_positions", "campaign"])
def test_a_failure_between_steps_leaves_no_trace(app, fail_after):
    session = db.session
    template = build_small_template(session, get_image_store())
    owner = make_user(session)
    session.commit()
    before = table_counts(session)
    target = create_campaign_shell(session, owner, "Doomed")  # flushed, same transaction
    target_id = target.id

    def progress(step: str, done: int, total: int) -> None:
        if step == fail_after:
            raise InjectedFailure(step)

    with pytest.raises(InjectedFailure):
        CampaignBatchSeeder(session).seed(target, template, progress=progress)

    assert table_counts(session) == before  # the shell went with the content
    assert session.get(Campaign, target_id) is None
    # The session (and its connection's id map) is usable for the next seed.
    retry = create_campaign_shell(session, owner, "Doomed")
    CampaignBatchSeeder(session).seed(retry, template)
    assert verify_campaign(session, retry.id, template.id).ok


@pytest.mark.parametrize("table", ["carries", "image_attachments"])
def test_a_database_failure_in_the_middle_rolls_everything_back(app, table):
    session = db.session
    template = build_small_template(session, get_image_store())
    target = new_target("Half-built", commit_shell=True)  # as the async API leaves it
    target_id = target.id
    before = table_counts(session)

    with failing_inserts(table), pytest.raises(sa_exc.DBAPIError, match="injected failure"):
        CampaignBatchSeeder(session).seed(target, template)

    assert table_counts(session) == before
    campaign = session.get(Campaign, target_id)
    assert campaign is not None and campaign.seeded_at is None and campaign.seeding_method is None
    # Once the fault is gone, the same shell seeds cleanly.
    CampaignBatchSeeder(session).seed(campaign, template)
    assert verify_campaign(session, target_id, template.id).ok


def test_an_already_seeded_campaign_is_refused(app):
    session = db.session
    template = build_small_template(session, get_image_store())
    target = new_target()
    CampaignBatchSeeder(session).seed(target, template)
    before = table_counts(session)
    with pytest.raises(SeedingError, match="already seeded"):
        CampaignBatchSeeder(session).seed(target, template)
    assert table_counts(session) == before
    with pytest.raises(SeedingError, match=r"^a campaign cannot be seeded from itself$"):
        CampaignBatchSeeder(session).seed(template, template)


def test_a_campaign_seeded_meanwhile_is_not_seeded_twice(app):
    """Two seeders raced: the other one committed first. Ours must notice at its final, guarded
    UPDATE and roll its copy back."""
    session = db.session
    template = build_small_template(session, get_image_store())
    target = new_target("Raced", commit_shell=True)
    target_id = target.id
    with db.engine.begin() as other:
        other.execute(
            sa.update(Campaign.__table__)
            .where(Campaign.__table__.c.id == target_id)
            .values(seeded_at=sa.func.current_timestamp(), seeding_method="traditional")
        )
    session.expire_all()
    target = session.get(Campaign, target_id)
    set_committed_value(target, "seeded_at", None)  # our stale view: "not seeded yet"
    before = table_counts(session)
    with pytest.raises(SeedingError, match="seeded meanwhile"):
        CampaignBatchSeeder(session).seed(target, template)
    assert table_counts(session) == before
    assert session.get(Campaign, target_id).seeding_method == "traditional"


def test_a_template_pointing_outside_itself_is_refused(app):
    session = db.session
    template = build_small_template(session, get_image_store())
    stranger = new_target("Stranger", commit_shell=True)
    outsider = Schtick(id=uuid.uuid4(), campaign_id=stranger.id, category="Guns", name="Outsider")
    session.add(outsider)
    session.flush()
    blast = session.scalars(
        sa.select(Schtick).filter_by(campaign_id=template.id, name="Blast")
    ).one()
    blast.prerequisite_id = outsider.id
    session.commit()
    target = new_target("Victim", commit_shell=True)
    before = table_counts(session)
    schticks = content_counts(session, template.id)["schticks"]

    refused = (
        f"copied {schticks - 1} of the template's {schticks} schticks: some reference a record "
        "outside the template (prerequisite, faction or juncture), or the template changed "
        "while it was being copied"
    )
    with pytest.raises(SeedingError, match=f"^{re.escape(refused)}$"):
        CampaignBatchSeeder(session).seed(target, template)
    assert table_counts(session) == before

    # A character link to a schtick of another campaign is refused by the database.
    blast.prerequisite_id = None
    character = session.scalars(sa.select(Character).filter_by(campaign_id=template.id)).first()
    session.add(CharacterSchtick(character_id=character.id, schtick_id=outsider.id))
    session.commit()
    before = table_counts(session)
    with pytest.raises(sa_exc.IntegrityError):
        CampaignBatchSeeder(session).seed(target, template)
    assert table_counts(session) == before


# ---------------------------------------------------------------------------- concurrency


@pytest.mark.postgres
def test_twenty_campaigns_seeded_by_four_workers_at_once_all_verify(template_app):
    """Four threads, each with its own session and connection (so its own temp id map), seed
    five campaigns each from the same template at the same time."""
    template_id = find_master_template(db.session).id
    owners = [make_user(db.session, f"worker-{n}") for n in range(4)]
    db.session.commit()
    owner_ids = [owner.id for owner in owners]
    engine = db.engine
    barrier = threading.Barrier(4)
    seeded: list[uuid.UUID] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(owner_id: uuid.UUID) -> None:
        try:
            with Session(engine) as session:
                template = session.get(Campaign, template_id)
                owner = session.get(User, owner_id)
                barrier.wait(timeout=30)
                for n in range(5):
                    shell = create_campaign_shell(session, owner, f"Concurrent {n}")
                    result = CampaignBatchSeeder(session).seed(shell, template)
                    with lock:
                        seeded.append(result.campaign_id)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(owner_id,)) for owner_id in owner_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(set(seeded)) == 20

    session = db.session
    session.expire_all()
    counts = table_counts(session)
    assert counts["image_attachments"] == 788 * 21 and counts["image_blobs"] == 105
    for campaign_id in seeded:
        report = verify_campaign(session, campaign_id)
        assert report.ok, (campaign_id, report.differences[:5])

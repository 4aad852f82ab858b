"""The traditional (per-record) seeder and the unit-of-work retry it runs in.

The full-template tests are few on purpose (each copies ~1,700 rows and 788 attachments); the
behaviour around the edges (faults, retries, remapping) is tested on the small template, which
has every shape that makes copying hard.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy import event

from portal.extensions import db
from portal.models import (
    RECORD_TYPES,
    Campaign,
    Carry,
    Character,
    CharacterSchtick,
    Faction,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    Juncture,
    Schtick,
    User,
    Vehicle,
    Weapon,
)
from portal.services.campaigns.records import create_campaign_shell, find_master_template
from portal.services.images.backend import get_image_store
from portal.services.images.store import checksum_of
from portal.services.infra.retry import is_connection_lost, run_unit_of_work
from portal.services.seeding.base import SeedingError
from portal.services.seeding.traditional import TraditionalSeeder, record_label
from portal.services.seeding.verify import verify_campaign
from portal.services.template import generate_template
from tests.support.small_template import FULL_SHAPE, build_small_template, content_counts, make_user


def blob_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(ImageBlob))


def new_target(name: str = "My Campaign", *, commit_shell: bool = False) -> Campaign:
    """A shell as the API makes one (owner committed, shell only flushed), or as an async
    request or a pool refill leaves it (shell committed, `seeded_at` NULL)."""
    owner = make_user(db.session)
    db.session.commit()
    shell = create_campaign_shell(db.session, owner, name, "mine")
    if commit_shell:
        db.session.commit()
    return shell


def outsider(session: Any, model: type[Any], **values: Any) -> Any:
    """A record of another campaign than the template."""
    stranger = new_target("Stranger", commit_shell=True)
    record = model(id=uuid.uuid4(), campaign_id=stranger.id, name="Outsider", **values)
    session.add(record)
    session.flush()
    return record


def in_template(session: Any, template: Campaign, model: type[Any], name: str) -> Any:
    return session.scalars(sa.select(model).filter_by(campaign_id=template.id, name=name)).one()


@contextmanager
def attachment_inserts_checked() -> Iterator[dict[str, Any]]:
    """Watch every image_attachments INSERT: the record it names must already be a row."""
    seen: dict[str, Any] = {"inserted": 0, "orphans": []}

    def check(_mapper: Any, connection: sa.Connection, target: ImageAttachment) -> None:
        model = RECORD_TYPES[target.record_type]
        exists = connection.scalar(
            sa.select(sa.func.count()).select_from(model).where(model.id == target.record_id)
        )
        seen["inserted"] += 1
        if not exists:
            seen["orphans"].append((target.record_type, target.record_id))

    event.listen(ImageAttachment, "after_insert", check)
    try:
        yield seen
    finally:
        event.remove(ImageAttachment, "after_insert", check)


# ---------------------------------------------------------------------------- full template


@pytest.fixture
def imagekit_template(imagekit_app) -> Campaign:
    """The full generated template, its 105 images stored on the local ImageKit server."""
    return generate_template(db.session, get_image_store())


@pytest.mark.parametrize("image_mode", ["share", "copy"])
def test_full_template_is_copied_and_verifies(imagekit_template, imagekit_server, image_mode):
    session, store = db.session, get_image_store()
    template = imagekit_template
    template_counts = content_counts(session, template.id)
    blobs_before = blob_count()
    calls_before, files_before = Counter(imagekit_server.calls), set(imagekit_server.files)
    target = new_target()
    owner_id, target_id = target.user_id, target.id

    with attachment_inserts_checked() as inserts:
        result = TraditionalSeeder(session, store, image_mode=image_mode).seed(target, template)

    calls = Counter(imagekit_server.calls) - calls_before
    new_files = set(imagekit_server.files) - files_before
    assert result.method == "traditional" and result.campaign_id == target_id
    assert {k: result.rows[k] for k in FULL_SHAPE} == FULL_SHAPE
    session.expire_all()
    assert content_counts(session, target_id) == template_counts == FULL_SHAPE
    campaign = session.get(Campaign, target_id)
    assert campaign.seeded_at is not None and campaign.seeding_method == "traditional"
    assert campaign.seeding_duration_ms == result.duration_ms > 0
    assert campaign.template_version == template.template_version == 1
    owners = session.scalars(
        sa.select(Character.user_id).where(Character.campaign_id == target_id).distinct()
    ).all()
    assert owners == [owner_id]
    # Every attachment was inserted after its record existed.
    assert inserts["inserted"] == 788 and inserts["orphans"] == []

    if image_mode == "share":
        assert calls["upload"] == calls["copy"] == 0 and new_files == set()
        assert blob_count() == blobs_before and result.rows["image_blobs"] == 0
    else:
        # One server-side copy per attachment, no upload through us, one new blob each.
        assert calls["upload"] == 0 and calls["copy"] == 788 and len(new_files) == 788
        assert blob_count() == blobs_before + 788 == blobs_before + result.rows["image_blobs"]
        copies = session.scalars(
            sa.select(ImageBlob).where(ImageBlob.meta["fileId"].as_string().in_(new_files))
        ).all()
        assert len(copies) == 788
        for blob in copies:
            assert checksum_of(imagekit_server.files[blob.meta["fileId"]].content) == blob.checksum

    report = verify_campaign(session, target_id)
    assert report.ok, report.differences[:10]
    assert (
        report.counts["image_attachments"][{"share": "shared", "copy": "copied"}[image_mode]] == 788
    )


# ---------------------------------------------------------------------------- small template


def test_links_are_remapped_by_id_not_by_name(app):
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target()
    TraditionalSeeder(session, store).seed(target, template)

    def schtick(campaign_id: uuid.UUID, category: str, name: str) -> Schtick:
        return session.scalars(
            sa.select(Schtick).filter_by(campaign_id=campaign_id, category=category, name=name)
        ).one()

    eagle_eye = schtick(target.id, "Fu", "Eagle Eye")
    prerequisite = session.get(Schtick, eagle_eye.prerequisite_id)
    # The prerequisite has a name that also exists in "Guns": it must be the Fu one, in this
    # campaign, and not the template's.
    assert (prerequisite.campaign_id, prerequisite.category, prerequisite.name) == (
        target.id,
        "Fu",
        "Lightning Reload",
    )
    carnival = schtick(target.id, "Guns", "Carnival of Carnage")
    chain = []
    current: Schtick | None = carnival
    while current is not None:
        chain.append(current.name)
        assert current.campaign_id == target.id
        current = session.get(Schtick, current.prerequisite_id) if current.prerequisite_id else None
    assert chain == ["Carnival of Carnage", "Both Guns Blazing", "Lightning Reload"]

    template_schtick = schtick(template.id, "Fu", "Eagle Eye")
    assert eagle_eye.id != template_schtick.id
    assert eagle_eye.created_at > template_schtick.created_at  # fresh timestamps
    assert eagle_eye.archetypes == ["Old Master"] and eagle_eye.active is True
    blast = schtick(target.id, "Sorcery", "Blast")
    assert blast.active is False  # copied as it is, not reset
    assert verify_campaign(session, target.id).ok
    # The template itself is untouched.
    assert content_counts(session, template.id) == content_counts(session, target.id)


def test_the_result_counts_what_was_created_and_times_the_copy(app):
    """What `campaigns seed` prints: the rows created per table and how long the copy took."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target()
    started = time.perf_counter()
    result = TraditionalSeeder(session, store).seed(target, template)
    elapsed_ms = (time.perf_counter() - started) * 1000

    created = content_counts(session, target.id)
    assert result.rows == created | {"image_blobs": 0}  # share mode: no new blobs
    assert created == content_counts(session, template.id)
    assert result.total_rows == sum(created.values()) == 2 + 2 + 6 + 3 + 2 + 3 + 3 + 1 + 4 + 17
    # The copy is most of the call (the COMMIT and the logs are not in it).
    assert elapsed_ms / 2 < result.duration_ms <= elapsed_ms
    assert session.get(Campaign, target.id).seeding_duration_ms == result.duration_ms


def test_image_positions_of_every_record_type_are_copied_and_only_the_templates(app):
    """Positions point at their record by (type, id) with no campaign column: each type's are
    found through the template's records, also after a type the template has none of (here no
    vehicles), and never taken from another campaign seeded from the same template."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    taxi = in_template(session, template, Vehicle, "Taxi")
    session.execute(sa.delete(ImagePosition).where(ImagePosition.positionable_id == taxi.id))
    session.execute(sa.delete(ImageAttachment).where(ImageAttachment.record_id == taxi.id))
    session.delete(taxi)
    for model, name in ((Faction, "The Dragons"), (Juncture, "Ancient"), (Weapon, "Sword")):
        session.add(
            ImagePosition(
                positionable_type=model.__name__,
                positionable_id=in_template(session, template, model, name).id,
                context="card",
                x_position=3.0,
                y_position=4.5,
                style_overrides={"zoom": 2},
            )
        )
    session.commit()
    assert content_counts(session, template.id)["image_positions"] == 6

    first, second = new_target("First"), new_target("Second")
    results = [TraditionalSeeder(session, store).seed(t, template) for t in (first, second)]

    for target, result in zip((first, second), results, strict=True):
        assert result.rows["image_positions"] == 6
        report = verify_campaign(session, target.id)
        assert report.ok, report.differences[:10]


@pytest.mark.parametrize("image_mode", ["share", "copy"])
def test_attachment_names_are_copied_as_the_template_has_them(app, image_mode):
    """Chi War names every attachment "image", but the name is the attachment's role: a
    template attachment under another name keeps it in the copy, not the default."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    sword = in_template(session, template, Weapon, "Sword")
    renamed = session.scalars(
        sa.select(ImageAttachment).filter_by(record_type="Weapon", record_id=sword.id)
    ).first()
    assert renamed is not None, "the small template's Sword has an image"
    renamed.name = "portrait"
    session.commit()
    target = new_target()
    TraditionalSeeder(session, store, image_mode=image_mode).seed(target, template)

    copy = in_template(session, target, Weapon, "Sword")
    names = session.scalars(
        sa.select(ImageAttachment.name).filter_by(record_type="Weapon", record_id=copy.id)
    ).all()
    template_names = session.scalars(
        sa.select(ImageAttachment.name).filter_by(record_type="Weapon", record_id=sword.id)
    ).all()
    assert sorted(names) == sorted(template_names)
    assert "portrait" in names


def test_copy_mode_uploads_each_image_once_and_keeps_content(app):
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target()
    result = TraditionalSeeder(session, store, image_mode="copy").seed(target, template)
    rows = session.execute(
        sa.select(ImageAttachment.record_type, ImageBlob)
        .join(ImageBlob)
        .where(
            ImageAttachment.record_id.in_(sa.select(Schtick.id).filter_by(campaign_id=target.id))
        )
    ).all()
    assert len(rows) == 6
    template_keys = set(
        session.scalars(
            sa.select(ImageBlob.key)
            .join(ImageAttachment)
            .where(
                ImageAttachment.record_id.in_(
                    sa.select(Schtick.id).filter_by(campaign_id=template.id)
                )
            )
        )
    )
    for _type, blob in rows:
        assert blob.key not in template_keys
        assert store.fetch(blob.meta) is not None
    # 17 attachments in the template, two of which share a blob: each gets its own copy.
    assert result.rows["image_blobs"] == result.rows["image_attachments"] == 17
    assert verify_campaign(session, target.id, store=store).ok


def test_permanent_imagekit_failure_rolls_everything_back_and_names_the_record(
    imagekit_app, imagekit_server
):
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    blobs_before, files_before = blob_count(), set(imagekit_server.files)
    calls_before = Counter(imagekit_server.calls)
    target = new_target("Doomed")
    target_id, owner_id = target.id, target.user_id
    state = {"schticks": 0}

    def break_imagekit(_conn, _cursor, statement, *_args):
        # Two factions and two junctures are copied first; ImageKit starts refusing every copy
        # once the second schtick row exists, so its image is the one that fails.
        if count_schtick_inserts(statement):
            state["schticks"] += 1
            if state["schticks"] == 2:
                imagekit_server.fail_next("copy", status=403, times=100)

    event.listen(db.engine, "after_cursor_execute", break_imagekit)
    try:
        with pytest.raises(SeedingError) as failure:
            TraditionalSeeder(session, store, image_mode="copy").seed(target, template)
    finally:
        event.remove(db.engine, "after_cursor_execute", break_imagekit)

    # The message names the template record (by category and name, and by id), its file, and
    # what ImageKit said about the copy that failed.
    message = str(failure.value)
    named = re.fullmatch(
        r"could not copy the image 'image' of Schtick \('(\w+)', '([^']+)'\) "
        r"\(template record ([0-9a-f-]{36}), file '([^']+)'\): "
        r"ImageKit copy for Schtick ([0-9a-f-]{36}) failed after \d+ attempt\(s\): .*403.*",
        message,
    )
    assert named, message
    category, name, template_record, key, copy_id = named.groups()
    session.rollback()
    source = session.scalars(
        sa.select(Schtick).filter_by(campaign_id=template.id, category=category, name=name)
    ).one()
    assert template_record == str(source.id) != copy_id
    assert key == session.scalar(
        sa.select(ImageBlob.key).join(ImageAttachment).where(ImageAttachment.record_id == source.id)
    )
    assert session.get(Campaign, target_id) is None
    assert session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 1  # the template
    assert session.scalar(sa.select(sa.func.count()).select_from(Schtick)) == 6
    assert blob_count() == blobs_before
    # The five files copied before the failure were deleted again: nothing orphaned on ImageKit.
    calls = Counter(imagekit_server.calls) - calls_before
    assert calls["delete"] == 5 and set(imagekit_server.files) == files_before
    # The owner can try again with the same name: nothing of the failed run is left.
    retry = create_campaign_shell(session, session.get(User, owner_id), "Doomed")
    TraditionalSeeder(session, store, image_mode="share").seed(retry, template)
    assert verify_campaign(session, retry.id).ok


def test_refuses_a_seeded_target_and_a_bad_mode(app):
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target()
    TraditionalSeeder(session, store).seed(target, template)
    with pytest.raises(SeedingError, match=rf"^campaign {target.id} is already seeded$"):
        TraditionalSeeder(session, store).seed(target, template)
    with pytest.raises(SeedingError, match=r"^a campaign cannot be seeded from itself$"):
        TraditionalSeeder(session, store).seed(template, template)
    with pytest.raises(ValueError, match=r"^image_mode must be one of share, copy: 'link'$"):
        TraditionalSeeder(session, store, image_mode="link")


# (what the broken template record is, how to break it): each points outside the template.
BROKEN_LINKS = {
    "Juncture 'Contemporary': its faction": lambda s, t: setattr(
        in_template(s, t, Juncture, "Contemporary"), "faction_id", outsider(s, Faction).id
    ),
    "Schtick ('Sorcery', 'Blast'): its prerequisite": lambda s, t: setattr(
        in_template(s, t, Schtick, "Blast"),
        "prerequisite_id",
        outsider(s, Schtick, category="Guns").id,
    ),
    "Character 'Johnny Tso': its faction": lambda s, t: setattr(
        in_template(s, t, Character, "Johnny Tso"), "faction_id", outsider(s, Faction).id
    ),
    "Character 'Ugly Shing': its juncture": lambda s, t: setattr(
        in_template(s, t, Character, "Ugly Shing"), "juncture_id", outsider(s, Juncture).id
    ),
    "Character 'Ugly Shing': its schtick": lambda s, t: s.add(
        CharacterSchtick(
            character_id=in_template(s, t, Character, "Ugly Shing").id,
            schtick_id=outsider(s, Schtick, category="Fu").id,
        )
    ),
    "Character 'Johnny Tso': its weapon": lambda s, t: s.add(
        Carry(
            character_id=in_template(s, t, Character, "Johnny Tso").id,
            weapon_id=outsider(s, Weapon).id,
        )
    ),
    "Vehicle 'Taxi': its faction": lambda s, t: setattr(
        in_template(s, t, Vehicle, "Taxi"), "faction_id", outsider(s, Faction).id
    ),
    "Vehicle 'Taxi': its juncture": lambda s, t: setattr(
        in_template(s, t, Vehicle, "Taxi"), "juncture_id", outsider(s, Juncture).id
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN_LINKS))
def test_a_template_pointing_outside_itself_is_refused_naming_the_record(app, broken):
    """A copy never points at another campaign's record: the seed stops, says which template
    record and which of its links are wrong, and leaves nothing behind."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    BROKEN_LINKS[broken](session, template)
    session.commit()
    target = new_target("Victim")
    target_id = target.id
    schticks_before = session.scalar(sa.select(sa.func.count()).select_from(Schtick))

    with pytest.raises(SeedingError) as failure:
        TraditionalSeeder(session, store).seed(target, template)

    assert re.fullmatch(
        rf"template {re.escape(broken)} \([0-9a-f-]{{36}}\) is not part of the template campaign",
        str(failure.value),
    )
    session.rollback()
    assert session.get(Campaign, target_id) is None
    assert session.scalar(sa.select(sa.func.count()).select_from(Schtick)) == schticks_before


def test_records_are_named_by_category_and_name_by_name_or_else_by_id():
    """How errors and logs name a record: schtick names repeat across categories."""
    assert record_label(Schtick(category="Guns", name="Lightning Reload")) == (
        "('Guns', 'Lightning Reload')"
    )
    assert record_label(Faction(id=uuid.uuid4(), name="The Dragons")) == "'The Dragons'"
    position = ImagePosition(id=uuid.uuid4(), positionable_type="Campaign")
    assert record_label(position) == repr(str(position.id))
    assert record_label(Carry(character_id=uuid.uuid4(), weapon_id=uuid.uuid4())) == "'?'"


# ---------------------------------------------------------------------------- dropped connections


def count_schtick_inserts(statement: str) -> bool:
    return statement.lstrip().upper().startswith("INSERT INTO SCHTICKS")


def assert_exactly_one_copy(session: Any, target_id: uuid.UUID, template: Campaign) -> None:
    session.expire_all()
    assert session.scalar(sa.select(sa.func.count()).where(Campaign.id == target_id)) == 1
    assert content_counts(session, target_id) == content_counts(session, template.id)
    total = session.scalar(sa.select(sa.func.count()).select_from(Schtick))
    assert total == 2 * content_counts(session, template.id)["schticks"]
    report = verify_campaign(session, target_id)
    assert report.ok, report.differences[:10]


def drop_connection(statement: str, parameters: Any) -> sa_exc.OperationalError:
    """What SQLAlchemy raises for a connection that died under a statement."""
    return sa_exc.OperationalError(
        statement, parameters, Exception("nil connection"), connection_invalidated=True
    )


@pytest.mark.parametrize("shell", ["flushed", "committed"])
def test_dropped_connection_mid_seed_is_retried_without_duplicates(app, caplog, shell):
    """SQLite cannot lose its connection: simulate the driver error SQLAlchemy raises for it.

    A shell only flushed by the caller (the API) went with the lost transaction and is
    re-created; one committed before seeding (an async request, a pool refill) is still there."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target("Resilient", commit_shell=shell == "committed")
    target_id = target.id
    state = {"schticks": 0, "dropped": False}

    def drop_once(_conn, _cursor, statement, parameters, _context, _executemany):
        if count_schtick_inserts(statement):
            state["schticks"] += 1
            if state["schticks"] == 4 and not state["dropped"]:
                state["dropped"] = True
                raise drop_connection(statement, parameters)

    event.listen(db.engine, "before_cursor_execute", drop_once)
    try:
        with caplog.at_level(logging.INFO, logger="portal.seeding"):
            result = TraditionalSeeder(session, store, image_mode="copy").seed(target, template)
    finally:
        event.remove(db.engine, "before_cursor_execute", drop_once)

    assert state["dropped"] and result.campaign_id == target_id
    events = [r.getMessage() for r in caplog.records if r.name == "portal.seeding"]
    assert "unit_of_work.retry" in events
    assert ("seeding.shell_recreated" in events) == (shell == "flushed")
    retry = next(r for r in caplog.records if r.getMessage() == "unit_of_work.retry")
    assert retry.campaign_id == str(target_id)
    assert target.seeded_at is not None  # the caller's object is the seeded campaign
    assert_exactly_one_copy(session, target_id, template)
    # The copies uploaded by the lost attempt were deleted: one blob per attachment, no more.
    assert blob_count() == 17 + 17 - 1  # template blobs (one shared) + this campaign's copies


def lose_the_first_commit(monkeypatch: pytest.MonkeyPatch, *, reached: bool) -> dict[str, bool]:
    """The connection dies while the first COMMIT is in flight: after the server committed
    (`reached`) or before (the transaction is lost with the connection)."""
    dialect = db.engine.dialect
    real_commit = dialect.do_commit
    state = {"lost": False}

    def commit(dbapi_connection: Any) -> None:
        if state["lost"]:
            real_commit(dbapi_connection)
            return
        state["lost"] = True
        if reached:
            real_commit(dbapi_connection)
        else:
            dbapi_connection.rollback()
        raise dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dialect, "do_commit", commit)
    return state


def test_commit_that_reached_the_server_is_not_done_twice(app, monkeypatch, caplog):
    """The connection dies after COMMIT succeeded: the retry must notice, not copy again."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target()
    state = lose_the_first_commit(monkeypatch, reached=True)
    with caplog.at_level(logging.INFO, logger="portal.seeding"):
        result = TraditionalSeeder(session, store).seed(target, template)
    monkeypatch.undo()
    events = [r.getMessage() for r in caplog.records if r.name == "portal.seeding"]
    assert "seeding.commit_had_succeeded" in events
    assert state["lost"] and result.rows["schticks"] == 6
    assert target.seeded_at is not None  # the caller's object is usable again
    assert_exactly_one_copy(session, target.id, template)
    # ... and still the session's: what the caller changes on it next is saved to its row.
    target.description = "<p>Renamed after seeding</p>"
    session.commit()
    with db.engine.connect() as other:
        saved = other.scalar(sa.select(Campaign.description).where(Campaign.id == target.id))
    assert saved == "<p>Renamed after seeding</p>"


@pytest.mark.parametrize("reached", [True, False], ids=["commit_reached", "commit_lost"])
def test_copy_mode_keeps_exactly_the_files_of_the_commit_that_counted(
    imagekit_app, imagekit_server, monkeypatch, reached
):
    """Copy mode uploads a file per attachment. When the COMMIT's answer is lost, the files of
    that attempt stay if the COMMIT reached the server (the campaign uses them) and are deleted
    if it did not (the retry copies its own): nothing orphaned on ImageKit, nothing missing."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target()
    calls_before = Counter(imagekit_server.calls)
    state = lose_the_first_commit(monkeypatch, reached=reached)
    result = TraditionalSeeder(session, store, image_mode="copy").seed(target, template)
    monkeypatch.undo()

    assert state["lost"] and result.rows["image_blobs"] == 17
    assert_exactly_one_copy(session, target.id, template)
    calls = Counter(imagekit_server.calls) - calls_before
    assert calls["copy"] == (17 if reached else 34)
    assert calls["delete"] == (0 if reached else 17)
    used = set(session.scalars(sa.select(ImageBlob.meta["fileId"].as_string())))
    assert set(imagekit_server.files) == used and len(used) == 16 + 17
    assert verify_campaign(session, target.id, store=store).ok


@pytest.mark.parametrize("reached", [True, False], ids=["commit_reached", "commit_lost"])
def test_a_seed_that_gives_up_at_its_commit_keeps_only_the_files_in_use(
    imagekit_app, imagekit_server, monkeypatch, reached
):
    """With no attempt left, a lost COMMIT answer is the seed's error; the files copied for that
    attempt stay if the COMMIT had reached the server (the campaign exists and uses them) and
    are deleted if it had not."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target()
    target_id = target.id
    template_files = set(imagekit_server.files)
    lose_the_first_commit(monkeypatch, reached=reached)
    with pytest.raises(sa_exc.OperationalError, match="server closed the connection"):
        TraditionalSeeder(session, store, image_mode="copy", attempts=1).seed(target, template)
    monkeypatch.undo()
    session.rollback()

    if reached:
        assert session.get(Campaign, target_id).seeded_at is not None
        assert verify_campaign(session, target_id, store=store).ok
        used = set(session.scalars(sa.select(ImageBlob.meta["fileId"].as_string())))
        assert set(imagekit_server.files) == used and len(used) == 16 + 17
    else:
        assert session.get(Campaign, target_id) is None
        assert set(imagekit_server.files) == template_files


def test_a_campaign_seeded_by_someone_else_during_the_retry_is_left_alone(app):
    """Our attempt lost its connection, and another seeder seeded the (committed) shell before
    our retry: the retry must not copy a second time over theirs, and must say why."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target("Raced", commit_shell=True)
    target_id = target.id
    state = {"dropped": False}

    def seed_elsewhere_then_drop(_conn, _cursor, statement, parameters, _context, _many):
        if state["dropped"] or not statement.lstrip().upper().startswith("INSERT INTO FACTIONS"):
            return
        state["dropped"] = True
        with db.engine.begin() as other:
            other.execute(
                sa.update(Campaign.__table__)
                .where(Campaign.__table__.c.id == target_id)
                .values(seeded_at=sa.func.current_timestamp(), seeding_method="batch")
            )
        raise drop_connection(statement, parameters)

    event.listen(db.engine, "before_cursor_execute", seed_elsewhere_then_drop)
    try:
        with pytest.raises(SeedingError) as failure:
            TraditionalSeeder(session, store).seed(target, template)
    finally:
        event.remove(db.engine, "before_cursor_execute", seed_elsewhere_then_drop)

    assert str(failure.value) == f"campaign {target_id} was seeded by someone else meanwhile"
    session.rollback()
    assert session.get(Campaign, target_id).seeding_method == "batch"
    assert sum(content_counts(session, target_id).values()) == 0


def test_a_connection_that_keeps_dropping_is_given_up_after_three_attempts(app, caplog):
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    target = new_target("Unlucky")
    target_id = target.id
    drops: list[str] = []

    def drop_always(_conn, _cursor, statement, parameters, _context, _many):
        if count_schtick_inserts(statement):
            drops.append(statement)
            raise drop_connection(statement, parameters)

    event.listen(db.engine, "before_cursor_execute", drop_always)
    try:
        with (
            caplog.at_level(logging.INFO, logger="portal.seeding"),
            pytest.raises(sa_exc.OperationalError, match="nil connection"),
        ):
            TraditionalSeeder(session, store).seed(target, template)
    finally:
        event.remove(db.engine, "before_cursor_execute", drop_always)

    assert len(drops) == 3
    gave_up = next(r for r in caplog.records if r.getMessage() == "unit_of_work.gave_up")
    assert gave_up.attempt == 3
    session.rollback()
    assert session.get(Campaign, target_id) is None  # the flushed shell went with the attempts
    assert session.scalar(sa.select(sa.func.count()).select_from(Schtick)) == 6


@pytest.mark.postgres
def test_terminated_postgres_connection_is_recovered_without_duplicates(template_app, caplog):
    """For real: another connection kills the seeding backend after 200 schticks."""
    session, store = db.session, get_image_store()
    template = find_master_template(session)
    target = new_target("Survivor")
    target_id = target.id
    killer = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
    state: dict[str, Any] = {"schticks": 0, "killed": None}

    def terminate(conn, _cursor, statement, _parameters, _context, _executemany):
        if not count_schtick_inserts(statement) or state["killed"]:
            return
        state["schticks"] += 1
        if state["schticks"] == 200:
            pid = conn.connection.dbapi_connection.info.backend_pid
            with killer.connect() as other:
                assert other.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                # Recorded before waiting: if the wait below gave up, the retried unit of work
                # must not count to 200 again and kill a second time.
                state["killed"] = pid
                deadline = time.monotonic() + 30  # generous: CI machines are busy
                while other.scalar(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
                ):
                    assert time.monotonic() < deadline, "backend did not terminate"
                    time.sleep(0.01)

    event.listen(db.engine, "after_cursor_execute", terminate)
    try:
        with caplog.at_level(logging.INFO, logger="portal.seeding"):
            result = TraditionalSeeder(session, store).seed(target, template)
    finally:
        event.remove(db.engine, "after_cursor_execute", terminate)
        killer.dispose()

    assert state["killed"] and result.rows["schticks"] == 643
    retries = [r for r in caplog.records if r.getMessage() == "unit_of_work.retry"]
    assert len(retries) == 1 and "terminat" in retries[0].error.lower()
    assert_exactly_one_copy(session, target_id, template)


# ---------------------------------------------------------------------------- run_unit_of_work


def lost_connection() -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, Exception("nil connection"), True)


def user_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(User))


def test_unit_of_work_is_rerun_whole_after_a_lost_connection(app):
    calls: list[int] = []

    def work() -> str:
        calls.append(1)
        make_user(db.session, f"u{len(calls)}")
        if len(calls) == 1:
            raise lost_connection()
        return "done"

    assert run_unit_of_work(db.session, work, backoff_s=0) == "done"
    assert len(calls) == 2 and user_count() == 1  # the first attempt's row was rolled back


def test_unit_of_work_does_not_retry_other_errors(app):
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        make_user(db.session)
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        run_unit_of_work(db.session, work, backoff_s=0)
    assert len(calls) == 1 and user_count() == 0


def test_unit_of_work_gives_up_after_its_attempts(app):
    calls: list[int] = []

    def work() -> None:
        calls.append(1)
        raise lost_connection()

    with pytest.raises(sa_exc.OperationalError):
        run_unit_of_work(db.session, work, attempts=3, backoff_s=0)
    assert len(calls) == 3
    with pytest.raises(ValueError):
        run_unit_of_work(db.session, work, attempts=0)


def test_what_counts_as_a_lost_connection():
    assert is_connection_lost(lost_connection())
    invalidated = sa_exc.DBAPIError("x", {}, Exception("gone"), connection_invalidated=True)
    assert is_connection_lost(invalidated)
    assert not is_connection_lost(sa_exc.IntegrityError("x", {}, Exception("duplicate key")))
    assert not is_connection_lost(ValueError("nope"))

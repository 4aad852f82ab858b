"""Attachments, sharing, copying and purging, on a real database and the local ImageKit server.

The store is the app's own (ImageKit, through the real SDK, pointed at `imagekit_server`), so the
server's counters say exactly how many uploads, copies and deletes each operation caused.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from portal.devtools.imagekit_server import LocalImageKitServer
from portal.extensions import db
from portal.models import Campaign, Faction, ImageAttachment, ImageBlob, User, Weapon
from portal.services.campaigns.records import create_campaign_shell
from portal.services.images.backend import get_image_store
from portal.services.images.blobs import (
    NotPersistedError,
    attach_image,
    attachments_for,
    detach_images,
    purge_unused_blobs,
    store_blob,
)
from portal.services.images.store import ImageStore, checksum_of

PNG = b"\x89PNG\r\n\x1a\nemblem-bytes"


@pytest.fixture
def store(imagekit_app: Flask) -> ImageStore:
    return get_image_store(imagekit_app)


@pytest.fixture
def campaign(imagekit_app: Flask) -> Campaign:
    owner = User(id=uuid.uuid4(), email=f"gm-{uuid.uuid4().hex[:6]}@example.com", name="GM")
    db.session.add(owner)
    db.session.flush()
    campaign = create_campaign_shell(db.session, owner, "Blob tests")
    db.session.commit()
    return campaign


def new_faction(session: Session, campaign: Campaign, name: str = "Dragons") -> Faction:
    faction = Faction(id=uuid.uuid4(), campaign_id=campaign.id, name=name)
    session.add(faction)
    session.flush()
    return faction


@pytest.fixture
def blob(store: ImageStore, campaign: Campaign) -> ImageBlob:
    blob = store_blob(
        db.session, store, PNG, filename="emblem.png", content_type="image/png", key="tpl/emblem"
    )
    db.session.commit()
    return blob


def count(model: type) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_the_app_store_is_imagekit_on_the_local_server(
    store: ImageStore, blob: ImageBlob, imagekit_server: LocalImageKitServer
) -> None:
    assert store.service_name == "imagekit" and blob.service_name == "imagekit"
    assert imagekit_server.calls["upload"] == 1
    assert imagekit_server.files[blob.meta["fileId"]].content == PNG
    assert blob.checksum == checksum_of(PNG) and blob.byte_size == len(PNG)


@pytest.mark.parametrize("mode", ["share", "copy"])
def test_attach_refuses_a_record_that_is_not_saved(
    store: ImageStore,
    blob: ImageBlob,
    campaign: Campaign,
    imagekit_server: LocalImageKitServer,
    mode: str,
) -> None:
    unsaved = Faction(id=uuid.uuid4(), campaign_id=campaign.id, name="Not yet")
    with pytest.raises(NotPersistedError, match="not saved"):
        attach_image(db.session, unsaved, blob, store=store, mode=mode)

    db.session.add(unsaved)  # pending: added but not flushed is still not saved
    with pytest.raises(NotPersistedError):
        attach_image(db.session, unsaved, blob, store=store, mode=mode)

    assert count(ImageAttachment) == 0 and count(ImageBlob) == 1
    assert imagekit_server.calls["copy"] == 0 and imagekit_server.calls["upload"] == 1


def test_attach_rejects_unknown_modes_and_record_types(
    store: ImageStore, blob: ImageBlob, campaign: Campaign
) -> None:
    faction = new_faction(db.session, campaign)
    with pytest.raises(ValueError, match="attach mode"):
        attach_image(db.session, faction, blob, store=store, mode="link")
    owner = db.session.get(User, campaign.user_id)
    with pytest.raises(ValueError, match="cannot have images"):
        attach_image(db.session, owner, blob, store=store)


def test_share_mode_points_at_the_same_blob_without_any_server_call(
    store: ImageStore, blob: ImageBlob, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    before = dict(imagekit_server.calls)
    factions = [new_faction(db.session, campaign, f"F{i}") for i in range(3)]

    attachments = [attach_image(db.session, f, blob, store=store) for f in factions]
    db.session.commit()

    assert dict(imagekit_server.calls) == before
    assert count(ImageBlob) == 1 and count(ImageAttachment) == 3
    assert {a.blob_id for a in attachments} == {blob.id}
    found = attachments_for(db.session, "Faction", factions[1].id)
    assert [(a.record_type, a.record_id, a.name, a.blob.key) for a in found] == [
        ("Faction", factions[1].id, "image", "tpl/emblem")
    ]


def test_copy_mode_copies_once_per_attachment_through_the_sdk(
    store: ImageStore, blob: ImageBlob, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    factions = [new_faction(db.session, campaign, f"F{i}") for i in range(2)]

    attachments = [
        attach_image(db.session, f, blob, store=store, mode="copy", name="avatar") for f in factions
    ]
    db.session.commit()

    assert imagekit_server.calls["copy"] == 2
    assert imagekit_server.calls["upload"] == 1  # the template's own upload only
    assert count(ImageBlob) == 3 and count(ImageAttachment) == 2
    copies = [a.blob for a in attachments]
    assert len({b.id for b in copies} | {blob.id}) == 3
    assert len({b.key for b in copies} | {blob.key}) == 3
    for faction, copy in zip(factions, copies, strict=True):
        assert copy.key.startswith(f"faction/{faction.id}/")
        assert (copy.checksum, copy.filename, copy.content_type, copy.byte_size) == (
            blob.checksum,
            blob.filename,
            blob.content_type,
            blob.byte_size,
        )
        assert copy.service_name == "imagekit"
        assert set(copy.meta) == {"fileId", "filePath", "url", "name"}
        assert imagekit_server.files[copy.meta["fileId"]].content == PNG
    assert len({b.meta["fileId"] for b in copies} | {blob.meta["fileId"]}) == 3


def test_copy_mode_retries_a_flaky_server(
    store: ImageStore, blob: ImageBlob, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    faction = new_faction(db.session, campaign)
    imagekit_server.fail_next("copy", status=503)
    imagekit_server.fail_next("copy", mode="drop")

    attachment = attach_image(db.session, faction, blob, store=store, mode="copy")
    db.session.commit()

    assert imagekit_server.calls["copy"] == 3
    assert imagekit_server.files[attachment.blob.meta["fileId"]].content == PNG


def test_copy_mode_failure_names_the_record_and_leaves_no_rows(
    store: ImageStore, blob: ImageBlob, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    from portal.services.images.store import ImageStoreError

    faction = new_faction(db.session, campaign)
    db.session.commit()
    imagekit_server.fail_next("copy", status=500, times=100)

    with pytest.raises(ImageStoreError, match=f"Faction {faction.id}"):
        attach_image(db.session, faction, blob, store=store, mode="copy")
    db.session.rollback()

    assert count(ImageBlob) == 1 and count(ImageAttachment) == 0


def test_detach_returns_the_blobs_the_records_used(
    store: ImageStore, blob: ImageBlob, campaign: Campaign
) -> None:
    a, b = new_faction(db.session, campaign, "A"), new_faction(db.session, campaign, "B")
    attach_image(db.session, a, blob, store=store)
    copied = attach_image(db.session, b, blob, store=store, mode="copy").blob_id
    attach_image(db.session, campaign, blob, store=store)
    db.session.commit()

    assert detach_images(db.session, "Faction", [a.id, b.id]) == {blob.id, copied}
    db.session.commit()

    assert attachments_for(db.session, "Faction", a.id) == []
    assert len(attachments_for(db.session, "Campaign", campaign.id)) == 1
    assert detach_images(db.session, "Faction", []) == set()


def test_purge_keeps_a_blob_still_used_by_another_attachment(
    store: ImageStore, blob: ImageBlob, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    template_faction = new_faction(db.session, campaign, "Template")
    seeded_faction = new_faction(db.session, campaign, "Seeded")
    attach_image(db.session, template_faction, blob, store=store)
    attach_image(db.session, seeded_faction, blob, store=store)
    db.session.commit()

    freed = detach_images(db.session, "Faction", [template_faction.id])
    result = purge_unused_blobs(db.session, store, freed)
    everything = purge_unused_blobs(db.session, store)

    assert result == {"blobs_deleted": 0, "files_deleted": 0, "file_errors": []}
    assert everything["blobs_deleted"] == 0
    assert db.session.get(ImageBlob, blob.id) is not None
    assert blob.meta["fileId"] in imagekit_server.files
    assert imagekit_server.calls["delete"] == 0
    assert [a.blob_id for a in attachments_for(db.session, "Faction", seeded_faction.id)] == [
        blob.id
    ]


def test_purge_deletes_an_unused_blob_and_its_server_file(
    store: ImageStore, blob: ImageBlob, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    keeper = new_faction(db.session, campaign, "Keeper")
    attach_image(db.session, keeper, blob, store=store)
    leaving = new_faction(db.session, campaign, "Leaving")
    own = attach_image(db.session, leaving, blob, store=store, mode="copy").blob
    own_id, own_file = own.id, own.meta["fileId"]
    db.session.commit()
    imagekit_server.fail_next("delete", status=503)  # retried inside the store

    result = purge_unused_blobs(
        db.session, store, detach_images(db.session, "Faction", [leaving.id])
    )

    assert result == {"blobs_deleted": 1, "files_deleted": 1, "file_errors": []}
    assert db.session.get(ImageBlob, own_id) is None
    assert own_file not in imagekit_server.files
    assert blob.meta["fileId"] in imagekit_server.files  # the shared one stays
    assert imagekit_server.calls["delete"] == 2


def test_purge_of_everything_only_takes_unreferenced_blobs(
    store: ImageStore, blob: ImageBlob, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    attach_image(db.session, new_faction(db.session, campaign), blob, store=store)
    orphans = [
        store_blob(
            db.session, store, PNG + bytes([i]), filename=f"o{i}.png", content_type="image/png"
        )
        for i in range(3)
    ]
    orphan_files = {o.meta["fileId"] for o in orphans}
    db.session.commit()

    result = purge_unused_blobs(db.session, store)

    assert result["blobs_deleted"] == 3 and result["files_deleted"] == 3
    assert count(ImageBlob) == 1
    assert set(imagekit_server.files) == {blob.meta["fileId"]}
    assert orphan_files.isdisjoint(imagekit_server.files)


def test_purge_of_a_file_already_gone_is_fine(
    store: ImageStore, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    orphan = store_blob(db.session, store, PNG, filename="gone.png", content_type="image/png")
    orphan_id = orphan.id
    db.session.commit()
    imagekit_server.files.clear()  # someone deleted it on ImageKit already

    result = purge_unused_blobs(db.session, store, [orphan_id])

    assert result == {"blobs_deleted": 1, "files_deleted": 1, "file_errors": []}
    assert db.session.get(ImageBlob, orphan_id) is None


def test_a_failed_file_delete_is_reported_and_never_resurrects_the_row(
    store: ImageStore, campaign: Campaign, imagekit_server: LocalImageKitServer
) -> None:
    orphan = store_blob(db.session, store, PNG, filename="stuck.png", content_type="image/png")
    orphan_id, file_id = orphan.id, orphan.meta["fileId"]
    db.session.commit()
    imagekit_server.fail_next("delete", status=403)

    result = purge_unused_blobs(db.session, store, [orphan_id])

    assert result["blobs_deleted"] == 1 and result["files_deleted"] == 0
    [error] = result["file_errors"]
    assert error["blob_id"] == str(orphan_id) and "403" in error["error"]
    assert db.session.get(ImageBlob, orphan_id) is None  # committed before the file delete
    assert file_id in imagekit_server.files  # reported, left for a later clean-up


def test_purge_with_no_candidates_does_nothing(
    store: ImageStore, blob: ImageBlob, imagekit_server: LocalImageKitServer
) -> None:
    assert purge_unused_blobs(db.session, store, []) == {
        "blobs_deleted": 0,
        "files_deleted": 0,
        "file_errors": [],
    }
    assert db.session.get(ImageBlob, blob.id) is not None
    assert imagekit_server.calls["delete"] == 0


@pytest.mark.postgres
def test_purge_never_orphans_an_attachment_being_made_concurrently(
    imagekit_app: Flask,
    store: ImageStore,
    blob: ImageBlob,
    campaign: Campaign,
    imagekit_server: LocalImageKitServer,
) -> None:
    """A second connection attaches the (currently unused) blob and has not committed yet: the
    purge must neither delete the blob nor wait for that transaction."""
    weapon_id = uuid.uuid4()
    with Session(db.engine) as other:
        other.add(Weapon(id=weapon_id, campaign_id=campaign.id, name="Sword"))
        other.flush()
        other.add(
            ImageAttachment(
                id=uuid.uuid4(),
                name="image",
                record_type="Weapon",
                record_id=weapon_id,
                blob_id=blob.id,
            )
        )
        other.flush()  # holds the foreign-key lock on the blob row, not committed

        # Fail instead of hanging the suite should the purge ever wait for `other`.
        db.session.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
        result = purge_unused_blobs(db.session, store, [blob.id])
        other.commit()

    assert result["blobs_deleted"] == 0
    assert db.session.get(ImageBlob, blob.id) is not None
    assert blob.meta["fileId"] in imagekit_server.files
    assert [a.blob_id for a in attachments_for(db.session, "Weapon", weapon_id)] == [blob.id]

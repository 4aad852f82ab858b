"""Clean-up removes exactly what it should, against the local ImageKit server through the real
SDK: failed, retired, stuck and abandoned pool campaigns go with all their content; the master
template, handed-out campaigns and young ready ones stay; a blob goes (with its ImageKit file)
only when no attachment uses it, shared blobs included."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.devtools.imagekit_server import LocalImageKitServer
from portal.extensions import db
from portal.models import (
    RECORD_TYPES,
    Campaign,
    Faction,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    PoolEvent,
    Weapon,
    utcnow,
)
from portal.services.accounts.users import create_user
from portal.services.images.backend import get_image_store
from portal.services.images.blobs import attach_image, store_blob
from portal.services.images.store import ImageStore
from portal.services.infra.queue import get_redis
from portal.services.pool.claim import CampaignPoolService
from portal.services.pool.cleanup import MAX_READY_AGE, cleanup_pool, delete_pool_campaign
from portal.services.pool.config import set_pool_setting
from portal.services.pool.replenish import replenish_pool
from portal.services.seeding.verify import verify_campaign
from tests.support.small_template import build_small_template, content_counts


def set_campaign(campaign_id: uuid.UUID, **values: object) -> None:
    db.session.execute(sa.update(Campaign).where(Campaign.id == campaign_id).values(**values))
    db.session.commit()


def first(model: type, campaign_id: uuid.UUID):
    return db.session.scalars(
        sa.select(model).where(model.campaign_id == campaign_id).order_by(model.name)
    ).first()


def new_blob(store: ImageStore, label: str) -> ImageBlob:
    blob = store_blob(
        db.session,
        store,
        f"\x89PNG-{label}".encode(),
        filename=f"{label}.png",
        content_type="image/png",
    )
    db.session.commit()
    return blob


def dangling(type_column: sa.Column, id_column: sa.Column) -> int:
    """Rows of a polymorphic table whose record no longer exists."""
    total = 0
    for record_type, record_model in RECORD_TYPES.items():
        total += db.session.scalar(
            sa.select(sa.func.count()).where(
                type_column == record_type,
                ~id_column.in_(sa.select(record_model.id)),
            )
        )
    return total


@pytest.fixture
def store(imagekit_app: Flask) -> ImageStore:
    return get_image_store(imagekit_app)


@pytest.fixture
def world(imagekit_app: Flask, store: ImageStore) -> dict[str, object]:
    """The small template on ImageKit and five pool campaigns sharing its blobs, put in every
    state clean-up must tell apart, plus blobs of their own and orphans."""
    template = build_small_template(db.session, store)
    set_pool_setting(db.session, "master_target", 5)
    db.session.commit()
    report = replenish_pool(
        db.session, get_redis(imagekit_app), imagekit_app.config["SETTINGS"], "master"
    )
    assert report.failed == 0 and len(report.built) == 5
    failed, retired, young, abandoned, handed_out = (uuid.UUID(c) for c in report.built)
    old = utcnow() - timedelta(days=40)

    # Handed out to a gamemaster (long ago): is_pool false, never touched.
    gm = create_user(db.session, "gm@example.com", "GM", "password123", gamemaster=True)
    db.session.commit()
    set_campaign(handed_out, pool_created_at=utcnow() - timedelta(hours=1))
    for cid in (failed, retired, young, abandoned):
        set_campaign(cid, pool_created_at=utcnow() - timedelta(minutes=5))
    claimed = CampaignPoolService(db.session).assign_pool_campaign(gm, "Mine")
    assert claimed.campaign_id == handed_out
    set_campaign(handed_out, pool_created_at=old)

    set_campaign(failed, pool_status="failed")
    set_campaign(retired, pool_status="retired")
    set_campaign(abandoned, pool_created_at=old)

    # A blob only the failed campaign uses; a blob the retired and the young campaign share.
    own = new_blob(store, "own")
    attach_image(db.session, first(Faction, failed), own, store=store)
    shared = new_blob(store, "shared")
    attach_image(db.session, first(Weapon, retired), shared, store=store)
    attach_image(db.session, first(Weapon, young), shared, store=store)
    db.session.commit()

    # Orphans: one old enough to purge, one that may be about to be attached.
    old_orphan = new_blob(store, "old-orphan")
    db.session.execute(
        sa.update(ImageBlob)
        .where(ImageBlob.id == old_orphan.id)
        .values(created_at=utcnow() - timedelta(hours=3))
    )
    young_orphan = new_blob(store, "young-orphan")

    # A build whose worker died an hour ago.
    stuck = uuid.uuid4()
    db.session.add(
        Campaign(
            id=stuck,
            user_id=template.user_id,
            name="stuck build",
            is_pool=True,
            pool_type="master",
            pool_status="building",
            pool_created_at=utcnow() - timedelta(hours=1),
            template_version=template.template_version,
        )
    )
    db.session.commit()
    return {
        "template": template.id,
        "failed": failed,
        "retired": retired,
        "young": young,
        "abandoned": abandoned,
        "handed_out": handed_out,
        "stuck": stuck,
        "own": (own.id, own.meta["fileId"]),
        "shared": (shared.id, shared.meta["fileId"]),
        "old_orphan": (old_orphan.id, old_orphan.meta["fileId"]),
        "young_orphan": (young_orphan.id, young_orphan.meta["fileId"]),
    }


def test_cleanup_removes_exactly_what_it_should(
    imagekit_app: Flask,
    imagekit_server: LocalImageKitServer,
    store: ImageStore,
    world: dict,
) -> None:
    kept = [world["template"], world["young"], world["handed_out"]]
    counts_before = {cid: content_counts(db.session, cid) for cid in kept}
    deletes_before = imagekit_server.calls["delete"]

    report = cleanup_pool(
        db.session, imagekit_app.config["SETTINGS"], get_redis(imagekit_app), store=store
    )

    gone = {world[k] for k in ("failed", "retired", "abandoned", "stuck")}
    assert {uuid.UUID(c["id"]) for c in report.campaigns} == gone
    assert report.reaped == [str(world["stuck"])]
    assert {c["reason"] for c in report.campaigns} == {"failed", "retired", "abandoned"}
    db.session.expire_all()
    remaining = set(db.session.scalars(sa.select(Campaign.id)))
    assert remaining == set(kept)
    for cid in kept:
        assert content_counts(db.session, cid) == counts_before[cid]
    assert dangling(ImageAttachment.record_type, ImageAttachment.record_id) == 0
    assert dangling(ImagePosition.positionable_type, ImagePosition.positionable_id) == 0
    assert report.rows_deleted > 0 and report.attachments_deleted > 0

    # Blobs: only the failed campaign's own one and the old orphan went, with their files.
    blobs = set(db.session.scalars(sa.select(ImageBlob.id)))
    assert world["own"][0] not in blobs and world["old_orphan"][0] not in blobs
    assert {world["shared"][0], world["young_orphan"][0]} <= blobs
    assert (report.blobs_deleted, report.files_deleted, report.file_errors) == (2, 2, [])
    assert imagekit_server.calls["delete"] - deletes_before == 2
    assert world["own"][1] not in imagekit_server.files
    assert world["old_orphan"][1] not in imagekit_server.files
    # Every blob still in the database still has its file, and every attachment its blob.
    for meta in db.session.scalars(sa.select(ImageBlob.meta)):
        assert meta["fileId"] in imagekit_server.files
    used = set(db.session.scalars(sa.select(ImageAttachment.blob_id)))
    assert used <= blobs
    assert verify_campaign(db.session, world["handed_out"]).ok
    assert verify_campaign(db.session, world["template"], world["template"]).ok

    cleaned = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "cleaned")).all()
    assert {e.campaign_id for e in cleaned} == gone
    # The abandoned campaign was ready: a refill is queued to replace it.
    assert report.refill_job == "replenish-all-all"

    again = cleanup_pool(db.session, imagekit_app.config["SETTINGS"], store=store)
    assert again.campaigns_deleted == 0 and again.blobs_deleted == 0
    assert imagekit_server.calls["delete"] - deletes_before == 2


def test_a_campaign_claimed_or_the_template_is_never_deleted(
    imagekit_app: Flask, store: ImageStore, world: dict
) -> None:
    now = utcnow()
    for key in ("handed_out", "template", "young"):
        outcome = delete_pool_campaign(
            db.session, world[key], ready_before=now - MAX_READY_AGE, now=now
        )
        db.session.rollback()
        assert outcome is None, key
    assert db.session.get(Campaign, world["young"]).pool_status == "ready"
    # Even with a cutoff that makes every ready campaign "abandoned", the template and the
    # handed-out campaign are not pool campaigns and stay.
    for key in ("handed_out", "template"):
        assert delete_pool_campaign(db.session, world[key], ready_before=now, now=now) is None
        db.session.rollback()


def test_a_store_failure_is_reported_and_the_rows_still_go(
    imagekit_app: Flask,
    imagekit_server: LocalImageKitServer,
    store: ImageStore,
    world: dict,
) -> None:
    imagekit_server.fail_next("delete", status=403, times=10)
    report = cleanup_pool(db.session, imagekit_app.config["SETTINGS"], store=store)
    assert report.blobs_deleted == 2 and report.files_deleted == 0
    assert len(report.file_errors) == 2
    assert world["own"][1] in imagekit_server.files  # an orphaned file, reported, cleanable


def test_cleanup_command_prints_what_it_removed(imagekit_app: Flask, world: dict) -> None:
    result = imagekit_app.test_cli_runner().invoke(args=["pool", "cleanup"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["campaigns_deleted"] == 4 and report["blobs_deleted"] == 2
    assert report["reaped"] == 1

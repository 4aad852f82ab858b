"""`verify_campaign` passes a faithful copy and names every kind of damage."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import (
    Campaign,
    Carry,
    Character,
    CharacterSchtick,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    Juncture,
    Schtick,
    Vehicle,
    Weapon,
)
from portal.services.campaigns.records import create_campaign_shell
from portal.services.images.backend import get_image_store
from portal.services.seeding.traditional import TraditionalSeeder
from portal.services.seeding.verify import VerifyError, verify_campaign, verify_campaigns
from tests.support.small_template import build_small_template, make_user


def seeded(image_mode: str = "share") -> tuple[Campaign, Campaign]:
    """(template, a campaign seeded from it)."""
    session, store = db.session, get_image_store()
    template = build_small_template(session, store)
    owner = make_user(session)
    session.commit()
    target = create_campaign_shell(session, owner, "Copy")
    TraditionalSeeder(session, store, image_mode=image_mode).seed(target, template)
    return template, target


def one(model: type, campaign: Campaign, **where: Any) -> Any:
    stmt = sa.select(model).filter_by(campaign_id=campaign.id, **where)
    return db.session.scalars(stmt).one()


def attachment_of(record: Any) -> ImageAttachment:
    stmt = sa.select(ImageAttachment).where(ImageAttachment.record_id == record.id)
    return db.session.scalars(stmt).one()


def test_a_faithful_copy_passes_and_reports_counts(app):
    template, target = seeded()
    report = verify_campaign(db.session, target.id)
    assert report.ok and report.differences == []
    assert (report.campaign_id, report.template_id) == (target.id, template.id)
    assert report.counts["schticks"] == {"campaign": 6, "template": 6}
    assert report.counts["prerequisites"] == {"campaign": 3, "template": 3}
    assert report.counts["image_attachments"] == {
        "campaign": 17,
        "template": 17,
        "shared": 17,
        "copied": 0,
    }
    assert "6 schticks" in report.summary() and "17 shared" in report.summary()
    # An explicit reference campaign works too, and a campaign matches itself.
    assert verify_campaign(db.session, str(target.id), str(template.id)).ok
    assert verify_campaign(db.session, template.id).ok


def test_many_campaigns_verified_at_once_get_the_same_verdicts(app):
    """`verify_campaigns` reads the template once; a damaged campaign among good ones is still
    the one reported, with the same differences as when verified alone."""
    template, good = seeded()
    damaged = create_campaign_shell(db.session, make_user(db.session, "other"), "B")
    TraditionalSeeder(db.session, get_image_store()).seed(damaged, template)
    _field_changed(template, damaged)
    db.session.commit()
    ids = [good.id, damaged.id, template.id]
    reports = verify_campaigns(db.session, [str(i) for i in ids])
    assert [r.campaign_id for r in reports] == ids
    assert [r.ok for r in reports] == [True, False, True]
    alone = verify_campaign(db.session, damaged.id)
    assert reports[1].differences == alone.differences != []
    assert reports[0].counts == verify_campaign(db.session, good.id).counts


def _delete_schtick(template: Campaign, target: Campaign) -> None:
    db.session.delete(one(Schtick, target, category="Guns", name="Carnival of Carnage"))


def _prerequisite_outside(template: Campaign, target: Campaign) -> None:
    foreign = one(Schtick, template, category="Fu", name="Lightning Reload")
    one(Schtick, target, category="Fu", name="Eagle Eye").prerequisite_id = foreign.id


def _prerequisite_wrong_category(template: Campaign, target: Campaign) -> None:
    wrong = one(Schtick, target, category="Guns", name="Lightning Reload")
    one(Schtick, target, category="Fu", name="Eagle Eye").prerequisite_id = wrong.id


def _image_wrong_file(template: Campaign, target: Campaign) -> None:
    attachment = attachment_of(one(Weapon, target, name="Shotgun"))
    other = db.session.scalars(
        sa.select(ImageBlob).where(ImageBlob.checksum != attachment.blob.checksum).limit(1)
    ).one()
    attachment.blob_id = other.id


def _image_missing(template: Campaign, target: Campaign) -> None:
    db.session.delete(attachment_of(one(Juncture, target, name="Ancient")))


def _field_changed(template: Campaign, target: Campaign) -> None:
    one(Weapon, target, name="Shotgun").damage = 99


def _json_changed(template: Campaign, target: Campaign) -> None:
    one(Character, target, name="Johnny Tso").action_values = {"Guns": 16}


def _carry_missing(template: Campaign, target: Campaign) -> None:
    johnny = one(Character, target, name="Johnny Tso")
    shotgun = one(Weapon, target, name="Shotgun")
    db.session.delete(db.session.get(Carry, (johnny.id, shotgun.id)))


def _character_schtick_outside(template: Campaign, target: Campaign) -> None:
    shing = one(Character, target, name="Ugly Shing")
    foreign = one(Schtick, template, category="Sorcery", name="Blast")
    db.session.add(CharacterSchtick(character_id=shing.id, schtick_id=foreign.id))


def _juncture_faction_outside(template: Campaign, target: Campaign) -> None:
    foreign = one(Juncture, template, name="Contemporary").faction_id
    one(Juncture, target, name="Contemporary").faction_id = foreign


def _character_wrong_owner(template: Campaign, target: Campaign) -> None:
    one(Character, target, name="Ugly Shing").user_id = template.user_id


def _character_duplicated(template: Campaign, target: Campaign) -> None:
    db.session.add(Character(campaign_id=target.id, user_id=target.user_id, name="Ugly Shing"))


def _position_moved(template: Campaign, target: Campaign) -> None:
    taxi = one(Vehicle, target, name="Taxi")
    position = db.session.scalars(
        sa.select(ImagePosition).filter_by(positionable_type="Vehicle", positionable_id=taxi.id)
    ).one()
    position.x_position = 3.5


DAMAGE: list[tuple[Callable[[Campaign, Campaign], None], list[str]]] = [
    (
        _delete_schtick,
        [
            "schticks: 5 in the campaign, 6 in the template",
            "schtick ('Guns', 'Carnival of Carnage'): missing",
        ],
    ),
    (
        _prerequisite_outside,
        ["schtick ('Fu', 'Eagle Eye').prerequisite points outside the campaign"],
    ),
    (
        _prerequisite_wrong_category,
        [
            "schtick ('Fu', 'Eagle Eye').prerequisite: ('Guns', 'Lightning Reload') "
            "(template: ('Fu', 'Lightning Reload'))"
        ],
    ),
    (_image_wrong_file, ["Weapon 'Shotgun': image 'image' points at the wrong file"]),
    (
        _image_missing,
        [
            "image_attachments: 16 in the campaign, 17 in the template",
            "Juncture 'Ancient': 0 image attachment(s) (template: 1)",
        ],
    ),
    (_field_changed, ["weapon 'Shotgun'.damage: 99 (template: 13)"]),
    (_json_changed, ["character 'Johnny Tso'.action_values: {'Guns': 16} (template: "]),
    (_carry_missing, ["link character 'Johnny Tso' -> weapon 'Shotgun': missing"]),
    (_character_schtick_outside, ["character 'Ugly Shing'.schtick points outside the campaign"]),
    (_juncture_faction_outside, ["juncture 'Contemporary'.faction points outside the campaign"]),
    (_character_wrong_owner, ["character 'Ugly Shing': owned by "]),
    (_character_duplicated, ["character 'Ugly Shing': 2 in the campaign, 1 in the template"]),
    (
        _position_moved,
        [
            "image position (Vehicle 'Taxi', 'card', x=3.5, y=2.0, overrides=null): "
            "not in the template",
            "image position (Vehicle 'Taxi', 'card', x=1.0, y=2.0, overrides=null): missing",
        ],
    ),
]


@pytest.mark.parametrize(
    ("damage", "expected"), DAMAGE, ids=[d[0].__name__.lstrip("_") for d in DAMAGE]
)
def test_damage_is_detected_and_named(app, damage, expected):
    template, target = seeded()
    damage(template, target)
    db.session.commit()
    report = verify_campaign(db.session, target.id)
    assert not report.ok
    for line in expected:
        assert any(d.startswith(line) for d in report.differences), (line, report.differences)


def test_copied_images_are_checked_for_their_own_file(app):
    template, target = seeded("copy")
    store = get_image_store()
    assert verify_campaign(db.session, target.id, store=store).ok
    # A "copy" whose blob references the template's file: purging it would delete that file.
    template_blob = attachment_of(one(Weapon, template, name="Sword")).blob
    copy_blob = attachment_of(one(Weapon, target, name="Sword")).blob
    copy_blob.meta = dict(template_blob.meta)
    # And a copied file whose bytes were replaced.
    faction_blob = db.session.scalars(
        sa.select(ImageBlob)
        .join(ImageAttachment)
        .where(ImageAttachment.record_type == "Campaign", ImageAttachment.record_id == target.id)
    ).one()
    (Path(store.root) / faction_blob.meta["fileId"]).write_bytes(b"not the picture")
    db.session.commit()

    report = verify_campaign(db.session, target.id, store=store)
    assert any(
        "Weapon 'Sword': image 'image' is a copy whose blob references the template's file" in d
        for d in report.differences
    ), report.differences
    assert f"image file {faction_blob.key!r}: content does not match its checksum" in (
        report.differences
    )
    # Without a store the database-only checks still find the shared file, not the bytes.
    db_only = verify_campaign(db.session, target.id)
    assert len(db_only.differences) == 1


def test_unknown_or_malformed_ids_and_missing_template(app):
    owner = make_user(db.session)
    lonely = create_campaign_shell(db.session, owner, "Lonely")
    db.session.commit()
    with pytest.raises(VerifyError, match="no master template"):
        verify_campaign(db.session, lonely.id)
    template, _target = seeded()
    with pytest.raises(VerifyError, match="not a UUID"):
        verify_campaign(db.session, "campaign-42")
    missing = uuid.uuid4()
    with pytest.raises(VerifyError, match=f"no campaign with id {missing}"):
        verify_campaign(db.session, missing)
    with pytest.raises(VerifyError, match="no template with id"):
        verify_campaign(db.session, template.id, uuid.uuid4())

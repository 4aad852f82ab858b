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
    RECORD_TYPES,
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


def damaged(damage: Any) -> tuple[Campaign, Campaign]:
    """(template, a seeded campaign) after `damage(template, campaign)`, committed."""
    template, target = seeded()
    damage(template, target)
    db.session.commit()
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


def _description_trailing_space(template: Campaign, target: Campaign) -> None:
    schtick = one(Schtick, target, category="Guns", name="Carnival of Carnage")
    schtick.description += " "


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
    (
        _json_changed,
        [
            "character 'Johnny Tso'.action_values: differs at offset 2 "
            "(length 12, the template's 41)"
        ],
    ),
    (
        _description_trailing_space,
        [
            "schtick ('Guns', 'Carnival of Carnage').description: differs at offset 35 (length 36, "
            "the template's 35): …[Carnage·—·“Guns”</p>·] (end) (template: "
            "…[Carnage·—·“Guns”</p>] (end))"
        ],
    ),
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
    _template, target = damaged(damage)
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
    with pytest.raises(VerifyError, match=r"^there is no master template to compare with$"):
        verify_campaign(db.session, lonely.id)
    template, _target = seeded()
    with pytest.raises(VerifyError, match="not a UUID"):
        verify_campaign(db.session, "campaign-42")
    missing = uuid.uuid4()
    with pytest.raises(VerifyError, match=f"no campaign with id {missing}"):
        verify_campaign(db.session, missing)
    with pytest.raises(VerifyError, match="no template with id"):
        verify_campaign(db.session, template.id, uuid.uuid4())


def test_differences_are_shown_where_they_are_with_invisible_characters_visible():
    from portal.services.seeding.verify import describe_difference

    long = "<p>" + "x" * 200 + "</p>"
    shown = describe_difference(long + " ", long)
    assert shown.startswith("differs at offset 207 (length 208, the template's 207): ")
    assert shown.endswith(
        "…[xxxxxxxxxxxxxxxx</p>·] (end) (template: …[xxxxxxxxxxxxxxxx</p>] (end))"
    )
    nbsp = describe_difference("a b\u00a0c\td", "a b c\td")
    assert "[a·b\\u00a0c\\td]" in nbsp and "[a·b·c\\td]" in nbsp
    assert describe_difference("abc", "abd") == "'abc' (template: 'abd')"
    assert describe_difference(3, None) == "3 (template: None)"


# --- more damage, each reported in full ------------------------------------------------------


def _template_version_behind(template: Campaign, target: Campaign) -> None:
    target.template_version = 2


def _image_renamed(template: Campaign, target: Campaign) -> None:
    attachment_of(one(Weapon, target, name="Shotgun")).name = "portrait"


def _links_duplicated(template: Campaign, target: Campaign) -> None:
    johnny = one(Character, target, name="Johnny Tso")
    twin = Character(campaign_id=target.id, user_id=target.user_id, name="Johnny Tso")
    db.session.add(twin)
    db.session.flush()
    links = db.session.scalars(sa.select(CharacterSchtick).filter_by(character_id=johnny.id))
    for schtick_id in [link.schtick_id for link in links]:
        db.session.add(CharacterSchtick(character_id=twin.id, schtick_id=schtick_id))


def _carry_added(template: Campaign, target: Campaign) -> None:
    shing = one(Character, target, name="Ugly Shing")
    shotgun = one(Weapon, target, name="Shotgun")
    db.session.add(Carry(character_id=shing.id, weapon_id=shotgun.id))


def _record_added(template: Campaign, target: Campaign) -> None:
    db.session.add(Weapon(campaign_id=target.id, name="Bazooka", damage=20))


def _prerequisite_dropped(template: Campaign, target: Campaign) -> None:
    one(Schtick, target, category="Fu", name="Eagle Eye").prerequisite_id = None


def _vehicle_links_outside(template: Campaign, target: Campaign) -> None:
    taxi = one(Vehicle, target, name="Taxi")
    taxi.juncture_id = one(Juncture, template, name="Contemporary").id
    taxi.user_id = template.user_id


def _campaign_image_missing(template: Campaign, target: Campaign) -> None:
    db.session.delete(attachment_of(target))


def _same_name_records_differ(template: Campaign, target: Campaign) -> None:
    db.session.add(Character(campaign_id=template.id, user_id=template.user_id, name="Ugly Shing"))
    db.session.add(
        Character(campaign_id=target.id, user_id=target.user_id, name="Ugly Shing", summary="x")
    )


def _template_broken(template: Campaign, target: Campaign) -> None:
    foreign = one(Schtick, target, category="Fu", name="Lightning Reload")
    one(Schtick, template, category="Fu", name="Eagle Eye").prerequisite_id = foreign.id


def _faction_outside_and_summary_changed(template: Campaign, target: Campaign) -> None:
    johnny = one(Character, target, name="Johnny Tso")
    johnny.faction_id = one(Character, template, name="Johnny Tso").faction_id
    johnny.summary = "Detective"


def _links_moved_inside(template: Campaign, target: Campaign) -> None:
    johnny = one(Character, target, name="Johnny Tso")
    johnny.faction_id = one(Vehicle, target, name="Taxi").faction_id
    one(Vehicle, target, name="Taxi").juncture_id = one(Juncture, target, name="Ancient").id


def _position_duplicated(template: Campaign, target: Campaign) -> None:
    taxi = one(Vehicle, target, name="Taxi")
    db.session.add(
        ImagePosition(
            positionable_type="Vehicle",
            positionable_id=taxi.id,
            context="card",
            x_position=1.0,
            y_position=2.0,
        )
    )


def _link_outside_then_one_missing(template: Campaign, target: Campaign) -> None:
    johnny = one(Character, target, name="Johnny Tso")
    foreign = one(Schtick, template, category="Sorcery", name="Blast")
    db.session.add(CharacterSchtick(character_id=johnny.id, schtick_id=foreign.id))
    shing = one(Character, target, name="Ugly Shing")
    reload = one(Schtick, target, category="Fu", name="Lightning Reload")
    db.session.delete(db.session.get(CharacterSchtick, (shing.id, reload.id)))


def _record_added_with_image(template: Campaign, target: Campaign) -> None:
    bazooka = Weapon(campaign_id=target.id, name="Bazooka", damage=20)
    db.session.add(bazooka)
    db.session.flush()
    blob_id = attachment_of(one(Weapon, target, name="Shotgun")).blob_id
    db.session.add(
        ImageAttachment(name="image", record_type="Weapon", record_id=bazooka.id, blob_id=blob_id)
    )


def _overrides_changed(template: Campaign, target: Campaign) -> None:
    schtick = one(Schtick, target, category="Fu", name="Lightning Reload")
    position = db.session.scalars(
        sa.select(ImagePosition).filter_by(positionable_type="Schtick", positionable_id=schtick.id)
    ).one()
    position.style_overrides = {"zoom": 1.5}


FU_RELOAD = "('Fu', 'Lightning Reload')"
FU_POSITION = f"image position (Schtick {FU_RELOAD}, 'card', x=10.5, y=-3.25, overrides="
# Each damage and the whole report it gets; the names in braces stand for ids (see `ids` below).
# A link pointing outside the campaign is reported once, as such, not again as a difference.
EXACT: list[tuple[Callable[[Campaign, Campaign], None], list[str]]] = [
    (
        _character_schtick_outside,
        [
            "character_schticks: 4 in the campaign, 3 in the template",
            "character 'Ugly Shing'.schtick points outside the campaign ({template_blast})",
        ],
    ),
    (
        _juncture_faction_outside,
        ["juncture 'Contemporary'.faction points outside the campaign ({template_dragons})"],
    ),
    (
        _faction_outside_and_summary_changed,
        [
            "character 'Johnny Tso'.faction points outside the campaign ({template_dragons})",
            "character 'Johnny Tso'.summary: 'Detective' (template: 'Cop')",
        ],
    ),
    (_template_version_behind, ["template_version: 2 (template: 1)"]),
    (_image_renamed, ["Weapon 'Shotgun': image named 'portrait' (template: 'image')"]),
    (
        _links_duplicated,
        [
            "characters: 3 in the campaign, 2 in the template",
            "character_schticks: 5 in the campaign, 3 in the template",
            "character 'Johnny Tso': 2 in the campaign, 1 in the template",
            "link character 'Johnny Tso' -> schtick ('Guns', 'Both Guns Blazing'): "
            "2 in the campaign, 1 in the template",
            "link character 'Johnny Tso' -> schtick ('Guns', 'Lightning Reload'): "
            "2 in the campaign, 1 in the template",
        ],
    ),
    (
        _carry_added,
        [
            "carries: 4 in the campaign, 3 in the template",
            "link character 'Ugly Shing' -> weapon 'Shotgun': not in the template",
        ],
    ),
    (
        _record_added,
        ["weapons: 4 in the campaign, 3 in the template", "weapon 'Bazooka': not in the template"],
    ),
    (
        _prerequisite_dropped,
        [
            "prerequisites: 2 in the campaign, 3 in the template",
            f"schtick ('Fu', 'Eagle Eye').prerequisite: None (template: {FU_RELOAD})",
        ],
    ),
    (
        _vehicle_links_outside,
        [
            "vehicle 'Taxi'.juncture points outside the campaign ({template_juncture})",
            "vehicle 'Taxi': owned by {template_owner}, not by the campaign owner {owner}",
        ],
    ),
    (
        _campaign_image_missing,
        [
            "image_attachments: 16 in the campaign, 17 in the template",
            "Campaign 'campaign': 0 image attachment(s) (template: 1)",
        ],
    ),
    (
        _same_name_records_differ,
        ["character 'Ugly Shing': the 2 records of that name differ from the template's"],
    ),
    (
        _template_broken,
        [
            "template: schtick ('Fu', 'Eagle Eye').prerequisite points outside the campaign "
            "({campaign_fu_reload})",
            f"schtick ('Fu', 'Eagle Eye').prerequisite: {FU_RELOAD} "
            "(template: <outside the campaign>)",
        ],
    ),
    (
        _links_moved_inside,
        [
            "character 'Johnny Tso'.faction: differs at offset 4 (length 12, the template's 11): "
            "[The·Ascended] (end) (template: [The·Dragons] (end))",
            "vehicle 'Taxi'.juncture: 'Ancient' (template: 'Contemporary')",
        ],
    ),
    (
        _position_duplicated,
        [
            "image_positions: 5 in the campaign, 4 in the template",
            "image position (Vehicle 'Taxi', 'card', x=1.0, y=2.0, overrides=null): "
            "2 in the campaign, 1 in the template",
        ],
    ),
    (
        _link_outside_then_one_missing,
        [
            "character 'Johnny Tso'.schtick points outside the campaign ({template_blast})",
            "link character 'Ugly Shing' -> schtick ('Fu', 'Lightning Reload'): missing",
        ],
    ),
    (
        _record_added_with_image,
        [
            "weapons: 4 in the campaign, 3 in the template",
            "image_attachments: 18 in the campaign, 17 in the template",
            "weapon 'Bazooka': not in the template",
            "Weapon 'Bazooka': 1 image attachment(s) (template: 0)",
        ],
    ),
    (
        _overrides_changed,
        [
            FU_POSITION + '{{"zoom": 1.2}}): missing',
            FU_POSITION + '{{"zoom": 1.5}}): not in the template',
        ],
    ),
]


@pytest.mark.parametrize(
    ("damage", "expected"), EXACT, ids=[d[0].__name__.lstrip("_") for d in EXACT]
)
def test_damage_is_reported_in_full(app, damage, expected):
    template, target = damaged(damage)
    ids = {
        "template_owner": template.user_id,
        "owner": target.user_id,
        "template_juncture": one(Juncture, template, name="Contemporary").id,
        "campaign_fu_reload": one(Schtick, target, category="Fu", name="Lightning Reload").id,
        "template_blast": one(Schtick, template, category="Sorcery", name="Blast").id,
        "template_dragons": one(Juncture, template, name="Contemporary").faction_id,
    }
    report = verify_campaign(db.session, target.id)
    assert report.differences == [line.format(**ids) for line in expected]


def test_a_wrong_image_file_is_named_by_both_checksums(app):
    template, target = damaged(_image_wrong_file)
    ours = attachment_of(one(Weapon, target, name="Shotgun")).blob.checksum
    theirs = attachment_of(one(Weapon, template, name="Shotgun")).blob.checksum
    assert verify_campaign(db.session, target.id).differences == [
        f"Weapon 'Shotgun': image 'image' points at the wrong file (checksum {ours[:12]}…, "
        f"template: {theirs[:12]}…)"
    ]


def test_records_with_several_images_match_them_by_name(app):
    template, target = seeded()
    for campaign, order in ((template, ("image", "banner")), (target, ("banner", "image"))):
        shotgun = one(Weapon, campaign, name="Shotgun")
        blob_id = attachment_of(shotgun).blob_id
        db.session.delete(attachment_of(shotgun))
        db.session.flush()
        for name in order:
            db.session.add(
                ImageAttachment(
                    name=name, record_type="Weapon", record_id=shotgun.id, blob_id=blob_id
                )
            )
    db.session.commit()
    assert verify_campaign(db.session, target.id).ok


def test_the_summary_names_every_count_and_how_images_are_held(app):
    template, target = seeded()
    report = verify_campaign(db.session, target.id)
    assert report.summary() == (
        "2 factions, 2 junctures, 6 schticks, 3 prerequisites, 3 weapons, 2 characters, "
        "3 character_schticks, 3 carries, 1 vehicles, 4 image_positions, "
        "17 image_attachments (17 shared, 0 copied)"
    )
    assert report.counts["carries"] == {"campaign": 3, "template": 3}
    assert report.counts["image_positions"] == {"campaign": 4, "template": 4}
    # Without image counts (a report built by hand), the summary is the plain counts.
    bare = type(report)(target.id, template.id, counts={"weapons": {"campaign": 3}})
    assert bare.summary() == "3 weapons" and bare.ok


def test_a_template_version_missing_on_either_side_is_not_a_difference(app):
    template, target = seeded()
    target.template_version = None
    db.session.commit()
    assert verify_campaign(db.session, target.id).ok
    target.template_version, template.template_version = 1, None
    db.session.commit()
    assert verify_campaign(db.session, target.id).ok


def test_json_values_compare_by_content_not_key_order(app):
    _template, target = seeded()
    one(Character, target, name="Johnny Tso").action_values = {
        "Defense": 14,
        "Type": "PC",
        "Guns": 15,
    }
    db.session.commit()
    assert verify_campaign(db.session, target.id).ok


def test_a_broken_template_checked_against_itself_reports_each_problem_once(app):
    template, target = seeded()
    _template_broken(template, target)
    db.session.commit()
    foreign = one(Schtick, target, category="Fu", name="Lightning Reload").id
    assert verify_campaign(db.session, template.id).differences == [
        f"schtick ('Fu', 'Eagle Eye').prerequisite points outside the campaign ({foreign})"
    ]


def test_copies_without_a_usable_file_reference_are_reported(app):
    _template, target = seeded("copy")
    no_file = attachment_of(one(Weapon, target, name="Shotgun")).blob
    no_file.meta = {k: v for k, v in no_file.meta.items() if k != "fileId"}
    no_url = attachment_of(one(Vehicle, target, name="Taxi")).blob
    no_url.meta = {k: v for k, v in no_url.meta.items() if k != "url"}
    attachment_of(one(Juncture, target, name="Ancient")).blob.meta = None
    db.session.commit()

    report = verify_campaign(db.session, target.id)
    assert report.differences == [
        "Juncture 'Ancient': image 'image' has a blob with no file reference",
        "Vehicle 'Taxi': image 'image' has a blob with no file reference",
        "Weapon 'Shotgun': image 'image' has a blob with no file reference",
    ]
    assert report.counts["image_attachments"]["copied"] == 17
    assert report.counts["image_attachments"]["shared"] == 0


def test_every_file_is_checked_even_after_one_cannot_be_fetched(app):
    _template, target = seeded("copy")
    store = get_image_store()
    blobs = sorted(
        db.session.scalars(
            sa.select(ImageBlob).where(ImageBlob.id.in_(sa.select(ImageAttachment.blob_id)))
        ),
        key=lambda b: b.key,
    )
    copies = [b for b in blobs if b.meta["fileId"] and b.id in _blob_ids_of(target)]
    missing, *replaced = copies
    (Path(store.root) / missing.meta["fileId"]).unlink()
    for blob in replaced:
        (Path(store.root) / blob.meta["fileId"]).write_bytes(b"not the picture")
    report = verify_campaign(db.session, target.id, store=store)
    first, *others = report.differences
    assert first.startswith(f"image file {missing.key!r}: cannot be fetched (")
    assert others == [
        f"image file {blob.key!r}: content does not match its checksum" for blob in replaced
    ]
    assert len(others) == 16
    assert verify_campaign(db.session, target.id).ok  # the database alone cannot see it


def _blob_ids_of(campaign: Campaign) -> set[uuid.UUID]:
    ids = set()
    for type_name, model in RECORD_TYPES.items():
        owned = (
            [campaign.id]
            if model is Campaign
            else [
                r.id
                for r in db.session.scalars(sa.select(model).filter_by(campaign_id=campaign.id))
            ]
        )
        ids |= set(
            db.session.scalars(
                sa.select(ImageAttachment.blob_id).where(
                    ImageAttachment.record_type == type_name, ImageAttachment.record_id.in_(owned)
                )
            )
        )
    return ids


def test_a_bad_template_id_is_named_as_the_template(app):
    _template, target = seeded()
    with pytest.raises(VerifyError, match=r"^template id 'nope' is not a UUID$"):
        verify_campaign(db.session, target.id, "nope")
    with pytest.raises(VerifyError, match=f"^no campaign with id {uuid.UUID(int=5)}$"):
        verify_campaign(db.session, f"  {uuid.UUID(int=5)}  ")
    # Surrounding blanks (a pasted id) are ignored.
    assert verify_campaign(db.session, f" {target.id}\n").ok


def test_the_template_s_own_ownership_is_not_checked(app):
    """Template characters may belong to anyone: only a campaign's are checked against its
    owner, so a faithful copy and the template itself still pass."""
    template, target = seeded()
    one(Character, template, name="Johnny Tso").user_id = make_user(db.session, "editor").id
    db.session.commit()
    assert verify_campaign(db.session, target.id).ok
    assert verify_campaign(db.session, template.id).ok
    assert [r.ok for r in verify_campaigns(db.session, [target.id, template.id])] == [True, True]


def test_verifying_many_campaigns_names_a_bad_id_and_checks_files(app):
    _template, target = seeded("copy")
    with pytest.raises(VerifyError, match=r"^campaign id 'nope' is not a UUID$"):
        verify_campaigns(db.session, [target.id, "nope"])
    store = get_image_store()
    blob = attachment_of(one(Weapon, target, name="Shotgun")).blob
    (Path(store.root) / blob.meta["fileId"]).write_bytes(b"not the picture")
    (report,) = verify_campaigns(db.session, [target.id], store=store)
    assert report.differences == [f"image file {blob.key!r}: content does not match its checksum"]


def test_verifying_many_campaigns_checks_owners_and_copies(app):
    template, good = seeded("copy")
    one(Character, good, name="Ugly Shing").user_id = template.user_id
    db.session.commit()
    (report, of_template) = verify_campaigns(db.session, [good.id, template.id])
    assert report.differences == [
        f"character 'Ugly Shing': owned by {template.user_id}, not by the campaign owner "
        f"{good.user_id}"
    ]
    assert report.counts["image_attachments"]["copied"] == 17
    assert of_template.ok and of_template.counts["image_attachments"]["shared"] == 17


def test_long_and_structured_values_are_described_readably():
    from portal.services.seeding.verify import describe_difference, visible

    # Differences near the start: no leading ellipsis, the rest cut after the window.
    text = "abcdefghij" * 10
    assert describe_difference("X" + text[1:], text) == (
        "differs at offset 0 (length 100, the template's 100): "
        "[Xbcdefghijabcdefghijabcdefghijabcdefghij]… "
        "(template: [abcdefghijabcdefghijabcdefghijabcdefghij]…)"
    )
    # One value a prefix of the other: the difference is where the shorter ends.
    assert describe_difference(text + "!", text) == (
        "differs at offset 100 (length 101, the template's 100): "
        "…[abcdefghijabcdefghij!] (end) (template: …[abcdefghijabcdefghij] (end))"
    )
    # A window starting past the first character says so; one reaching the end says that.
    assert describe_difference(text[:21] + "X" + text[22:], text) == (
        "differs at offset 21 (length 100, the template's 100): "
        "…[bcdefghijabcdefghijaXcdefghijabcdefghijabcdefghijabcdefghija]… "
        "(template: …[bcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghija]…)"
    )
    assert describe_difference(text[:60] + "X" + text[61:], text).endswith(
        "(template: …[abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij] (end))"
    )
    assert describe_difference("", text) == (
        "differs at offset 0 (length 0, the template's 100): [] (end) "
        "(template: [abcdefghijabcdefghijabcdefghijabcdefghij]…)"
    )
    # Up to 60 plain characters each, values are shown whole.
    short, other = text[:60], text[:59] + "Z"
    assert describe_difference(short, other) == f"{short!r} (template: {other!r})"
    assert describe_difference(text[:61], other).startswith("differs at offset 59 ")
    assert describe_difference(short, text[:61]).startswith("differs at offset 60 ")
    # Dictionaries and lists are compared as canonical JSON.
    assert describe_difference({"b": 1, "a": "é"}, {"a": "é"}) == (
        "differs at offset 9 (length 18, the template's 10): "
        '[{"a":·"é",·"b":·1}] (end) (template: [{"a":·"é"}] (end))'
    )
    assert describe_difference([1, 2], [1, 3]).startswith("differs at offset 4 ")
    assert describe_difference([1], "[1]") == "[1] (template: '[1]')"
    assert describe_difference(None, "x") == "None (template: 'x')"
    # Other values are shown by their repr, cut at 80 characters.
    assert describe_difference("y" * 100, 7) == repr("y" * 100)[:79] + "… (template: 7)"
    assert describe_difference("y" * 78, 7) == repr("y" * 78) + " (template: 7)"
    # Invisible characters are shown, and so is a literal middle dot.
    assert visible("a·b c\r\n\t\x00\u200b\u2028\u2029\ue000é") == (
        "a\\u00b7b·c\\r\\n\\t\\u0000\\u200b\\u2028\\u2029\\ue000é"
    )
    assert describe_difference("a\x00", "a") == (
        "differs at offset 1 (length 2, the template's 1): [a\\u0000] (end) (template: [a] (end))"
    )

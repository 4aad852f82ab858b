"""The generated master template has exactly the production shape (docs/template-format.md)."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import (
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
    Weapon,
)
from portal.services.campaigns.records import find_master_template
from portal.services.images.backend import get_image_store
from portal.services.template import (
    TEMPLATE_OWNER_EMAIL,
    TemplateError,
    build_template_document,
    generate_template,
    template_stats,
)
from portal.services.template.stats import prerequisite_depths


def test_stats_report_the_production_shape(template_app):
    stats = template_stats(db.session)
    expected = {
        "template_version": 1,
        "schticks": 643,
        "schtick_categories": 42,
        "prerequisite_links": 130,
        "prerequisite_links_outside_template": 0,
        "max_prerequisite_depth": 5,
        "repeated_schtick_names": 11,
        "weapons": 86,
        "factions": 12,
        "junctures": 7,
        "junctures_linked_to_factions": 7,
        "characters": 40,
        "template_characters": 40,
        "character_types": {
            "PC": 35,
            "Ally": 1,
            "Boss": 1,
            "Featured Foe": 1,
            "Mook": 1,
            "Uber-Boss": 1,
        },
        "character_schticks": 157,
        "carries": 42,
        "vehicles": 0,
        "image_positions": 60,
        "image_attachments": 789,
        "image_attachments_by_type": {
            "Campaign": 1,
            "Character": 40,
            "Faction": 12,
            "Juncture": 7,
            "Schtick": 643,
            "Weapon": 86,
        },
        "image_blobs": 789,
        "distinct_images": 49,
    }
    assert {k: stats[k] for k in expected} == expected


def test_master_campaign_is_owned_by_the_template_owner(template_app):
    master = find_master_template(db.session)
    assert master is not None
    assert master.is_master_template is True
    assert master.template_version == 1
    assert master.seeded_at is not None and master.seeded_at.tzinfo is not None
    owner = db.session.get(User, master.user_id)
    assert owner.email == TEMPLATE_OWNER_EMAIL
    assert owner.password_hash is None  # cannot log in
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 1


def test_prerequisites_form_chains_inside_the_template_at_most_five_deep(template_app):
    master = find_master_template(db.session)
    rows = db.session.execute(
        sa.select(Schtick.id, Schtick.prerequisite_id, Schtick.category, Schtick.campaign_id)
    ).all()
    assert {r.campaign_id for r in rows} == {master.id}
    by_id = {r.id: r for r in rows}
    linked = [r for r in rows if r.prerequisite_id is not None]
    assert len(linked) == 130
    for row in linked:
        parent = by_id[row.prerequisite_id]  # KeyError = a link leaving the template
        assert parent.category == row.category  # chains stay inside one category
    depths = prerequisite_depths({r.id: r.prerequisite_id for r in rows})
    assert max(depths.values()) == 5
    assert Counter(depths.values())[5] == 10  # ten chains of five schticks


def test_prerequisite_depth_counts_schticks_not_hops():
    a, b, c = "a", "b", "c"
    assert prerequisite_depths({a: None, b: a, c: b}) == {a: 1, b: 2, c: 3}
    # a cycle does not hang the computation
    assert set(prerequisite_depths({a: b, b: a})) == {a, b}


def test_eleven_names_repeat_across_categories(template_app):
    rows = db.session.execute(sa.select(Schtick.name, Schtick.category)).all()
    categories = {}
    for name, category in rows:
        categories.setdefault(name, []).append(category)
    repeated = {n: c for n, c in categories.items() if len(c) > 1}
    assert len(repeated) == 11
    for name, cats in repeated.items():
        assert len(set(cats)) == len(cats), f"{name} repeated inside one category"
    assert len({(n, c) for n, c in rows}) == 643


def test_weapons_factions_and_junctures(template_app):
    weapon_names = db.session.scalars(sa.select(Weapon.name)).all()
    assert len(weapon_names) == len(set(weapon_names)) == 86
    faction_ids = set(db.session.scalars(sa.select(Faction.id)).all())
    assert len(faction_ids) == 12
    juncture_factions = db.session.scalars(sa.select(Juncture.faction_id)).all()
    assert len(juncture_factions) == 7
    assert all(f in faction_ids for f in juncture_factions)


def test_characters_links_and_carries_stay_inside_the_template(template_app):
    characters = db.session.scalars(sa.select(Character)).all()
    assert len(characters) == 40 and all(c.is_template for c in characters)
    assert Counter(c.action_values["Type"] for c in characters)["PC"] == 35
    schtick_ids = set(db.session.scalars(sa.select(Schtick.id)).all())
    weapon_ids = set(db.session.scalars(sa.select(Weapon.id)).all())
    links = db.session.execute(sa.select(CharacterSchtick.schtick_id)).scalars().all()
    carries = db.session.execute(sa.select(Carry.weapon_id)).scalars().all()
    assert len(links) == 157 and set(links) <= schtick_ids
    assert len(carries) == 42 and set(carries) <= weapon_ids


def test_every_attachment_has_its_own_blob_and_stored_file(template_app):
    attachments = db.session.scalars(sa.select(ImageAttachment)).all()
    blobs = {b.id: b for b in db.session.scalars(sa.select(ImageBlob)).all()}
    assert len(attachments) == len(blobs) == 789
    assert len({a.blob_id for a in attachments}) == 789
    assert len({b.checksum for b in blobs.values()}) == 49
    store = get_image_store()
    for blob in blobs.values():
        assert blob.service_name == store.service_name
        assert blob.content_type == "image/png"
    # every distinct picture, checked through the store: real PNG bytes matching the checksum
    for blob in {b.checksum: b for b in blobs.values()}.values():
        content = store.fetch(blob.meta)
        assert content.startswith(b"\x89PNG\r\n\x1a\n")
        assert hashlib.sha256(content).hexdigest() == blob.checksum
        assert len(content) == blob.byte_size


def test_image_positions_point_at_template_records(template_app):
    positions = db.session.scalars(sa.select(ImagePosition)).all()
    assert len(positions) == 60
    types = Counter(p.positionable_type for p in positions)
    assert types == {"Character": 40, "Faction": 12, "Juncture": 7, "Campaign": 1}
    character_ids = set(db.session.scalars(sa.select(Character.id)).all())
    assert {p.positionable_id for p in positions if p.positionable_type == "Character"} == (
        character_ids
    )


def test_text_is_plausible_html_with_non_ascii(template_app):
    descriptions = db.session.scalars(sa.select(Schtick.description)).all()
    assert all(d.startswith("<p>") for d in descriptions)
    everything = " ".join(descriptions) + " ".join(db.session.scalars(sa.select(Schtick.name)))
    assert "“" in everything  # curly quotes
    assert any(ord(ch) > 0x3000 for ch in everything)  # CJK
    assert any(ch in everything for ch in "éàñáç")  # accents


def test_generation_is_deterministic():
    assert build_template_document() == build_template_document()


def test_generating_twice_is_refused_and_changes_nothing(template_app, tmp_path):
    before = template_stats(db.session)
    blob_count = db.session.scalar(sa.select(sa.func.count()).select_from(ImageBlob))
    with pytest.raises(TemplateError, match="already exists"):
        generate_template(db.session, get_image_store())
    db.session.rollback()
    assert template_stats(db.session) == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImageBlob)) == blob_count


def test_stats_without_a_template_say_what_to_do(app):
    with pytest.raises(TemplateError, match="template generate"):
        template_stats(db.session)

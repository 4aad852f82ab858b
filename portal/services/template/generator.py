"""`template generate`: a realistic master template with exactly the production shape.

The generator does not write rows itself: it builds a template *document* in the exchange
format (the same JSON `template export` writes) and hands it to the importer's validation and
writer. So a generated template and an imported one cannot differ in shape, and the exchange
format is exercised by every test session that builds the template fixture.

Shape (docs/template-format.md), checked by `_check_shape` so a content edit cannot drift silently:
643 schticks over 42 categories; 130 prerequisite links forming linear chains within a category,
the longest chain holding 5 schticks (4 hops; `max_prerequisite_depth` = 5); 11 names that
appear in two categories each; 86 weapons; 12 factions; 7 junctures, each linked to a faction;
40 template characters (35 PC + Ally, Boss, Featured Foe, Mook, Uber-Boss) with 157 schtick
links and 42 carries; no vehicles; 60 image positions; one image attachment per record (789),
drawn from 49 distinct pictures.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from collections import Counter
from typing import Any

from sqlalchemy.orm import Session

import portal.services.template.content as text
from portal.models import Campaign
from portal.services.images.store import ImageStore
from portal.services.template.document import CAMPAIGN_REF, FORMAT_NAME, FORMAT_VERSION
from portal.services.template.errors import TemplateError
from portal.services.template.pictures import render_picture
from portal.services.template.validation import validate_template
from portal.services.template.writer import write_template

SEED = 0x5C4_2016  # fixed: the same template on every run and every machine
CAMPAIGN_NAME = "Master Campaign"
SCHTICK_COUNT = 643
REPEATED_NAMES = 11
# Linear prerequisite chains (number of schticks in each): 10x5 + 15x4 + 15x3 + 15x2 = 185
# schticks and 130 links.
CHAIN_LENGTHS = (5,) * 10 + (4,) * 15 + (3,) * 15 + (2,) * 15
# Schtick links per template character and weapons carried, by character type.
NPC_SCHTICKS = {"Ally": 3, "Boss": 5, "Featured Foe": 4, "Mook": 0, "Uber-Boss": 5}
NPC_WEAPONS = {"Ally": 1, "Boss": 2, "Featured Foe": 1, "Mook": 1, "Uber-Boss": 2}
PC_SCHTICKS = 4
PC_WEAPONS = 1
# How many distinct pictures each kind of record draws from (24+6+12+4+2+1 = 49).
PICTURES = {"icon": 24, "weapon": 6, "portrait": 12, "emblem": 4, "juncture": 2, "banner": 1}

EXPECTED_SHAPE = {
    "schticks": 643,
    "schtick_categories": 42,
    "prerequisite_links": 130,
    "max_chain": 5,
    "repeated_schtick_names": 11,
    "weapons": 86,
    "factions": 12,
    "junctures": 7,
    "characters": 40,
    "character_schticks": 157,
    "carries": 42,
    "vehicles": 0,
    "image_positions": 60,
    "attachments": 789,
    "images": 49,
}


def _slug(value: str) -> str:
    ascii_only = value.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-") or "image"


class _Images:
    """The distinct pictures, rendered once each and referenced by checksum."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self._by_key: dict[tuple[str, int], str] = {}

    def attachment(self, kind: str, index: int, filename: str) -> list[dict[str, Any]]:
        key = (kind, index % PICTURES[kind])
        if key not in self._by_key:
            png = render_picture(*key)
            checksum = hashlib.sha256(png).hexdigest()
            self._by_key[key] = checksum
            self.entries[checksum] = {
                "content_type": "image/png",
                "byte_size": len(png),
                "data": base64.b64encode(png).decode("ascii"),
            }
        return [{"name": "image", "filename": f"{filename}.png", "image": self._by_key[key]}]


def _category_sizes() -> list[int]:
    categories = len(text.SCHTICK_CATEGORIES)
    base, extra = divmod(SCHTICK_COUNT, categories)
    return [base + (1 if i < extra else 0) for i in range(categories)]


def _schticks(rng: random.Random, images: _Images) -> list[dict[str, Any]]:
    categories = text.SCHTICK_CATEGORIES
    sizes = _category_sizes()
    # Slot (category, position) -> name. The last slot of categories 0..10 repeats the name of
    # the first schtick of category i+21, so exactly 11 names occur in two categories.
    repeat_slots = {(i, sizes[i] - 1): (i + 21) % len(categories) for i in range(REPEATED_NAMES)}
    unique = iter(text.schtick_names(rng, SCHTICK_COUNT - REPEATED_NAMES))
    names: dict[tuple[int, int], str] = {}
    for c, size in enumerate(sizes):
        for p in range(size):
            if (c, p) not in repeat_slots:
                names[(c, p)] = next(unique)
    for (c, p), source in repeat_slots.items():
        names[(c, p)] = names[(source, 0)]

    prerequisite: dict[tuple[int, int], tuple[int, int]] = {}
    path: dict[tuple[int, int], str] = {}
    used = [0] * len(categories)
    for k, length in enumerate(CHAIN_LENGTHS):
        c = k % len(categories)
        start = used[c]
        used[c] += length
        animal = text.PATH_ANIMALS[k % len(text.PATH_ANIMALS)]
        for p in range(start, start + length):
            path[(c, p)] = f"Path of the {animal}"
            if p > start:
                prerequisite[(c, p)] = (c, p - 1)

    refs = {slot: f"schtick-{n + 1:04d}" for n, slot in enumerate(sorted(names))}
    records = []
    for c, category in enumerate(categories):
        for p in range(sizes[c]):
            slot = (c, p)
            parent = prerequisite.get(slot)
            name = names[slot]
            records.append(
                {
                    "ref": refs[slot],
                    "category": category,
                    "name": name,
                    "description": text.schtick_description(
                        rng, name, category, names[parent] if parent else None
                    ),
                    "path": path.get(slot),
                    "color": text.COLORS[c % len(text.COLORS)],
                    "bonus": rng.random() < 0.08,
                    "archetypes": rng.sample(text.PC_ARCHETYPES, rng.randint(0, 3)),
                    "prerequisite": refs[parent] if parent else None,
                    "active": True,
                    "attachments": images.attachment(
                        "icon", c, f"schtick-{_slug(category)}-{_slug(name)}"
                    ),
                }
            )
    return records


def _weapons(rng: random.Random, images: _Images) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for g, (category, names, damage, concealment) in enumerate(text.WEAPON_GROUPS):
        for name in names:
            juncture = rng.choice(text.WEAPON_JUNCTURES)
            ranged = category not in ("Melee", "Thrown")
            records.append(
                {
                    "ref": f"weapon-{len(records) + 1:04d}",
                    "name": name,
                    "description": text.weapon_description(rng, name, category, juncture),
                    "category": category,
                    "damage": damage + rng.randint(0, 2),
                    "concealment": max(0, concealment + rng.randint(-1, 1)),
                    "reload_value": rng.randint(1, 6) if ranged else None,
                    "juncture": juncture,
                    "mook_bonus": rng.choice((0, 0, 0, 1, 2)),
                    "kachunk": category == "Shotgun",
                    "active": True,
                    "attachments": images.attachment("weapon", g, f"weapon-{_slug(name)}"),
                }
            )
    return records


def _factions(rng: random.Random, images: _Images) -> list[dict[str, Any]]:
    return [
        {
            "ref": f"faction-{i + 1:04d}",
            "name": name,
            "description": text.faction_description(rng, name),
            "active": True,
            "attachments": images.attachment("emblem", i, f"faction-{_slug(name)}"),
        }
        for i, name in enumerate(text.FACTIONS)
    ]


def _junctures(rng: random.Random, images: _Images) -> list[dict[str, Any]]:
    return [
        {
            "ref": f"juncture-{i + 1:04d}",
            "name": name,
            "description": text.juncture_description(rng, name, text.FACTIONS[faction]),
            "faction": f"faction-{faction + 1:04d}",
            "active": True,
            "attachments": images.attachment("juncture", i, f"juncture-{_slug(name)}"),
        }
        for i, (name, faction) in enumerate(text.JUNCTURES)
    ]


def _action_values(rng: random.Random, kind: str, archetype: str) -> dict[str, Any]:
    main, secondary = rng.sample(text.MAIN_ATTACKS, 2)
    mook = kind == "Mook"
    values: dict[str, Any] = {
        "Type": kind,
        "Archetype": archetype,
        "MainAttack": main,
        "SecondaryAttack": secondary,
        "FortuneType": rng.choice(text.FORTUNE_TYPES),
        "Defense": 13 if not mook else 13 - rng.randint(0, 2),
        "Toughness": rng.randint(5, 8) if not mook else 0,
        "Speed": rng.randint(5, 8),
        "Fortune": 0 if mook else rng.randint(5, 8),
        "Wounds": 0,
        "Damage": rng.randint(7, 10),
    }
    for attack in text.MAIN_ATTACKS:
        values[attack] = 0
    values[main] = rng.randint(13, 15) if not mook else 8
    values[secondary] = rng.randint(10, 13) if not mook else 0
    values["Max Fortune"] = values["Fortune"]
    return values


def _characters(
    rng: random.Random,
    images: _Images,
    schticks: list[dict[str, Any]],
    weapons: list[dict[str, Any]],
    factions: list[dict[str, Any]],
    junctures: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    roots = [s["ref"] for s in schticks if s["prerequisite"] is None]
    cast = [("PC", a, a, PC_SCHTICKS, PC_WEAPONS) for a in text.PC_ARCHETYPES] + [
        (kind, name, "", NPC_SCHTICKS[kind], NPC_WEAPONS[kind])
        for kind, name in text.NPC_CHARACTERS
    ]
    records = []
    for i, (kind, name, archetype, n_schticks, n_weapons) in enumerate(cast):
        faction = rng.choice([None, *factions])
        juncture = rng.choice([None, *junctures])
        records.append(
            {
                "ref": f"character-{i + 1:04d}",
                "name": name,
                "faction": faction["ref"] if faction else None,
                "juncture": juncture["ref"] if juncture else None,
                "action_values": _action_values(rng, kind, archetype),
                "description": text.character_description(rng, name, archetype or kind.lower()),
                "skills": {s: rng.randint(7, 15) for s in rng.sample(text.SKILLS, 3)},
                "is_template": True,
                "active": True,
                "color": text.COLORS[i % len(text.COLORS)],
                "summary": f"{name}: a ready-to-play {kind} for Feng Shui 2.",
                "schticks": rng.sample(roots, n_schticks),
                "weapons": [w["ref"] for w in rng.sample(weapons, n_weapons)],
                "attachments": images.attachment("portrait", i, f"character-{_slug(name)}"),
            }
        )
    return records


def _positions(rng: random.Random, records: list[tuple[str, str]]) -> list[dict[str, Any]]:
    styles = (None, {"objectFit": "cover"}, {"filter": "grayscale(20%)", "objectFit": "contain"})
    return [
        {
            "record": ref,
            "context": context,
            "x_position": round(rng.uniform(-50, 50), 2),
            "y_position": round(rng.uniform(-50, 50), 2),
            "style_overrides": rng.choice(styles),
        }
        for ref, context in records
    ]


def build_template_document(seed: int = SEED) -> dict[str, Any]:
    """The master template as an exchange-format document (see docs/template-format.md)."""
    rng = random.Random(seed)
    images = _Images()
    factions = _factions(rng, images)
    junctures = _junctures(rng, images)
    schticks = _schticks(rng, images)
    weapons = _weapons(rng, images)
    characters = _characters(rng, images, schticks, weapons, factions, junctures)
    campaign = {
        "name": CAMPAIGN_NAME,
        "description": text.html_paragraphs(
            "The master template every new campaign is copied from: the full Feng Shui 2 "
            "catalogue of schticks, weapons, factions, junctures and archetypes.",
            "<em>“Welcome to the Chi War. Try not to die in the first sequence.”</em> — 老師",
        ),
        "attachments": images.attachment("banner", 0, "campaign-master-campaign"),
    }
    positions = _positions(
        rng,
        [(c["ref"], "desktop_entity") for c in characters]
        + [(f["ref"], "desktop_index") for f in factions]
        + [(j["ref"], "mobile_index") for j in junctures]
        + [(CAMPAIGN_REF, "desktop_entity")],
    )
    document = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "campaign": campaign,
        "factions": factions,
        "junctures": junctures,
        "schticks": schticks,
        "weapons": weapons,
        "characters": characters,
        "vehicles": [],
        "image_positions": positions,
        "images": images.entries,
    }
    _check_shape(document)
    return document


def _chain_length(by_ref: dict[str, dict[str, Any]], ref: str) -> int:
    length = 1
    while (ref := by_ref[ref]["prerequisite"]) is not None:
        length += 1
    return length


def _check_shape(document: dict[str, Any]) -> None:
    """Fail loudly if the content lists no longer produce the production shape."""
    schticks = document["schticks"]
    by_ref = {s["ref"]: s for s in schticks}
    categories_of = Counter(s["name"] for s in schticks)
    characters = document["characters"]
    sections = ("campaign", "factions", "junctures", "schticks", "weapons", "characters")
    actual = {
        "schticks": len(schticks),
        "schtick_categories": len({s["category"] for s in schticks}),
        "prerequisite_links": sum(1 for s in schticks if s["prerequisite"]),
        "max_chain": max(_chain_length(by_ref, ref) for ref in by_ref),
        "repeated_schtick_names": sum(1 for n in categories_of.values() if n > 1),
        "weapons": len(document["weapons"]),
        "factions": len(document["factions"]),
        "junctures": len(document["junctures"]),
        "characters": len(characters),
        "character_schticks": sum(len(c["schticks"]) for c in characters),
        "carries": sum(len(c["weapons"]) for c in characters),
        "vehicles": len(document["vehicles"]),
        "image_positions": len(document["image_positions"]),
        "attachments": sum(
            len(r["attachments"])
            for s in sections
            for r in ([document[s]] if s == "campaign" else document[s])
        ),
        "images": len(document["images"]),
    }
    if actual != EXPECTED_SHAPE:
        drift = {k: (actual[k], v) for k, v in EXPECTED_SHAPE.items() if actual[k] != v}
        raise AssertionError(f"template content drifted from the production shape: {drift}")


def generate_template(session: Session, store: ImageStore) -> Campaign:
    """Generate the master template and commit it (its own unit of work).

    Raises TemplateError, writing nothing, when a master template already exists."""
    from portal.services.campaigns.records import find_master_template

    existing = find_master_template(session)
    if existing is not None:
        raise TemplateError(
            f"a master template already exists ({existing.name!r}, version "
            f"{existing.template_version}); import with replace to supersede it"
        )
    template = validate_template(build_template_document())
    return write_template(session, store, template, operation="generate")

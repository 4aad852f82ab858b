"""`template generate`: a realistic master template, by default of the production shape.

The generator does not write rows itself: it builds a template *document* in the exchange
format (the same JSON `template export` writes) and hands it to the importer's validation and
writer. So a generated template and an imported one cannot differ in shape, and the exchange
format is exercised by every test session that builds the template fixture.

Two shapes, both checked by `_check_shape` so a content edit cannot drift silently:

* `production` (the default; docs/template-format.md, measured from the production export): 643
  schticks over 42 categories; 130 prerequisite links forming linear chains within a category,
  the longest holding 6 schticks (`max_prerequisite_depth` = 6); 11 names that appear in two
  categories each; 86 weapons; 12 factions; 7 junctures with no faction; 40 template characters
  (35 PC + Ally, Boss, Featured Foe, Mook, Uber-Boss) with 157 schtick links; no carries, no
  vehicles, no image positions; 788 image attachments (every record but the Mook) on 105
  distinct pictures.
* `rich`: the same plus what other operators' templates have: junctures linked to factions,
  42 carries, 6 vehicles (with pictures of their own: 794 attachments on 108 pictures) and 60
  image positions.

Pictures are 32x32 PNGs of a few hundred bytes, or with `large_images` PNGs of 1.8-3.7 MB each
(297 MB distinct, the production figure). Large pictures are never all in memory: the document
names them by checksum and `RenderedImages` renders each again when the writer asks for it.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

import portal.services.template.content as text
from portal.models import Campaign
from portal.services.images.store import ImageStore
from portal.services.template.document import CAMPAIGN_REF, FORMAT_NAME, FORMAT_VERSION
from portal.services.template.errors import TemplateError
from portal.services.template.imagefiles import ImageCatalog
from portal.services.template.pictures import render_large_picture, render_picture
from portal.services.template.validation import validate_template
from portal.services.template.writer import WriteReport, write_template

SEED = 0x5C4_2016  # fixed: the same template on every run and every machine
CAMPAIGN_NAME = "Master Campaign"
SCHTICK_COUNT = 643
REPEATED_NAMES = 11
SHAPES = ("production", "rich")
# Linear prerequisite chains (number of schticks in each): 5x6 + 5x5 + 10x4 + 15x3 + 25x2 =
# 190 schticks and 130 links, the longest chain 6 deep.
CHAIN_LENGTHS = (6,) * 5 + (5,) * 5 + (4,) * 10 + (3,) * 15 + (2,) * 25
# Schtick links per template character and weapons carried (rich shape), by character type.
NPC_SCHTICKS = {"Ally": 3, "Boss": 5, "Featured Foe": 4, "Mook": 0, "Uber-Boss": 5}
NPC_WEAPONS = {"Ally": 1, "Boss": 2, "Featured Foe": 1, "Mook": 1, "Uber-Boss": 2}
PC_SCHTICKS = 4
PC_WEAPONS = 1
NO_PICTURE = "Mook"  # the one record without an image: 789 records, 788 attachments
# How many distinct pictures each kind of record draws from: 42 + 12 + 31 + 12 + 7 + 1 = 105
# (schtick icons by category, the rest by record number).
PICTURES = {
    "icon": 42,
    "weapon": 12,
    "portrait": 31,
    "emblem": 12,
    "juncture": 7,
    "banner": 1,
    "vehicle": 3,
}
VEHICLES = (
    ("Black Sedan", "Car"),
    ("Police Cruiser", "Car"),
    ("Junk Boat (帆船)", "Boat"),
    ("Armoured Limousine", "Car"),
    ("Motorcycle — Ducati", "Bike"),
    ("Helicopter Gunship", "Helicopter"),
)
# Large pictures: sizes spread over the production range, 297 MB in all (1 MB = 10**6 bytes).
LARGE_MIN, LARGE_MAX, LARGE_CURVE = 1_800_000, 3_700_000, 0.85

COMMON_SHAPE = {
    "schticks": 643,
    "schtick_categories": 42,
    "prerequisite_links": 130,
    "max_chain": 6,
    "repeated_schtick_names": 11,
    "weapons": 86,
    "factions": 12,
    "junctures": 7,
    "characters": 40,
    "character_schticks": 157,
}
EXPECTED_SHAPES = {
    "production": COMMON_SHAPE
    | {
        "junctures_linked": 0,
        "carries": 0,
        "vehicles": 0,
        "image_positions": 0,
        "attachments": 788,
        "images": 105,
    },
    "rich": COMMON_SHAPE
    | {
        "junctures_linked": 7,
        "carries": 42,
        "vehicles": 6,
        "image_positions": 60,
        "attachments": 794,
        "images": 108,
    },
}


def _slug(value: str) -> str:
    ascii_only = value.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_only).strip("-") or "image"


@dataclass(frozen=True)
class Picture:
    kind: str
    index: int
    size: int | None  # bytes, for a large picture; None for a 32x32 one

    def render(self) -> bytes:
        if self.size is None:
            return render_picture(self.kind, self.index)
        return render_large_picture(self.kind, self.index, self.size)


def large_sizes(count: int, seed: int = SEED) -> list[int]:
    """`count` picture sizes from 1.8 to 3.7 MB, in a fixed shuffled order; 105 of them add
    up to ~297 MB, the production template's distinct image bytes."""
    sizes = [
        round(LARGE_MIN + (LARGE_MAX - LARGE_MIN) * (i / max(1, count - 1)) ** LARGE_CURVE)
        for i in range(count)
    ]
    random.Random(seed).shuffle(sizes)
    return sizes


class _Images:
    """The distinct pictures, named by checksum; each rendered once here to learn it."""

    def __init__(self, large: bool) -> None:
        self.large = large
        self.pictures: dict[str, Picture] = {}
        self.filenames: dict[str, str] = {}
        self._by_key: dict[tuple[str, int], str] = {}
        self._sizes = iter(large_sizes(sum(PICTURES.values()))) if large else None

    def attachment(self, kind: str, index: int, label: str | None = None) -> list[dict[str, Any]]:
        key = (kind, index % PICTURES[kind])
        label = label or f"{key[1] + 1:02d}"
        if key not in self._by_key:
            picture = Picture(*key, next(self._sizes) if self._sizes else None)
            checksum = hashlib.sha256(picture.render()).hexdigest()
            self._by_key[key] = checksum
            self.pictures[checksum] = picture
            self.filenames[checksum] = f"{kind}-{label}.png"
        checksum = self._by_key[key]
        return [{"name": "image", "filename": self.filenames[checksum], "image": checksum}]


class RenderedImages:
    """The generator's image source: renders a picture again whenever its bytes are needed,
    so even the large pictures are held one at a time."""

    def __init__(self, pictures: dict[str, Picture]) -> None:
        self.pictures = pictures

    def keep(self, checksum: str, content: bytes) -> None:
        """Nothing to keep: the bytes can always be rendered again."""

    def read(self, checksum: str) -> bytes:
        return self.pictures[checksum].render()


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
                    "attachments": images.attachment("icon", c, _slug(category)),
                }
            )
    return records


def _weapons(rng: random.Random, images: _Images) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for category, names, damage, concealment in text.WEAPON_GROUPS:
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
                    "attachments": images.attachment("weapon", len(records)),
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
            "attachments": images.attachment("emblem", i),
        }
        for i, name in enumerate(text.FACTIONS)
    ]


def _junctures(rng: random.Random, images: _Images, linked: bool) -> list[dict[str, Any]]:
    return [
        {
            "ref": f"juncture-{i + 1:04d}",
            "name": name,
            "description": text.juncture_description(rng, name, text.FACTIONS[faction]),
            "faction": f"faction-{faction + 1:04d}" if linked else None,
            "active": True,
            "attachments": images.attachment("juncture", i),
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
    carries: bool,
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
        record = {
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
            "attachments": [] if kind == NO_PICTURE else images.attachment("portrait", i),
        }
        if not carries:
            record["weapons"] = []
        records.append(record)
    return records


def _vehicles(
    rng: random.Random,
    images: _Images,
    factions: list[dict[str, Any]],
    junctures: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    records = []
    for i, (name, kind) in enumerate(VEHICLES):
        faction = rng.choice([None, *factions])
        juncture = rng.choice([None, *junctures])
        records.append(
            {
                "ref": f"vehicle-{i + 1:04d}",
                "name": name,
                "faction": faction["ref"] if faction else None,
                "juncture": juncture["ref"] if juncture else None,
                "action_values": {
                    "Type": kind,
                    "Acceleration": rng.randint(6, 10),
                    "Handling": rng.randint(6, 10),
                    "Squeal": rng.randint(8, 12),
                    "Frame": rng.randint(6, 12),
                    "Crunch": rng.randint(6, 10),
                },
                "active": True,
                "attachments": images.attachment("vehicle", i),
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


def _document(seed: int, shape: str, large_images: bool) -> tuple[dict[str, Any], _Images]:
    """The template document without its `images` object, and the pictures it names."""
    if shape not in SHAPES:
        raise TemplateError(f"unknown template shape {shape!r}; one of: {', '.join(SHAPES)}")
    rich = shape == "rich"
    rng = random.Random(seed)
    images = _Images(large_images)
    factions = _factions(rng, images)
    junctures = _junctures(rng, images, linked=rich)
    schticks = _schticks(rng, images)
    weapons = _weapons(rng, images)
    characters = _characters(rng, images, schticks, weapons, factions, junctures, carries=rich)
    campaign = {
        "name": CAMPAIGN_NAME,
        "description": text.html_paragraphs(
            "The master template every new campaign is copied from: the full Feng Shui 2 "
            "catalogue of schticks, weapons, factions, junctures and archetypes.",
            "<em>“Welcome to the Chi War. Try not to die in the first sequence.”</em> — 老師",
        ),
        "attachments": images.attachment("banner", 0, "master-campaign"),
    }
    vehicles = _vehicles(rng, images, factions, junctures) if rich else []
    positions = (
        _positions(
            rng,
            [(c["ref"], "desktop_entity") for c in characters]
            + [(f["ref"], "desktop_index") for f in factions]
            + [(j["ref"], "mobile_index") for j in junctures]
            + [(CAMPAIGN_REF, "desktop_entity")],
        )
        if rich
        else []
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
        "vehicles": vehicles,
        "image_positions": positions,
    }
    _check_shape(document, shape, len(images.pictures))
    return document, images


def build_template_document(
    seed: int = SEED, *, shape: str = "production", large_images: bool = False
) -> dict[str, Any]:
    """The generated template as an in-memory exchange-format document, its images inline as
    base64 (see docs/template-format.md). With `large_images` that is ~400 MB of text: for
    a few pictures in tests, not for the full template (`generate_template` streams them)."""
    document, images = _document(seed, shape, large_images)
    entries = {}
    for checksum, picture in images.pictures.items():
        content = picture.render()
        entries[checksum] = {
            "content_type": "image/png",
            "byte_size": len(content),
            "data": base64.b64encode(content).decode("ascii"),
        }
    document["images"] = entries
    return document


def _chain_length(by_ref: dict[str, dict[str, Any]], ref: str) -> int:
    length = 1
    while (ref := by_ref[ref]["prerequisite"]) is not None:
        length += 1
    return length


def _check_shape(document: dict[str, Any], shape: str, images: int) -> None:
    """Fail loudly if the content lists no longer produce the shape's facts."""
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
        "junctures_linked": sum(1 for j in document["junctures"] if j["faction"]),
        "characters": len(characters),
        "character_schticks": sum(len(c["schticks"]) for c in characters),
        "carries": sum(len(c["weapons"]) for c in characters),
        "vehicles": len(document["vehicles"]),
        "image_positions": len(document["image_positions"]),
        "attachments": sum(
            len(r["attachments"])
            for s in (*sections, "vehicles")
            for r in ([document[s]] if s == "campaign" else document[s])
        ),
        "images": images,
    }
    expected = EXPECTED_SHAPES[shape]
    if actual != expected:
        drift = {k: (actual[k], v) for k, v in expected.items() if actual[k] != v}
        raise AssertionError(f"template content drifted from the {shape} shape: {drift}")


def generate_template(
    session: Session,
    store: ImageStore,
    *,
    shape: str = "production",
    large_images: bool = False,
    seed: int = SEED,
) -> Campaign:
    """Generate the master template and commit it (its own unit of work); see
    `generate_template_report` for what was stored."""
    return generate_template_report(
        session, store, shape=shape, large_images=large_images, seed=seed
    ).campaign


def generate_template_report(
    session: Session,
    store: ImageStore,
    *,
    shape: str = "production",
    large_images: bool = False,
    seed: int = SEED,
) -> WriteReport:
    """Generate the master template (of `shape`, optionally with MB-sized pictures) through
    the importer's validation and writer; commit. Raises TemplateError, writing nothing, when
    a master template already exists."""
    from portal.services.campaigns.records import find_master_template

    existing = find_master_template(session)
    if existing is not None:
        raise TemplateError(
            f"a master template already exists ({existing.name!r}, version "
            f"{existing.template_version}); import with --replace to supersede it"
        )
    document, images = _document(seed, shape, large_images)
    catalog = ImageCatalog(RenderedImages(images.pictures), max_bytes=2**62)
    catalog.present = True
    for checksum, picture in images.pictures.items():
        catalog.accept_content(checksum, "image/png", picture.render())
    template = validate_template(document, images=catalog)
    return write_template(session, store, template, operation="generate")

"""Check that a campaign is a faithful copy of the master template.

Whatever seeded a campaign (the traditional seeder, the batch seeder, a pool claim), the result
must be the template's content and structure under new ids. This module compares the two by
*structure*, never by id: schticks by (category, name) (names repeat across categories), weapons,
factions, junctures, characters and vehicles by name, links by the keys of both ends. Every
content column is compared except identity, ownership and timestamps, so a column added later is
checked without anyone remembering to add it here.

It also checks what a template comparison alone cannot see: a link (prerequisite, faction,
character schtick ...) that points into another campaign, a character not owned by the
campaign's owner, and image attachments that point at the wrong file, or at a "copy" blob that
references the template's own file (purging it would delete the template's image).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import (
    RECORD_TYPES,
    Campaign,
    Carry,
    Character,
    CharacterSchtick,
    ContentRow,
    Faction,
    ImageAttachment,
    ImageBlob,
    ImagePosition,
    Juncture,
    Schtick,
    Vehicle,
    Weapon,
)
from portal.services.campaigns.records import find_master_template
from portal.services.images.store import ImageStore, checksum_of

# Never compared: identity, ownership, the clock, and foreign keys (compared through the keys of
# the records they point at, see `_Loader._link`).
_NOT_CONTENT = frozenset(
    {
        "id",
        "campaign_id",
        "user_id",
        "created_at",
        "updated_at",
        "prerequisite_id",
        "faction_id",
        "juncture_id",
    }
)
# Record sections in the order they are reported: (label, model).
_SECTIONS: tuple[tuple[str, type[ContentRow]], ...] = (
    ("faction", Faction),
    ("juncture", Juncture),
    ("schtick", Schtick),
    ("weapon", Weapon),
    ("character", Character),
    ("vehicle", Vehicle),
)
COUNTED = (
    "factions",
    "junctures",
    "schticks",
    "prerequisites",
    "weapons",
    "characters",
    "character_schticks",
    "carries",
    "vehicles",
    "image_positions",
    "image_attachments",
)


class VerifyError(LookupError):
    """The comparison cannot be made (unknown campaign, no template); the message says why."""


class _Outside:
    """Marks a link whose target is not part of the campaign (reported once, as a problem)."""

    def __repr__(self) -> str:
        return "<outside the campaign>"


OUTSIDE = _Outside()


@dataclass
class VerifyReport:
    """The outcome of `verify_campaign`: `ok` when `differences` is empty."""

    campaign_id: uuid.UUID
    template_id: uuid.UUID
    differences: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        """One line: what was compared, for the OK output of `campaigns verify`."""
        parts = [
            f"{self.counts[name]['campaign']} {name}" for name in COUNTED if name in self.counts
        ]
        images = self.counts.get("image_attachments", {})
        if images:
            parts[-1] += f" ({images.get('shared', 0)} shared, {images.get('copied', 0)} copied)"
        return ", ".join(parts)


@dataclass
class _Attachment:
    name: str
    checksum: str
    blob_id: uuid.UUID
    file_id: str | None
    url: str | None


@dataclass
class _Snapshot:
    """A campaign reduced to comparable, id-free facts."""

    campaign: Campaign
    # section label -> record key -> the content fields of each record with that key
    records: dict[str, dict[Any, list[dict[str, Any]]]] = field(default_factory=dict)
    # record type name -> id -> record key (how links and positions name their ends)
    keys: dict[str, dict[uuid.UUID, Any]] = field(default_factory=dict)
    links: dict[str, Counter[tuple[Any, Any]]] = field(default_factory=dict)
    positions: Counter[tuple[Any, ...]] = field(default_factory=Counter)
    attachments: dict[tuple[str, Any], list[_Attachment]] = field(default_factory=dict)
    blobs: dict[uuid.UUID, ImageBlob] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def verify_campaign(
    session: Session,
    campaign_id: uuid.UUID | str,
    template_id: uuid.UUID | str | None = None,
    *,
    store: ImageStore | None = None,
) -> VerifyReport:
    """Compare a campaign with the master template (or with `template_id`).

    With a `store`, every distinct image file the campaign uses is also fetched and its checksum
    checked against the blob's: slower (one download per file), for when the database alone is
    not trusted.
    """
    campaign = _campaign(session, campaign_id, "campaign")
    template = _template(session, template_id)
    is_self = campaign.id == template.id
    mine = _Loader(session, campaign, check_owner=not is_self).load()
    theirs = mine if is_self else _Loader(session, template, check_owner=False).load()
    return _report(campaign, template, mine, theirs, store)


def verify_campaigns(
    session: Session, campaign_ids: Iterable[uuid.UUID | str], *, store: ImageStore | None = None
) -> list[VerifyReport]:
    """`verify_campaign` for many campaigns against the master template, which is read once
    rather than once per campaign: reading a campaign is most of a verification's cost, so
    checking every campaign a load test created takes half as long."""
    template = _template(session, None)
    theirs = _Loader(session, template, check_owner=False).load()
    reports = []
    for campaign_id in campaign_ids:
        campaign = _campaign(session, campaign_id, "campaign")
        is_self = campaign.id == template.id
        mine = theirs if is_self else _Loader(session, campaign, check_owner=not is_self).load()
        reports.append(_report(campaign, template, mine, theirs, store))
    return reports


def _template(session: Session, template_id: uuid.UUID | str | None) -> Campaign:
    if template_id is not None:
        return _campaign(session, template_id, "template")
    template = find_master_template(session)
    if template is None:
        raise VerifyError("there is no master template to compare with")
    return template


def _report(
    campaign: Campaign,
    template: Campaign,
    mine: _Snapshot,
    theirs: _Snapshot,
    store: ImageStore | None,
) -> VerifyReport:
    """The differences between two snapshots, as the report `campaigns verify` prints."""
    is_self = mine is theirs
    report = VerifyReport(campaign_id=campaign.id, template_id=template.id)
    diffs = report.differences
    for name in COUNTED:
        ours, tmpl = mine.counts[name], theirs.counts[name]
        report.counts[name] = {"campaign": ours, "template": tmpl}
        if ours != tmpl:
            diffs.append(f"{name}: {ours} in the campaign, {tmpl} in the template")
    if (
        campaign.template_version is not None
        and template.template_version is not None
        and campaign.template_version != template.template_version
    ):
        diffs.append(
            f"template_version: {campaign.template_version} (template: {template.template_version})"
        )
    diffs.extend(mine.problems)
    if not is_self:
        diffs.extend(f"template: {problem}" for problem in theirs.problems)
    for label, _model in _SECTIONS:
        _compare_records(label, mine.records[label], theirs.records[label], diffs)
    for name, what in (("character_schticks", "schtick"), ("carries", "weapon")):
        _compare_counters(
            mine.links[name],
            theirs.links[name],
            lambda pair, what=what: f"character {_fmt(pair[0])} -> {what} {_fmt(pair[1])}",
            "link",
            diffs,
        )
    _compare_counters(mine.positions, theirs.positions, _fmt_position, "image position", diffs)
    shared, copied = _compare_attachments(mine, theirs, is_self, diffs)
    report.counts["image_attachments"].update(shared=shared, copied=copied)
    if store is not None:
        diffs.extend(_check_files(store, mine.blobs.values()))
    return report


def _campaign(session: Session, raw_id: uuid.UUID | str, what: str) -> Campaign:
    try:
        campaign_id = raw_id if isinstance(raw_id, uuid.UUID) else uuid.UUID(str(raw_id).strip())
    except ValueError:
        raise VerifyError(f"{what} id {raw_id!r} is not a UUID") from None
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise VerifyError(f"no {what} with id {campaign_id}")
    return campaign


# ---------------------------------------------------------------------------- loading


class _Loader:
    """Reads one campaign's content in a few queries and reduces it to a `_Snapshot`."""

    def __init__(self, session: Session, campaign: Campaign, *, check_owner: bool) -> None:
        self.session = session
        self.snap = _Snapshot(campaign=campaign)
        self.check_owner = check_owner

    def load(self) -> _Snapshot:
        snap, cid = self.snap, self.snap.campaign.id
        rows: dict[str, list[Any]] = {}
        for label, model in _SECTIONS:
            stmt = sa.select(model).where(model.campaign_id == cid)
            rows[label] = list(self.session.scalars(stmt))
        # Keys first, so every link can be named whatever order the records come in.
        snap.keys["Campaign"] = {cid: "campaign"}
        for label, model in _SECTIONS:
            snap.keys[model.__name__] = {r.id: self._key(r) for r in rows[label]}
        for label, _model in _SECTIONS:
            section: dict[Any, list[dict[str, Any]]] = defaultdict(list)
            for record in rows[label]:
                section[self._key(record)].append(self._fields(label, record))
            snap.records[label] = dict(section)
            snap.counts[f"{label}s"] = len(rows[label])
        snap.counts["prerequisites"] = sum(1 for r in rows["schtick"] if r.prerequisite_id)
        self._load_links()
        self._load_positions()
        self._load_attachments()
        return snap

    @staticmethod
    def _key(record: Any) -> Any:
        return (record.category, record.name) if isinstance(record, Schtick) else record.name

    def _fields(self, label: str, record: Any) -> dict[str, Any]:
        values = {
            attr.key: getattr(record, attr.key)
            for attr in sa.inspect(type(record)).column_attrs
            if attr.key not in _NOT_CONTENT
        }
        where = f"{label} {_fmt(self._key(record))}"
        if isinstance(record, Schtick):
            values["prerequisite"] = self._link(
                where, "prerequisite", "Schtick", record.prerequisite_id
            )
        if isinstance(record, Juncture | Character | Vehicle):
            values["faction"] = self._link(where, "faction", "Faction", record.faction_id)
        if isinstance(record, Character | Vehicle):
            values["juncture"] = self._link(where, "juncture", "Juncture", record.juncture_id)
            if self.check_owner and record.user_id != self.snap.campaign.user_id:
                self.snap.problems.append(
                    f"{where}: owned by {record.user_id}, not by the campaign owner "
                    f"{self.snap.campaign.user_id}"
                )
        return values

    def _link(self, where: str, link: str, type_name: str, target_id: uuid.UUID | None) -> Any:
        if target_id is None:
            return None
        key = self.snap.keys[type_name].get(target_id, OUTSIDE)
        if key is OUTSIDE:
            self.snap.problems.append(f"{where}.{link} points outside the campaign ({target_id})")
        return key

    def _load_links(self) -> None:
        cid = self.snap.campaign.id
        characters = self.snap.keys["Character"]
        for name, table, column, type_name in (
            ("character_schticks", CharacterSchtick, CharacterSchtick.schtick_id, "Schtick"),
            ("carries", Carry, Carry.weapon_id, "Weapon"),
        ):
            counter: Counter[tuple[Any, Any]] = Counter()
            stmt = (
                sa.select(table.character_id, column)
                .join(Character, Character.id == table.character_id)
                .where(Character.campaign_id == cid)
            )
            for character_id, target_id in self.session.execute(stmt):
                where = f"character {_fmt(characters[character_id])}"
                target = self._link(where, type_name.lower(), type_name, target_id)
                counter[(characters[character_id], target)] += 1
            self.snap.links[name] = counter
            self.snap.counts[name] = sum(counter.values())

    def _owned(self, type_column: Any, id_column: Any) -> Iterable[tuple[str, Any]]:
        """(type name, condition) selecting rows of a polymorphic table owned by this campaign."""
        cid = self.snap.campaign.id
        for type_name, model in RECORD_TYPES.items():
            if issubclass(model, Campaign):  # the "Campaign" record type: the campaign itself
                yield type_name, sa.and_(type_column == type_name, id_column == cid)
                continue
            ids = sa.select(model.id).where(model.campaign_id == cid)
            yield type_name, sa.and_(type_column == type_name, id_column.in_(ids))

    def _load_positions(self) -> None:
        for type_name, owned in self._owned(
            ImagePosition.positionable_type, ImagePosition.positionable_id
        ):
            keys = self.snap.keys.get(type_name, {})
            for position in self.session.scalars(sa.select(ImagePosition).where(owned)):
                self.snap.positions[
                    (
                        type_name,
                        keys[position.positionable_id],
                        position.context,
                        position.x_position,
                        position.y_position,
                        _canonical(position.style_overrides),
                    )
                ] += 1
        self.snap.counts["image_positions"] = sum(self.snap.positions.values())

    def _load_attachments(self) -> None:
        total = 0
        for type_name, owned in self._owned(ImageAttachment.record_type, ImageAttachment.record_id):
            keys = self.snap.keys.get(type_name, {})
            stmt = (
                sa.select(ImageAttachment, ImageBlob)
                .join(ImageBlob, ImageBlob.id == ImageAttachment.blob_id)
                .where(owned)
            )
            for attachment, blob in self.session.execute(stmt):
                meta = blob.meta or {}
                owner = (type_name, keys[attachment.record_id])
                self.snap.attachments.setdefault(owner, []).append(
                    _Attachment(
                        name=attachment.name,
                        checksum=blob.checksum,
                        blob_id=blob.id,
                        file_id=meta.get("fileId"),
                        url=meta.get("url"),
                    )
                )
                self.snap.blobs[blob.id] = blob
                total += 1
        self.snap.counts["image_attachments"] = total


# ---------------------------------------------------------------------------- comparing


def _compare_records(
    label: str,
    mine: dict[Any, list[dict[str, Any]]],
    theirs: dict[Any, list[dict[str, Any]]],
    diffs: list[str],
) -> None:
    for key in sorted(mine.keys() | theirs.keys(), key=repr):
        ours, tmpl = mine.get(key, []), theirs.get(key, [])
        where = f"{label} {_fmt(key)}"
        if not ours:
            diffs.append(f"{where}: missing")
        elif not tmpl:
            diffs.append(f"{where}: not in the template")
        elif len(ours) != len(tmpl):
            diffs.append(f"{where}: {len(ours)} in the campaign, {len(tmpl)} in the template")
        elif len(ours) == 1:
            for name in sorted(ours[0].keys() | tmpl[0].keys()):
                value, expected = ours[0].get(name), tmpl[0].get(name)
                if value is OUTSIDE:
                    continue  # already reported as a problem
                if _canonical(value) != _canonical(expected):
                    diffs.append(f"{where}.{name}: {_short(value)} (template: {_short(expected)})")
        elif sorted(map(_canonical, ours)) != sorted(map(_canonical, tmpl)):
            diffs.append(
                f"{where}: the {len(ours)} records of that name differ from the template's"
            )


def _compare_counters(
    mine: Counter[Any], theirs: Counter[Any], fmt: Any, what: str, diffs: list[str]
) -> None:
    for item in sorted(mine.keys() | theirs.keys(), key=repr):
        ours, tmpl = mine.get(item, 0), theirs.get(item, 0)
        if any(part is OUTSIDE for part in item):
            continue  # already reported as a problem
        if ours == tmpl:
            continue
        if ours == 0:
            diffs.append(f"{what} {fmt(item)}: missing")
        elif tmpl == 0:
            diffs.append(f"{what} {fmt(item)}: not in the template")
        else:
            diffs.append(f"{what} {fmt(item)}: {ours} in the campaign, {tmpl} in the template")


def _compare_attachments(
    mine: _Snapshot, theirs: _Snapshot, is_self: bool, diffs: list[str]
) -> tuple[int, int]:
    """Per record: the same number of attachments, by name, each on a blob with the template's
    checksum and a usable file reference. Returns (shared, copied) attachment counts."""
    shared = copied = 0
    template_files = {a.file_id for atts in theirs.attachments.values() for a in atts}
    template_blobs = {a.blob_id for atts in theirs.attachments.values() for a in atts}
    for owner in sorted(mine.attachments.keys() | theirs.attachments.keys(), key=repr):
        where = f"{owner[0]} {_fmt(owner[1])}"
        ours = sorted(mine.attachments.get(owner, []), key=lambda a: (a.name, a.checksum))
        tmpl = sorted(theirs.attachments.get(owner, []), key=lambda a: (a.name, a.checksum))
        if len(ours) != len(tmpl):
            diffs.append(f"{where}: {len(ours)} image attachment(s) (template: {len(tmpl)})")
        for ours_att, tmpl_att in zip(ours, tmpl, strict=False):
            if ours_att.name != tmpl_att.name:
                diffs.append(
                    f"{where}: image named {ours_att.name!r} (template: {tmpl_att.name!r})"
                )
            if ours_att.checksum != tmpl_att.checksum:
                diffs.append(
                    f"{where}: image {ours_att.name!r} points at the wrong file (checksum "
                    f"{ours_att.checksum[:12]}…, template: {tmpl_att.checksum[:12]}…)"
                )
        for att in ours:
            if not att.file_id or not att.url:
                diffs.append(f"{where}: image {att.name!r} has a blob with no file reference")
            if is_self or att.blob_id in template_blobs:
                shared += 1
            else:
                copied += 1
                if att.file_id and att.file_id in template_files:
                    diffs.append(
                        f"{where}: image {att.name!r} is a copy whose blob references the "
                        f"template's file {att.file_id!r} (purging it would delete that file)"
                    )
    return shared, copied


def _check_files(store: ImageStore, blobs: Iterable[ImageBlob]) -> list[str]:
    """Fetch each file and compare its checksum with the blob's."""
    problems = []
    for blob in sorted(blobs, key=lambda b: b.key):
        try:
            content = store.fetch(blob.meta or {})
        except Exception as exc:  # any store failure is a finding, not a crash
            problems.append(f"image file {blob.key!r}: cannot be fetched ({exc})")
            continue
        if checksum_of(content) != blob.checksum:
            problems.append(f"image file {blob.key!r}: content does not match its checksum")
    return problems


# ---------------------------------------------------------------------------- formatting


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, ensure_ascii=False)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(key: Any) -> str:
    return repr(key)


def _fmt_position(item: tuple[Any, ...]) -> str:
    type_name, key, context, x, y, overrides = item
    return f"({type_name} {_fmt(key)}, {context!r}, x={x}, y={y}, overrides={overrides})"

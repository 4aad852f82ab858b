"""The traditional seeder: copy the template into a campaign one ORM record at a time.

It is the reference path (what "a correct copy" means) and the last-resort fallback when batch
seeding cannot run, so it favours being obviously right over being fast:

* records are copied in dependency order (factions, junctures, schticks, weapons, characters and
  their links, vehicles, image positions, then the campaign's own image) and every foreign key is
  remapped through an old->new id map, never by name (schtick names repeat across categories);
* prerequisites are linked in a second pass, once every schtick of the campaign exists;
* a record's images are attached only after the record has been flushed, so an attachment never
  points at a row that does not exist (the original system attached first and lost images);
* the whole copy plus the campaign's `seeded_at` is one transaction, run through
  `run_unit_of_work` so that a dropped connection rolls back and starts again instead of leaving
  half a campaign, and never leaves two copies.

Copies get fresh ids and fresh created_at/updated_at; characters and vehicles belong to the
target campaign's owner. Everything else (including `active`) is copied as it is.
"""

from __future__ import annotations

import copy
import logging
import time
import uuid
from collections import defaultdict
from typing import Any, Literal, TypeVar

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from sqlalchemy.orm import Session, make_transient_to_detached

from portal.models import (
    Base,
    Campaign,
    Carry,
    Character,
    CharacterSchtick,
    ContentRow,
    Faction,
    ImageAttachment,
    ImagePosition,
    Juncture,
    Schtick,
    Vehicle,
    Weapon,
    utcnow,
)
from portal.services.images.store import ImageStore
from portal.services.infra.retry import run_unit_of_work
from portal.services.seeding.base import SeedingError, SeedResult

log = logging.getLogger("portal.seeding")

ImageMode = Literal["share", "copy"]
IMAGE_MODES: tuple[str, ...] = ("share", "copy")
M = TypeVar("M", bound=ContentRow)

# Columns a copy never takes from its source: identity, ownership and the clock.
_NEVER_COPIED = frozenset({"id", "campaign_id", "user_id", "created_at", "updated_at"})


def record_label(record: Base) -> str:
    """How a record is named in logs and errors: schticks by (category, name), others by name."""
    if isinstance(record, Schtick):
        return repr((record.category, record.name))
    return repr(getattr(record, "name", str(getattr(record, "id", "?"))))


class TraditionalSeeder:
    """Per-record copy of a template campaign into an empty target campaign."""

    method = "traditional"

    def __init__(
        self,
        session: Session,
        store: ImageStore,
        *,
        image_mode: ImageMode | str = "share",
        attempts: int = 3,
    ) -> None:
        if image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {', '.join(IMAGE_MODES)}: {image_mode!r}")
        self.session = session
        self.store = store
        self.image_mode = image_mode
        self.attempts = attempts
        # Files uploaded by copy mode in the current attempt: deleted again if it is rolled back.
        self._uploaded: list[dict[str, Any]] = []
        self._attempt = 0
        self._committed_result: SeedResult | None = None

    # ------------------------------------------------------------------ public entry point

    def seed(self, target: Campaign, template: Campaign) -> SeedResult:
        """Copy `template` into `target` (an empty, flushed shell) and commit both together.

        The shell's column values are captured first: if a dropped connection rolls the
        transaction back, the retry re-creates the shell (same id) before copying again. Only the
        shell is re-created: anything else the caller wrote uncommitted before calling `seed()`
        would be lost with the rolled-back attempt, so commit such rows (the owner, say) first.
        """
        if target.seeded_at is not None:
            raise SeedingError(f"campaign {target.id} is already seeded")
        if target.id == template.id:
            raise SeedingError("a campaign cannot be seeded from itself")
        shell = {
            attr.key: getattr(target, attr.key)
            for attr in sa.inspect(Campaign).column_attrs
            if attr.key not in ("seeded_at",)
        }
        self._attempt = 0
        self._committed_result = None
        self._uploaded = []
        context = {
            "campaign_id": str(target.id),
            "template_id": str(template.id),
            "method": self.method,
            "image_mode": self.image_mode,
        }
        started = time.perf_counter()
        log.info("seeding.started", extra=context)
        try:
            result = run_unit_of_work(
                self.session,
                lambda: self._run_attempt(target, template, shell, started, context),
                attempts=self.attempts,
                context=context,
            )
        except BaseException as exc:
            self._discard_uploads(shell["id"], context)
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
            log.error("seeding.failed", extra={**context, "error": first_line})
            raise
        self._uploaded = []
        log.info(
            "seeding.finished",
            extra={
                **context,
                "attempts": self._attempt,
                "duration_ms": result.duration_ms,
                "rows": result.rows,
            },
        )
        return result

    # ------------------------------------------------------------------ one attempt

    def _run_attempt(
        self,
        target: Campaign,
        template: Campaign,
        shell: dict[str, Any],
        started: float,
        context: dict[str, Any],
    ) -> SeedResult:
        self._attempt += 1
        if self._attempt > 1:
            done = self._recover_after_rollback(target, shell, context)
            if done is not None:
                return done
        try:
            return self._copy_all(target, template, started, context)
        except BaseException:
            self._discard_uploads(shell["id"], context)
            raise

    def _recover_after_rollback(
        self, target: Campaign, shell: dict[str, Any], context: dict[str, Any]
    ) -> SeedResult | None:
        """Put the target back the way `seed()` found it, after a rolled-back attempt.

        A shell created in the rolled-back transaction is gone from the database and was
        expunged from the session: re-create it with the captured values (same id). If the row is
        there and seeded, the previous COMMIT did reach the server before the connection died:
        the work is done, and doing it again would duplicate it."""
        self._discard_uploads(shell["id"], context)
        row = self.session.execute(
            sa.select(Campaign.id, Campaign.seeded_at).where(Campaign.id == shell["id"])
        ).first()
        if row is None:
            for key, value in shell.items():
                setattr(target, key, value)
            target.seeded_at = None
            self.session.add(target)
            self.session.flush()
            log.info("seeding.shell_recreated", extra={**context, "attempt": self._attempt})
            return None
        if not sa.inspect(target).persistent:
            make_transient_to_detached(target)
            self.session.add(target)
            self.session.expire(target)
        if row.seeded_at is None:
            return None
        if self._committed_result is None:
            raise SeedingError(f"campaign {target.id} was seeded by someone else meanwhile")
        log.warning("seeding.commit_had_succeeded", extra={**context, "attempt": self._attempt})
        return self._committed_result

    def _copy_all(
        self, target: Campaign, template: Campaign, started: float, context: dict[str, Any]
    ) -> SeedResult:
        session = self.session
        self._now = utcnow()
        self._rows: dict[str, int] = defaultdict(int)
        self._images = self._template_attachments(template)
        self._context = context
        ids: dict[str, dict[uuid.UUID, uuid.UUID]] = {}
        template_id, target_id, owner_id = template.id, target.id, target.user_id

        def rows_of(model: type[M]) -> list[M]:
            stmt = sa.select(model).where(model.campaign_id == template_id)
            return list(session.scalars(stmt.order_by(model.created_at, model.id)))

        factions = ids["Faction"] = {}
        for faction in rows_of(Faction):
            factions[faction.id] = self._copy(faction, target_id).id

        junctures = ids["Juncture"] = {}
        for juncture in rows_of(Juncture):
            new_faction = self._remap(factions, juncture.faction_id, juncture, "faction")
            junctures[juncture.id] = self._copy(juncture, target_id, faction_id=new_faction).id

        # Schticks first without prerequisites, then the links, once every schtick exists.
        schticks = ids["Schtick"] = {}
        new_schticks: list[tuple[Schtick, Schtick]] = []
        for schtick in rows_of(Schtick):
            new_schtick = self._copy(schtick, target_id, prerequisite_id=None)
            schticks[schtick.id] = new_schtick.id
            new_schticks.append((schtick, new_schtick))
        for schtick, new_schtick in new_schticks:
            if schtick.prerequisite_id is None:
                continue
            new_schtick.prerequisite_id = self._remap(
                schticks, schtick.prerequisite_id, schtick, "prerequisite"
            )
            self._rows["schtick_prerequisites"] += 1
            session.flush()

        weapons = ids["Weapon"] = {}
        for weapon in rows_of(Weapon):
            weapons[weapon.id] = self._copy(weapon, target_id).id

        characters = ids["Character"] = {}
        for character in rows_of(Character):
            new = self._copy(
                character,
                target_id,
                user_id=owner_id,
                faction_id=self._remap(factions, character.faction_id, character, "faction"),
                juncture_id=self._remap(junctures, character.juncture_id, character, "juncture"),
            )
            characters[character.id] = new.id
            self._copy_character_links(character, new.id, schticks, weapons)

        vehicles = ids["Vehicle"] = {}
        for vehicle in rows_of(Vehicle):
            vehicles[vehicle.id] = self._copy(
                vehicle,
                target_id,
                user_id=owner_id,
                faction_id=self._remap(factions, vehicle.faction_id, vehicle, "faction"),
                juncture_id=self._remap(junctures, vehicle.juncture_id, vehicle, "juncture"),
            ).id

        ids["Campaign"] = {template_id: target_id}
        self._copy_image_positions(ids)
        self._attach_images(template, target)

        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        target.seeded_at = utcnow()
        target.seeding_method = self.method
        target.seeding_duration_ms = duration_ms
        target.template_version = template.template_version
        session.flush()
        rows = {
            "factions": len(factions),
            "junctures": len(junctures),
            "schticks": len(schticks),
            "weapons": len(weapons),
            "characters": len(characters),
            "character_schticks": self._rows["character_schticks"],
            "carries": self._rows["carries"],
            "vehicles": len(vehicles),
            "image_positions": self._rows["image_positions"],
            "image_attachments": self._rows["image_attachments"],
            "image_blobs": self._rows["image_blobs"],
        }
        self._committed_result = SeedResult(
            campaign_id=target_id, method=self.method, duration_ms=duration_ms, rows=rows
        )
        return self._committed_result

    # ------------------------------------------------------------------ per-record helpers

    def _copy(self, old: M, campaign_id: uuid.UUID, **overrides: Any) -> M:
        """Insert a copy of `old` into the target campaign, then attach its images."""
        model = type(old)
        values = {
            attr.key: copy.deepcopy(getattr(old, attr.key))
            for attr in sa.orm.class_mapper(model).column_attrs
            if attr.key not in _NEVER_COPIED
        }
        values.update(overrides)
        new = model(
            **values,
            id=uuid.uuid4(),
            campaign_id=campaign_id,
            created_at=self._now,
            updated_at=self._now,
        )
        self.session.add(new)
        self.session.flush()  # the record exists before anything points at it
        self._attach_record_images(model.__name__, old.id, new)
        return new

    def _remap(
        self,
        id_map: dict[uuid.UUID, uuid.UUID],
        old_id: uuid.UUID | None,
        record: Base,
        link: str,
    ) -> uuid.UUID | None:
        if old_id is None:
            return None
        try:
            return id_map[old_id]
        except KeyError:
            raise SeedingError(
                f"template {type(record).__name__} {record_label(record)}: its {link} "
                f"({old_id}) is not part of the template campaign"
            ) from None

    def _copy_character_links(
        self,
        old: Character,
        new_id: uuid.UUID,
        schticks: dict[uuid.UUID, uuid.UUID],
        weapons: dict[uuid.UUID, uuid.UUID],
    ) -> None:
        session = self.session
        for (schtick_id,) in session.execute(
            sa.select(CharacterSchtick.schtick_id)
            .where(CharacterSchtick.character_id == old.id)
            .order_by(CharacterSchtick.schtick_id)
        ):
            session.add(
                CharacterSchtick(
                    character_id=new_id,
                    schtick_id=self._remap(schticks, schtick_id, old, "schtick"),
                )
            )
            self._rows["character_schticks"] += 1
        for (weapon_id,) in session.execute(
            sa.select(Carry.weapon_id).where(Carry.character_id == old.id).order_by(Carry.weapon_id)
        ):
            session.add(
                Carry(character_id=new_id, weapon_id=self._remap(weapons, weapon_id, old, "weapon"))
            )
            self._rows["carries"] += 1
        session.flush()

    def _copy_image_positions(self, ids: dict[str, dict[uuid.UUID, uuid.UUID]]) -> None:
        """Positions are polymorphic (type + id, no campaign column): the template's are the ones
        whose owner is a template record, and each copy points at that owner's copy."""
        for type_name, id_map in ids.items():
            if not id_map:
                continue
            positions = self.session.scalars(
                sa.select(ImagePosition)
                .where(
                    ImagePosition.positionable_type == type_name,
                    ImagePosition.positionable_id.in_(list(id_map)),
                )
                .order_by(ImagePosition.created_at, ImagePosition.id)
            ).all()
            for old in positions:
                new = ImagePosition(
                    id=uuid.uuid4(),
                    positionable_type=type_name,
                    positionable_id=id_map[old.positionable_id],
                    context=old.context,
                    x_position=old.x_position,
                    y_position=old.y_position,
                    style_overrides=copy.deepcopy(old.style_overrides),
                    created_at=self._now,
                    updated_at=self._now,
                )
                self.session.add(new)
                self.session.flush()
                self._rows["image_positions"] += 1

    # ------------------------------------------------------------------ images

    def _template_attachments(
        self, template: Campaign
    ) -> dict[tuple[str, uuid.UUID], list[ImageAttachment]]:
        """Every attachment of the template's records, by (record_type, record_id), blobs loaded.

        One query per record type (by the template's record ids), not one per record."""
        out: dict[tuple[str, uuid.UUID], list[ImageAttachment]] = defaultdict(list)
        owners: dict[str, Any] = {"Campaign": ImageAttachment.record_id == template.id}
        for model in (Faction, Juncture, Schtick, Weapon, Character, Vehicle):
            ids_of_template = sa.select(model.id).where(model.campaign_id == template.id)
            owners[model.__name__] = ImageAttachment.record_id.in_(ids_of_template)
        for type_name, owned in owners.items():
            rows = self.session.scalars(
                sa.select(ImageAttachment)
                .where(ImageAttachment.record_type == type_name, owned)
                .options(sa.orm.joinedload(ImageAttachment.blob))
                .order_by(ImageAttachment.created_at, ImageAttachment.id)
            ).all()
            for attachment in rows:
                out[(type_name, attachment.record_id)].append(attachment)
        return out

    def _attach_images(self, template: Campaign, target: Campaign) -> None:
        self._attach_record_images("Campaign", template.id, target)

    def _attach_record_images(
        self, type_name: str, old_id: uuid.UUID, new: Campaign | ContentRow
    ) -> None:
        """Attach to the (already flushed) copy what the template record has: the same blob in
        share mode, an uploaded copy of the file in copy mode."""
        from portal.services.images.blobs import attach_image

        for attachment in self._images.get((type_name, old_id), ()):
            context = {
                **self._context,
                "record_type": type_name,
                "record_id": str(new.id),
                "record": record_label(new),
                "template_record_id": str(old_id),
            }
            try:
                created = attach_image(
                    self.session,
                    new,
                    attachment.blob,
                    store=self.store,
                    mode=self.image_mode,
                    name=attachment.name,
                    context=context,
                )
            except sa_exc.DBAPIError:
                raise  # a database problem, possibly a dropped connection: let the retry see it
            except Exception as exc:
                log.error("seeding.image_failed", extra={**context, "error": str(exc)})
                raise SeedingError(
                    f"could not {self.image_mode} the image {attachment.name!r} of {type_name} "
                    f"{record_label(new)} (template record {old_id}, file "
                    f"{attachment.blob.key!r}): {exc}"
                ) from exc
            self._rows["image_attachments"] += 1
            if created.blob_id != attachment.blob_id:
                self._rows["image_blobs"] += 1
                self._uploaded.append(dict(created.blob.meta or {}))

    def _discard_uploads(self, campaign_id: uuid.UUID, context: dict[str, Any]) -> None:
        """Delete files copy mode uploaded for an attempt that did not commit (best effort).

        Only when the database confirms the campaign is not seeded: if a COMMIT reached the
        server just before the connection died, those files are in use and must stay."""
        if not self._uploaded:
            return
        uploads, self._uploaded = self._uploaded, []
        try:
            self.session.rollback()
            seeded = self.session.scalar(
                sa.select(Campaign.seeded_at).where(Campaign.id == campaign_id)
            )
        except sa_exc.SQLAlchemyError as exc:
            log.warning(
                "seeding.orphaned_uploads",
                extra={**context, "files": [u.get("fileId") for u in uploads], "error": str(exc)},
            )
            return
        if seeded is not None:
            return
        for meta in uploads:
            try:
                self.store.delete(meta, context=context)
            except Exception as exc:  # keep going: one stuck file must not hide the real error
                log.warning(
                    "seeding.orphaned_upload",
                    extra={**context, "file": meta.get("fileId"), "error": str(exc)},
                )
        log.info("seeding.uploads_discarded", extra={**context, "files": len(uploads)})

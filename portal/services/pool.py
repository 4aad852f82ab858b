"""The campaign pool: find and atomically claim a ready campaign and hand it to a user.

A claim is one statement: an UPDATE whose WHERE picks the oldest ready campaign of the right pool
and template version. On PostgreSQL the candidate is selected `FOR UPDATE SKIP LOCKED`, so
concurrent claimers never wait on each other and never get the same row; on SQLite (which
serializes writers) the UPDATE is guarded by `pool_status = 'ready'` and its row count tells
whether the claim won. The same UPDATE renames the campaign, transfers ownership and resets its
timestamps; the child rows' timestamps (and owners) follow in a handful of set-based UPDATEs in the
same transaction, so a user sees a campaign "created today" while `pool_created_at` keeps the truth.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.models import (
    Campaign,
    Character,
    Faction,
    ImagePosition,
    Juncture,
    PoolEvent,
    Schtick,
    User,
    Vehicle,
    Weapon,
    utcnow,
)
from portal.services.campaigns import CampaignError, name_taken

log = logging.getLogger("portal.pool")

# Content tables whose rows carry created_at/updated_at and a campaign_id.
TIMESTAMPED_CONTENT = (Schtick, Weapon, Faction, Juncture, Character, Vehicle)
# Content whose rows belong to a user and follow the campaign's owner on a master-pool claim.
OWNED_CONTENT = (Character, Vehicle)


class NameTakenError(CampaignError):
    """The user already has a campaign with that name (HTTP 422 in the API)."""


@dataclass(frozen=True)
class Assignment:
    campaign_id: uuid.UUID
    pool_type: str
    source: str  # "user_pool" | "master_pool"
    pool_created_at: datetime | None
    activated_at: datetime
    duration_ms: float


def current_template_version(session: Session) -> int | None:
    """The master template's version (one column, no ORM object: this is on the claim path)."""
    return session.scalar(
        sa.select(Campaign.template_version).where(Campaign.is_master_template.is_(True)).limit(1)
    )


class CampaignPoolService:
    """Find and assign pool campaigns. Methods that claim own their transaction and commit."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- queries ---------------------------------------------------------------------------

    def _ready_filter(self, pool_type: str, version: int, user: User | None) -> list:
        clauses = [
            Campaign.is_pool.is_(True),
            Campaign.pool_status == "ready",
            Campaign.pool_type == pool_type,
            Campaign.template_version == version,
        ]
        if pool_type == "user" and user is not None:
            clauses.append(Campaign.user_id == user.id)
        return clauses

    def find_available_pool(self, user: User) -> Campaign | None:
        """The campaign a claim would pick for `user` now (own user pool first, then master);
        read-only, for display and decisions; `assign_pool_campaign` is what claims."""
        version = current_template_version(self.session)
        if version is None:
            return None
        for pool_type in ("user", "master"):
            if pool_type == "user" and not user.gamemaster:
                continue
            stmt = (
                sa.select(Campaign)
                .where(*self._ready_filter(pool_type, version, user))
                .order_by(Campaign.pool_created_at, Campaign.id)
                .limit(1)
            )
            found = self.session.scalars(stmt).first()
            if found is not None:
                return found
        return None

    # -- claiming ----------------------------------------------------------------------------

    def _claim_statement(
        self,
        pool_type: str,
        version: int,
        user: User,
        name: str,
        description: str | None,
        now: datetime,
    ) -> sa.Update:
        candidate = (
            sa.select(Campaign.id)
            .where(*self._ready_filter(pool_type, version, user))
            .order_by(Campaign.pool_created_at, Campaign.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        return (
            sa.update(Campaign)
            .where(
                Campaign.id == candidate,
                Campaign.is_pool.is_(True),
                Campaign.pool_status == "ready",
            )
            .values(
                name=name,
                description=description,
                user_id=user.id,
                is_pool=False,
                pool_status="assigned",
                activated_at=now,
                created_at=now,
                updated_at=now,
            )
            .returning(Campaign.id, Campaign.pool_created_at)
        )

    def _claim(
        self,
        pool_type: str,
        version: int,
        user: User,
        name: str,
        description: str | None,
        now: datetime,
    ) -> tuple[uuid.UUID, datetime | None] | None:
        """Claim and reset one campaign; (id, pool_created_at), or None if the pool is empty.

        On PostgreSQL the claim and every child reset travel as ONE statement (data-modifying
        CTEs that all key on the claimed id), which removes nine round trips from the hot path.
        SQLite runs the same UPDATEs one after another inside the transaction."""
        claim = self._claim_statement(pool_type, version, user, name, description, now)
        if self.session.get_bind().dialect.name == "postgresql":
            claimed = claim.cte("claimed")
            claimed_id = sa.select(claimed.c.id).scalar_subquery()
            stmt = sa.select(claimed.c.id, claimed.c.pool_created_at).add_cte(
                *(
                    update.cte(f"reset_{i}")
                    for i, update in enumerate(_child_updates(claimed_id, user.id, now))
                )
            )
            row = self.session.execute(stmt).first()
            return (row[0], row[1]) if row else None
        row = self.session.execute(claim.execution_options(synchronize_session=False)).first()
        if row is None:
            return None
        for update in _child_updates(row[0], user.id, now):
            self.session.execute(update.execution_options(synchronize_session=False))
        return (row[0], row[1])

    def assign_pool_campaign(
        self, user: User, name: str, description: str | None = None
    ) -> Assignment | None:
        """Claim a ready campaign for `user`, rename it and make it theirs, in one transaction.

        Returns None when no pool has a ready campaign of the current template version (the
        caller falls back to seeding). Raises NameTakenError, leaving the pool untouched, when
        the user already has a campaign called `name`.
        """
        started = time.perf_counter()
        session = self.session
        if name_taken(session, user.id, name):
            raise NameTakenError("has already been taken")
        version = current_template_version(session)
        if version is None:
            return None
        now = utcnow()
        pool_types = ("user", "master") if user.gamemaster else ("master",)
        for pool_type in pool_types:
            try:
                claimed = self._claim(pool_type, version, user, name, description, now)
            except IntegrityError:
                # The name was taken between the check and the claim: nothing was changed.
                session.rollback()
                raise NameTakenError("has already been taken") from None
            if claimed is None:
                continue
            campaign_id, pool_created_at = claimed
            duration_ms = round((time.perf_counter() - started) * 1000, 3)
            pool_age_s = (now - pool_created_at).total_seconds() if pool_created_at else None
            session.execute(
                sa.insert(PoolEvent).values(
                    kind="assigned",
                    campaign_id=campaign_id,
                    user_id=user.id,
                    pool_type=pool_type,
                    duration_ms=duration_ms,
                    detail={"pool_age_s": pool_age_s, "template_version": version},
                    created_at=now,
                )
            )
            session.commit()
            log.info(
                "pool.assigned",
                extra={
                    "campaign_id": str(campaign_id),
                    "user_id": str(user.id),
                    "pool_type": pool_type,
                    "duration_ms": duration_ms,
                    "pool_age_s": pool_age_s,
                },
            )
            return Assignment(
                campaign_id=campaign_id,
                pool_type=pool_type,
                source=f"{pool_type}_pool",
                pool_created_at=pool_created_at,
                activated_at=now,
                duration_ms=duration_ms,
            )
        session.rollback()
        return None


def _child_updates(
    campaign_id: uuid.UUID | sa.ScalarSelect, owner: uuid.UUID, now: datetime
) -> list[sa.Update]:
    """The UPDATEs that make a claimed campaign's children look new and belong to `owner`.

    Every content row with a campaign_id gets fresh timestamps (characters and vehicles a new
    owner too); image positions of the campaign's records are matched by (type, id) pairs.
    Image attachments keep their created_at: it records when the image link was made, is never
    shown to users, and rewriting 789 rows would double the claim's cost (docs/pool.md)."""
    updates: list[sa.Update] = []
    for model in TIMESTAMPED_CONTENT:
        values: dict[str, object] = {"created_at": now, "updated_at": now}
        if model in OWNED_CONTENT:
            values["user_id"] = owner
        updates.append(sa.update(model).where(model.campaign_id == campaign_id).values(**values))
    pair = sa.tuple_(ImagePosition.positionable_type, ImagePosition.positionable_id)
    updates.append(
        sa.update(ImagePosition)
        .where(pair.in_(_records_of(campaign_id)))
        .values(created_at=now, updated_at=now)
    )
    return updates


def _records_of(campaign_id: uuid.UUID | sa.ScalarSelect) -> sa.CompoundSelect:
    """(record type, id) of every record of a campaign that can carry image positions."""
    parts = [sa.select(sa.literal("Campaign"), Campaign.id).where(Campaign.id == campaign_id)]
    parts += [
        sa.select(sa.literal(model.__name__), model.id).where(model.campaign_id == campaign_id)
        for model in TIMESTAMPED_CONTENT
    ]
    return sa.union_all(*parts)

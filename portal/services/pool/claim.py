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

import functools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from portal.models import (
    CONTENT_MODELS,
    Campaign,
    Character,
    ImagePosition,
    User,
    Vehicle,
    utcnow,
)
from portal.models.base import UTCDateTime
from portal.services.campaigns.records import CampaignError, content_count_columns, content_counts
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.switches import assignment_off_clause

# Content tables whose rows carry created_at/updated_at and a campaign_id.
TIMESTAMPED_CONTENT = tuple(CONTENT_MODELS.values())
# Content whose rows belong to a user and follow the campaign's owner on a master-pool claim.
OWNED_CONTENT = (Character, Vehicle)


class NameTakenError(CampaignError):
    """The user already has a campaign with that name (HTTP 422 in the API)."""


class ClaimedCampaign(NamedTuple):
    """A campaign as its claim left it: the claim's RETURNING row (`CLAIM_COLUMNS` are these
    fields, in this order), which is all the API answer and the pool event need, so nothing
    reads the campaign again. Built from the row by position (`from_row`), which costs well
    under a microsecond beside a claim of milliseconds.

    Tighter than the columns where the claim guarantees it: the claimed campaign is in a pool
    (`pool_type` set), was built from the current template version (`template_version` set)
    and has just been activated (`activated_at` set)."""

    id: uuid.UUID
    name: str
    description: str | None
    user_id: uuid.UUID
    active: bool
    created_at: datetime
    updated_at: datetime
    activated_at: datetime
    seeded_at: datetime | None
    pool_created_at: datetime | None
    pool_type: str
    template_version: int

    @classmethod
    def from_row(cls, row: sa.Row[*tuple[Any, ...]]) -> ClaimedCampaign:
        """The claim's columns of `row` (on PostgreSQL the content counts follow them)."""
        return cls._make(row[:CLAIM_WIDTH])


@dataclass(frozen=True)
class Assignment:
    campaign_id: uuid.UUID
    pool_type: str
    source: str  # "user_pool" | "master_pool"
    pool_created_at: datetime | None
    activated_at: datetime
    duration_ms: float
    # The claimed campaign as the claim left it and its content counts: enough to answer the
    # API without reading the campaign again.
    campaign: ClaimedCampaign
    counts: dict[str, int]


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

    def _ready_filter(
        self, pool_type: str, version: int, user: User | None
    ) -> list[sa.ColumnElement[bool]]:
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

    def _claim(
        self, include_user_pool: bool, params: dict[str, object]
    ) -> tuple[ClaimedCampaign | None, dict[str, int]]:
        """Claim and reset one campaign: the claimed campaign and its content counts, or
        (None, {}) when no pool has a ready campaign of the current template version. Runs at
        Core level on the session's connection: the statements are prebuilt and carry no ORM
        state to synchronize."""
        connection = self.session.connection()
        first, *rest = claim_statements(connection.dialect.name, include_user_pool)
        row = connection.execute(first, params).first()
        if row is None:
            return None, {}
        claimed = ClaimedCampaign.from_row(row)
        if not rest:  # PostgreSQL: the counts came with the claim
            return claimed, {name: row._mapping[name] for name in COUNT_NAMES}
        for update in rest:  # SQLite: the child resets, one by one, in the same transaction
            connection.execute(update, {**params, "p_campaign": claimed.id})
        return claimed, content_counts(self.session, claimed.id, with_images=True)

    def assign_pool_campaign(
        self, user: User, name: str, description: str | None = None, *, commit: bool = True
    ) -> Assignment | None:
        """Claim a ready campaign for `user`, rename it and make it theirs, in one transaction.
        With `commit=False` the caller commits, after reading what else it needs in the same
        transaction (the API's create reads the campaign's image so: no second connection).

        Returns None when no pool has a ready campaign of the current template version (the
        caller falls back to seeding). Raises NameTakenError, leaving the pool untouched, when
        the user already has a campaign called `name`: the unique (user_id, name) constraint
        rejects the claim's rename and the transaction rolls back, so the common case pays for
        no separate name check.
        """
        started = time.perf_counter()
        session = self.session
        now = utcnow()
        user_id = user.id  # read before the commit expires `user`
        params = {
            "p_user": user_id,
            "p_name": name,
            "p_description": description,
            "p_now": now,
        }
        try:
            claimed, counts = self._claim(bool(user.gamemaster), params)
        except IntegrityError:
            session.rollback()
            raise NameTakenError("has already been taken") from None
        if claimed is None:
            session.rollback()
            return None
        campaign_id, pool_type = claimed.id, claimed.pool_type
        pool_created_at, version = claimed.pool_created_at, claimed.template_version
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        pool_age_s = (now - pool_created_at).total_seconds() if pool_created_at else None
        record_pool_event(
            session,
            PoolEventKind.ASSIGNED,
            campaign_id=campaign_id,
            user_id=user_id,
            pool_type=pool_type,
            duration_ms=duration_ms,
            detail={"pool_age_s": pool_age_s, "template_version": version},
            created_at=now,
        )
        if commit:
            session.commit()  # the claim and its event, together
        return Assignment(
            campaign_id=campaign_id,
            pool_type=pool_type,
            source=f"{pool_type}_pool",
            pool_created_at=pool_created_at,
            activated_at=now,
            duration_ms=duration_ms,
            campaign=claimed,
            counts=counts,
        )


P_NOW = sa.bindparam("p_now", type_=UTCDateTime())
# What a claim returns: the API's campaign fields and what the pool event records, as
# ClaimedCampaign names and orders them.
CLAIM_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = tuple(
    getattr(Campaign, name) for name in ClaimedCampaign._fields
)
CLAIM_WIDTH = len(CLAIM_COLUMNS)
COUNT_NAMES = (*CONTENT_MODELS, "images")
P_USER = sa.bindparam("p_user", type_=sa.Uuid())


@functools.cache
def claim_statements(dialect: str, include_user_pool: bool) -> tuple[sa.Executable, ...]:
    """The claim, built once per dialect and pool choice (building it costs more CPU than the
    database spends on it) and executed with the `p_*` parameters.

    One candidate query serves both pools: the user's own ready campaigns sort before the
    master pool's, so a gamemaster with an empty user pool pays no extra round trip. The
    current template version is a subquery of the claim, not a query of its own. On
    PostgreSQL the claim and every child reset are ONE statement (data-modifying CTEs keyed on
    the claimed id); on SQLite the child resets follow as separate statements. While the
    runtime kill switch is off the candidate query finds nothing (no extra round trip)."""
    pools = Campaign.pool_type == "master"
    if include_user_pool:
        pools = sa.or_(pools, sa.and_(Campaign.pool_type == "user", Campaign.user_id == P_USER))
    master = aliased(Campaign, name="master")
    current_version = (
        sa.select(master.template_version)
        .where(master.is_master_template.is_(True))
        .limit(1)
        .scalar_subquery()
    )
    candidate = (
        sa.select(Campaign.id)
        .where(
            Campaign.is_pool.is_(True),
            Campaign.pool_status == "ready",
            Campaign.template_version == current_version,
            pools,
            # The runtime kill switch, read in the claim's own snapshot (switches.py).
            ~assignment_off_clause(),
        )
        .order_by(
            sa.case((Campaign.pool_type == "user", 0), else_=1),
            Campaign.pool_created_at,
            Campaign.id,
        )
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    claim = (
        sa.update(Campaign)
        .where(
            Campaign.id == candidate, Campaign.is_pool.is_(True), Campaign.pool_status == "ready"
        )
        .values(
            name=sa.bindparam("p_name", type_=sa.String()),
            description=sa.bindparam("p_description", type_=sa.Text()),
            user_id=P_USER,
            is_pool=False,
            pool_status="assigned",
            activated_at=P_NOW,
            created_at=P_NOW,
            updated_at=P_NOW,
        )
        .returning(*CLAIM_COLUMNS)
    )
    if dialect == "postgresql":
        claimed = claim.cte("claimed")
        claimed_id = sa.select(claimed.c.id).scalar_subquery()
        resets = [u.cte(f"reset_{i}") for i, u in enumerate(_child_updates(claimed_id, dialect))]
        # The counts read the snapshot from before the statement: the claim changes no row
        # count, so they are the claimed campaign's, without another round trip.
        counts = content_count_columns(claimed.c.id, with_images=True)
        select = sa.select(*claimed.c, *counts)
        return (select.add_cte(*resets),)
    return (claim, *_child_updates(sa.bindparam("p_campaign", type_=sa.Uuid()), dialect))


def forget_prebuilt_statements() -> None:
    """Drop the prebuilt claim statements: the next claim builds them again. For a process that
    starts over with other tables or models (the tests give every application a fresh start)."""
    claim_statements.cache_clear()


def _child_updates(
    campaign_id: sa.BindParameter[uuid.UUID] | sa.ScalarSelect[uuid.UUID], dialect: str
) -> list[sa.Update]:
    """The UPDATEs that make a claimed campaign's children look new and belong to `owner`.

    Every content row with a campaign_id gets fresh timestamps (characters and vehicles a new
    owner too). Image positions have no campaign_id: they are matched per owner type through
    the `(positionable_type, positionable_id)` index, so the cost follows the campaign's own
    records and not the size of the table (on PostgreSQL as `= ANY(ARRAY(subquery))`, which
    the planner always answers with index probes; a join over a `(type, id)` list made it
    hash the whole table). Image attachments keep their created_at: it records when the image
    link was made, is never shown to users, and rewriting 789 rows would double the claim's
    cost (docs/pool.md)."""
    updates: list[sa.Update] = []
    for model in TIMESTAMPED_CONTENT:
        values: dict[str, object] = {"created_at": P_NOW, "updated_at": P_NOW}
        if model in OWNED_CONTENT:
            values["user_id"] = P_USER
        updates.append(sa.update(model).where(model.campaign_id == campaign_id).values(**values))
    owners: list[tuple[str, sa.Select[uuid.UUID]]] = [
        ("Campaign", sa.select(Campaign.id).where(Campaign.id == campaign_id))
    ]
    owners += [
        (model.__name__, sa.select(model.id).where(model.campaign_id == campaign_id))
        for model in TIMESTAMPED_CONTENT
    ]
    for record_type, ids in owners:
        if dialect == "postgresql":
            owned = ImagePosition.positionable_id == sa.any_(sa.func.array(ids.scalar_subquery()))
        else:
            owned = ImagePosition.positionable_id.in_(ids)
        updates.append(
            sa.update(ImagePosition)
            .where(ImagePosition.positionable_type == record_type, owned)
            .values(created_at=P_NOW, updated_at=P_NOW)
        )
    return updates

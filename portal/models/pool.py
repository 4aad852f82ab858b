"""Pool history and runtime pool settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base, utcnow


class PoolEvent(Base):
    """What happened to the pool: the source of metrics, charts and "what happened to X"."""

    __tablename__ = "pool_events"
    __table_args__ = (
        sa.Index(None, "kind", "created_at"),
        sa.Index(None, "created_at"),
        sa.Index(None, "campaign_id"),
    )

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # One of portal.services.pool.events.PoolEventKind; rows are written by record_pool_event.
    kind: Mapped[str] = mapped_column(sa.String(32))
    # No foreign keys: the history outlives the campaigns and users it mentions.
    campaign_id: Mapped[uuid.UUID | None]
    user_id: Mapped[uuid.UUID | None]
    pool_type: Mapped[str | None] = mapped_column(sa.String(16))
    duration_ms: Mapped[float | None]
    detail: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PoolSetting(Base):
    """A runtime override of a pool setting (targets, watermark, max); absent = environment."""

    __tablename__ = "pool_settings"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[int]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL")
    )

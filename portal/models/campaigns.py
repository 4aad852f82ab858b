"""Campaigns, including the pool columns (added by their own migration revision)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, TimestampMixin, uuid_pk
from portal.models.users import User

POOL_TYPES = ("master", "user")
POOL_STATUSES = ("building", "ready", "failed", "retired", "assigned")
SEEDING_METHODS = ("batch", "traditional")


class Campaign(TimestampMixin, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "name"),
        # The claim query: ready pool campaigns of one type (and owner, for user pools) built
        # from the current template version, oldest first. Partial so it stays tiny.
        sa.Index(
            "ix_campaigns_pool_claim",
            "pool_type",
            "template_version",
            "user_id",
            "pool_created_at",
            postgresql_where=sa.text("is_pool AND pool_status = 'ready'"),
            sqlite_where=sa.text("is_pool AND pool_status = 'ready'"),
        ),
        sa.Index(
            "ix_campaigns_pool_status",
            "pool_status",
            "pool_type",
            postgresql_where=sa.text("is_pool"),
            sqlite_where=sa.text("is_pool"),
        ),
        sa.Index("ix_campaigns_activated_at", "activated_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    user_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    description: Mapped[str | None] = mapped_column(sa.Text)
    active: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    is_master_template: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    seeded_at: Mapped[datetime | None]

    # pool columns (revision 0002)
    is_pool: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    pool_type: Mapped[str | None] = mapped_column(sa.String(16))
    pool_status: Mapped[str | None] = mapped_column(sa.String(16))
    pool_created_at: Mapped[datetime | None]
    activated_at: Mapped[datetime | None]
    template_version: Mapped[int | None]
    # The master template's content hash at `template_version` (revision 0005; NULL elsewhere).
    template_fingerprint: Mapped[str | None] = mapped_column(sa.String(64))
    # The build (one seeding transaction, 1..K campaigns) a pool campaign was reserved by
    # (revision 0008): builds in flight are counted by it (docs/pool.md, "Refills").
    pool_build_id: Mapped[uuid.UUID | None]
    seeding_method: Mapped[str | None] = mapped_column(sa.String(16))
    seeding_duration_ms: Mapped[float | None]

    owner: Mapped[User] = relationship(foreign_keys=[user_id])

    def __repr__(self) -> str:
        return f"<Campaign {self.name!r} {self.id}>"

"""Image blobs (one stored file each) and attachments (a record's use of a blob).

Many attachments may share one blob: that is how a seeded campaign reuses the template's images
without a single upload. A blob is purged, with its stored file, only when no attachment uses it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, utcnow, uuid_pk

IMAGE_SERVICES = ("imagekit", "local")


class ImageBlob(Base):
    __tablename__ = "image_blobs"

    id: Mapped[uuid.UUID] = uuid_pk()
    key: Mapped[str] = mapped_column(sa.String(255), unique=True)
    filename: Mapped[str] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(100))
    byte_size: Mapped[int] = mapped_column(sa.BigInteger)
    checksum: Mapped[str] = mapped_column(sa.String(64), index=True)
    service_name: Mapped[str] = mapped_column(sa.String(20))
    # `metadata` is the column name of the contract; the attribute cannot shadow Base.metadata.
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<ImageBlob {self.key}>"


class ImageAttachment(Base):
    __tablename__ = "image_attachments"
    __table_args__ = (sa.Index(None, "record_type", "record_id", "name"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(50), default="image")
    record_type: Mapped[str] = mapped_column(sa.String(50))
    record_id: Mapped[uuid.UUID]
    blob_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("image_blobs.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    blob: Mapped[ImageBlob] = relationship()

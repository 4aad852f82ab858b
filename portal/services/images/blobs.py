"""Attachments and blobs: giving a record an image, taking it away, and purging unused files.

A blob is one stored file; an attachment is one record's use of a blob. Many attachments may
share a blob (that is how a seeded campaign reuses the template's images without a single
upload), so the attachment rows *are* the blob's reference count: a blob, and its stored file,
may go only when no attachment row points at it any more. `purge_unused_blobs` enforces that
inside the DELETE itself, so a purge racing a new attachment can never leave it dangling.

The original system attached images before the record was saved, which produced attachments
pointing at records that never existed; `attach_image` refuses an unsaved record outright.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.util import identity_key

from portal.logs import safe_log_extra
from portal.models import RECORD_TYPES, ImageAttachment, ImageBlob
from portal.services.images.store import ImageStore, checksum_of

log = logging.getLogger("portal.images")

ATTACH_MODES = ("share", "copy")
# Keep IN lists well under SQLite's bound-parameter limit and PostgreSQL's planner comfort zone.
_CHUNK = 500
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class NotPersistedError(ValueError):
    """The record has no row yet: attaching now would reference a record that may never exist."""


def _chunks(values: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def new_blob_key(record_type: str, record_id: uuid.UUID | str, filename: str) -> str:
    """A fresh, unique storage key that still says whose file it is (handy when browsing the
    ImageKit media library) and only uses characters every store accepts."""
    stem = _UNSAFE_KEY_CHARS.sub("-", filename).strip("-.")[:80] or "image"
    return f"{record_type.lower()}/{record_id}/{uuid.uuid4().hex[:12]}-{stem}"


def store_blob(
    session: Session,
    store: ImageStore,
    content: bytes,
    *,
    filename: str,
    content_type: str,
    key: str | None = None,
    context: dict[str, Any] | None = None,
) -> ImageBlob:
    """Upload `content` and record it as a new blob (flushed, not committed).

    The upload happens first: a blob row must never point at a file that was not stored."""
    key = key or f"blobs/{uuid.uuid4().hex}"
    meta = store.put(key, filename, content, content_type, context=dict(context or {}))
    blob = ImageBlob(
        id=uuid.uuid4(),
        key=key,
        filename=filename,
        content_type=content_type,
        byte_size=len(content),
        checksum=checksum_of(content),
        service_name=store.service_name,
        meta=meta,
    )
    session.add(blob)
    session.flush()
    return blob


def attach_image(
    session: Session,
    record: Any,
    blob: ImageBlob,
    *,
    store: ImageStore,
    mode: str = "share",
    name: str = "image",
    context: dict[str, Any] | None = None,
) -> ImageAttachment:
    """Give a saved `record` the image held by `blob`; flush, do not commit.

    mode "share" points a new attachment at the same blob: no upload, no new blob, which is what
    makes seeding cheap. mode "copy" asks the store for a copy under a new key first (the
    traditional path, for operators who want every campaign to own its files).
    """
    if mode not in ATTACH_MODES:
        raise ValueError(f"attach mode must be one of {', '.join(ATTACH_MODES)}, got {mode!r}")
    record_type = type(record).__name__
    if record_type not in RECORD_TYPES:
        raise ValueError(f"{record_type} records cannot have images")
    state = sa.inspect(record)
    if not state.persistent:
        raise NotPersistedError(
            f"{record_type} {getattr(record, 'id', None)} is not saved yet: save (flush) the "
            "record before attaching an image to it"
        )
    record_id = record.id
    ctx = {
        "record_type": record_type,
        "record_id": str(record_id),
        "source_blob_id": str(blob.id),
        **(context or {}),
    }
    target = blob
    if mode == "copy":
        if not blob.meta:
            raise ValueError(f"blob {blob.id} has no stored-file metadata to copy from")
        key = new_blob_key(record_type, record_id, blob.filename)
        meta = store.copy(blob.meta, key, context=ctx)
        target = ImageBlob(
            id=uuid.uuid4(),
            key=key,
            filename=blob.filename,
            content_type=blob.content_type,
            byte_size=blob.byte_size,
            checksum=blob.checksum,
            service_name=store.service_name,
            meta=meta,
        )
        session.add(target)
    attachment = ImageAttachment(
        id=uuid.uuid4(), name=name, record_type=record_type, record_id=record_id, blob=target
    )
    session.add(attachment)
    session.flush()
    log.info(
        "image.attached",
        extra=safe_log_extra(
            ctx, mode=mode, blob_id=str(target.id), attachment_id=str(attachment.id)
        ),
    )
    return attachment


def attachments_for(
    session: Session, record_type: str, record_id: uuid.UUID
) -> list[ImageAttachment]:
    """A record's attachments, oldest first (with their blobs loaded)."""
    stmt = (
        sa.select(ImageAttachment)
        .where(ImageAttachment.record_type == record_type, ImageAttachment.record_id == record_id)
        .options(joinedload(ImageAttachment.blob))
        .order_by(ImageAttachment.created_at, ImageAttachment.id)
    )
    return list(session.scalars(stmt))


def detach_images(
    session: Session, record_type: str, record_ids: Iterable[uuid.UUID]
) -> set[uuid.UUID]:
    """Delete the records' attachment rows (no commit); return the blob ids they used.

    The returned blobs *may* now be unused; whether they are is for `purge_unused_blobs` to
    decide, because another record (a seeded campaign, say) may share them."""
    ids = list(dict.fromkeys(record_ids))
    blob_ids: set[uuid.UUID] = set()
    for chunk in _chunks(ids):
        stmt = (
            sa.delete(ImageAttachment)
            .where(
                ImageAttachment.record_type == record_type,
                ImageAttachment.record_id.in_(chunk),
            )
            .returning(ImageAttachment.blob_id)
            .execution_options(synchronize_session="fetch")
        )
        blob_ids.update(session.execute(stmt).scalars())
    if ids:
        log.info(
            "image.detached",
            extra={"record_type": record_type, "records": len(ids), "blobs": len(blob_ids)},
        )
    return blob_ids


def _unused() -> sa.ColumnElement[bool]:
    """No attachment references the blob: the guard every purge statement carries."""
    used = sa.select(ImageAttachment.id).where(ImageAttachment.blob_id == ImageBlob.id)
    return ~sa.exists(used)


def _delete_unused_rows(
    session: Session, candidate_ids: Sequence[uuid.UUID] | None
) -> list[tuple[uuid.UUID, str, str, dict[str, Any] | None]]:
    """Delete the unused blob rows among the candidates; return (id, key, service, meta) of
    each row actually deleted."""
    is_pg = session.get_bind().dialect.name == "postgresql"
    chunks: Iterable[Sequence[uuid.UUID] | None] = (
        [None] if candidate_ids is None else _chunks(candidate_ids)
    )
    deleted: list[tuple[uuid.UUID, str, str, dict[str, Any] | None]] = []
    for chunk in chunks:
        where = [_unused()]
        if chunk is not None:
            where.append(ImageBlob.id.in_(chunk))
        if is_pg:
            # Lock the candidates first. A concurrent attach holds a key-share lock on its blob
            # (the foreign-key check), so SKIP LOCKED leaves blobs being attached right now
            # alone; the DELETE below re-checks NOT EXISTS with a fresh snapshot.
            locked = session.scalars(
                sa.select(ImageBlob.id).where(*where).with_for_update(skip_locked=True)
            ).all()
            if not locked:
                continue
            where = [_unused(), ImageBlob.id.in_(locked)]
        stmt = (
            sa.delete(ImageBlob)
            .where(*where)
            .returning(ImageBlob.id, ImageBlob.key, ImageBlob.service_name, ImageBlob.meta)
            .execution_options(synchronize_session=False)
        )
        deleted.extend(tuple(row) for row in session.execute(stmt))
    return deleted


def purge_unused_blobs(
    session: Session, store: ImageStore, blob_ids: Iterable[uuid.UUID] | None = None
) -> dict[str, Any]:
    """Delete blobs no attachment uses (all of them, or only among `blob_ids`) and their files.

    Rows go first and are committed; files are deleted afterwards. That order means a failure
    can at worst leave an orphaned *file* (logged and reported, cheap, cleanable), never a blob
    row whose file is gone. Returns {"blobs_deleted", "files_deleted", "file_errors"}.
    """
    candidates = None if blob_ids is None else list(dict.fromkeys(blob_ids))
    rows = [] if candidates == [] else _delete_unused_rows(session, candidates)
    session.commit()
    for blob_id, _key, _service, _meta in rows:
        # Objects of deleted rows may sit in the identity map; they must not be used again.
        stale = session.identity_map.get(identity_key(ImageBlob, blob_id))
        if stale is not None:
            session.expunge(stale)
    files_deleted = 0
    file_errors: list[dict[str, str]] = []
    for blob_id, key, service_name, meta in rows:
        ctx = {"blob_id": str(blob_id), "key": key, "purge": True}
        if not meta:
            continue
        if service_name != store.service_name:
            error = f"blob is stored on {service_name!r}, not on {store.service_name!r}"
            file_errors.append({"blob_id": str(blob_id), "key": key, "error": error})
            log.error("image.purge.file_failed", extra=safe_log_extra(ctx, error=error))
            continue
        try:
            store.delete(meta, context=ctx)
        except Exception as exc:  # any store failure: the row is gone, report the file
            file_errors.append({"blob_id": str(blob_id), "key": key, "error": str(exc)})
            log.error("image.purge.file_failed", extra=safe_log_extra(ctx, error=str(exc)))
        else:
            files_deleted += 1
    result = {
        "blobs_deleted": len(rows),
        "files_deleted": files_deleted,
        "file_errors": file_errors,
    }
    log.info(
        "image.purged",
        extra={
            "blobs_deleted": len(rows),
            "files_deleted": files_deleted,
            "file_errors": len(file_errors),
            "candidates": "all" if candidates is None else len(candidates),
        },
    )
    return result

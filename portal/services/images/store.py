"""Where image files live: an `ImageStore` puts, fetches and deletes one stored file per blob.

Two implementations share this interface: `LocalImageStore` (files under the instance folder,
served by the app; the embedded default) and the ImageKit store (`images.imagekit`), chosen by
configuration in `images.backend`. Everything above this layer (blobs, attachments, sharing,
purging) is the same for both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # URL transformations are written in ImageKit's terms by either store
    from imagekitio.types.shared_params import Transformation

SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,250}$")


class ImageStoreError(RuntimeError):
    """A stored-file operation failed for good (after any retries)."""


class ImageStore(Protocol):
    service_name: str

    def put(
        self, key: str, filename: str, content: bytes, content_type: str, *, context: dict[str, Any]
    ) -> dict[str, Any]:
        """Store `content` under `key`; return the blob metadata (fileId, filePath, url)."""

    def copy(
        self, source_meta: dict[str, Any], key: str, *, context: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a copy of an existing file under a new key; return the new metadata."""

    def fetch(self, meta: dict[str, Any]) -> bytes:
        """The bytes of a stored file."""

    def delete(self, meta: dict[str, Any], *, context: dict[str, Any]) -> None:
        """Delete a stored file; deleting one that is already gone is not an error."""

    def url(
        self, meta: dict[str, Any], transformation: Sequence[Transformation] | None = None
    ) -> str:
        """The public URL of a stored file, optionally transformed."""


def checksum_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class LocalImageStore:
    """Files under `root`, served by the app at `/images/<key>` (see blueprints.images)."""

    service_name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not SAFE_KEY.match(key) or ".." in key:
            raise ImageStoreError(f"unsafe image key {key!r}")
        return self.root / key

    def put(
        self, key: str, filename: str, content: bytes, content_type: str, *, context: dict[str, Any]
    ) -> dict[str, Any]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return {"fileId": key, "filePath": f"/{key}", "url": f"/images/{key}", "name": filename}

    def copy(
        self, source_meta: dict[str, Any], key: str, *, context: dict[str, Any]
    ) -> dict[str, Any]:
        content = self.fetch(source_meta)
        return self.put(key, source_meta.get("name", key), content, "", context=context)

    def fetch(self, meta: dict[str, Any]) -> bytes:
        try:
            return self._path(meta["fileId"]).read_bytes()
        except (FileNotFoundError, KeyError) as exc:
            raise ImageStoreError(f"image file missing: {meta.get('fileId')!r}") from exc

    def delete(self, meta: dict[str, Any], *, context: dict[str, Any]) -> None:
        self._path(meta["fileId"]).unlink(missing_ok=True)

    def url(
        self, meta: dict[str, Any], transformation: Sequence[Transformation] | None = None
    ) -> str:
        url: str = meta["url"]
        return url

"""The ImageKit image store, on the imagekitio 5.x SDK, with our own retries.

Why our own retries: the SDK retries silently (408/409/429/5xx, fixed policy, no log line), so a
flaky ImageKit looked exactly like a slow one and a give-up carried no hint of which record it
was for. Here the SDK client is built with `max_retries=0` and every call goes through
`_call`, which retries transient failures (timeouts, dropped connections, 429, 5xx) with
exponential backoff and jitter, logs each attempt with the record it serves, and turns a final
failure into an `ImageStoreError` whose message names that record and the ImageKit error.
Other 4xx answers (bad request, auth, not found) are not retried: asking again cannot help.

Layout on ImageKit: each blob key is a folder holding one file (`/<key>/<filename>`). A server-side
copy keeps the source's file name and only takes a destination *folder*, so giving every key its
own folder is what lets a copy land at a path that is unique and known in advance.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
from imagekitio import (
    APIConnectionError,
    APIStatusError,
    ImageKit,
    ImageKitError,
    NotFoundError,
)
from imagekitio.types.shared_params import Transformation
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from portal.logs import safe_log_extra
from portal.services.images.store import ImageStoreError

log = logging.getLogger("portal.images")

T = TypeVar("T")
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: timeouts, dropped or refused connections, 429 and 5xx."""
    if isinstance(exc, APIConnectionError):  # APITimeoutError is a subclass
        return True
    if isinstance(exc, APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status == 429 or status >= 500
    return isinstance(exc, httpx.TransportError)


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, APIStatusError):
        return exc.status_code
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    return None


def _error_text(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def describe_context(context: dict[str, Any]) -> str:
    """'Faction 3f2c...' for log-free error messages; falls back to the key."""
    record_type, record_id = context.get("record_type"), context.get("record_id")
    if record_type and record_id:
        return f"{record_type} {record_id}"
    if context.get("key"):
        return f"image {context['key']}"
    if context.get("blob_id"):
        return f"blob {context['blob_id']}"
    return "an unnamed record"


def safe_file_name(filename: str) -> str:
    """The name ImageKit would store (it replaces other characters with `_`), computed here so
    a file's path is known without asking."""
    return _UNSAFE_NAME_CHARS.sub("_", filename).strip("._") or "image"


def _meta_of(file: Any) -> dict[str, Any]:
    return {"fileId": file.file_id, "filePath": file.file_path, "url": file.url, "name": file.name}


class ImageKitStore:
    """The ImageStore protocol (portal.services.images.store) on ImageKit."""

    service_name = "imagekit"
    # Retry policy; class defaults suit production, tests pass tiny waits to the constructor.
    attempts: int = 4
    wait_multiplier: float = 0.5
    wait_max: float = 8.0
    timeout: float = 30.0

    def __init__(
        self,
        private_key: str,
        url_endpoint: str,
        *,
        base_url: str | None = None,
        attempts: int | None = None,
        wait_multiplier: float | None = None,
        wait_max: float | None = None,
        timeout: float | None = None,
    ) -> None:
        if not private_key:
            raise ValueError("ImageKitStore needs a private key")
        if not url_endpoint:
            raise ValueError("ImageKitStore needs a URL endpoint")
        if attempts is not None:
            if attempts < 1:
                raise ValueError("attempts must be at least 1")
            self.attempts = attempts
        if wait_multiplier is not None:
            self.wait_multiplier = wait_multiplier
        if wait_max is not None:
            self.wait_max = wait_max
        if timeout is not None:
            self.timeout = timeout
        self.url_endpoint = url_endpoint.rstrip("/")
        self.base_url = base_url.rstrip("/") if base_url else None
        self.client = ImageKit(
            private_key=private_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
        )
        self._http = httpx.Client(timeout=self.timeout, follow_redirects=True)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> ImageKitStore:
        """Build from `portal.config.Settings` (IMAGEKIT_PRIVATE_KEY, _URL_ENDPOINT, _BASE_URL)."""
        return cls(
            settings.imagekit_private_key,
            settings.imagekit_url_endpoint,
            base_url=settings.imagekit_base_url,
            **overrides,
        )

    def __repr__(self) -> str:  # never show the key
        return f"<ImageKitStore {self.base_url or 'api.imagekit.io'} -> {self.url_endpoint}>"

    # -- the retry loop ----------------------------------------------------------------------

    def _call(self, op: str, fn: Callable[[], T], context: dict[str, Any]) -> T:
        """Run one ImageKit operation with retries; log every attempt; wrap the final error."""
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(
                multiplier=self.wait_multiplier, max=self.wait_max, jitter=self.wait_multiplier
            ),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        attempt_number = 0
        try:
            for attempt in retrying:
                with attempt:
                    attempt_number = attempt.retry_state.attempt_number
                    try:
                        result = fn()
                    except (ImageKitError, httpx.HTTPError) as exc:
                        again = is_transient(exc) and attempt_number < self.attempts
                        log.log(
                            logging.WARNING if again else logging.ERROR,
                            "imagekit.attempt",
                            extra=safe_log_extra(
                                context,
                                op=op,
                                attempt=attempt_number,
                                outcome="retry" if again else "failed",
                                status=_status_of(exc),
                                error=_error_text(exc),
                            ),
                        )
                        raise
                    log.info(
                        "imagekit.attempt",
                        extra=safe_log_extra(
                            context, op=op, attempt=attempt_number, outcome="ok", status=None
                        ),
                    )
                    return result
        except (ImageKitError, httpx.HTTPError) as exc:
            raise ImageStoreError(
                f"ImageKit {op} for {describe_context(context)} failed after "
                f"{attempt_number} attempt(s): {_error_text(exc)}"
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    # -- the ImageStore protocol -------------------------------------------------------------

    @staticmethod
    def folder_for(key: str) -> str:
        return "/" + key.strip("/") + "/"

    def put(
        self, key: str, filename: str, content: bytes, content_type: str, *, context: dict[str, Any]
    ) -> dict[str, Any]:
        """Upload to `/<key>/<filename>`. Overwrite-in-place (no unique suffix) makes a retried
        upload whose first try did land harmless: it replaces the same file."""
        name = safe_file_name(filename)
        ctx = {"key": key, **context}

        def upload() -> dict[str, Any]:
            response = self.client.files.upload(
                file=(name, content, content_type or "application/octet-stream"),
                file_name=name,
                folder=self.folder_for(key),
                use_unique_file_name=False,
            )
            return _meta_of(response)

        return self._call("upload", upload, ctx)

    def copy(
        self, source_meta: dict[str, Any], key: str, *, context: dict[str, Any]
    ) -> dict[str, Any]:
        """A copy of an existing file under `key`: server-side when the source has a path on
        ImageKit (no bytes through us), else download and upload."""
        ctx = {"key": key, **context}
        source_path = source_meta.get("filePath")
        if not source_path:
            content = self.fetch(source_meta, context=ctx)
            name = source_meta.get("name") or key.rsplit("/", 1)[-1]
            return self.put(key, name, content, "", context=context)
        folder = self.folder_for(key)
        self._call(
            "copy",
            lambda: self.client.files.copy(
                source_file_path=source_path,
                destination_path=folder,
                include_file_versions=False,
            ),
            ctx,
        )
        name = source_path.rsplit("/", 1)[-1]

        def find() -> list[Any]:
            return list(self.client.assets.list(path=folder, type="file"))

        for item in self._call("list", find, ctx):
            if getattr(item, "name", None) == name and getattr(item, "file_id", None):
                return _meta_of(item)
        raise ImageStoreError(
            f"ImageKit copy for {describe_context(ctx)}: {source_path} was copied to {folder} "
            "but the new file is not listed there"
        )

    def fetch(self, meta: dict[str, Any], *, context: dict[str, Any] | None = None) -> bytes:
        """The file's bytes, downloaded from its delivery URL."""
        url = meta.get("url") or self.url(meta)
        ctx = {"file_id": meta.get("fileId"), **(context or {})}

        def download() -> bytes:
            response = self._http.get(url)
            response.raise_for_status()
            return response.content

        return self._call("fetch", download, ctx)

    def delete(self, meta: dict[str, Any], *, context: dict[str, Any]) -> None:
        """Delete the file; one that is already gone (404) counts as deleted."""
        file_id = meta.get("fileId")
        if not file_id:
            return
        ctx = {"file_id": file_id, **context}

        def delete() -> None:
            try:
                self.client.files.delete(file_id)
            except NotFoundError:
                log.info("imagekit.delete.already_gone", extra=safe_log_extra(ctx))

        self._call("delete", delete, ctx)

    def url(
        self, meta: dict[str, Any], transformation: Sequence[Transformation] | None = None
    ) -> str:
        """The delivery URL, built locally by the SDK (no request)."""
        src = meta.get("filePath")
        if not src:
            url: str = meta["url"]
            return url
        return self.client.helper.build_url(
            url_endpoint=self.url_endpoint, src=src, transformation=transformation or []
        )

    def details(
        self, meta: dict[str, Any], *, context: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """ImageKit's record of the file (size, mime, versions ...), as JSON-ready camelCase."""
        file_id = meta["fileId"]
        ctx = {"file_id": file_id, **(context or {})}
        file = self._call("details", lambda: self.client.files.get(file_id), ctx)
        return file.model_dump(by_alias=True, mode="json", exclude_none=True)

    def close(self) -> None:
        self._http.close()
        self.client.close()

"""A local, in-memory, ImageKit-compatible HTTP server for tests and development.

The `imagekitio` 5.x SDK sends everything to `base_url` when one is given (uploads to
`/api/v1/files/upload`, the rest to `/v1/...`), so this one stdlib server stands in for ImageKit
and the *real* SDK can be exercised end to end: multipart uploads, Basic auth, JSON decoding,
error mapping, timeouts. It implements exactly what the image store uses: upload, file details,
copy, delete, list, and GET of the file bytes under `url_endpoint`.

It also misbehaves on request, which is what makes retry logic testable without mocks:
`fail_next("upload", status=503, times=2)`, `fail_next("copy", mode="timeout")` (sleep past the
client's timeout, then hang up) and `fail_next("details", mode="drop")` (close the socket with no
response). Every request is counted per operation in `calls`, failed attempts included.

Run one by hand: `python -m portal.devtools.imagekit_server --port 8765 --private-key dev`.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import email.parser
import email.policy
import json
import secrets
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

OPERATIONS = ("upload", "details", "copy", "delete", "list", "fetch")
FAILURE_MODES = ("status", "timeout", "drop")
MEDIA_PREFIX = "/media"


@dataclass
class StoredFile:
    file_id: str
    name: str
    file_path: str
    content: bytes
    mime: str
    created_at: str
    updated_at: str
    versions: int = 1

    @property
    def folder(self) -> str:
        return self.file_path.rsplit("/", 1)[0] + "/"


@dataclass
class Failure:
    mode: str
    status: int
    remaining: int
    delay: float


@dataclass
class _State:
    files: dict[str, StoredFile] = field(default_factory=dict)
    by_path: dict[str, str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _folder(raw: str | None) -> str:
    """ImageKit folder spelling ("a/b", "/a/b/", "") to the canonical "/a/b/"."""
    parts = [p for p in (raw or "").split("/") if p]
    return "/" + "".join(f"{p}/" for p in parts)


def _truthy(raw: str | None, default: bool) -> bool:
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("true", "1", "yes")


class LocalImageKitServer:
    """An ImageKit stand-in on 127.0.0.1; `with LocalImageKitServer() as server: ...`."""

    def __init__(
        self,
        private_key: str = "private_local_test_key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_delay: float = 2.0,
    ) -> None:
        self.private_key = private_key
        self.host = host
        self.port = port
        # How long a "timeout" failure keeps the client waiting; set it above the client timeout.
        self.timeout_delay = timeout_delay
        self._state = _State()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LocalImageKitServer:
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"server_state": self})
        httpd = ThreadingHTTPServer((self.host, self.port), handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"imagekit-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a simulated timeout
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> LocalImageKitServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """What IMAGEKIT_BASE_URL should be (the SDK's `base_url`)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url_endpoint(self) -> str:
        """What IMAGEKIT_URL_ENDPOINT should be: file bytes are served below it."""
        return f"{self.base_url}{MEDIA_PREFIX}"

    # -- inspection and fault injection ------------------------------------------------------

    @property
    def calls(self) -> Counter[str]:
        """Requests received per operation (failed attempts included)."""
        return self._state.calls

    @property
    def files(self) -> dict[str, StoredFile]:
        """Stored files by fileId."""
        return self._state.files

    def file_at(self, file_path: str) -> StoredFile | None:
        with self._state.lock:
            file_id = self._state.by_path.get(file_path)
            return self._state.files.get(file_id) if file_id else None

    def fail_next(
        self,
        op: str,
        status: int = 503,
        times: int = 1,
        *,
        mode: str = "status",
        delay: float | None = None,
    ) -> None:
        """Make the next `times` requests of `op` fail: answer `status` (mode "status"), keep
        the client waiting `delay` seconds then hang up ("timeout"), or hang up at once
        ("drop"). Failures queue up in the order they were asked for."""
        if op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r}; one of {', '.join(OPERATIONS)}")
        if mode not in FAILURE_MODES:
            raise ValueError(f"unknown failure mode {mode!r}; one of {', '.join(FAILURE_MODES)}")
        failure = Failure(mode, status, times, self.timeout_delay if delay is None else delay)
        with self._state.lock:
            self._state.failures.setdefault(op, []).append(failure)

    def reset(self) -> None:
        """Forget files, counters and pending failures."""
        with self._state.lock:
            self._state.files.clear()
            self._state.by_path.clear()
            self._state.calls.clear()
            self._state.failures.clear()

    def _record_call(self, op: str) -> Failure | None:
        with self._state.lock:
            self._state.calls[op] += 1
            queue = self._state.failures.get(op)
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            return failure

    # -- storage operations (called by the handler, under the lock) --------------------------

    def _file_json(self, stored: StoredFile) -> dict[str, Any]:
        return {
            "type": "file",
            "fileId": stored.file_id,
            "name": stored.name,
            "filePath": stored.file_path,
            "url": f"{self.url_endpoint}{stored.file_path}",
            "thumbnail": f"{self.url_endpoint}/tr:n-ik_ml_thumbnail{stored.file_path}",
            "fileType": "image" if stored.mime.startswith("image/") else "non-image",
            "mime": stored.mime,
            "size": len(stored.content),
            "height": 0,
            "width": 0,
            "hasAlpha": False,
            "isPrivateFile": False,
            "isPublished": True,
            "tags": None,
            "customCoordinates": None,
            "customMetadata": {},
            "createdAt": stored.created_at,
            "updatedAt": stored.updated_at,
            "versionInfo": {"id": stored.file_id, "name": f"Version {stored.versions}"},
        }

    def _store(self, folder: str, name: str, content: bytes, mime: str) -> StoredFile:
        """Create the file at folder+name, or add a version to the one already there."""
        path = folder + name
        now = _now()
        existing_id = self._state.by_path.get(path)
        if existing_id is not None:
            stored = self._state.files[existing_id]
            stored.content, stored.mime, stored.updated_at = content, mime, now
            stored.versions += 1
            return stored
        stored = StoredFile(uuid.uuid4().hex[:24], name, path, content, mime, now, now)
        self._state.files[stored.file_id] = stored
        self._state.by_path[path] = stored.file_id
        return stored

    def upload(
        self, fields: dict[str, str], file_name: str, content: bytes, mime: str
    ) -> dict[str, Any]:
        name = fields.get("fileName") or file_name or "file"
        name = name.replace("/", "_")
        if _truthy(fields.get("useUniqueFileName"), default=True):
            stem, dot, ext = name.rpartition(".")
            suffix = secrets.token_hex(4)
            name = f"{stem}_{suffix}.{ext}" if dot and stem else f"{name}_{suffix}"
        with self._state.lock:
            stored = self._store(_folder(fields.get("folder")), name, content, mime)
            body = self._file_json(stored)
        return {k: body[k] for k in _UPLOAD_FIELDS}

    def details(self, file_id: str) -> dict[str, Any] | None:
        with self._state.lock:
            stored = self._state.files.get(file_id)
            return self._file_json(stored) if stored else None

    def copy(self, source_path: str, destination: str) -> bool:
        with self._state.lock:
            source_id = self._state.by_path.get(source_path)
            if source_id is None:
                return False
            source = self._state.files[source_id]
            self._store(_folder(destination), source.name, source.content, source.mime)
            return True

    def delete(self, file_id: str) -> bool:
        with self._state.lock:
            stored = self._state.files.pop(file_id, None)
            if stored is None:
                return False
            self._state.by_path.pop(stored.file_path, None)
            return True

    def list(self, query: dict[str, str]) -> list[dict[str, Any]]:
        path = query.get("path")
        folder = _folder(path) if path else None
        name = query.get("name")
        skip = int(query.get("skip") or 0)
        limit = int(query.get("limit") or 1000)
        with self._state.lock:
            found = [
                self._file_json(f)
                for f in sorted(self._state.files.values(), key=lambda f: f.created_at)
                if (folder is None or f.folder == folder) and (name is None or f.name == name)
            ]
        if query.get("type") == "folder":
            return []
        return found[skip : skip + limit]

    def content(self, file_path: str) -> StoredFile | None:
        return self.file_at(file_path)


_UPLOAD_FIELDS = (
    "fileId",
    "name",
    "filePath",
    "url",
    "thumbnail",
    "fileType",
    "size",
    "height",
    "width",
    "isPrivateFile",
    "tags",
    "versionInfo",
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, keep-alive requests wait for
    # the client's delayed ACK (~40 ms each). TCP_NODELAY makes a request take ~2-7 ms.
    disable_nagle_algorithm = True
    server_state: LocalImageKitServer  # set on the per-server subclass

    # -- plumbing ----------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on counters, not on an access log."""

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        payload: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> None:
        body = (
            raw if raw is not None else (b"" if payload is None else json.dumps(payload).encode())
        )
        self.send_response(status)
        if body or status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"message": message, "help": "local ImageKit test server"})

    def _hang_up(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user = base64.b64decode(header[6:]).decode().split(":", 1)[0]
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(user, self.server_state.private_key)

    def _route(self, method: str) -> tuple[str, dict[str, str], str | None]:
        """(operation, query, file id or media path) for this request, or ("", ...)."""
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if method == "GET" and path.startswith(MEDIA_PREFIX + "/"):
            return "fetch", query, path[len(MEDIA_PREFIX) :]
        if method == "POST" and path == "/api/v1/files/upload":
            return "upload", query, None
        if method == "POST" and path == "/v1/files/copy":
            return "copy", query, None
        if method == "GET" and path == "/v1/files":
            return "list", query, None
        segments = path.strip("/").split("/")
        if (
            method == "GET"
            and len(segments) == 4
            and segments[:2] == ["v1", "files"]
            and segments[3] == "details"
        ):
            return "details", query, segments[2]
        if method == "DELETE" and len(segments) == 3 and segments[:2] == ["v1", "files"]:
            return "delete", query, segments[2]
        return "", query, None

    def _handle(self, method: str) -> None:
        op, query, target = self._route(method)
        body = self._body()
        if not op:
            self._error(404, f"no such endpoint: {method} {self.path}")
            return
        failure = self.server_state._record_call(op)
        if failure is not None:
            if failure.mode == "timeout":
                self.server_state._stopping.wait(failure.delay)
                self._hang_up()
                return
            if failure.mode == "drop":
                self._hang_up()
                return
            self._error(failure.status, f"simulated {failure.status} for {op}")
            return
        if op != "fetch" and not self._authorized():
            self._error(401, "Your request does not contain private API key.")
            return
        getattr(self, f"_op_{op}")(query, target, body)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # -- operations --------------------------------------------------------------------------

    def _op_upload(self, query: dict[str, str], target: str | None, body: bytes) -> None:
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            self._error(400, "upload must be multipart/form-data")
            return
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        fields: dict[str, str] = {}
        file_name, content, mime = "", None, "application/octet-stream"
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            raw = part.get_payload(decode=True)  # bytes, or None for a nested multipart
            payload = raw if isinstance(raw, bytes) else b""
            if name == "file":
                content = payload
                file_name = part.get_filename() or ""
                mime = part.get_content_type()
            elif name:
                fields[str(name)] = payload.decode("utf-8", "replace")
        if content is None:
            self._error(400, "Missing file parameter for upload")
            return
        if not fields.get("fileName"):
            self._error(400, "Missing fileName parameter for upload")
            return
        self._send(200, self.server_state.upload(fields, file_name, content, mime))

    def _op_details(self, query: dict[str, str], target: str | None, body: bytes) -> None:
        found = self.server_state.details(target or "")
        if found is None:
            self._error(404, "The requested file does not exist.")
            return
        self._send(200, found)

    def _op_copy(self, query: dict[str, str], target: str | None, body: bytes) -> None:
        try:
            payload = json.loads(body or b"{}")
            source, destination = payload["sourceFilePath"], payload["destinationPath"]
        except (ValueError, KeyError, TypeError):
            self._error(400, "sourceFilePath and destinationPath are required")
            return
        if not self.server_state.copy(source, destination):
            self._error(404, f"No file found with filePath {source}")
            return
        self._send(204)

    def _op_delete(self, query: dict[str, str], target: str | None, body: bytes) -> None:
        if not self.server_state.delete(target or ""):
            self._error(404, "The requested file does not exist.")
            return
        self._send(204)

    def _op_list(self, query: dict[str, str], target: str | None, body: bytes) -> None:
        self._send(200, self.server_state.list(query))

    def _op_fetch(self, query: dict[str, str], target: str | None, body: bytes) -> None:
        stored = self.server_state.content(target or "")
        if stored is None:
            self._error(404, "Not found")
            return
        self._send(200, raw=stored.content, content_type=stored.mime)


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, printing the settings that point the app at this server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--private-key", default="private_local_dev_key")
    args = parser.parse_args(argv)
    server = LocalImageKitServer(args.private_key, host=args.host, port=args.port).start()
    print(f"IMAGEKIT_PRIVATE_KEY={args.private_key}")
    print(f"IMAGEKIT_BASE_URL={server.base_url}")
    print(f"IMAGEKIT_URL_ENDPOINT={server.url_endpoint}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

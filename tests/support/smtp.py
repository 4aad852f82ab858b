"""Real servers for the monitoring tests: SMTP (aiosmtpd), a Slack-style webhook (stdlib HTTP)
and a private redis-server process that a test may stop and start again.

Registered from tests/conftest.py (`pytest_plugins`). Everything listens on 127.0.0.1 on a
concrete free port (aiosmtpd's Controller cannot use port 0) and is stopped after the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from portal.devtools.processes import free_port


class SmtpSink:
    """An aiosmtpd server that keeps every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


class WebhookSink:
    """A local HTTP server standing in for a Slack incoming webhook."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.content_types: list[str] = []
        self.status = 200
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                sink.paths.append(self.path)
                sink.content_types.append(self.headers.get("Content-Type", ""))
                sink.posts.append(json.loads(body or b"{}"))
                self.send_response(sink.status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if sink.status == 200 else b"error")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # The path is the secret part of a real webhook URL.
        self.url = f"http://127.0.0.1:{self.port}/services/T000/B000/secret-token-xyz"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def texts(self) -> list[str]:
        return [str(p.get("text", "")) for p in self.posts]


class RedisProcess:
    """A redis-server of our own, on its own port, without persistence: stop() loses the data,
    as a restarted cache without persistence would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.controller.start()
    yield sink
    sink.controller.stop()


@pytest.fixture
def slack_webhook() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.thread.start()
    yield sink
    sink.server.shutdown()
    sink.server.server_close()


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dead_port() -> int:
    """A port with nothing listening: connections to it are refused at once."""
    return free_port()

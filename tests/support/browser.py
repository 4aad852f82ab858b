"""Browser-test fixtures: the app served for real on 127.0.0.1, and Chromium driven by Playwright.

The server is the test's own app (so the test can prepare the database and look at it
afterwards) behind Werkzeug's threaded server in a background thread, with Flask-SocketIO's
middleware in front exactly as `flask serve` runs it (WebSocket included), plus the embedded
RQ worker thread so jobs queued by the portal really run. Chromium is the system one
(`/usr/bin/chromium`): Playwright installs no browser here. One browser per test module (it
takes a second to start, and Playwright's event loop must be gone before other modules' asyncio
code runs); one fresh context (cookies, storage) per test.

A test module imports the fixtures it uses by name
(`from tests.support.browser import chromium, page`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# Generous: a cold CI machine shared by parallel jobs can be slow; tests wait for behaviour,
# they never assert on time.
DEFAULT_TIMEOUT_MS = 30_000


@dataclass
class LiveServer:
    """A running server: `url` is its base URL (no trailing slash)."""

    app: Flask
    server: BaseWSGIServer
    thread: threading.Thread
    worker: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def start_worker(self) -> None:
        """Start the embedded RQ worker thread (jobs, and the periodic schedule, start
        running). Separate from starting the server so a test can look at a quiet pool
        before anything refills it."""
        if self.worker is None:
            from jobs.embedded import start_embedded_worker

            self.worker = start_embedded_worker(self.app)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)
        if self.worker is not None:
            self.worker.stop(timeout=60)


def start_live_server(app: Flask, *, with_worker: bool = False) -> LiveServer:
    """Serve `app` on a free port of 127.0.0.1 until `.stop()`."""
    # `app` is already wrapped by Flask-SocketIO's middleware (socketio.init_app), so plain
    # Werkzeug serves Socket.IO too; simple-websocket takes over the socket for WebSocket.
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    live = LiveServer(app, server, thread)
    if with_worker:
        live.start_worker()
    return live


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One Chromium per module; skips (with the reason) where none is installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: install the Debian package 'chromium'")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A page in a fresh browser context (no cookies), desktop-sized."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def login(page: Any, base_url: str, email: str, password: str) -> None:
    """Sign in through the real form and wait for wherever it leads."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("button[type=submit], input[type=submit]")


def screenshot(page: Any, artifacts_dir: Path, name: str) -> Path:
    """Save a full-page screenshot as a test artifact and return its path."""
    path = artifacts_dir / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture
def live_server(template_app: Flask) -> Iterator[LiveServer]:
    """`template_app` (a private copy of the master-template database) served for real; the
    worker thread is started by the test (`live_server.start_worker()`) when it wants jobs."""
    server = start_live_server(template_app)
    yield server
    server.stop()

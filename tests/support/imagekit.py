"""Fixtures for the ImageKit layer: a real local ImageKit-compatible server per test.

Registered from tests/conftest.py (`pytest_plugins`). The server is the real HTTP thing that the
real `imagekitio` SDK talks to, so tests exercise multipart uploads, auth, error mapping and
timeouts exactly as production does; only ImageKit itself is replaced.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from portal.devtools.imagekit_server import LocalImageKitServer

IMAGEKIT_TEST_KEY = "private_test_key_0123456789"
# Tiny waits keep retry tests fast; the policy (which errors, how many attempts) is unchanged.
FAST_RETRY = {"attempts": 4, "wait_multiplier": 0.001, "wait_max": 0.01}


@pytest.fixture
def imagekit_server() -> Iterator[LocalImageKitServer]:
    """A fresh, empty local ImageKit server on an ephemeral port, stopped after the test."""
    with LocalImageKitServer(IMAGEKIT_TEST_KEY, timeout_delay=1.0) as server:
        yield server


@pytest.fixture
def imagekit_app(
    databases: object, migrated_golden: str, redis_url: str, imagekit_server: LocalImageKitServer
) -> Iterator[Flask]:
    """Like `app` (fresh migrated empty database, inside an app context), with the image store
    configured for ImageKit and pointing at `imagekit_server`, retrying with tiny waits."""
    from portal.services.images.backend import get_image_store
    from tests.conftest import app_on

    for app in app_on(
        databases,  # type: ignore[arg-type]
        migrated_golden,
        redis_url,
        IMAGEKIT_PRIVATE_KEY=IMAGEKIT_TEST_KEY,
        IMAGEKIT_BASE_URL=imagekit_server.base_url,
        IMAGEKIT_URL_ENDPOINT=imagekit_server.url_endpoint,
    ):
        store = get_image_store(app)
        for name, value in FAST_RETRY.items():
            setattr(store, name, value)
        yield app

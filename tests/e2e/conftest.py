"""The end-to-end groups start real processes (gunicorn, RQ workers, Prometheus, Chromium) and
run for minutes, so they, the dev-tools' harness tests and every test marked `slow` get a longer
per-test timeout than the project default (`timeout` in pyproject.toml; docs/testing.md,
"Timeouts")."""

from __future__ import annotations

import pytest

END_TO_END_TIMEOUT_S = 600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        long_running = (
            item.nodeid.startswith(("tests/e2e/", "tests/devtools/"))
            or item.get_closest_marker("slow") is not None
        )
        if long_running and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(END_TO_END_TIMEOUT_S))

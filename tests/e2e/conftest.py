"""The end-to-end groups start real processes (gunicorn, RQ workers, Prometheus, Chromium) and
run for minutes, so they get a longer per-test timeout than the project default
(`timeout` in pyproject.toml; docs/testing.md, "Timeouts")."""

from __future__ import annotations

import pytest

END_TO_END_TIMEOUT_S = 600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None and "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.timeout(END_TO_END_TIMEOUT_S))

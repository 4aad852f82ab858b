"""A hung test is one failed test with its stack, not a hung suite (docs/testing.md, "Timeouts")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.e2e.conftest import END_TO_END_TIMEOUT_S
from tests.support import PROJECT_ROOT

HUNG = textwrap.dedent(
    """
    import threading

    def test_waits_for_an_event_nobody_sets():
        threading.Event().wait()  # a refill loop that never ends, say
    """
)


def test_the_project_sets_a_default_per_test_timeout(pytestconfig: pytest.Config) -> None:
    configured = float(pytestconfig.getini("timeout"))
    assert 0 < configured < END_TO_END_TIMEOUT_S


REPORT_PLUGIN = textwrap.dedent(
    """
    def pytest_collection_finish(session):
        for item in session.items:
            marker = item.get_closest_marker("timeout")
            print("TIMEOUT", item.nodeid, marker.args[0] if marker else None)
    """
)


def test_end_to_end_tests_get_the_longer_timeout(tmp_path: Path) -> None:
    """Collects the real end-to-end modules and reads each test's timeout mark."""
    (tmp_path / "timeout_report.py").write_text(REPORT_PLUGIN)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "timeout_report",
            "--collect-only",
            "-q",
            "tests/e2e",
            "tests/devtools",
            "tests/app/test_smoke.py",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    marks = dict(
        line.removeprefix("TIMEOUT ").rsplit(" ", 1)
        for line in result.stdout.splitlines()
        if line.startswith("TIMEOUT ")
    )
    e2e = {
        node: mark
        for node, mark in marks.items()
        if node.startswith(("tests/e2e/", "tests/devtools/"))
    }
    assert len(e2e) >= 10, result.stdout + result.stderr
    assert all(float(mark) >= END_TO_END_TIMEOUT_S for mark in e2e.values()), e2e
    others = [mark for node, mark in marks.items() if node.startswith("tests/app/")]
    assert others and all(mark == "None" for mark in others)  # the project default applies


def test_a_hung_test_fails_after_its_timeout_with_a_stack_dump(tmp_path: Path) -> None:
    """Runs pytest with the project's configuration on a test that waits forever."""
    test_file = tmp_path / "test_hung.py"
    test_file.write_text(HUNG)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--timeout=3",
            "-c",
            str(PROJECT_ROOT / "pyproject.toml"),
            "--rootdir",
            str(tmp_path),
            str(test_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 failed" in output
    assert "Timeout (0:00:03)" in output or "Timeout" in output
    assert "test_waits_for_an_event_nobody_sets" in output
    assert "threading.py" in output  # the stack of the hung thread, down to where it waits

"""The process harness of `bench --http` and the end-to-end tests, on real processes: a tree
shaped like an RQ worker (a child that leaves the group with setsid(), as the work horse does)
is stopped or killed whole, its CPU is read through psutil, and waiting names what it waited
for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from portal.devtools.processes import (
    free_port,
    kill_tree,
    live_pids,
    spawn,
    stop_process_tree,
    wait_until,
)
from portal.devtools.usage import tree_cpu_seconds

# A parent that burns a little CPU, starts a child in a session of its own (out of the
# parent's process group, like RQ's work horse), prints the child's pid and waits.
PARENT = """
import subprocess, sys, time
sum(range(3_000_000))
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                         start_new_session=True)
print(child.pid, flush=True)
time.sleep(120)
"""


def start_tree(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    log = tmp_path / "parent.log"
    process = spawn([sys.executable, "-c", PARENT], cwd=tmp_path, env={}, log_path=log)
    child = wait_until(lambda: log.read_text().strip(), 30, "the child's pid")
    return process, int(child)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_stop_reaches_a_child_that_left_the_group(tmp_path: Path) -> None:
    process, child = start_tree(tmp_path)
    try:
        assert live_pids(process.pid) == {process.pid, child}
        assert os.getpgid(child) != os.getpgid(process.pid)  # a group kill would miss it
        assert (tree_cpu_seconds(process.pid) or 0) > 0
    finally:
        stop_process_tree(process)
    assert process.returncode is not None
    wait_until(lambda: gone(child), 10, "the setsid child to go")
    assert live_pids(process.pid) == set()


def test_kill_signals_the_whole_tree_and_says_whom(tmp_path: Path) -> None:
    process, child = start_tree(tmp_path)
    try:
        killed = kill_tree(process)
    finally:
        stop_process_tree(process)
    assert killed == [process.pid, child]
    assert process.returncode == -9
    wait_until(lambda: gone(child), 10, "the setsid child to go")


def test_wait_until_returns_the_value_or_names_what_it_waited_for() -> None:
    values = iter([0, "", "ready"])
    assert wait_until(lambda: next(values), 5, "a value", interval_s=0.01) == "ready"
    with pytest.raises(TimeoutError, match="waiting for nothing at all"):
        wait_until(lambda: None, 0.05, "nothing at all", interval_s=0.01)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))

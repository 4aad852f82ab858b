"""Load on `POST /api/v2/campaigns` from client threads, each one gamemaster on its own
keep-alive connection (`http_client.Client`), closed loop: a client sends its next create when
the previous one has returned.

Two shapes: `run_burst` releases a fixed number of creates per client at once (`bench --http`'s
burst, the load test's ramp steps); `LoadLoop` keeps creating until told to stop (the fault
tests inject their fault while it runs).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from portal.devtools.http_client import Client, Reply
from portal.devtools.scratch import Tick, no_progress


@dataclass
class Phase:
    """The replies of one stretch of load, its wall time and (bench) what it cost."""

    replies: list[Reply] = field(default_factory=list)
    wall_s: float = 0.0
    usage: dict[str, float | None] = field(default_factory=dict)


def run_closed_loop(
    clients: Sequence[Client], work: Callable[[int, Client], None]
) -> tuple[float, float]:
    """Run `work(index, client)` on a thread per client, each client's keep-alive connection
    opened first and all released together (a barrier), so no client's connect is timed.
    Returns when the last one ends: (the `time.monotonic()` of the release, wall seconds)."""
    ready = threading.Barrier(len(clients) + 1)

    def run(index: int) -> None:
        client = clients[index]
        with contextlib.suppress(OSError):
            client.connect()
        try:
            ready.wait()
        except threading.BrokenBarrierError:
            return
        work(index, client)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(clients))]
    try:
        for thread in threads:
            thread.start()
        ready.wait(timeout=60)
        started = time.monotonic()
        for thread in threads:
            thread.join()
        return started, time.monotonic() - started
    finally:
        ready.abort()
        for client in clients:
            client.close()


def run_burst(
    port: int,
    tokens: Sequence[str],
    per_client: int,
    label: str,
    timeout_s: float = 30.0,
    tick: Tick = no_progress,
) -> Phase:
    """One closed-loop burst: a thread per token (user `i` is `tokens[i]`), each with its own
    keep-alive connection opened before the start, released together, `per_client` creates
    each, named `"HTTP bench {label} {user}-{n}"`."""
    clients = [Client(port, i, token, timeout_s) for i, token in enumerate(tokens)]
    results: list[list[Reply]] = [[] for _ in clients]
    tick_lock = threading.Lock()

    def work(index: int, client: Client) -> None:
        for request in range(per_client):
            results[index].append(client.create(f"HTTP bench {label} {index}-{request}"))
            with tick_lock:
                tick("burst")

    _, wall_s = run_closed_loop(clients, work)
    return Phase([reply for replies in results for reply in replies], wall_s)


class LoadLoop:
    """A client thread per token creating campaigns (`"{label} {user}-{n}"`) until `stop()`,
    every reply kept. `pause_after_failure_s` makes a polite client that waits a moment after
    a failed create instead of retrying at once."""

    def __init__(
        self,
        port: int,
        tokens: Sequence[str],
        label: str,
        *,
        timeout_s: float = 60.0,
        pause_after_failure_s: float = 0.0,
    ) -> None:
        self.label = label
        self.pause_after_failure_s = pause_after_failure_s
        self.clients = [Client(port, i, token, timeout_s) for i, token in enumerate(tokens)]
        self.replies: list[Reply] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self.run_client, args=(client,), daemon=True)
            for client in self.clients
        ]

    def run_client(self, client: Client) -> None:
        try:
            n = 0
            while not self.stopping.is_set():
                reply = client.create(f"{self.label} {client.user_index}-{n}")
                n += 1
                with self.lock:
                    self.replies.append(reply)
                if reply.status != 201 and self.pause_after_failure_s:
                    time.sleep(self.pause_after_failure_s)
        finally:
            client.close()

    def __enter__(self) -> LoadLoop:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> list[Reply]:
        """Stop every client after its current create; return every reply."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=120)
        return self.snapshot()

    def snapshot(self) -> list[Reply]:
        """The replies so far, in the order they came back."""
        with self.lock:
            return list(self.replies)

    def count(self) -> int:
        with self.lock:
            return len(self.replies)

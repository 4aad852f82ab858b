"""Waking creates that wait for a pool build in flight (docs/pool.md, "Waiting for a build").

When a create finds the pool empty while builds of that pool are in flight, a campaign is
about to land that costs the machine far less than one more seeded in the request (a refill
seeds K at once; measured in docs/performance.md). So the create waits for it, up to
`fallback_wait_ms`, before it falls back. Builders announce every finished build on a Redis
channel (`announce_built`); each web process keeps one subscriber thread (`BuildSignal`) that
wakes its waiting requests, which then try their claim again. Best effort on both ends: an
announcement that is lost, or a process whose subscriber cannot reach Redis, only makes a
waiting create retry on its own clock (every POLL_S) until it falls back.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import redis
from redis.exceptions import RedisError

log = logging.getLogger("portal.pool")

CHANNEL = "campaign-pool:built"
POLL_S = 0.25  # a waiting create retries at least this often, announcement or not
RESUBSCRIBE_S = 1.0


def announce_built(redis_client: redis.Redis, pool_type: str, campaigns: int) -> None:
    """Tell waiting creates everywhere that `campaigns` new campaigns of a pool are ready."""
    try:
        redis_client.publish(CHANNEL, f"{pool_type}:{campaigns}")
    except RedisError as exc:
        log.debug("pool.build.announce_failed", extra={"error": str(exc)[:200]})


class BuildSignal:
    """One subscriber thread per process and Redis connection; `wait(seen, timeout)` returns
    once a build was announced after the announcement count `seen` (or on timeout)."""

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self.condition = threading.Condition()
        self.sequence = 0
        self.thread = threading.Thread(target=self._listen, name="pool-build-signal", daemon=True)
        self.thread.start()

    def _listen(self) -> None:
        while True:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                for message in pubsub.listen():
                    if message.get("type") == "message":
                        with self.condition:
                            self.sequence += 1
                            self.condition.notify_all()
            except (RedisError, OSError, ValueError) as exc:
                log.debug("pool.build_signal.lost", extra={"error": str(exc)[:200]})
            time.sleep(RESUBSCRIBE_S)

    def wait(self, seen: int, timeout: float) -> int:
        """Block until an announcement after `seen` or `timeout` seconds; the count now."""
        with self.condition:
            self.condition.wait_for(lambda: self.sequence != seen, timeout=max(0.0, timeout))
            return self.sequence


_signals: dict[tuple[int, int], BuildSignal] = {}
_signals_lock = threading.Lock()


def build_signal(redis_client: redis.Redis) -> BuildSignal:
    """This process's signal for `redis_client` (started on first use; a forked child gets
    its own, since threads do not survive a fork)."""
    key = (os.getpid(), id(redis_client))
    with _signals_lock:
        signal = _signals.get(key)
        if signal is None:
            signal = _signals[key] = BuildSignal(redis_client)
        return signal

"""Pushes to the Chi War clients' Phoenix channels, through Redis pub/sub.

Any process may publish: a web process after a create, an RQ worker while it seeds. Every web
process runs one `Hub` that listens on the Redis channel and hands each message to its own
sockets joined to the message's topic (`user:<id>`, `campaign:<id>`; the socket itself is
`portal/blueprints/socket.py`). Without REDIS_URL the app's in-process fakeredis carries the
messages, which is enough because there is only one process then.

The seeding stage of a campaign being seeded is also kept in Redis (`seeding_stage`), so a
`GET` of the campaign reports it while the job runs.

Publishing is best effort: a client that misses a push still sees the state on its next GET,
so a Redis failure is logged and never raised into the request or job that published.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis
from redis.client import PubSub
from redis.exceptions import RedisError

log = logging.getLogger("portal.channels")

CHANNEL = "campaign-pool:phoenix"
STAGE_KEY = "campaign-pool:seeding-stage:"
# A stage outlives any seeding job (SEED_JOB_TIMEOUT_S) and then goes away on its own.
STAGE_TTL_S = 3600
# The event every push goes out as: the web client handles `message` on every topic.
EVENT = "message"
COMPLETE = "complete"

Listener = Callable[[str, str, dict[str, Any]], None]


def publish(redis_client: redis.Redis, topic: str, payload: dict[str, Any]) -> bool:
    """Push `payload` to every socket joined to `topic`, on every web process."""
    message = json.dumps({"topic": topic, "event": EVENT, "payload": payload})
    try:
        redis_client.publish(CHANNEL, message)
    except RedisError as exc:
        log.warning("channels.publish_failed", extra={"topic": topic, "error": str(exc)[:200]})
        return False
    return True


def publish_seeding(
    redis_client: redis.Redis,
    campaign_id: uuid.UUID,
    owner_id: uuid.UUID,
    stage: str,
    **extra: Any,
) -> None:
    """`{"seeding_status": stage, "campaign_id": ...}` to the owner's `user:` topic (the one a
    client that just created the campaign listens on) and to the campaign's own topic; the
    stage is remembered for GETs until it is `complete`."""
    key = f"{STAGE_KEY}{campaign_id}"
    try:
        if stage == COMPLETE:
            redis_client.delete(key)
        else:
            redis_client.set(key, stage, ex=STAGE_TTL_S)
    except RedisError as exc:
        log.warning("channels.stage_failed", extra={"error": str(exc)[:200]})
    payload = {"seeding_status": stage, "campaign_id": str(campaign_id), **extra}
    publish(redis_client, f"user:{owner_id}", payload)
    publish(redis_client, f"campaign:{campaign_id}", payload)


def seeding_stages(redis_client: redis.Redis, campaign_ids: Iterable[uuid.UUID]) -> dict[str, str]:
    """The stage recorded for each campaign being seeded (absent: not started or unknown)."""
    ids = [str(i) for i in campaign_ids]
    if not ids:
        return {}
    try:
        values = redis_client.mget([f"{STAGE_KEY}{i}" for i in ids])
    except RedisError:
        return {}
    return {
        i: (v.decode() if isinstance(v, bytes) else str(v))
        for i, v in zip(ids, values, strict=True)
        if v is not None
    }


class Hub:
    """One Redis subscription per process, fanned out to the listeners of each topic.

    Listeners are called on the hub's thread and must not block (a socket sends and returns).
    A lost Redis connection is retried every few seconds; pushes published meanwhile are lost,
    which clients tolerate (see the module docstring)."""

    RETRY_S = 2.0

    def __init__(self, redis_client: redis.Redis) -> None:
        self.redis = redis_client
        self._listeners: dict[str, dict[int, Listener]] = defaultdict(dict)
        self._lock = threading.Lock()
        self._next = 0
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._ready = threading.Event()

    def subscribe(self, topic: str, listener: Listener) -> int:
        """Call `listener(topic, event, payload)` for each push to `topic`; returns a handle."""
        self._start()
        with self._lock:
            self._next += 1
            self._listeners[topic][self._next] = listener
            return self._next

    def unsubscribe(self, topic: str, handle: int) -> None:
        with self._lock:
            listeners = self._listeners.get(topic)
            if listeners is not None:
                listeners.pop(handle, None)
                if not listeners:
                    del self._listeners[topic]

    def listener_count(self, topic: str) -> int:
        with self._lock:
            return len(self._listeners.get(topic, ()))

    def stop(self) -> None:
        self._stopped.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="phoenix-hub", daemon=True)
            self._thread.start()
        # Subscribed before the first join is answered, so a push right after it arrives.
        self._ready.wait(timeout=5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                # redis-py's pubsub() is unannotated; the PubSub it returns is typed.
                pubsub: PubSub = cast(Any, self.redis).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                self._ready.set()
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._dispatch(message.get("data"))
            except Exception as exc:  # a dead Redis must not kill the hub: retry
                log.warning("channels.hub_error", extra={"error": str(exc)[:200]})
                self._ready.set()
                time.sleep(self.RETRY_S)

    def _dispatch(self, data: Any) -> None:
        try:
            message = json.loads(data)
            topic, event, payload = message["topic"], message["event"], message["payload"]
        except (TypeError, ValueError, KeyError):
            log.warning("channels.bad_message")
            return
        with self._lock:
            listeners = list(self._listeners.get(topic, {}).values())
        for listener in listeners:
            try:
                listener(topic, event, payload)
            except Exception:
                log.exception("channels.listener_failed", extra={"topic": topic})

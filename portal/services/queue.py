"""The Redis connection and RQ queues: a real Redis with REDIS_URL, an in-process fakeredis
without it (the embedded default, where a worker thread in the web process runs the jobs)."""

from __future__ import annotations

import fakeredis
import redis
from flask import Flask, current_app
from rq import Queue

from portal.config import Settings

QUEUE_NAMES = ("seeding", "default")


def connect_redis(settings: Settings) -> redis.Redis:
    """A Redis client for the settings: real when REDIS_URL is set, in-process otherwise."""
    if settings.redis_url:
        return redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def init_queue(app: Flask) -> None:
    app.extensions["redis"] = connect_redis(app.config["SETTINGS"])


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The app's Redis connection (shared by RQ, locks and the Socket.IO message queue)."""
    return (app or current_app).extensions["redis"]


def get_queue(name: str = "default", app: Flask | None = None) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; queues are {', '.join(QUEUE_NAMES)}")
    return Queue(name, connection=get_redis(app))

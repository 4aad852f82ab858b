"""Structured logging: one JSON object per line, so "what happened to campaign X" is a grep.

Call sites log an event name as the message and the facts as `extra`, e.g.
`log.info("campaign.seeded", extra={"campaign_id": str(cid), "duration_ms": 41.2})`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from flask import Flask

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_SECRET_HINTS = ("password", "token", "secret", "private_key", "authorization")


class JsonFormatter(logging.Formatter):
    """Render a record and its `extra` fields as a JSON line; secret-looking fields are masked."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        core = set(payload)
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS or key.startswith("_"):
                continue
            # An `extra` field named like a core one ("level", "event" ...) must not replace
            # it: it is kept beside it, prefixed.
            name = f"extra_{key}" if key in core else key
            payload[name] = "***" if is_secret_key(key) else value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def is_secret_key(key: str) -> bool:
    """Whether a field named `key` may hold a secret (its value is never logged)."""
    return any(hint in key.lower() for hint in _SECRET_HINTS)


def mask_secrets(value: Any) -> Any:
    """`value` with every secret-looking field masked at any depth. The formatter masks only
    the top-level fields of `extra`; a record's stored detail (a nested dict) goes through this
    before it is logged."""
    if isinstance(value, dict):
        return {k: "***" if is_secret_key(str(k)) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_secrets(v) for v in value]
    return value


class JsonStderrHandler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs: its own class, so it is installed once."""


def configure_logging(app: Flask) -> None:
    """Send the `portal` and `jobs` loggers to stderr as JSON lines (once per process)."""
    raw = os.environ.get("LOG_LEVEL") or "INFO"
    level = raw.strip().upper()
    if level not in LOG_LEVELS:
        from portal.config import ConfigError

        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    for name in ("portal", "jobs"):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(h, JsonStderrHandler) for h in logger.handlers):
            handler = JsonStderrHandler(sys.stderr)
            handler.setFormatter(JsonFormatter())
            logger.addHandler(handler)
        logger.propagate = True
    # The app is named "portal", so app.logger *is* the "portal" logger configured above;
    # re-parenting it to itself would make every record propagate in an endless loop.
    if app.logger is not logging.getLogger("portal"):
        app.logger.handlers.clear()
        app.logger.parent = logging.getLogger("portal")


def safe_log_extra(context: dict[str, Any] | None = None, **values: Any) -> dict[str, Any]:
    """`extra` for a log call from a caller-supplied context plus our own fields.

    Context comes from callers (seeders, jobs); a key like "name" or "filename" would make the
    logging call itself raise, so such keys are prefixed instead of trusted."""
    merged = {**(context or {}), **values}
    return {(f"ctx_{k}" if k in _STANDARD_ATTRS else k): v for k, v in merged.items()}

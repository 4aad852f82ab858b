"""Alerts: incidents kept as state in `pool_events`, and their delivery by email and Slack.

An alert must reach a human once per incident, not once per monitor run. So the state of every
incident lives in the database, as `pool_events` rows of kind "alert" whose detail says
`{"incident": key, "state": "open" | "resolved", ...}`: the latest row of a key is the truth,
whichever monitor process (or restart of it) looks next. A condition that becomes true opens
an incident and notifies; staying true does nothing (unless it gets worse: low -> empty);
becoming false resolves it and sends "recovered". An incident that re-opens within the cooldown
of the last notified one is recorded but not sent, so a flapping pool cannot flood anyone.

Delivery never raises: a dead SMTP server or webhook is logged (without the webhook URL, which
is a secret) and recorded on the alert row, and the monitor carries on. The portal reads the
same rows to show alerts (`active_alerts`).
"""

from __future__ import annotations

import http.client
import json
import logging
import smtplib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.config import Settings
from portal.models import PoolEvent, utcnow
from portal.services.pool.events import PoolEventKind, record_pool_event

log = logging.getLogger("portal.alerts")

SEND_TIMEOUT_S = 10.0
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SUBJECT_PREFIX = "[Campaign Pool]"
# What the dashboard shows: an incident is active until its latest row says it is over.
ALERT_CLEARED_STATES = frozenset({"resolved", "ok", "cleared", "closed"})
ALERT_SCAN_LIMIT = 500


@dataclass(frozen=True)
class Condition:
    """One thing the monitor watches, as observed now.

    `incident` is a stable key ("pool_low:master"): the same key across runs is what makes
    an incident one incident."""

    incident: str
    active: bool
    title: str
    message: str
    severity: str = "warning"
    pool_type: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    recovered_message: str = ""


@dataclass(frozen=True)
class AlertMessage:
    incident: str
    state: str  # "open" | "escalated" | "resolved"
    severity: str
    title: str
    body: str

    @property
    def subject(self) -> str:
        label = "RECOVERED" if self.state == "resolved" else self.severity.upper()
        return f"{SUBJECT_PREFIX} {label}: {self.title}"


@dataclass
class Transition:
    """What reconciling one condition did: opened, escalated or resolved an incident."""

    incident: str
    state: str
    severity: str
    suppressed: bool
    delivery: dict[str, str]
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "state": self.state,
            "severity": self.severity,
            "suppressed": self.suppressed,
            "delivery": self.delivery,
            "message": self.message,
        }


class AlertNotifier:
    """Sends an `AlertMessage` to every configured channel; reports, never raises."""

    def __init__(
        self,
        *,
        mail_server: str | None = None,
        mail_port: int = 25,
        sender: str = "campaign-pool@localhost",
        recipients: Iterable[str] = (),
        slack_webhook_url: str | None = None,
        timeout: float = SEND_TIMEOUT_S,
    ) -> None:
        self.mail_server = mail_server
        self.mail_port = mail_port
        self.sender = sender
        self.recipients = tuple(recipients)
        self.slack_webhook_url = slack_webhook_url
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertNotifier:
        return cls(
            mail_server=settings.mail_server,
            mail_port=settings.mail_port,
            sender=settings.mail_default_sender,
            recipients=settings.alert_emails,
            slack_webhook_url=settings.slack_webhook_url,
        )

    @property
    def channels(self) -> list[str]:
        """Channels that are configured: email needs a server and recipients."""
        found = []
        if self.mail_server and self.recipients:
            found.append("email")
        if self.slack_webhook_url:
            found.append("slack")
        return found

    def send(self, message: AlertMessage) -> dict[str, str]:
        """{"email": "sent" | "failed", "slack": ...} for each configured channel."""
        outcome: dict[str, str] = {}
        for channel in self.channels:
            sender = self._send_email if channel == "email" else self._send_slack
            try:
                sender(message)
            except Exception as exc:  # any failure to send is reported, never raised
                outcome[channel] = "failed"
                log.error(
                    "alert.send_failed",
                    extra={
                        "channel": channel,
                        "incident": message.incident,
                        "state": message.state,
                        "error": self._describe(exc),
                    },
                )
            else:
                outcome[channel] = "sent"
                log.info(
                    "alert.sent",
                    extra={
                        "channel": channel,
                        "incident": message.incident,
                        "state": message.state,
                    },
                )
        return outcome

    def _describe(self, exc: BaseException) -> str:
        """An error text safe to log: the webhook URL (a credential) is masked out."""
        text = f"{type(exc).__name__}: {exc}"
        if self.slack_webhook_url:
            # The whole URL, and its path on its own: an HTTP client quotes either.
            text = text.replace(self.slack_webhook_url, "***")
            path = urlsplit(self.slack_webhook_url).path
            if len(path) > 1:
                text = text.replace(path, "***")
        return text[:300]

    def _send_email(self, message: AlertMessage) -> None:
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = self.sender
        email["To"] = ", ".join(self.recipients)
        email.set_content(message.body)
        assert self.mail_server is not None
        with smtplib.SMTP(self.mail_server, self.mail_port, timeout=self.timeout) as smtp:
            smtp.send_message(email)

    def _send_slack(self, message: AlertMessage) -> None:
        icon = {"resolved": ":white_check_mark:", "critical": ":rotating_light:"}.get(
            message.state if message.state == "resolved" else message.severity, ":warning:"
        )
        body = json.dumps({"text": f"{icon} *{message.subject}*\n{message.body}"}).encode()
        assert self.slack_webhook_url is not None
        request = urllib.request.Request(
            self.slack_webhook_url,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            # The HTTPError carries the URL; keep only the status for the log.
            raise RuntimeError(f"webhook answered HTTP {exc.code}") from None
        except urllib.error.URLError as exc:
            raise RuntimeError(f"webhook unreachable: {exc.reason}") from None
        except http.client.InvalidURL:
            # Its message quotes the URL's path, which is the credential.
            raise RuntimeError("webhook URL refused by the HTTP client") from None
        if not 200 <= status < 300:
            raise RuntimeError(f"webhook answered HTTP {status}")


# -- incident state ------------------------------------------------------------------------


def _incident_rows(session: Session, incident: str, limit: int) -> list[PoolEvent]:
    """The latest alert rows of one incident key, newest first."""
    stmt = (
        sa.select(PoolEvent)
        .where(
            PoolEvent.kind == PoolEventKind.ALERT,
            PoolEvent.detail["incident"].as_string() == incident,
        )
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


def latest_alert(session: Session, incident: str) -> PoolEvent | None:
    rows = _incident_rows(session, incident, 1)
    return rows[0] if rows else None


def _notified_recently(session: Session, incident: str, since: datetime) -> bool:
    """Was an opening of this incident sent (not suppressed) since `since`?"""
    for row in _incident_rows(session, incident, 50):
        if row.created_at < since:
            return False
        detail = row.detail or {}
        if detail.get("state") == "open" and not detail.get("suppressed"):
            return True
    return False


def _text(condition: Condition, state: str) -> str:
    if state == "resolved":
        return condition.recovered_message or condition.message
    return condition.message


def _body(condition: Condition, state: str, detail: dict[str, Any]) -> str:
    lines = [_text(condition, state), ""]
    lines.append(f"Incident: {condition.incident} ({state})")
    if detail.get("opened_at"):
        lines.append(f"Opened at: {detail['opened_at']}")
    for key, value in sorted(condition.data.items()):
        lines.append(f"{key}: {value}")
    lines.append("")
    lines.append(f"Runbook: docs/operations.md, section '{condition.incident.split(':')[0]}'.")
    return "\n".join(lines)


def reconcile(
    session: Session,
    conditions: Iterable[Condition],
    notifier: AlertNotifier,
    *,
    now: datetime | None = None,
    cooldown: timedelta = timedelta(minutes=30),
) -> list[Transition]:
    """Open, escalate or resolve incidents to match `conditions`; notify once per change.

    Inserts the alert rows (`record_pool_event`); the caller commits. Callers must
    serialize runs (the monitor holds a lock) so two processes cannot open one incident twice.
    """
    now = now or utcnow()
    transitions: list[Transition] = []
    for condition in conditions:
        latest = latest_alert(session, condition.incident)
        previous = (latest.detail or {}) if latest is not None else {}
        is_open = previous.get("state") == "open"
        if condition.active and not is_open:
            suppressed = cooldown.total_seconds() > 0 and _notified_recently(
                session, condition.incident, now - cooldown
            )
            detail = {
                "incident_id": uuid.uuid4().hex,
                "opened_at": now.isoformat(),
                "suppressed": suppressed,
            }
            transitions.append(
                _record(session, notifier, condition, "open", condition.severity, detail, now)
            )
        elif condition.active and is_open:
            old_rank = SEVERITY_RANK.get(str(previous.get("severity")), 1)
            if SEVERITY_RANK.get(condition.severity, 1) > old_rank:
                detail = {
                    "incident_id": previous.get("incident_id"),
                    "opened_at": previous.get("opened_at"),
                    "suppressed": False,
                    "escalated": True,
                }
                transitions.append(
                    _record(session, notifier, condition, "open", condition.severity, detail, now)
                )
        elif not condition.active and is_open:
            detail = {
                "incident_id": previous.get("incident_id"),
                "opened_at": previous.get("opened_at"),
                # "recovered" goes out only for an incident whose opening went out.
                "suppressed": bool(previous.get("suppressed")),
            }
            transitions.append(
                _record(session, notifier, condition, "resolved", "info", detail, now)
            )
    return transitions


def _record(
    session: Session,
    notifier: AlertNotifier,
    condition: Condition,
    state: str,
    severity: str,
    detail: dict[str, Any],
    now: datetime,
) -> Transition:
    text = _text(condition, state)
    title = f"{condition.title} recovered" if state == "resolved" else condition.title
    message = AlertMessage(
        incident=condition.incident,
        state="escalated" if detail.get("escalated") else state,
        severity=severity,
        title=title,
        body=_body(condition, state, detail),
    )
    delivery = {} if detail["suppressed"] else notifier.send(message)
    record_pool_event(
        session,
        PoolEventKind.ALERT,
        pool_type=condition.pool_type,
        detail={
            "incident": condition.incident,
            "state": state,
            "severity": severity,
            "title": title,
            "message": text,
            "delivery": delivery,
            "data": condition.data,
            **detail,
        },
        created_at=now,
    )
    return Transition(
        condition.incident, message.state, severity, detail["suppressed"], delivery, text
    )


def active_alerts(session: Session, limit: int = ALERT_SCAN_LIMIT) -> list[dict[str, Any]]:
    """The dashboard's alerts: incidents whose latest `alert` event is not a resolution,
    newest first, in the few fields a card shows.

    Unlike `open_incidents` (the monitor's own bookkeeping, state "open" only) any state but
    a clearing one counts as active, and a row without an incident key is its own incident:
    the dashboard must show an alert rather than hide a row it does not understand.
    Reads the latest `limit` alert rows through the (kind, created_at) index; alert rows are a
    handful per incident, so that covers every incident that could still be open."""
    rows = session.execute(
        sa.select(PoolEvent.id, PoolEvent.pool_type, PoolEvent.detail, PoolEvent.created_at)
        .where(PoolEvent.kind == PoolEventKind.ALERT)
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(limit)
    ).all()
    seen: set[str] = set()
    active: list[dict[str, Any]] = []
    for row in rows:
        detail = row.detail if isinstance(row.detail, dict) else {}
        incident = str(detail.get("incident") or f"event-{row.id}")
        if incident in seen:
            continue
        seen.add(incident)
        state = str(detail.get("state") or "firing")
        if state.lower() in ALERT_CLEARED_STATES:
            continue
        active.append(
            {
                "incident": incident,
                "state": state,
                "pool_type": row.pool_type,
                "title": str(detail.get("title") or incident),
                "message": str(detail.get("message") or detail.get("summary") or ""),
                "since": row.created_at.isoformat(),
            }
        )
    return active


def open_incidents(session: Session, scan: int = 500) -> list[dict[str, Any]]:
    """Incidents whose latest row is "open", newest first: what the portal shows as alerts."""
    rows = session.scalars(
        sa.select(PoolEvent)
        .where(PoolEvent.kind == PoolEventKind.ALERT)
        .order_by(PoolEvent.created_at.desc(), PoolEvent.id.desc())
        .limit(scan)
    )
    seen: set[str] = set()
    found: list[dict[str, Any]] = []
    for row in rows:
        detail = row.detail or {}
        key = str(detail.get("incident"))
        if key in seen:
            continue
        seen.add(key)
        if detail.get("state") == "open":
            found.append({**detail, "since": row.created_at.isoformat(), "event_id": row.id})
    return found

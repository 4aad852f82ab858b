"""Alert delivery and incident state, against a real SMTP server (aiosmtpd) and a local HTTP
server standing in for the Slack webhook: once per incident, escalation, cooldown, recovery,
and failures to send that are reported, never raised, and never leak the webhook URL."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import PoolEvent, utcnow
from portal.services.monitoring.alerts import (
    AlertMessage,
    AlertNotifier,
    Condition,
    latest_alert,
    open_incidents,
    reconcile,
)
from tests.support.smtp import SmtpSink, WebhookSink

RECIPIENTS = ("ops@example.com", "oncall@example.com")


def notifier_for(smtp: SmtpSink | None, webhook: WebhookSink | None) -> AlertNotifier:
    return AlertNotifier(
        mail_server="127.0.0.1" if smtp else None,
        mail_port=smtp.port if smtp else 25,
        sender="pool@example.com",
        recipients=RECIPIENTS,
        slack_webhook_url=webhook.url if webhook else None,
        timeout=5,
    )


def low(active: bool, severity: str = "warning", ready: int = 1) -> Condition:
    return Condition(
        incident="pool_low:master",
        active=active,
        severity=severity,
        pool_type="master",
        title="master pool low",
        message=f"The master pool has {ready} ready campaign(s).",
        recovered_message="The master pool is back to 5 ready campaign(s).",
        data={"ready": ready},
    )


def alert_rows() -> list[dict]:
    db.session.expire_all()
    return [
        e.detail
        for e in db.session.scalars(
            sa.select(PoolEvent).where(PoolEvent.kind == "alert").order_by(PoolEvent.id)
        )
    ]


def test_email_and_slack_carry_the_alert(smtp_server: SmtpSink, slack_webhook: WebhookSink) -> None:
    message = AlertMessage("pool_low:master", "open", "warning", "master pool low", "1 ready")
    outcome = notifier_for(smtp_server, slack_webhook).send(message)

    assert outcome == {"email": "sent", "slack": "sent"}
    (email,) = smtp_server.messages
    assert email["Subject"] == "[Campaign Pool] WARNING: master pool low"
    assert email["From"] == "pool@example.com"
    assert smtp_server.recipients == [list(RECIPIENTS)]
    assert "1 ready" in email.get_content()
    (post,) = slack_webhook.posts
    assert "master pool low" in post["text"] and "1 ready" in post["text"]
    assert slack_webhook.paths == ["/services/T000/B000/secret-token-xyz"]


def test_unconfigured_channels_are_skipped() -> None:
    message = AlertMessage("x", "open", "warning", "t", "b")
    assert AlertNotifier(mail_server="127.0.0.1", recipients=()).send(message) == {}
    assert AlertNotifier().channels == []


def test_failures_to_send_are_reported_and_keep_the_webhook_secret(
    dead_port: int, slack_webhook: WebhookSink, caplog: pytest.LogCaptureFixture
) -> None:
    slack_webhook.status = 500
    notifier = AlertNotifier(
        mail_server="127.0.0.1",
        mail_port=dead_port,
        recipients=RECIPIENTS,
        slack_webhook_url=slack_webhook.url,
        timeout=5,
    )
    with caplog.at_level(logging.INFO, logger="portal.alerts"):
        outcome = notifier.send(AlertMessage("x", "open", "critical", "t", "b"))

    assert outcome == {"email": "failed", "slack": "failed"}
    assert len(slack_webhook.posts) == 1  # it was tried, and answered 500
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "alert.send_failed" in logged and "HTTP 500" in logged
    assert "secret-token-xyz" not in logged


def test_an_incident_notifies_once_then_recovers_once(
    app, smtp_server: SmtpSink, slack_webhook: WebhookSink
) -> None:
    notifier = notifier_for(smtp_server, slack_webhook)

    opened = reconcile(db.session, [low(True)], notifier)
    db.session.commit()
    again = reconcile(db.session, [low(True)], notifier)
    db.session.commit()

    assert [(t.incident, t.state) for t in opened] == [("pool_low:master", "open")]
    assert again == []
    assert len(smtp_server.messages) == 1 and len(slack_webhook.posts) == 1
    (incident,) = open_incidents(db.session)
    assert incident["incident"] == "pool_low:master" and incident["delivery"] == {
        "email": "sent",
        "slack": "sent",
    }

    resolved = reconcile(db.session, [low(False)], notifier)
    db.session.commit()
    quiet = reconcile(db.session, [low(False)], notifier)

    assert [t.state for t in resolved] == ["resolved"] and quiet == []
    assert smtp_server.subjects()[-1] == "[Campaign Pool] RECOVERED: master pool low recovered"
    assert "back to 5 ready" in slack_webhook.texts()[-1]
    assert open_incidents(db.session) == []
    rows = alert_rows()
    assert [r["state"] for r in rows] == ["open", "resolved"]
    assert rows[0]["incident_id"] == rows[1]["incident_id"]


def test_getting_worse_notifies_once_more(app, smtp_server: SmtpSink) -> None:
    notifier = notifier_for(smtp_server, None)
    for condition in (
        low(True),
        low(True, "critical", 0),
        low(True, "critical", 0),
        low(True, "warning", 1),
        low(True, "critical", 0),
    ):
        reconcile(db.session, [condition], notifier)
        db.session.commit()

    assert [s.split(":")[0] for s in smtp_server.subjects()] == [
        "[Campaign Pool] WARNING",
        "[Campaign Pool] CRITICAL",
    ]
    assert latest_alert(db.session, "pool_low:master").detail["escalated"] is True


def test_reopening_within_the_cooldown_is_recorded_but_not_sent(app, smtp_server: SmtpSink) -> None:
    notifier = notifier_for(smtp_server, None)
    start = utcnow()
    cooldown = timedelta(minutes=30)
    for minute, active in enumerate((True, False, True, False, True)):
        reconcile(
            db.session,
            [low(active)],
            notifier,
            now=start + timedelta(minutes=minute),
            cooldown=cooldown,
        )
        db.session.commit()

    # Open and recovered go out; the flaps after them are recorded silently.
    assert len(smtp_server.messages) == 2
    rows = alert_rows()
    assert [(r["state"], r["suppressed"]) for r in rows] == [
        ("open", False),
        ("resolved", False),
        ("open", True),
        ("resolved", True),
        ("open", True),
    ]
    # Past the cooldown an incident is news again.
    reconcile(db.session, [low(False)], notifier, now=start + timedelta(minutes=5))
    reconcile(db.session, [low(True)], notifier, now=start + timedelta(minutes=40))
    db.session.commit()
    assert len(smtp_server.messages) == 3


def test_incidents_are_independent(app, smtp_server: SmtpSink) -> None:
    notifier = notifier_for(smtp_server, None)
    other = Condition("workers_missing", True, "workers missing", "No worker.", "critical")
    reconcile(db.session, [low(True), other], notifier)
    db.session.commit()
    reconcile(db.session, [low(False), other], notifier)
    db.session.commit()

    assert [i["incident"] for i in open_incidents(db.session)] == ["workers_missing"]
    assert len(smtp_server.messages) == 3

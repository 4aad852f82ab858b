"""Alert delivery and incident state, against a real SMTP server (aiosmtpd) and a local HTTP
server standing in for the Slack webhook: once per incident, escalation, cooldown, recovery,
and failures to send that are reported, never raised, and never leak the webhook URL."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from portal.extensions import db
from portal.models import PoolEvent, utcnow
from portal.services.monitoring.alerts import (
    AlertMessage,
    AlertNotifier,
    Condition,
    active_alerts,
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


def test_alert_mail_has_a_default_sender(smtp_server: SmtpSink) -> None:
    notifier = AlertNotifier(
        mail_server="127.0.0.1", mail_port=smtp_server.port, recipients=["a@b.c"]
    )
    assert notifier.send(AlertMessage("x", "open", "warning", "t", "b")) == {"email": "sent"}
    assert smtp_server.messages[0]["From"] == "campaign-pool@localhost"


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


# --- what the messages say --------------------------------------------------------------------


def test_the_alert_mail_is_plain_text_naming_the_incident_and_its_runbook(
    app, smtp_server: SmtpSink
) -> None:
    opened_at = utcnow()
    reconcile(db.session, [low(True, ready=1)], notifier_for(smtp_server, None), now=opened_at)
    db.session.commit()

    (email,) = smtp_server.messages
    assert email.get_content_type() == "text/plain"
    assert email["To"] == "ops@example.com, oncall@example.com"
    assert email["Subject"] == "[Campaign Pool] WARNING: master pool low"
    assert email.get_content().splitlines() == [
        "The master pool has 1 ready campaign(s).",
        "",
        "Incident: pool_low:master (open)",
        f"Opened at: {opened_at.isoformat()}",
        "ready: 1",
        "",
        "Runbook: docs/operations.md, section 'pool_low'.",
    ]


def test_a_recovery_mail_tells_the_recovery_and_keeps_the_opening_time(
    app, smtp_server: SmtpSink
) -> None:
    notifier = notifier_for(smtp_server, None)
    start = utcnow()
    reconcile(db.session, [low(True)], notifier, now=start)
    reconcile(db.session, [low(False)], notifier, now=start + timedelta(minutes=3))
    db.session.commit()

    recovered = smtp_server.messages[-1]
    assert recovered["Subject"] == "[Campaign Pool] RECOVERED: master pool low recovered"
    lines = recovered.get_content().splitlines()
    assert lines[0] == "The master pool is back to 5 ready campaign(s)."
    assert "Incident: pool_low:master (resolved)" in lines
    assert f"Opened at: {start.isoformat()}" in lines
    # Without a recovery text of its own, a condition's recovery repeats its message.
    plain = Condition("disk_full", True, "disk full", "The disk is full.", "critical")
    reconcile(db.session, [plain], notifier, now=start)
    over = Condition("disk_full", False, "disk full", "The disk is full.")
    reconcile(db.session, [over], notifier)
    db.session.commit()
    assert smtp_server.messages[-1].get_content().splitlines()[0] == "The disk is full."
    assert smtp_server.subjects()[-1] == "[Campaign Pool] RECOVERED: disk full recovered"


@pytest.mark.parametrize(
    ("state", "severity", "icon", "subject"),
    [
        ("open", "warning", ":warning:", "[Campaign Pool] WARNING: t"),
        ("open", "critical", ":rotating_light:", "[Campaign Pool] CRITICAL: t"),
        ("escalated", "critical", ":rotating_light:", "[Campaign Pool] CRITICAL: t"),
        ("resolved", "info", ":white_check_mark:", "[Campaign Pool] RECOVERED: t"),
    ],
)
def test_the_slack_post_is_json_with_an_icon_by_state_and_severity(
    slack_webhook: WebhookSink, state: str, severity: str, icon: str, subject: str
) -> None:
    message = AlertMessage("x", state, severity, "t", "the body")
    assert notifier_for(None, slack_webhook).send(message) == {"slack": "sent"}
    assert slack_webhook.posts == [{"text": f"{icon} *{subject}*\nthe body"}]
    assert slack_webhook.content_types == ["application/json"]


def test_a_webhook_answering_a_non_2xx_status_is_a_failure(slack_webhook: WebhookSink) -> None:
    notifier = notifier_for(None, slack_webhook)
    message = AlertMessage("x", "open", "warning", "t", "b")
    slack_webhook.status = 204
    assert notifier.send(message) == {"slack": "sent"}
    slack_webhook.status = 404
    assert notifier.send(message) == {"slack": "failed"}


def test_an_unreachable_webhook_is_reported_by_reason(
    dead_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = AlertNotifier(
        slack_webhook_url=f"http://127.0.0.1:{dead_port}/services/T9/B9/hidden", timeout=5
    )
    with caplog.at_level(logging.INFO, logger="portal.alerts"):
        assert notifier.send(AlertMessage("x", "open", "warning", "t", "b")) == {"slack": "failed"}
    (record,) = [r for r in caplog.records if r.getMessage() == "alert.send_failed"]
    assert record.error.startswith("RuntimeError: webhook unreachable")
    assert "hidden" not in record.error


def test_a_malformed_webhook_url_is_masked_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    """An error that quotes the webhook URL (here, the URL has no scheme) logs it masked."""
    secret = "hooks.example.com/services/T1/B1/leaky-secret"
    notifier = AlertNotifier(slack_webhook_url=secret, timeout=5)
    with caplog.at_level(logging.INFO, logger="portal.alerts"):
        assert notifier.send(AlertMessage("x", "open", "warning", "t", "b")) == {"slack": "failed"}
    (record,) = [r for r in caplog.records if r.getMessage() == "alert.send_failed"]
    assert record.channel == "slack" and record.incident == "x"
    assert record.error == "ValueError: unknown url type: '***'"


def test_a_webhook_url_the_http_client_refuses_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A space in the path passes the URL parser but not the HTTP client, whose error quotes
    the path: the path is the credential, so the log carries neither it nor the URL."""
    notifier = AlertNotifier(
        slack_webhook_url="http://127.0.0.1:9/services/T1/B1/leaky secret", timeout=5
    )
    with caplog.at_level(logging.INFO, logger="portal.alerts"):
        assert notifier.send(AlertMessage("x", "open", "warning", "t", "b")) == {"slack": "failed"}
    (record,) = [r for r in caplog.records if r.getMessage() == "alert.send_failed"]
    assert "leaky" not in record.error and "B1" not in record.error
    assert record.error == "RuntimeError: webhook URL refused by the HTTP client"


@pytest.mark.parametrize(
    ("url", "error", "logged"),
    [
        (
            "https://hooks.example.com/services/T1/B1/s3cr3t",
            "bad '/services/T1/B1/s3cr3t'",
            "bad '***'",
        ),
        ("https://hooks.example.com/k", "bad '/k'", "bad '***'"),
        # A bare "/" path is no secret: masking it would garble every error text.
        ("https://hooks.example.com/", "no route to a/b", "no route to a/b"),
    ],
)
def test_an_error_quoting_only_the_webhook_path_is_masked(
    url: str, error: str, logged: str
) -> None:
    notifier = AlertNotifier(slack_webhook_url=url)
    assert notifier._describe(ValueError(error)) == f"ValueError: {logged}"


# --- incident state ---------------------------------------------------------------------------


def test_a_transition_is_recorded_with_what_the_dashboard_and_monitor_report_need(
    app, smtp_server: SmtpSink
) -> None:
    (opened,) = reconcile(db.session, [low(True, ready=2)], notifier_for(smtp_server, None))
    db.session.commit()

    assert opened.as_dict() == {
        "incident": "pool_low:master",
        "state": "open",
        "severity": "warning",
        "suppressed": False,
        "delivery": {"email": "sent"},
        "message": "The master pool has 2 ready campaign(s).",
    }
    db.session.expire_all()
    (row,) = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "alert")).all()
    assert row.pool_type == "master"
    detail = dict(row.detail)
    assert len(detail.pop("incident_id")) == 32
    assert detail == {
        "incident": "pool_low:master",
        "state": "open",
        "severity": "warning",
        "title": "master pool low",
        "message": "The master pool has 2 ready campaign(s).",
        "delivery": {"email": "sent"},
        "data": {"ready": 2},
        "opened_at": row.created_at.isoformat(),
        "suppressed": False,
    }
    (recovered,) = reconcile(db.session, [low(False)], notifier_for(smtp_server, None))
    db.session.commit()
    assert (recovered.state, recovered.severity, recovered.message) == (
        "resolved",
        "info",
        "The master pool is back to 5 ready campaign(s).",
    )
    resolved = latest_alert(db.session, "pool_low:master").detail
    assert resolved["title"] == "master pool low recovered"
    assert resolved["opened_at"] == detail["opened_at"]


def test_an_escalation_keeps_the_incident_and_says_it_escalated(
    app, smtp_server: SmtpSink, slack_webhook: WebhookSink
) -> None:
    notifier = notifier_for(smtp_server, slack_webhook)
    start = utcnow()
    reconcile(db.session, [low(True)], notifier, now=start)
    (escalated,) = reconcile(
        db.session, [low(True, "critical", 0)], notifier, now=start + timedelta(minutes=1)
    )
    db.session.commit()

    assert (escalated.state, escalated.severity, escalated.suppressed) == (
        "escalated",
        "critical",
        False,
    )
    opening, escalation = alert_rows()
    assert escalation["state"] == "open" and escalation["escalated"] is True
    assert escalation["incident_id"] == opening["incident_id"]
    assert escalation["opened_at"] == opening["opened_at"] == start.isoformat()
    assert f"Opened at: {start.isoformat()}" in smtp_server.messages[-1].get_content()
    (incident,) = open_incidents(db.session)
    assert incident["since"] == (start + timedelta(minutes=1)).isoformat()
    assert slack_webhook.texts()[-1].startswith(":rotating_light: *[Campaign Pool] CRITICAL")


def test_only_a_rise_in_severity_escalates(app, smtp_server: SmtpSink) -> None:
    notifier = notifier_for(smtp_server, None)
    for severity in ("info", "info", "warning", "info", "warning"):
        reconcile(db.session, [low(True, severity)], notifier)
        db.session.commit()
    assert [s.split(":")[0] for s in smtp_server.subjects()] == [
        "[Campaign Pool] INFO",
        "[Campaign Pool] WARNING",
    ]


def test_a_severity_the_monitor_does_not_know_ranks_as_a_warning(
    app, smtp_server: SmtpSink
) -> None:
    notifier = notifier_for(smtp_server, None)
    for severity in ("urgent", "warning", "critical"):
        reconcile(db.session, [low(True, severity)], notifier)
        db.session.commit()
    other = "workers_missing"
    for severity in ("warning", "urgent"):
        condition = Condition(other, True, "workers missing", "No worker.", severity)
        reconcile(db.session, [condition], notifier)
        db.session.commit()
    assert [s.split(":")[0] for s in smtp_server.subjects()] == [
        "[Campaign Pool] URGENT",
        "[Campaign Pool] CRITICAL",
        "[Campaign Pool] WARNING",
    ]


def test_a_flapping_pool_is_notified_again_once_per_cooldown(app, smtp_server: SmtpSink) -> None:
    """Openings that were suppressed do not count as notified: a pool that keeps flapping is
    announced again once the cooldown since the last opening that went out has passed."""
    notifier = notifier_for(smtp_server, None)
    start = utcnow()
    sent_at = []
    for step in range(16):  # every 5 minutes: open, resolved, open ...
        minute = 5 * step
        before = len(smtp_server.messages)
        reconcile(
            db.session,
            [low(step % 2 == 0)],
            notifier,
            now=start + timedelta(minutes=minute),
            cooldown=timedelta(minutes=30),
        )
        db.session.commit()
        if len(smtp_server.messages) > before:
            sent_at.append(minute)
    assert sent_at == [0, 5, 40, 45]


def test_without_a_cooldown_every_opening_is_sent(app, smtp_server: SmtpSink) -> None:
    notifier = notifier_for(smtp_server, None)
    now = utcnow()
    for active in (True, False, True, False, True):
        reconcile(db.session, [low(active)], notifier, now=now, cooldown=timedelta(0))
        db.session.commit()
    assert len(smtp_server.messages) == 5
    assert [(r["state"], r["suppressed"]) for r in alert_rows()][-1] == ("open", False)


def test_the_latest_row_of_an_incident_wins_even_within_one_instant(
    app, smtp_server: SmtpSink
) -> None:
    notifier = notifier_for(smtp_server, None)
    now = utcnow()
    for active in (True, False, True):
        reconcile(db.session, [low(active)], notifier, now=now, cooldown=timedelta(0))
        db.session.commit()
    assert latest_alert(db.session, "pool_low:master").detail["state"] == "open"
    assert [r["state"] for r in alert_rows()] == ["open", "resolved", "open"]
    assert latest_alert(db.session, "never_seen") is None


def test_open_incidents_lists_the_open_ones_newest_first(app) -> None:
    start = utcnow()
    notifier = AlertNotifier()
    oldest = Condition("disk_full", True, "disk full", "The disk is full.", "critical")
    other = Condition("workers_missing", True, "workers missing", "No worker.", "critical")
    reconcile(db.session, [oldest], notifier, now=start - timedelta(minutes=1))
    reconcile(db.session, [low(True)], notifier, now=start)
    reconcile(db.session, [other], notifier, now=start + timedelta(minutes=1))
    reconcile(db.session, [low(False)], notifier, now=start + timedelta(minutes=2))
    db.session.commit()

    incidents = open_incidents(db.session)
    assert [i["incident"] for i in incidents] == ["workers_missing", "disk_full"]
    assert incidents[1]["since"] == (start - timedelta(minutes=1)).isoformat()
    assert incidents[1]["delivery"] == {}  # no channel configured
    ids = db.session.scalars(
        sa.select(PoolEvent.id)
        .where(PoolEvent.detail["state"].as_string() == "open")
        .order_by(PoolEvent.id.desc())
    ).all()
    assert [i["event_id"] for i in incidents] == [ids[0], ids[2]]


# --- the dashboard's view ---------------------------------------------------------------------


def add_alert_row(detail: dict | None, minutes: int, pool_type: str | None = None) -> PoolEvent:
    row = PoolEvent(
        kind="alert",
        pool_type=pool_type,
        detail=detail,
        created_at=utcnow().replace(microsecond=0) + timedelta(minutes=minutes),
    )
    db.session.add(row)
    db.session.flush()
    return row


def test_the_dashboard_shows_every_incident_not_cleared(app) -> None:
    add_alert_row({"incident": "a", "state": "open", "title": "A old"}, 0, "master")
    newest_a = add_alert_row(
        {"incident": "a", "state": "open", "title": "A", "message": "a happened"}, 5, "master"
    )
    for minutes, (key, state) in enumerate(
        [("b", "resolved"), ("c", "OK"), ("d", "Cleared"), ("e", "closed")], start=1
    ):
        add_alert_row({"incident": key, "state": "open"}, minutes - 10)
        add_alert_row({"incident": key, "state": state}, minutes)
    bare = add_alert_row({"summary": "something odd"}, 2)
    legacy = add_alert_row(None, 3)
    add_alert_row({"incident": "f", "state": "escalated", "message": ""}, 4)
    add_alert_row({"incident": "g", "state": "open"}, -30)  # older than every repeat
    db.session.commit()

    shown = active_alerts(db.session)

    assert [a["incident"] for a in shown] == [
        "a",
        "f",
        f"event-{legacy.id}",
        f"event-{bare.id}",
        "g",
    ]
    assert shown[0] == {
        "incident": "a",
        "state": "open",
        "pool_type": "master",
        "title": "A",
        "message": "a happened",
        "since": newest_a.created_at.isoformat(),
    }
    assert (shown[1]["state"], shown[1]["title"], shown[1]["message"]) == ("escalated", "f", "")
    assert shown[2]["state"] == "firing" and shown[2]["message"] == ""
    assert shown[2]["title"] == f"event-{legacy.id}"
    assert shown[3]["message"] == "something odd" and shown[3]["pool_type"] is None
    # Only the latest rows are read.
    assert [a["incident"] for a in active_alerts(db.session, limit=1)] == ["a"]


def test_an_incident_longer_than_the_cooldown_is_announced_when_it_reopens(
    app, smtp_server: SmtpSink
) -> None:
    """The cooldown counts from the last opening sent, not from the last message: a recovery
    after a long incident does not silence the next opening."""
    notifier = notifier_for(smtp_server, None)
    start = utcnow()
    for minute, active in ((0, True), (35, False), (40, True)):
        reconcile(
            db.session,
            [low(active)],
            notifier,
            now=start + timedelta(minutes=minute),
            cooldown=timedelta(minutes=30),
        )
        db.session.commit()
    assert [s.split(":")[0] for s in smtp_server.subjects()] == [
        "[Campaign Pool] WARNING",
        "[Campaign Pool] RECOVERED",
        "[Campaign Pool] WARNING",
    ]


def test_a_server_that_never_answers_cannot_hold_the_monitor() -> None:
    """A mail server or webhook that accepts the connection and then says nothing costs the
    notifier its timeout, not the monitor pass."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are queued, never accepted: no greeting, no answer
    port = silent.getsockname()[1]
    notifier = AlertNotifier(
        mail_server="127.0.0.1",
        mail_port=port,
        recipients=RECIPIENTS,
        slack_webhook_url=f"http://127.0.0.1:{port}/services/T2/B2/quiet",
        timeout=0.5,
    )
    outcome: dict[str, str] = {}
    sender = threading.Thread(
        target=lambda: outcome.update(
            notifier.send(AlertMessage("x", "open", "warning", "t", "b"))
        ),
        daemon=True,
    )
    try:
        sender.start()
        sender.join(timeout=10)
        assert not sender.is_alive(), "the notifier waited on a silent server"
        assert outcome == {"email": "failed", "slack": "failed"}
    finally:
        silent.close()

"""What the fault tests share: a real gunicorn with extra environment, an API client that keeps
every reply (status, JSON body, headers, timing), and the database checks that say whether
anything was lost or handed out twice.

The server itself is `portal.devtools.bench_http`'s (same command, process group, start-up probe
and shutdown); only the environment differs, because a fault test points the app at its own
ImageKit server or pool settings, which the bench deliberately blanks out.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.devtools.bench_http import Client, HttpBenchPlan, gunicorn_server
from portal.devtools.bench_http import rq_worker as bench_rq_worker
from portal.models import Campaign, PoolEvent
from portal.services.campaigns.records import content_counts


@contextlib.contextmanager
def gunicorn_with_env(
    database_url: str,
    secret_key: str,
    workdir: Path,
    extra_env: Mapping[str, str],
    *,
    threads: int = 8,
) -> Iterator[tuple[int, int]]:
    """`bench_http.gunicorn_server` with `extra_env` laid over the bench's environment; yields
    (port, process group id) once `/health` answers, stops the whole group afterwards."""
    plan = HttpBenchPlan(threads=threads)
    with gunicorn_server(database_url, secret_key, plan, workdir, extra_env) as served:
        yield served


@contextlib.contextmanager
def rq_worker(redis_url: str, env: Mapping[str, str], workdir: Path) -> Iterator[int]:
    """`bench_http.rq_worker` (the documented production command, in its own process group,
    stopped with it) with `env` laid over this process's environment; yields its pid once it
    has registered."""
    with bench_rq_worker({**os.environ, **env}, redis_url, workdir, "faults-worker") as process:
        yield process.pid


def group_pids(pgid: int) -> set[int]:
    """Live processes of a process group (gunicorn's master and its worker)."""
    pids = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[2]) == pgid and stat[0] != "Z":
            pids.add(int(entry.name))
    return pids


# ---------------------------------------------------------------------------- the client


@dataclass
class Reply:
    """One create as the client saw it; status 0 means no HTTP answer at all."""

    user: int
    name: str
    started: float
    ended: float
    status: int
    body: Any = None
    retry_after: str | None = None
    content_type: str = ""
    error: str | None = None

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def campaign_id(self) -> str | None:
        return self.body.get("id") if self.status == 201 and isinstance(self.body, dict) else None

    @property
    def clean_failure(self) -> bool:
        """A failure a client can act on: a JSON 503 that says why and when to come back."""
        return (
            self.status == 503
            and self.content_type.startswith("application/json")
            and isinstance(self.body, dict)
            and bool(self.body.get("message"))
            and self.retry_after is not None
        )


class ApiClient:
    """One gamemaster's client (`bench_http.Client`: its token and one keep-alive connection,
    reopened after errors) that keeps the whole reply."""

    def __init__(self, port: int, user: int, token: str, timeout_s: float = 20.0) -> None:
        self.user = user
        self._client = Client(port, user, token, timeout_s)

    def close(self) -> None:
        self._client.close()

    def create(self, name: str) -> Reply:
        sent = self._client.exchange(name)
        reply = Reply(
            self.user, name, sent.started, sent.ended, sent.status,
            retry_after=sent.headers.get("Retry-After"),
            content_type=sent.headers.get("Content-Type") or "",
            error=sent.error,
        )  # fmt: skip
        if sent.status:
            try:
                reply.body = json.loads(sent.raw)
            except ValueError:
                reply.body = sent.raw[:300].decode(errors="replace")
        return reply


# ---------------------------------------------------------------------------- the checks


def assignment_problems(session: Session, replies: list[Reply], user_ids: list[str]) -> list[str]:
    """Everything that would mean a campaign was lost, half-built or handed out twice.

    - an id returned twice, or a campaign with two `assigned` events;
    - a 201 campaign that is missing, still in a pool, not its requester's, or misnamed;
    - a pool campaign in a state that contradicts its flag (in a pool but `assigned`, out of
      the pool but `ready`/`building`);
    - any non-template campaign that is not fully seeded (content counts differ from the
      template's, or `seeded_at` is empty): a half-done copy, whoever it belongs to."""
    problems: list[str] = []
    ids = [r.campaign_id for r in replies if r.campaign_id]
    twice = [cid for cid, n in Counter(ids).items() if n > 1]
    if twice:
        problems.append(f"ids returned more than once: {twice}")
    assigned_twice = session.scalars(
        sa.select(PoolEvent.campaign_id)
        .where(PoolEvent.kind == "assigned")
        .group_by(PoolEvent.campaign_id)
        .having(sa.func.count() > 1)
    ).all()
    if assigned_twice:
        problems.append(f"campaigns assigned twice: {assigned_twice}")
    for reply in replies:
        if not reply.campaign_id:
            continue
        campaign = session.get(Campaign, uuid.UUID(reply.campaign_id))
        expected = (False, user_ids[reply.user], reply.name)
        actual = (
            None if campaign is None else (campaign.is_pool, str(campaign.user_id), campaign.name)
        )
        if actual != expected:
            problems.append(f"201 campaign {reply.campaign_id}: {actual} != {expected}")
    contradictions = session.scalars(
        sa.select(Campaign.id).where(
            sa.or_(
                sa.and_(Campaign.is_pool.is_(True), Campaign.pool_status == "assigned"),
                sa.and_(
                    Campaign.is_pool.is_(False), Campaign.pool_status.in_(("ready", "building"))
                ),
            )
        )
    ).all()
    if contradictions:
        problems.append(f"pool flag and status disagree: {contradictions}")
    template_id = session.scalar(sa.select(Campaign.id).where(Campaign.is_master_template))
    expected_counts = content_counts(session, template_id, with_images=True)
    for campaign in session.scalars(
        sa.select(Campaign).where(Campaign.is_master_template.is_(False))
    ):
        if campaign.pool_status == "failed":
            continue  # a failed build is rolled back to an empty shell on purpose
        counts = content_counts(session, campaign.id, with_images=True)
        if counts != expected_counts or campaign.seeded_at is None:
            problems.append(
                f"campaign {campaign.id} ({campaign.pool_status}) is not complete: {counts}"
            )
    return problems


def owned_campaigns(session: Session, user_ids: list[str]) -> dict[str, int]:
    """Campaigns each user owns outside the pool (what GET /api/v2/campaigns lists)."""
    rows = session.execute(
        sa.select(Campaign.user_id, sa.func.count())
        .where(Campaign.user_id.in_([uuid.UUID(u) for u in user_ids]), Campaign.is_pool.is_(False))
        .group_by(Campaign.user_id)
    )
    return {str(uid): n for uid, n in rows}

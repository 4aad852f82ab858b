"""The database restarts while gamemasters create campaigns through a real gunicorn.

A private PostgreSQL cluster (tests/support/pg_cluster.py; the shared test server is never touched)
holds the template and a small pool; gunicorn serves it (`POOL_FALLBACK=sync`: once the pool is
empty, creates seed in the request), four clients create campaigns in a loop, and the cluster is
restarted in the middle: `-m fast` while claims are in flight, `-m immediate` (a crash: no shutdown
checkpoint, recovery at start) while in-request seeding transactions are in flight.

What must hold, whatever the timing:
- every request either succeeds (201) or fails cleanly: a JSON 503 with a message and
  Retry-After, promptly; never a hang, a dropped connection or a 500;
- nothing is half done: every 201 campaign exists, belongs to its requester and verifies; every
  campaign in the database is complete; no campaign is handed out twice; no pool row is left in a
  state that contradicts its flag;
- a create whose reply was lost may have committed (the commit can reach the server and the
  answer not come back): such a campaign is complete and listed to its owner, and there are never
  more of them than failed requests;
- the same gunicorn processes serve creates again after the restart, unrestarted.

The figures (requests ok / failed cleanly, outage and recovery times) are printed, not asserted.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.devtools.assignment_check import check_assignments
from portal.devtools.http_client import Client, Reply
from portal.devtools.load import LoadLoop
from portal.devtools.prepare import create_gamemasters, fill_pool
from portal.devtools.processes import gunicorn_server, live_pids, wait_until
from portal.models import Campaign
from portal.services.seeding.verify import verify_campaign
from tests.conftest import TEST_SECRET, build_template_database
from tests.support.pg_cluster import PgCluster

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENTS = 4
PAUSE_AFTER_FAILURE_S = 0.05  # a polite client; Retry-After is honoured in spirit, not in full
LOAD_DEADLINE_S = 30.0
SLOW_REPLY_S = 10.0
CLIENT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Golden:
    """The prepared database every test copies: template and gamemasters, no pool yet."""

    name: str
    user_ids: list[str]
    tokens: list[str]


@pytest.fixture(scope="module")
def golden(pg_cluster: PgCluster) -> Golden:
    from portal.extensions import db
    from tests.conftest import make_app

    url = pg_cluster.create_database("golden")
    build_template_database(url)
    app = make_app(url)
    with app.app_context():
        users = create_gamemasters(db.session, CLIENTS, "faults")
        db.session.remove()
        db.engine.dispose()
    return Golden("golden", [user.id for user in users], [user.token for user in users])


def fresh_copy(cluster: PgCluster, golden: Golden, pool: int) -> str:
    """A copy of the golden database with `pool` ready master-pool campaigns."""
    url = cluster.create_database(f"t_{uuid.uuid4().hex[:8]}", template=golden.name)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        if pool:
            with Session(engine) as session:
                template = session.scalars(sa.select(Campaign).where(Campaign.is_master_template))
                template = template.one()
                template_id, owner_id = template.id, template.user_id
            fill_pool(engine, template_id, owner_id, pool)
    finally:
        engine.dispose()
    return url


def load(port: int, tokens: list[str]) -> LoadLoop:
    """CLIENTS polite clients creating campaigns until told to stop; every reply kept."""
    return LoadLoop(
        port, tokens, f"Fault {uuid.uuid4().hex[:6]}",
        timeout_s=CLIENT_TIMEOUT_S, pause_after_failure_s=PAUSE_AFTER_FAILURE_S,
    )  # fmt: skip


def wait_for(load: LoadLoop, predicate: Callable[[list[Reply]], bool], what: str) -> None:
    """Until the replies so far satisfy `predicate` (polled often: a restart is timed by it)."""
    wait_until(lambda: predicate(load.snapshot()), LOAD_DEADLINE_S, f"load: {what}", 0.01)


# (shutdown mode, the create source to wait for, how many of them) per restart, in order.
RESTARTS = [
    # Claims take milliseconds: restart while the pool still has most of its campaigns.
    ("fast", "master_pool", 4),
    # The pool is empty by then, so every create seeds in the request (~0.2 s): crash mid-seed.
    ("immediate", "seeded", 2),
]
POOL = 12


def ok_after(replies: list[Reply], moment: float) -> list[Reply]:
    return [r for r in replies if r.status == 201 and r.started >= moment]


def restart_under_load(
    cluster: PgCluster, load: LoadLoop, mode: str, source: str, count: int
) -> tuple[float, float]:
    """Wait for `count` more creates from `source`, restart, wait until every client has had a
    create succeed again; return (restart started, restart ended)."""
    since = time.monotonic()
    wait_for(
        load,
        lambda rs: sum(1 for r in ok_after(rs, since) if r.body["source"] == source) >= count,
        f"{count} creates from {source}",
    )
    started = time.monotonic()
    ended = started + cluster.restart(mode)
    wait_for(
        load,
        lambda rs: {r.user for r in ok_after(rs, ended)} == set(range(CLIENTS)),
        f"a create per client after the {mode} restart",
    )
    return started, ended


def restart_figures(
    mode: str, replies: list[Reply], started: float, ended: float
) -> dict[str, object]:
    """What the clients saw of one restart: the requests it failed, from the first of them to
    the first create that succeeded after it."""
    first_ok = min((r.ended for r in ok_after(replies, ended)), default=None)
    until = first_ok if first_ok is not None else float("inf")
    failed = [r for r in replies if r.status != 201 and r.ended >= started and r.started < until]
    return {
        "mode": mode,
        "restart_s": round(ended - started, 3),
        "failed_cleanly": sum(1 for r in failed if r.clean_failure),
        "outage_s": round(until - min(r.started for r in failed), 3) if failed else 0.0,
        "recovery_s": round(first_ok - ended, 3) if first_ok else None,
    }


def test_restarts_during_load_lose_nothing_and_the_same_server_recovers(
    pg_cluster: PgCluster, golden: Golden, tmp_path: Path
):
    url = fresh_copy(pg_cluster, golden, POOL)
    windows: list[tuple[str, float, float]] = []
    with gunicorn_server(url, TEST_SECRET, tmp_path, threads=8) as server:
        pids_before = live_pids(server.process.pid)
        with load(server.port, golden.tokens) as running:
            for mode, source, count in RESTARTS:
                restart = restart_under_load(pg_cluster, running, mode, source, count)
                windows.append((mode, *restart))
        # The same processes, never restarted, still serve.
        final_client = Client(server.port, 0, golden.tokens[0], CLIENT_TIMEOUT_S)
        final = final_client.create(f"After {uuid.uuid4().hex[:6]}")
        final_client.close()
        pids_after = live_pids(server.process.pid)
    replies = [*running.snapshot(), final]

    ok = [r for r in replies if r.status == 201]
    failed = [r for r in replies if r.status != 201]
    unclean = [r for r in failed if not r.clean_failure]
    straddling = [
        r for r in ok if any(r.ended >= start and r.started <= end for _m, start, end in windows)
    ]
    figures = {
        "requests": len(replies),
        "ok": len(ok),
        "failed_cleanly": len(failed) - len(unclean),
        "failed_otherwise": len(unclean),
        "sources": dict(Counter(r.body["source"] for r in ok)),
        "slowest_reply_s": round(max(r.seconds for r in replies), 3),
        "restarts": [restart_figures(m, replies, s, e) for m, s, e in windows],
    }

    assert final.status == 201, final
    assert pids_after == pids_before, "gunicorn was restarted"
    for figure in figures["restarts"]:
        assert figure["failed_cleanly"], f"no request failed during the {figure['mode']} restart"
    assert not unclean, [(r.status, r.content_type, r.body, r.error) for r in unclean[:5]]
    assert max(r.seconds for r in replies) < SLOW_REPLY_S

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with Session(engine) as session:
            check = check_assignments(session, replies, golden.user_ids, completeness=True)
            assert not check.problems, check.problems
            # A failed reply may hide a committed create (the answer was lost, not the work):
            # it is complete (checked above) and listed to its owner, never more than failures.
            owned = owned_campaigns(session, golden.user_ids)
            for index, user_id in enumerate(golden.user_ids):
                mine_ok = sum(1 for r in ok if r.user == index)
                mine_failed = sum(1 for r in failed if r.user == index)
                assert mine_ok <= owned.get(user_id, 0) <= mine_ok + mine_failed
            figures["committed_but_failed"] = sum(owned.values()) - len(ok)
            # Structure, not only counts, for a create that straddled each restart.
            for reply in straddling[:2]:
                report = verify_campaign(session, reply.campaign_id)
                assert report.ok, report.differences[:5]
    finally:
        engine.dispose()
    print(f"\nfaults.database {figures}")


def owned_campaigns(session: Session, user_ids: list[str]) -> dict[str, int]:
    """Campaigns each user owns outside the pool (what GET /api/v2/campaigns lists)."""
    rows = session.execute(
        sa.select(Campaign.user_id, sa.func.count())
        .where(Campaign.user_id.in_([uuid.UUID(u) for u in user_ids]), Campaign.is_pool.is_(False))
        .group_by(Campaign.user_id)
    )
    return {str(uid): n for uid, n in rows}

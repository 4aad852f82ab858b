"""What a load run prepares in its database before any request: gamemasters with an API token
each, and a master pool filled with ready campaigns by the refill job's own builder.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.devtools.scratch import Tick, no_progress
from portal.models import Campaign
from portal.services.accounts.tokens import issue_token
from portal.services.accounts.users import create_user
from portal.services.pool.replenish import build_pool_campaign

FILL_BUILDERS = 2


@dataclass(frozen=True)
class ApiUser:
    """A gamemaster as an API client knows them: id and bearer token."""

    id: str
    token: str


def create_gamemasters(session: Session, count: int, label: str) -> list[ApiUser]:
    """`count` gamemasters (`{label}-gm-{i}-...@{label}.invalid`), one token each; committed."""
    users: list[ApiUser] = []
    for index in range(count):
        unique = uuid.uuid4().hex[:8]
        user = create_user(
            session, f"{label}-gm-{index}-{unique}@{label}.invalid", f"{label} GM {index}", None,
            gamemaster=True,
        )  # fmt: skip
        users.append(ApiUser(str(user.id), issue_token(session, user, label)))
    session.commit()
    return users


def fill_pool(
    engine: sa.Engine,
    template_id: uuid.UUID,
    owner_id: uuid.UUID,
    count: int,
    tick: Tick = no_progress,
    builders: int = FILL_BUILDERS,
) -> None:
    """Build `count` ready master-pool campaigns with the refill job's own builder.

    Filling is most of a bench run's time and the batch seed is mostly server work, so two
    builders (one per core), each with its own session, take about half as long as one. Builds
    of different campaigns touch no common row, so they cannot conflict. SQLite has one writer
    at a time: there a second builder would only wait for the lock, so it gets one."""
    if engine.dialect.name != "postgresql":
        builders = 1
    remaining = iter(range(count))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def build() -> None:
        with Session(engine) as session:
            while not failures:
                with lock:
                    if next(remaining, None) is None:
                        return
                try:
                    template = session.get(Campaign, template_id)
                    if template is None:
                        raise LookupError(f"no template {template_id}")
                    build_pool_campaign(session, template, "master", owner_id)
                except BaseException as exc:  # surfaced below, in the caller's thread
                    failures.append(exc)
                    return
                session.expunge_all()
                with lock:
                    tick("pool build")

    threads = [threading.Thread(target=build, daemon=True) for _ in range(max(1, builders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"building the pool failed: {failures[0]!r}") from failures[0]

"""The master template's version: bumped by an edit in place, an operator, or an import.

`template_version` on the master campaign is what pool campaigns are stamped with and what a
claim asks for. It changes in three ways, all through `_bump` here so that each does the same
things in one transaction: the version goes up by one, the fingerprint of the content it
stands for is stored with it, every pool campaign of an older version is retired
(`rollout.retire_old_versions`, see there why at once) and a `template_version` pool event
records from what, to what and why.

* `bump_if_edited` (the monitor, every minute; `template bump --if-edited`): hash the
  content, compare with the stored fingerprint, bump when they differ. The UPDATE is guarded
  by the version and fingerprint it read, so concurrent monitors that saw the same edit bump
  once: on PostgreSQL the second waits for the first's row lock, re-checks, and matches
  nothing. A template never fingerprinted (a deployment upgraded to revision 0005) is given
  its fingerprint without a bump.
* `bump_template_version` (`template bump`): an operator says the content changed in a way
  the hash cannot see, or wants a rebuild; always bumps.
* `template import --replace` creates a new master at the next version
  (`writer.write_template`), which retires the old pool campaigns the same way.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Campaign, utcnow
from portal.services.pool.events import PoolEventKind, record_pool_event
from portal.services.pool.rollout import retire_old_versions
from portal.services.template.errors import TemplateError
from portal.services.template.fingerprint import template_fingerprint

log = logging.getLogger("portal.template")

REASONS = ("edited", "bumped", "imported")


@dataclass(frozen=True)
class VersionChange:
    """One change of the master template's version."""

    previous: int | None
    current: int
    reason: str
    fingerprint: str
    retired: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VersionState:
    """The master template's version, its stored fingerprint and its content's fingerprint now."""

    campaign_id: str
    template_version: int
    fingerprint: str | None
    live_fingerprint: str

    @property
    def edited(self) -> bool:
        return self.fingerprint is not None and self.fingerprint != self.live_fingerprint

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "edited": self.edited}


def _master(session: Session) -> sa.Row[uuid.UUID, int | None, str | None]:
    row = session.execute(
        sa.select(Campaign.id, Campaign.template_version, Campaign.template_fingerprint)
        .where(Campaign.is_master_template.is_(True))
        .limit(1)
    ).first()
    if row is None:
        raise TemplateError(
            "there is no master template yet: run `template generate` or `template import PATH`"
        )
    return row


def version_state(session: Session) -> VersionState:
    """Where the master template stands (read-only)."""
    master = _master(session)
    return VersionState(
        campaign_id=str(master.id),
        template_version=master.template_version or 1,
        fingerprint=master.template_fingerprint,
        live_fingerprint=template_fingerprint(session, master.id),
    )


def record_version_change(
    session: Session, change: VersionChange, now: datetime, actor: str | None = None
) -> None:
    """Record the `template_version` pool event (the caller commits; the event's log line
    follows the commit)."""
    detail = change.as_dict() | ({"actor": actor} if actor else {})
    record_pool_event(session, PoolEventKind.TEMPLATE_VERSION, detail=detail, created_at=now)


def _bump(
    session: Session,
    guard: list[sa.ColumnElement[bool]],
    fingerprint: str,
    reason: str,
    actor: str | None,
) -> VersionChange | None:
    """Bump the master's version if `guard` still holds, retire the old pool campaigns and
    record it, in one commit; None (nothing written) when the guard no longer holds."""
    now = utcnow()
    row = session.execute(
        sa.update(Campaign)
        .where(Campaign.is_master_template.is_(True), *guard)
        .values(
            template_version=sa.func.coalesce(Campaign.template_version, 1) + 1,
            template_fingerprint=fingerprint,
        )
        .returning(Campaign.template_version)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        session.rollback()
        return None
    current = row.template_version
    retired = retire_old_versions(session, current, reason="template_version", now=now)
    change = VersionChange(current - 1, current, reason, fingerprint, len(retired))
    record_version_change(session, change, now, actor)
    session.commit()
    return change


def bump_if_edited(session: Session) -> VersionChange | None:
    """Bump the version when the master template's content no longer matches its stored
    fingerprint (see the module docstring); None when nothing changed or someone else bumped.
    A template without a stored fingerprint gets one, without a bump."""
    try:
        master = _master(session)
    except TemplateError:
        return None
    live = template_fingerprint(session, master.id)
    if master.template_fingerprint == live:
        session.rollback()
        return None
    if master.template_fingerprint is None:
        session.execute(
            sa.update(Campaign)
            .where(Campaign.id == master.id, Campaign.template_fingerprint.is_(None))
            .values(template_fingerprint=live)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        log.info("template.fingerprinted", extra={"campaign_id": str(master.id)})
        return None
    guard = [
        Campaign.id == master.id,
        Campaign.template_version == master.template_version,
        Campaign.template_fingerprint == master.template_fingerprint,
    ]
    return _bump(session, guard, live, "edited", None)


def bump_template_version(session: Session, actor: str | None = None) -> VersionChange:
    """Bump the master template's version now, whatever its content (`template bump`)."""
    master = _master(session)
    fingerprint = template_fingerprint(session, master.id)
    change = _bump(session, [Campaign.id == master.id], fingerprint, "bumped", actor)
    if change is None:  # the master was replaced between the read and the update
        raise TemplateError("the master template changed meanwhile; run the command again")
    return change

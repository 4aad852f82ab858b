"""After a load: what the database says about the creates a client was answered. Was any
campaign handed out twice, to the wrong user, under the wrong name, or left half-built?

One checker for `bench --http` (which reports counts), the load test and the fault tests (which
assert that every list is empty). The cheap checks always run; comparing every returned campaign
with the template (`verify`) and every campaign's content counts (`completeness`) are asked for
by the tests that can afford them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.devtools.http_client import POOL_SOURCES, Reply
from portal.models import Campaign, PoolEvent
from portal.services.campaigns.records import content_counts
from portal.services.pool.events import PoolEventKind
from portal.services.seeding.verify import verify_campaigns

CHUNK = 500  # ids per IN (...) list


@dataclass(frozen=True)
class AssignmentCheck:
    """Counts, and lists of what is wrong (empty when all is well)."""

    returned: int  # replies that carried a campaign id
    distinct: int  # distinct ids among them
    assigned_events: int
    pool_served: int  # replies whose campaign came from a pool
    returned_twice: list[str] = field(default_factory=list)  # ids in more than one reply
    assigned_twice: list[str] = field(default_factory=list)  # two or more `assigned` events
    wrong_owner: list[str] = field(default_factory=list)  # missing, in a pool, someone else's
    misnamed: list[str] = field(default_factory=list)  # not the name the client asked for
    pool_contradictions: list[str] = field(default_factory=list)  # flag and status disagree
    not_verifying: list[str] = field(default_factory=list)  # `verify`: differs from the template
    incomplete: list[str] = field(default_factory=list)  # `completeness`: a half-done copy

    @property
    def problems(self) -> list[str]:
        """One line per kind of problem found, naming the campaigns; empty when all is well."""
        lines = {
            "ids returned more than once": self.returned_twice,
            "campaigns assigned twice": self.assigned_twice,
            "returned campaigns missing, still in a pool or not their requester's": (
                self.wrong_owner
            ),
            "returned campaigns not named as asked": self.misnamed,
            "pool flag and status disagree": self.pool_contradictions,
            "returned campaigns that do not verify": self.not_verifying,
            "campaigns not complete": self.incomplete,
        }
        return [f"{what}: {found}" for what, found in lines.items() if found]


def check_assignments(
    session: Session,
    replies: Sequence[Reply],
    user_ids: Sequence[str],
    *,
    verify: bool = False,
    completeness: bool = False,
) -> AssignmentCheck:
    """Check `replies` (user `i` of a reply is `user_ids[i]`) against the database:

    - no id returned twice, no campaign with two `assigned` events;
    - every returned campaign exists, is out of the pool, belongs to its requester and carries
      the name asked for;
    - no pool campaign in a state that contradicts its flag (in a pool but `assigned`, out of
      the pool but `ready`/`building`);
    - with `verify`, every returned campaign verifies against the master template;
    - with `completeness`, every campaign but the template and failed builds (rolled back to an
      empty shell on purpose) holds the template's content and has `seeded_at`: run it once the
      processes have stopped, a build in progress is half-done by nature."""
    returned = [reply for reply in replies if reply.campaign_id]
    ids = [str(reply.campaign_id) for reply in returned]
    assigned = session.scalars(
        sa.select(PoolEvent.campaign_id).where(PoolEvent.kind == PoolEventKind.ASSIGNED)
    ).all()
    campaigns: dict[str, tuple[bool, str, str]] = {}
    unique = sorted({uuid.UUID(cid) for cid in ids})
    for start in range(0, len(unique), CHUNK):
        rows = session.execute(
            sa.select(Campaign.id, Campaign.is_pool, Campaign.user_id, Campaign.name).where(
                Campaign.id.in_(unique[start : start + CHUNK])
            )
        )
        campaigns.update({str(cid): (is_pool, str(uid), name) for cid, is_pool, uid, name in rows})
    wrong_owner, misnamed = [], []
    for reply, cid in zip(returned, ids, strict=True):
        is_pool, owner, name = campaigns.get(cid, (True, "", ""))
        if is_pool or owner != user_ids[reply.user]:
            wrong_owner.append(cid)
        elif name != reply.name:
            misnamed.append(f"{cid}: {name!r} != {reply.name!r}")
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
    return AssignmentCheck(
        returned=len(ids),
        distinct=len(set(ids)),
        assigned_events=len(assigned),
        pool_served=sum(1 for reply in returned if reply.source in POOL_SOURCES),
        returned_twice=[cid for cid, n in Counter(ids).items() if n > 1],
        assigned_twice=[str(cid) for cid, n in Counter(assigned).items() if n > 1],
        wrong_owner=wrong_owner,
        misnamed=misnamed,
        pool_contradictions=[str(cid) for cid in contradictions],
        not_verifying=_not_verifying(session, [u for u in unique if str(u) in campaigns])
        if verify
        else [],
        incomplete=_incomplete(session) if completeness else [],
    )


def _not_verifying(session: Session, ids: list[uuid.UUID]) -> list[str]:
    return [
        f"{report.campaign_id}: {report.differences[:3]}"
        for report in verify_campaigns(session, ids)
        if not report.ok
    ]


def _incomplete(session: Session) -> list[str]:
    template_id = session.scalar(sa.select(Campaign.id).where(Campaign.is_master_template))
    if template_id is None:
        return ["there is no master template to compare with"]
    expected = content_counts(session, template_id, with_images=True)
    found = []
    for campaign in session.scalars(
        sa.select(Campaign).where(Campaign.is_master_template.is_(False))
    ):
        if campaign.pool_status == "failed":
            continue  # a failed build is rolled back to an empty shell on purpose
        counts = content_counts(session, campaign.id, with_images=True)
        if counts != expected or campaign.seeded_at is None:
            found.append(f"{campaign.id} ({campaign.pool_status}): {counts}")
    return found

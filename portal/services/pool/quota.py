"""Per-user limits on creating campaigns: a rate (`CAMPAIGN_CREATE_LIMIT`, 30 per hour by
default) and a cap on how many campaigns one account may own (`CAMPAIGN_CAP_PER_USER`, 200).

Both guard the pool, which any one gamemaster could otherwise drain for everyone (a script
creating campaigns in a loop empties the master pool and sends every other user to the slow
fallback). Admins are exempt from both. The rate is counted with the `limits` library on the
application's rate-limit storage (Redis with REDIS_URL, so every web process shares it; this
process's memory on the embedded default), a moving window per user. A refused create is
recorded as a `throttled` pool event, so the dashboard's metrics show it.

If the rate-limit storage is unreachable (Redis down), creation is allowed: campaign creation
keeps working without Redis (docs/pool.md), and the cap still holds because it is counted in
the database.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from limits import parse
from limits.strategies import RateLimiter
from sqlalchemy.orm import Session

from portal.models import Campaign, User
from portal.services.pool.events import PoolEventKind, record_pool_event

log = logging.getLogger("portal.pool.quota")

NAMESPACE = ("campaign-pool", "campaign-create")


@dataclass(frozen=True)
class CreationQuota:
    """`rate`: a limits-notation rate or None (off); `cap`: most campaigns owned, 0 = none."""

    rate: str | None = "30 per hour"
    cap: int = 200

    @classmethod
    def from_settings(cls, settings: Any) -> CreationQuota:
        return cls(settings.campaign_create_limit, settings.campaign_cap_per_user)


class QuotaExceeded(Exception):
    """A create the quota refuses: `status` 429 (rate, with `retry_after` seconds) or 422
    (cap), with a message for the client."""

    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def owned_campaigns(session: Session, user_id: Any) -> int:
    """How many campaigns the user owns (pool campaigns waiting in their own pool excluded)."""
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Campaign)
            .where(Campaign.user_id == user_id, Campaign.is_pool.is_(False))
        )
        or 0
    )


def check_creation_quota(
    session: Session, limiter: RateLimiter | None, user: User, quota: CreationQuota
) -> None:
    """Raise QuotaExceeded when `user` may not create a campaign now; otherwise count this
    create against the rate. A refusal by the rate adds a `throttled` pool event to the
    session (flushed; the caller commits it, since the request itself fails)."""
    if user.admin:
        return
    if quota.cap:
        owned = owned_campaigns(session, user.id)
        if owned >= quota.cap:
            raise QuotaExceeded(
                422,
                f"this account owns {owned} campaigns, the most one account may have "
                f"({quota.cap}); delete one before creating another",
            )
    if not quota.rate or limiter is None:
        return
    item = parse(quota.rate)
    key = str(user.id)
    try:
        if limiter.hit(item, *NAMESPACE, key):
            return
        reset_at = limiter.get_window_stats(item, *NAMESPACE, key).reset_time
    except Exception as exc:  # the storage (Redis) is down: creation must keep working
        log.warning("quota.storage_unavailable", extra={"error": f"{type(exc).__name__}"})
        return
    retry_after = max(1, math.ceil(reset_at - time.time()))
    record_pool_event(
        session,
        PoolEventKind.THROTTLED,
        user_id=user.id,
        detail={"limit": quota.rate, "retry_after_s": retry_after},
    )
    raise QuotaExceeded(
        429,
        f"too many campaigns created: the limit is {quota.rate} per account; "
        f"try again in {retry_after} s",
        retry_after,
    )

"""Per-user creation limits (docs/security.md): a gamemaster over CAMPAIGN_CREATE_LIMIT gets a
429 with Retry-After, counted as a `throttled` pool event and shown in the metrics; one who owns
CAMPAIGN_CAP_PER_USER campaigns gets a 422; admins are exempt."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from flask import Flask
from limits import parse
from limits.storage import MemoryStorage
from limits.storage import memory as limits_memory
from limits.strategies import MovingWindowRateLimiter

from portal.extensions import db
from portal.models import Campaign, PoolEvent
from portal.services.pool import quota as quota_module
from portal.services.pool.quota import CreationQuota, QuotaExceeded, check_creation_quota
from tests.conftest import app_on
from tests.support.auth import AuthActions
from tests.support.databases import TestDatabases


def app_with(databases, template_golden, redis_url, **settings) -> Iterator[Flask]:
    yield from app_on(databases, template_golden, redis_url, **settings)


@pytest.fixture
def limited(databases: TestDatabases, template_golden: str, redis_url: str) -> Iterator[Flask]:
    yield from app_with(databases, template_golden, redis_url, CAMPAIGN_CREATE_LIMIT="2 per hour")


def bearer(app: Flask, email: str, *, admin: bool = False) -> dict[str, str]:
    auth = AuthActions(app.test_client())
    user = auth.create_user(email, admin=admin, gamemaster=not admin, name=email.split("@")[0])
    return {"Authorization": f"Bearer {auth.token_for(user)}"}


def create(app: Flask, headers: dict[str, str], name: str):
    return app.test_client().post(
        "/api/v2/campaigns", json={"campaign": {"name": name}}, headers=headers
    )


def owned(name_prefix: str) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).where(
            Campaign.is_pool.is_(False), Campaign.name.startswith(name_prefix)
        )
    )


def test_the_rate_is_a_429_counted_and_shown(limited: Flask) -> None:
    gm = bearer(limited, "gm@example.com")
    other = bearer(limited, "other@example.com")
    assert create(limited, gm, "First").status_code == 201
    assert create(limited, gm, "Second").status_code == 201
    refused = create(limited, gm, "Third")
    assert refused.status_code == 429, refused.text
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert "2 per hour" in refused.get_json()["errors"]["base"][0]
    assert owned("Third") == 0
    # The limit is per user: another gamemaster is not affected.
    assert create(limited, other, "Theirs").status_code == 201

    events = db.session.scalars(sa.select(PoolEvent).where(PoolEvent.kind == "throttled")).all()
    assert len(events) == 1 and events[0].detail["limit"] == "2 per hour"

    admin = limited.test_client()
    assert AuthActions(admin).create_user() and AuthActions(admin).login().status_code == 302
    metrics = admin.get("/admin/api/metrics?window=1h").get_json()
    assert sum(metrics["assignments"]["throttled"]) == 1
    assert admin.get("/admin/api/pool").get_json()["ops"]["throttled_24h"] == 1
    assert 'data-testid="throttled-24h">1<' in admin.get("/admin/").text


def test_admins_are_exempt(limited: Flask) -> None:
    admin = bearer(limited, "boss@example.com", admin=True)
    for i in range(3):
        assert create(limited, admin, f"Admin {i}").status_code == 201


def test_the_cap_is_a_422(databases, template_golden, redis_url) -> None:
    for app in app_with(databases, template_golden, redis_url, CAMPAIGN_CAP_PER_USER="2"):
        gm = bearer(app, "gm@example.com")
        assert create(app, gm, "One").status_code == 201
        assert create(app, gm, "Two").status_code == 201
        refused = create(app, gm, "Three")
        assert refused.status_code == 422
        assert "(2)" in refused.get_json()["errors"]["base"][0]
        assert owned("Three") == 0


def test_the_default_limit_is_30_an_hour(template_app: Flask) -> None:
    settings = template_app.config["SETTINGS"]
    assert settings.campaign_create_limit == "30 per hour"
    assert settings.campaign_cap_per_user == 200


# --- the quota at the service layer ---------------------------------------------------------


@pytest.fixture
def gm_user(app: Flask):
    return AuthActions(app.test_client()).create_user("gm@example.com", admin=False)


def memory_limiter() -> MovingWindowRateLimiter:
    return MovingWindowRateLimiter(MemoryStorage())


def own(user, count: int, *, pool: bool = False) -> None:
    for i in range(count):
        name = f"{'Pooled' if pool else 'Owned'} {i}"
        db.session.add(Campaign(user_id=user.id, name=name, is_pool=pool))
    db.session.commit()


def refusal(limiter, user, quota: CreationQuota) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        check_creation_quota(db.session, limiter, user, quota)
    return caught.value


def test_the_cap_counts_only_the_users_own_campaigns(gm_user) -> None:
    cap = CreationQuota(rate=None, cap=1)
    check_creation_quota(db.session, None, gm_user, cap)  # owns none: may create the first
    other = AuthActions(None).create_user("other@example.com", admin=False)
    own(other, 3)
    own(gm_user, 2, pool=True)  # waiting in a pool, not the user's to count
    check_creation_quota(db.session, None, gm_user, cap)
    own(gm_user, 1)
    refused = refusal(None, gm_user, cap)
    assert (refused.status, refused.retry_after) == (422, None)
    assert (
        refused.message
        == str(refused)
        == (
            "this account owns 1 campaigns, the most one account may have (1); "
            "delete one before creating another"
        )
    )


def test_the_rate_refusal_says_when_to_retry_and_is_recorded(gm_user, monkeypatch) -> None:
    limiter = memory_limiter()
    quota = CreationQuota(rate="1 per hour", cap=0)
    check_creation_quota(db.session, limiter, gm_user, quota)
    refused = refusal(limiter, gm_user, quota)
    assert refused.status == 429 and 3590 < refused.retry_after <= 3600
    # Moments before the window frees a slot, the client is still told to wait a second.
    almost = time.time() + 3600 - 0.5
    monkeypatch.setattr(quota_module, "time", SimpleNamespace(time=lambda: almost))
    refused = refusal(limiter, gm_user, quota)
    assert (refused.status, refused.retry_after) == (429, 1)
    assert (
        refused.message
        == str(refused)
        == ("too many campaigns created: the limit is 1 per hour per account; try again in 1 s")
    )
    db.session.commit()
    events = db.session.scalars(sa.select(PoolEvent).order_by(PoolEvent.created_at)).all()
    assert [(e.kind, e.user_id) for e in events] == [("throttled", gm_user.id)] * 2
    assert events[-1].detail == {"limit": "1 per hour", "retry_after_s": 1}


def test_the_wait_counts_from_the_oldest_create_in_the_window(gm_user, monkeypatch) -> None:
    clock = SimpleNamespace(time=time.time)
    monkeypatch.setattr(limits_memory, "time", clock)
    monkeypatch.setattr(quota_module, "time", clock)
    start = time.time()
    limiter = memory_limiter()
    quota = CreationQuota(rate="1 per hour", cap=0)
    clock.time = lambda: start
    check_creation_quota(db.session, limiter, gm_user, quota)
    clock.time = lambda: start + 1800  # half an hour later
    assert refusal(limiter, gm_user, quota).retry_after == 1800


def test_no_rate_or_no_limiter_means_no_rate_limit(gm_user) -> None:
    limiter = memory_limiter()
    for _ in range(3):
        check_creation_quota(db.session, limiter, gm_user, CreationQuota(rate=None, cap=0))
        check_creation_quota(db.session, None, gm_user, CreationQuota("1 per hour", cap=0))


def test_the_creation_rate_is_its_own_budget(gm_user) -> None:
    limiter = memory_limiter()
    item = parse("1 per hour")
    # Another counter of the same storage keyed by the user id alone is not this budget.
    assert limiter.hit(item, str(gm_user.id))
    check_creation_quota(db.session, limiter, gm_user, CreationQuota("1 per hour", cap=0))
    assert refusal(limiter, gm_user, CreationQuota("1 per hour", cap=0)).status == 429

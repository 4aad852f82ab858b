"""`/api/v2/campaigns`: create (pool first, then fallback), list and show a user's campaigns."""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue

from portal.appcontext import db_session
from portal.blueprints.api.auth import current_api_user, token_required
from portal.blueprints.api.blueprint import bp, json_body
from portal.blueprints.errors import ApiError
from portal.extensions import db, limiter
from portal.models import Campaign, User
from portal.services.campaigns.input import InvalidCampaignInput, parse_campaign_input
from portal.services.infra.queue import get_redis
from portal.services.pool.claim import NameTakenError
from portal.services.pool.creation import (
    NoTemplateError,
    campaign_json,
    create_campaign,
    created_campaign_json,
)
from portal.services.pool.quota import CreationQuota, QuotaExceeded, check_creation_quota

PAGE_SIZE = 50
# Far beyond any real account (50 million campaigns), and small enough that the OFFSET it
# implies fits every database's integer: a bigger page is a 400, not a database error.
MAX_PAGE = 1_000_000
PAGE_RE = re.compile(r"[0-9]{1,7}")


def enforce_creation_quota(user: User) -> None:
    """The per-user creation limits (docs/security.md): 429 with Retry-After when the user
    created too many campaigns lately, 422 when they own as many as one account may."""
    quota = CreationQuota.from_settings(current_app.config["SETTINGS"])
    try:
        check_creation_quota(db_session(), limiter.limiter, user, quota)
    except QuotaExceeded as exc:
        db.session.commit()  # the `throttled` pool event outlives this refused request
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        raise ApiError(exc.status, exc.message, {"base": [exc.message]}, headers) from None


@bp.post("/campaigns")
@token_required(gamemaster=True)
def create() -> ResponseReturnValue:
    """201 with the new campaign; `source` says whether the pool or seeding served it."""
    try:
        data = parse_campaign_input(json_body())
    except InvalidCampaignInput as error:
        raise ApiError(422, "invalid campaign", error.errors) from None
    user = current_api_user()
    enforce_creation_quota(user)
    try:
        created = create_campaign(
            db_session(),
            get_redis(),
            current_app.config["SETTINGS"],
            user,
            data.name,
            data.description,
        )
    except NameTakenError:
        raise ApiError(422, "invalid campaign", {"name": ["has already been taken"]}) from None
    except NoTemplateError as error:
        raise ApiError(503, str(error), {"base": [str(error)]}) from None
    return jsonify(created_campaign_json(db_session(), created)), 201


def _own_campaigns() -> sa.Select[Campaign]:
    return sa.select(Campaign).where(
        Campaign.user_id == current_api_user().id, Campaign.is_pool.is_(False)
    )


def _page_number(raw: str) -> int:
    """`?page=` as a whole number from 1 to MAX_PAGE, else a 400 that says so. Only ASCII
    digits count: `int()` alone would also take "1_0", " 3 " or Arabic-Indic digits."""
    page = int(raw) if PAGE_RE.fullmatch(raw) else 0
    if not 1 <= page <= MAX_PAGE:
        message = f"must be a whole number from 1 to {MAX_PAGE}"
        raise ApiError(400, f"page {message}", {"page": [message]})
    return page


@bp.get("/campaigns")
@token_required
def index() -> ResponseReturnValue:
    """The caller's campaigns, newest first, `?page=N` (50 a page)."""
    page = _page_number(request.args.get("page", "1"))
    stmt = (
        _own_campaigns()
        .order_by(Campaign.created_at.desc(), Campaign.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    campaigns = db.session.scalars(stmt).all()
    return jsonify(
        {
            "campaigns": [campaign_json(db_session(), c) for c in campaigns],
            "meta": {"page": page, "per_page": PAGE_SIZE},
        }
    )


@bp.get("/campaigns/<campaign_id>")
@token_required
def show(campaign_id: str) -> ResponseReturnValue:
    """One of the caller's campaigns; someone else's (or no such id) is a 404, not a 403, so
    ids of other users' campaigns cannot be probed."""
    try:
        wanted = uuid.UUID(campaign_id)
    except ValueError:
        raise ApiError(
            404, "campaign not found", {"campaign_id": ["is not a campaign id (a UUID)"]}
        ) from None
    campaign = db.session.scalars(_own_campaigns().where(Campaign.id == wanted)).first()
    if campaign is None:
        raise ApiError(404, "campaign not found")
    return jsonify(campaign_json(db_session(), campaign))

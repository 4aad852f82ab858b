"""`/api/v2/campaigns`: create (pool first, then fallback), list and show a user's campaigns."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue

from portal.blueprints.api import ApiError, bp, json_body
from portal.blueprints.api.auth import current_api_user, token_required
from portal.extensions import db
from portal.models import Campaign
from portal.services.campaign_creation import (
    NoTemplateError,
    campaign_json,
    create_campaign,
    created_campaign_json,
)
from portal.services.campaign_input import InvalidCampaignInput, parse_campaign_input
from portal.services.pool import NameTakenError
from portal.services.queue import get_redis

PAGE_SIZE = 50


@bp.post("/campaigns")
@token_required(gamemaster=True)
def create() -> ResponseReturnValue:
    """201 with the new campaign; `source` says whether the pool or seeding served it."""
    try:
        data = parse_campaign_input(json_body())
    except InvalidCampaignInput as error:
        raise ApiError(422, "invalid campaign", error.errors) from None
    user = current_api_user()
    try:
        created = create_campaign(
            db.session,
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
    return jsonify(created_campaign_json(db.session, created)), 201


def _own_campaigns() -> sa.Select:
    return sa.select(Campaign).where(
        Campaign.user_id == current_api_user().id, Campaign.is_pool.is_(False)
    )


@bp.get("/campaigns")
@token_required
def index() -> ResponseReturnValue:
    """The caller's campaigns, newest first, `?page=N` (50 a page)."""
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        raise ApiError(
            400, "page must be a positive integer", {"page": ["is not a number"]}
        ) from None
    stmt = (
        _own_campaigns()
        .order_by(Campaign.created_at.desc(), Campaign.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    campaigns = db.session.scalars(stmt).all()
    return jsonify(
        {
            "campaigns": [campaign_json(db.session, c) for c in campaigns],
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
        raise ApiError(404, "campaign not found") from None
    campaign = db.session.scalars(_own_campaigns().where(Campaign.id == wanted)).first()
    if campaign is None:
        raise ApiError(404, "campaign not found")
    return jsonify(campaign_json(db.session, campaign))

"""`/api/v2/campaigns`: what the Chi War web client and CLI do with campaigns.

Create (pool first, then the fallback; JSON or multipart with an image), list with paging,
sorting and search, show, choose the current campaign, update, delete. Only the owner (or an
admin) sees or changes a campaign: someone else's is a 404, so ids cannot be probed. The
request and response shapes are the models of `schemas.py`; the work is the services'.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from flask import current_app, jsonify, request
from flask.typing import ResponseReturnValue
from spectree import Response as Doc
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from portal.appcontext import db_session
from portal.blueprints.api.auth import UNAUTHORIZED, current_api_user, token_required
from portal.blueprints.api.blueprint import bp
from portal.blueprints.api.schemas import (
    CampaignChanges,
    CampaignChangesForm,
    CampaignChangesJson,
    CampaignList,
    CampaignOut,
    CampaignWithUser,
    CreatedCampaign,
    ListQuery,
    NewCampaignFields,
    NewCampaignForm,
    NewCampaignJson,
    SetCurrent,
)
from portal.blueprints.errors import ApiError
from portal.blueprints.spec import Error, api_spec
from portal.extensions import db, limiter
from portal.models import Campaign, User
from portal.services.images.backend import get_image_store
from portal.services.images.rasters import ImageRejected, VerifiedImage, verify_raster_image
from portal.services.images.store import ImageStoreError
from portal.services.infra.queue import get_redis
from portal.services.monitoring.prometheus import observe_create
from portal.services.pool.claim import NameTakenError
from portal.services.pool.client_campaigns import (
    attach_uploaded_image,
    campaign_json,
    delete_campaign,
    find_campaign,
    list_campaigns,
    set_current_campaign,
    update_campaign,
    user_view,
)
from portal.services.pool.creation import NoTemplateError, create_campaign, created_campaign_json
from portal.services.pool.quota import CreationQuota, QuotaExceeded, check_creation_quota

log = logging.getLogger("portal.api")

NAME_TAKEN = {"name": ["has already been taken"]}
NOT_FOUND = (Error, "No such campaign among the caller's (someone else's is a 404 too).")
INVALID = (
    Error,
    "A known field is invalid: blank, too long, of the wrong type or holding control "
    "characters; the `campaign` part is not JSON; the image is not a PNG, JPEG, GIF or WebP "
    'image; or the name is taken (`{"name": ["has already been taken"]}`). Unknown keys are '
    "ignored.",
)
BODY_ERRORS = {
    "HTTP_400": (Error, "Malformed JSON, or a body that is not a JSON object."),
    "HTTP_401": UNAUTHORIZED,
    "HTTP_413": (Error, "The body is too large (1 MiB; 6 MiB for multipart with an image)."),
    "HTTP_415": (Error, "The body is neither JSON nor multipart/form-data."),
    "HTTP_422": INVALID,
}


def _store() -> Any:
    return get_image_store()


def _view(campaign: Campaign) -> dict[str, Any]:
    return campaign_json(db_session(), campaign, store=_store(), redis_client=get_redis())


def _campaign_input() -> tuple[Any, FileStorage | None]:
    """The validated `campaign` object of a JSON body or multipart form, and the image file."""
    form = request.context.form  # type: ignore[attr-defined]
    if form is not None:
        image = form.image
        if image is not None and not isinstance(image, FileStorage):
            raise ApiError(422, "invalid campaign", {"image": ["must be a file"]})
        return form.campaign, image
    return request.context.json.campaign, None  # type: ignore[attr-defined]


def _verified_image(upload: FileStorage | None) -> VerifiedImage | None:
    """The upload checked from its bytes (422 before anything is written), or None."""
    if upload is None:
        return None
    try:
        return verify_raster_image(upload.read())
    except ImageRejected as error:
        raise ApiError(422, "invalid campaign", {"image": [str(error)]}) from None


def _attach(campaign: Campaign, image: VerifiedImage) -> None:
    """Store the image as the campaign's. The campaign is already saved: if the image store
    fails for good (after its retries), it keeps its previous image and the failure is
    logged, rather than the request failing after the campaign was made."""
    try:
        attach_uploaded_image(db_session(), _store(), campaign, image)
        db.session.commit()
    except ImageStoreError as error:
        db.session.rollback()
        log.error(
            "campaign.image_failed",
            extra={"campaign_id": str(campaign.id), "error": str(error)[:200]},
        )


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


def _owned(campaign_id: str) -> Campaign:
    campaign = find_campaign(db_session(), current_api_user(), campaign_id)
    if campaign is None:
        raise ApiError(404, "campaign not found", {"campaign_id": ["not found"]})
    return campaign


@bp.post("/campaigns")
@token_required(gamemaster=True)
@api_spec.validate(
    json=NewCampaignJson,
    form=NewCampaignForm,
    resp=Doc(
        HTTP_201=(CreatedCampaign, "The new campaign; `source` says which path served it."),
        HTTP_403=(Error, "The user is neither gamemaster nor admin."),
        HTTP_429=(Error, "Too many campaigns created lately; retry after `Retry-After` s."),
        HTTP_503=(Error, "No master template exists, so nothing can be seeded."),
        **BODY_ERRORS,
    ),
)
def create() -> ResponseReturnValue:
    """Create a campaign: from the pool, else by seeding. JSON `{"campaign": {...}}` or
    multipart with `campaign` as a JSON text and an optional `image` file."""
    fields: NewCampaignFields
    fields, upload = _campaign_input()
    image = _verified_image(upload)
    user = current_api_user()
    owner_view = user_view(user)  # now: the creation's commit expires `user`
    started = time.perf_counter()
    enforce_creation_quota(user)
    try:
        created = create_campaign(
            db_session(),
            get_redis(),
            current_app.config["SETTINGS"],
            user,
            fields.name,
            fields.description,
        )
    except NameTakenError:
        raise ApiError(422, "invalid campaign", NAME_TAKEN) from None
    except NoTemplateError as error:
        raise ApiError(503, str(error), {"base": [str(error)]}) from None
    observe_create(created, time.perf_counter() - started)
    if image is not None:
        campaign = db_session().get_one(Campaign, created.campaign_id)
        _attach(campaign, image)
        created = replace(created, images=None)  # read before the upload: read them again
    body = created_campaign_json(
        db_session(), created, owner_view=owner_view, store=_store(), redis_client=get_redis()
    )
    return jsonify(body), 201


@bp.get("/campaigns")
@token_required
@api_spec.validate(
    query=ListQuery,
    resp=Doc(
        HTTP_200=(CampaignList, "One page of the caller's campaigns and the paging `meta`."),
        HTTP_400=(Error, "A query parameter is out of range or not a number."),
        HTTP_401=UNAUTHORIZED,
    ),
    validation_error_status=400,
)
def index() -> ResponseReturnValue:
    """The caller's campaigns: `page`, `per_page` (15), `sort`, `order`, `search`."""
    query: ListQuery = request.context.query  # type: ignore[attr-defined]
    page = list_campaigns(
        db_session(),
        current_api_user(),
        store=_store(),
        redis_client=get_redis(),
        page=query.page,
        per_page=query.per_page,
        sort=query.sort,
        order=query.order,
        search=query.search,
        visibility=query.visibility,
    )
    return jsonify({"campaigns": page.campaigns, "meta": page.meta()})


@bp.get("/campaigns/current")
@token_required
@api_spec.validate(
    resp=Doc(
        HTTP_200=(CampaignOut, "The user's current campaign."),
        HTTP_401=UNAUTHORIZED,
        HTTP_404=(Error, "No current campaign is chosen."),
    )
)
def show_current() -> ResponseReturnValue:
    """The campaign chosen with `POST /api/v2/campaigns/current`."""
    user = current_api_user()
    campaign = (
        find_campaign(db_session(), user, user.current_campaign_id)
        if user.current_campaign_id
        else None
    )
    if campaign is None:
        raise ApiError(404, "no current campaign", {"campaign_id": ["not found"]})
    return jsonify(_view(campaign))


SET_CURRENT_DOC = Doc(
    HTTP_200=(CampaignWithUser, "The chosen campaign (null: none) and the user."),
    HTTP_400=(Error, "Malformed JSON, or a body that is not a JSON object."),
    HTTP_401=UNAUTHORIZED,
    HTTP_404=NOT_FOUND,
    HTTP_415=Error,
    HTTP_422=(Error, "`campaign_id` or `id` is not a string."),
)


def _set_current(campaign_id: str | None) -> ResponseReturnValue:
    user = current_api_user()
    campaign = _owned(campaign_id) if campaign_id else None
    set_current_campaign(db_session(), user, campaign)
    db.session.commit()
    view = _view(campaign) if campaign is not None else None
    return jsonify({"campaign": view, "user": user_view(user)})


@bp.post("/campaigns/current")
@token_required
@api_spec.validate(json=SetCurrent, resp=SET_CURRENT_DOC)
def set_current() -> ResponseReturnValue:
    """Choose the current campaign (the CLI: `{"campaign_id"}`; null clears it)."""
    data: SetCurrent = request.context.json  # type: ignore[attr-defined]
    return _set_current(data.campaign_id or data.id)


@bp.patch("/campaigns/<campaign_id>/set")
@token_required
@api_spec.validate(json=SetCurrent, resp=SET_CURRENT_DOC)
def set_current_by_path(campaign_id: str) -> ResponseReturnValue:
    """Choose the current campaign as the web client does (`PATCH .../<id>/set`)."""
    return _set_current(campaign_id)


@bp.patch("/campaigns/set")
@token_required
@api_spec.validate(json=SetCurrent, resp=SET_CURRENT_DOC)
def clear_current() -> ResponseReturnValue:
    """The web client's way to clear the current campaign (`{"id": null}`)."""
    data: SetCurrent = request.context.json  # type: ignore[attr-defined]
    return _set_current(data.id or data.campaign_id)


@bp.get("/campaigns/<campaign_id>")
@token_required
@api_spec.validate(
    resp=Doc(HTTP_200=(CampaignOut, "The campaign."), HTTP_401=UNAUTHORIZED, HTTP_404=NOT_FOUND)
)
def show(campaign_id: str) -> ResponseReturnValue:
    """One of the caller's campaigns."""
    return jsonify(_view(_owned(campaign_id)))


@bp.patch("/campaigns/<campaign_id>")
@token_required
@api_spec.validate(
    json=CampaignChangesJson,
    form=CampaignChangesForm,
    resp=Doc(HTTP_200=(CampaignOut, "The campaign as changed."), HTTP_404=NOT_FOUND, **BODY_ERRORS),
)
def update(campaign_id: str) -> ResponseReturnValue:
    """Change `name`, `description` or `active` (and, multipart, the image); other keys of
    the campaign object, such as the whole campaign the web client sends back, are ignored."""
    campaign = _owned(campaign_id)
    changes: CampaignChanges
    changes, upload = _campaign_input()
    image = _verified_image(upload)
    try:
        update_campaign(db_session(), campaign, changes.model_dump(exclude_unset=True))
        db.session.commit()
    except (NameTakenError, IntegrityError):  # IntegrityError: a concurrent rename won
        db.session.rollback()
        raise ApiError(422, "invalid campaign", NAME_TAKEN) from None
    if image is not None:
        _attach(campaign, image)
    return jsonify(_view(campaign))


@bp.delete("/campaigns/<campaign_id>")
@token_required
@api_spec.validate(
    resp=Doc(HTTP_204=None, HTTP_401=UNAUTHORIZED, HTTP_404=NOT_FOUND),
)
def destroy(campaign_id: str) -> ResponseReturnValue:
    """Delete the campaign and all its content in one transaction."""
    campaign = _owned(campaign_id)
    delete_campaign(db_session(), campaign)
    db.session.commit()
    return "", 204

"""A user's own campaigns as the Chi War clients read and change them.

The JSON here is the main Chi War server's `CampaignView` (docs/api.md, "Campaign JSON"), plus
this project's `source`, `activated_at` and content `counts`, so the game's web client and CLI
read it unchanged. Listing, showing, updating, deleting, choosing the current campaign and
giving a campaign an uploaded image all live here; creating is `pool.creation`.

Only the owner (or an admin) sees or changes a campaign; pool campaigns belong to nobody yet and
are never listed. Functions flush, the caller commits.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from portal.models import Campaign, ImageAttachment, ImageBlob, ImagePosition, User, utcnow
from portal.services.campaigns.records import content_count_columns, name_taken
from portal.services.images.blobs import attach_image, detach_images, new_blob_key, store_blob
from portal.services.images.rasters import VerifiedImage
from portal.services.images.store import ImageStore
from portal.services.infra.channels import COMPLETE, seeding_stages
from portal.services.pool.claim import NameTakenError
from portal.services.pool.cleanup import delete_campaign_content

log = logging.getLogger("portal.campaigns")

PER_PAGE_DEFAULT = 15
PER_PAGE_MAX = 100
# Far beyond any real account, and small enough that the OFFSET it implies fits every
# database's integer.
MAX_PAGE = 1_000_000
SORTS = ("name", "created_at", "updated_at")
VISIBILITIES = ("visible", "hidden", "all")


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def split_name(name: str) -> tuple[str, str]:
    """First and last name as the Chi War user JSON has them (we store one `name`)."""
    first, _, last = (name or "").strip().partition(" ")
    return first, last.strip()


def user_view(user: User) -> dict[str, Any]:
    """A user as the Chi War servers render one (`render_user_full`)."""
    first, last = split_name(user.name)
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "first_name": first,
        "last_name": last,
        "image_url": None,
        "admin": user.admin,
        "gamemaster": user.gamemaster,
        "active": user.active,
        "entity_class": "User",
        "current_campaign_id": str(user.current_campaign_id) if user.current_campaign_id else None,
        "created_at": iso(user.created_at),
        "updated_at": iso(user.updated_at),
    }


def current_user_view(session: Session, user: User) -> dict[str, Any]:
    """`GET /api/v2/users/current`: the user, with a summary of their campaigns."""
    rows = session.execute(
        sa.select(Campaign.id, Campaign.name, Campaign.description, Campaign.active)
        .where(Campaign.user_id == user.id, Campaign.is_pool.is_(False))
        .order_by(Campaign.created_at.desc(), Campaign.id)
    ).all()
    campaigns = [
        {
            "id": str(r.id),
            "name": r.name,
            "description": r.description,
            "active": r.active,
            "entity_class": "Campaign",
        }
        for r in rows
    ]
    return {
        **user_view(user),
        "image_positions": [],
        "campaigns": campaigns,
        "player_campaigns": [],
        "onboarding_progress": None,
    }


@dataclass
class ViewContext:
    """What the JSON of a batch of campaigns needs beyond their rows, fetched in a few queries
    for the whole batch: image URLs, image positions and seeding stages."""

    image_urls: dict[uuid.UUID, str]
    positions: dict[uuid.UUID, list[dict[str, Any]]]
    stages: dict[str, str]


@dataclass(frozen=True)
class CampaignImages:
    """What the JSON shows of some campaigns' own images: the newest image's blob metadata per
    campaign (the store turns it into a URL) and the image positions."""

    metas: dict[uuid.UUID, dict[str, Any]]
    positions: dict[uuid.UUID, list[dict[str, Any]]]


def read_campaign_images(session: Session, ids: Sequence[uuid.UUID]) -> CampaignImages:
    """The campaigns' own images and image positions, in two queries for all of them."""
    metas: dict[uuid.UUID, dict[str, Any]] = {}
    positions: dict[uuid.UUID, list[dict[str, Any]]] = {}
    if ids:
        rows = session.execute(
            sa.select(ImageAttachment.record_id, ImageBlob.meta)
            .join(ImageBlob, ImageBlob.id == ImageAttachment.blob_id)
            .where(ImageAttachment.record_type == "Campaign", ImageAttachment.record_id.in_(ids))
            .order_by(ImageAttachment.created_at.desc(), ImageAttachment.id)
        ).all()
        for record_id, meta in rows:
            if record_id not in metas and meta:
                metas[record_id] = meta
        # Columns, not ORM entities: this runs on every create, and loading entities into
        # the session costs more CPU than the query (docs/performance.md).
        for position in session.execute(
            sa.select(
                ImagePosition.positionable_id,
                ImagePosition.id,
                ImagePosition.context,
                ImagePosition.x_position,
                ImagePosition.y_position,
                ImagePosition.style_overrides,
            )
            .where(
                ImagePosition.positionable_type == "Campaign",
                ImagePosition.positionable_id.in_(ids),
            )
            .order_by(ImagePosition.context, ImagePosition.id)
        ):
            positions.setdefault(position.positionable_id, []).append(
                {
                    "id": str(position.id),
                    "context": position.context,
                    "x_position": position.x_position,
                    "y_position": position.y_position,
                    "style_overrides": position.style_overrides or {},
                }
            )
    return CampaignImages(metas, positions)


def view_context(
    session: Session,
    campaigns: Sequence[Any],
    store: ImageStore,
    redis_client: redis.Redis | None,
    images: CampaignImages | None = None,
) -> ViewContext:
    """What the campaigns' JSON needs beyond their rows; `images` when the caller read them
    already (see `read_campaign_images`)."""
    if images is None:
        images = read_campaign_images(session, [c.id for c in campaigns])
    image_urls = {record_id: store.url(meta) for record_id, meta in images.metas.items()}
    positions = images.positions
    unseeded = [c.id for c in campaigns if c.seeded_at is None]
    stages = seeding_stages(redis_client, unseeded) if redis_client is not None else {}
    return ViewContext(image_urls, positions, stages)


def campaign_view(
    campaign: Any,
    owner_view: dict[str, Any],
    counts: dict[str, int],
    context: ViewContext,
    source: str | None = None,
) -> dict[str, Any]:
    """One campaign in the servers' shape. `campaign` is a Campaign or a claim's row with the
    same attributes; `owner_view` is its owner's `user_view`. `seeding_status` is `complete`
    once seeded; before that (a campaign seeded by a job) the stage the job reported, or null
    while it waits for a worker."""
    seeded = campaign.seeded_at is not None
    stage = COMPLETE if seeded else context.stages.get(str(campaign.id))
    body: dict[str, Any] = {
        "id": str(campaign.id),
        "name": campaign.name,
        "description": campaign.description,
        "user_id": str(campaign.user_id),
        "gamemaster_id": str(campaign.user_id),
        "gamemaster": owner_view,
        "users": [],
        "user_ids": [],
        "players": [],
        "player_ids": [],
        "invitations": [],
        "image_url": context.image_urls.get(campaign.id),
        "image_positions": context.positions.get(campaign.id, []),
        "entity_class": "Campaign",
        "active": campaign.active,
        "at_a_glance": False,
        "created_at": iso(campaign.created_at),
        "updated_at": iso(campaign.updated_at),
        "activated_at": iso(campaign.activated_at),
        "seeded_at": iso(campaign.seeded_at),
        "seeding_status": stage,
        "seeding_images_total": 0,
        "seeding_images_completed": 0,
        "is_seeding": not seeded,
        "is_seeded": seeded,
        "counts": counts,
    }
    if source is not None:
        body["source"] = source
    return body


def campaign_json(
    session: Session,
    campaign: Any,
    *,
    store: ImageStore,
    redis_client: redis.Redis | None,
    owner_view: dict[str, Any] | None = None,
    counts: dict[str, int] | None = None,
    source: str | None = None,
    images: CampaignImages | None = None,
) -> dict[str, Any]:
    """The JSON of one campaign, querying whatever was not handed in."""
    if owner_view is None:
        owner = session.get(User, campaign.user_id)
        assert owner is not None  # campaigns.user_id is a foreign key
        owner_view = user_view(owner)
    if counts is None:
        columns = content_count_columns(campaign.id, with_images=True)
        counts = dict(session.execute(sa.select(*columns)).one()._mapping)
    context = view_context(session, [campaign], store, redis_client, images)
    return campaign_view(campaign, owner_view, counts, context, source)


def _visible_to(user: User) -> sa.ColumnElement[bool]:
    return sa.and_(Campaign.user_id == user.id, Campaign.is_pool.is_(False))


@dataclass(frozen=True)
class CampaignPage:
    campaigns: list[dict[str, Any]]
    page: int
    per_page: int
    total_count: int

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total_count / self.per_page)

    def meta(self) -> dict[str, int | None]:
        """The pagination block of the servers (`meta`)."""
        return {
            "current_page": self.page,
            "next_page": self.page + 1 if self.page < self.total_pages else None,
            "prev_page": self.page - 1 if self.page > 1 else None,
            "per_page": self.per_page,
            "total_count": self.total_count,
            "total_pages": self.total_pages,
        }


def list_campaigns(
    session: Session,
    user: User,
    *,
    store: ImageStore,
    redis_client: redis.Redis | None,
    page: int = 1,
    per_page: int = PER_PAGE_DEFAULT,
    sort: str = "created_at",
    order: str = "desc",
    search: str | None = None,
    visibility: str = "visible",
) -> CampaignPage:
    """One page of the user's campaigns. `sort` outside SORTS sorts by creation; `order` is
    ascending only for `asc` (any case); `search` matches names case-insensitively;
    `visibility`: active ones (`visible`, the servers' default), inactive (`hidden`) or `all`."""
    per_page = max(1, min(per_page, PER_PAGE_MAX))
    where = [_visible_to(user)]
    if visibility == "visible":
        where.append(Campaign.active.is_(True))
    elif visibility == "hidden":
        where.append(Campaign.active.is_(False))
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(sa.func.lower(Campaign.name).like(pattern.lower() + "%", escape="\\"))
    total = session.scalar(sa.select(sa.func.count()).select_from(Campaign).where(*where)) or 0
    key: Any = {
        "name": sa.func.lower(Campaign.name),
        "updated_at": Campaign.updated_at,
    }.get(sort, Campaign.created_at)
    ordered = key.asc() if order.lower() == "asc" else key.desc()
    columns = content_count_columns(Campaign.id.expression, with_images=True)
    rows = session.execute(
        sa.select(Campaign, *columns)
        .where(*where)
        .order_by(ordered, Campaign.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    campaigns = [row[0] for row in rows]
    context = view_context(session, campaigns, store, redis_client)
    owners = {user.id: user_view(user)}
    for owner_id in {c.user_id for c in campaigns} - set(owners):
        owners[owner_id] = user_view(session.get_one(User, owner_id))
    views = [
        campaign_view(
            row[0],
            owners[row[0].user_id],
            {k: v for k, v in row._mapping.items() if k != "Campaign"},
            context,
        )
        for row in rows
    ]
    return CampaignPage(views, page, per_page, total)


def find_campaign(session: Session, user: User, campaign_id: str | uuid.UUID) -> Campaign | None:
    """The user's campaign with this id (any campaign but a pool's for an admin), or None:
    someone else's campaign is "not found" too, so ids cannot be probed."""
    try:
        wanted = campaign_id if isinstance(campaign_id, uuid.UUID) else uuid.UUID(campaign_id)
    except ValueError:
        return None
    campaign = session.get(Campaign, wanted)
    if campaign is None or campaign.is_pool or campaign.is_master_template:
        return None
    if campaign.user_id != user.id and not user.admin:
        return None
    return campaign


def update_campaign(session: Session, campaign: Campaign, changes: dict[str, Any]) -> Campaign:
    """Apply validated `name`, `description`, `active` (flush); NameTakenError on a clash."""
    name = changes.get("name")
    if name is not None and name != campaign.name:
        if name_taken(session, campaign.user_id, name):
            raise NameTakenError("has already been taken")
        campaign.name = name
    if "description" in changes:
        campaign.description = changes["description"]
    if changes.get("active") is not None:
        campaign.active = changes["active"]
    campaign.updated_at = utcnow()
    session.flush()
    return campaign


def delete_campaign(session: Session, campaign: Campaign) -> dict[str, int]:
    """Delete the campaign and all its content (flush). Images shared with other campaigns stay;
    blobs nobody uses any more are purged by the clean-up. A user whose current campaign this
    was has none afterwards."""
    campaign_id = campaign.id
    session.execute(
        sa.update(User)
        .where(User.current_campaign_id == campaign_id)
        .values(current_campaign_id=None)
        .execution_options(synchronize_session="fetch")
    )
    session.expunge(campaign)
    counts, _blob_ids = delete_campaign_content(session, campaign_id)
    log.info("campaign.deleted", extra={"campaign_id": str(campaign_id), **counts})
    return counts


def set_current_campaign(session: Session, user: User, campaign: Campaign | None) -> None:
    """Make `campaign` the user's current one (None: no current campaign). Flush."""
    user.current_campaign_id = campaign.id if campaign is not None else None
    session.flush()


def attach_uploaded_image(
    session: Session, store: ImageStore, campaign: Campaign, image: VerifiedImage
) -> None:
    """Make a verified upload the campaign's image (flush): stored through the image store,
    replacing the image it had (a shared template image simply loses this campaign's use)."""
    filename = f"campaign-image.{image.extension}"
    key = new_blob_key("Campaign", campaign.id, filename)
    context = {"campaign_id": str(campaign.id), "upload": True}
    blob = store_blob(
        session,
        store,
        image.content,
        filename=filename,
        content_type=image.content_type,
        key=key,
        context=context,
    )
    detach_images(session, "Campaign", [campaign.id])
    attach_image(session, campaign, blob, store=store, mode="share", context=context)

"""What belongs to a campaign: the rows reachable from its id, including polymorphic ones.

Attachments and image positions point at records by (type, id) with no foreign key, so "the
template's images" has to be spelled out per record type. Stats and export share these queries.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute

from portal.models import RECORD_TYPES, Campaign, ImageAttachment, ImagePosition


def record_ids(record_type: str, campaign_id: uuid.UUID) -> sa.Select[uuid.UUID]:
    """SELECT of the ids of the campaign's records of `record_type` (a RECORD_TYPES key)."""
    model = RECORD_TYPES[record_type]
    if issubclass(model, Campaign):  # the "Campaign" record type: the campaign itself
        return sa.select(model.id).where(model.id == campaign_id)
    return sa.select(model.id).where(model.campaign_id == campaign_id)


def owned_by_campaign(
    type_column: sa.ColumnElement[str] | InstrumentedAttribute[str],
    id_column: sa.ColumnElement[uuid.UUID] | InstrumentedAttribute[uuid.UUID],
    campaign_id: uuid.UUID,
) -> sa.ColumnElement[bool]:
    """A condition matching polymorphic references to any record of the campaign."""
    return sa.or_(
        *(
            sa.and_(type_column == name, id_column.in_(record_ids(name, campaign_id)))
            for name in RECORD_TYPES
        )
    )


def attachments_of(campaign_id: uuid.UUID) -> sa.ColumnElement[bool]:
    return owned_by_campaign(ImageAttachment.record_type, ImageAttachment.record_id, campaign_id)


def positions_of(campaign_id: uuid.UUID) -> sa.ColumnElement[bool]:
    return owned_by_campaign(
        ImagePosition.positionable_type, ImagePosition.positionable_id, campaign_id
    )

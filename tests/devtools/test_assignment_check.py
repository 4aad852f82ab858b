"""`check_assignments`, the one checker behind `bench --http`'s checks and the load and fault
tests' "nothing lost, nothing handed out twice": it passes real claims, and names each kind of
problem when the database or the replies contradict them."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import Flask

from portal import settings_of
from portal.devtools.assignment_check import check_assignments
from portal.devtools.http_client import Reply
from portal.devtools.prepare import create_gamemasters, fill_pool
from portal.extensions import db
from portal.models import Campaign, PoolEvent, Schtick, User
from portal.services.campaigns.records import find_master_template
from portal.services.infra.queue import get_redis
from portal.services.pool.creation import create_campaign


def claim(app: Flask, user_id: str, user_index: int, name: str) -> Reply:
    """A create through the service the API calls, as the client would have recorded it."""
    user = db.session.get(User, uuid.UUID(user_id))
    created = create_campaign(db.session, get_redis(app), settings_of(app), user, name, None)
    body = {"id": str(created.campaign_id), "source": created.source}
    return Reply(user_index, name, 0.0, 0.01, 201, body)


def claims(app: Flask) -> tuple[list[str], list[Reply]]:
    """Two gamemasters, a pool of three, one claim each."""
    users = create_gamemasters(db.session, 2, "check")
    template = find_master_template(db.session)
    fill_pool(db.engine, template.id, template.user_id, 3)
    replies = [claim(app, users[i].id, i, f"Checked {i}") for i in range(2)]
    return [user.id for user in users], replies


def test_real_claims_pass_every_check(template_app: Flask) -> None:
    user_ids, replies = claims(template_app)
    failed = Reply(0, "Not created", 0.0, 0.01, 0, transport_error="ConnectionResetError")

    check = check_assignments(
        db.session, [*replies, failed], user_ids, verify=True, completeness=True
    )

    assert check.problems == []
    assert (check.returned, check.distinct, check.assigned_events, check.pool_served) == (
        2,
        2,
        2,
        2,
    )


def test_each_contradiction_is_named(template_app: Flask) -> None:
    user_ids, (first, second) = claims(template_app)
    first_id, second_id = str(first.campaign_id), str(second.campaign_id)
    session = db.session
    # Handed out twice: a second `assigned` event, and the id returned to a second client.
    session.add(PoolEvent(kind="assigned", campaign_id=uuid.UUID(first_id), pool_type="master"))
    again = Reply(1, first.name, 0.0, 0.01, 201, first.body)
    # The client asked for another name than the campaign has.
    renamed = Reply(second.user, "Another name", 0.0, 0.01, 201, second.body)
    # A pool campaign whose status says it was assigned; the claimed one's content half gone.
    ready_id = session.scalar(sa.select(Campaign.id).where(Campaign.pool_status == "ready"))
    session.execute(
        sa.update(Campaign).where(Campaign.id == ready_id).values(pool_status="assigned")
    )
    session.execute(sa.delete(Schtick).where(Schtick.campaign_id == uuid.UUID(second_id)))
    session.commit()

    check = check_assignments(
        session, [first, again, renamed], user_ids, verify=True, completeness=True
    )

    assert check.returned_twice == [first_id]
    assert check.assigned_twice == [first_id]
    assert check.wrong_owner == [first_id]  # the copy returned to user 1 is user 0's
    assert check.misnamed == [f"{second_id}: 'Checked 1' != 'Another name'"]
    assert check.pool_contradictions == [str(ready_id)]
    assert [line.split(":")[0] for line in check.not_verifying] == [second_id]
    assert any(line.startswith(second_id) for line in check.incomplete)
    assert len(check.problems) == 7

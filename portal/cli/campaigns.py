"""`flask --app app campaigns ...`: seed a campaign from the template, verify a campaign.

Exit codes are for scripts: `verify` exits 0 when the campaign matches the template, 1 when it
differs (the differences are printed), 2 when it cannot compare at all (malformed or unknown id,
no template). `seed` exits 1 with a message on any failure, having written nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from portal.appcontext import db_session
from portal.extensions import db
from portal.models import User
from portal.services.campaigns.records import (
    CampaignError,
    create_campaign_shell,
    find_master_template,
)
from portal.services.images.backend import get_image_store
from portal.services.images.store import ImageStore
from portal.services.seeding.base import SeedingError
from portal.services.seeding.batch import CampaignBatchSeeder
from portal.services.seeding.traditional import TraditionalSeeder
from portal.services.seeding.verify import VerifyError, verify_campaign

cli = AppGroup("campaigns", help="Seed campaigns from the master template and verify them.")


def _batch_seeder(session: Session, _store: ImageStore, mode: str) -> CampaignBatchSeeder:
    """Batch seeding always shares the template's image files: copy mode is refused, not ignored."""
    if mode != "share":
        raise SeedingError("batch seeding shares images; use --method traditional to copy them")
    return CampaignBatchSeeder(session)


# How each seeding method is built: (session, store, image_mode) -> an object with
# `.seed(target, template) -> SeedResult`. Another method is one more entry here.
SEEDERS: dict[str, Callable[[Session, ImageStore, str], Any]] = {
    "traditional": lambda session, store, mode: TraditionalSeeder(session, store, image_mode=mode),
    "batch": _batch_seeder,
}


class CannotVerify(click.ClickException):
    """Verification could not even start: exit 2, distinct from "differs" (1)."""

    exit_code = 2


@cli.command("verify")
@click.argument("campaign_id")
@click.option("--template", "template_id", default=None, help="Compare with this campaign id.")
@click.option(
    "--check-files", is_flag=True, help="Also fetch every image file and check its checksum."
)
def verify_command(campaign_id: str, template_id: str | None, check_files: bool) -> None:
    """Compare a campaign's content and structure with the master template."""
    store = get_image_store() if check_files else None
    try:
        report = verify_campaign(db_session(), campaign_id, template_id, store=store)
    except VerifyError as error:
        raise CannotVerify(str(error)) from None
    finally:
        db.session.rollback()  # read-only: end the transaction either way
    if report.ok:
        click.echo(f"OK: campaign {report.campaign_id} matches template {report.template_id}")
        click.echo(report.summary())
        return
    click.echo(
        f"DIFFERS: campaign {report.campaign_id} differs from template {report.template_id} "
        f"in {len(report.differences)} way(s):"
    )
    for line in report.differences:
        click.echo(f"  - {line}")
    raise SystemExit(1)


@cli.command("seed")
@click.option("--owner", "owner_email", required=True, help="Email of the campaign's owner.")
@click.option("--name", required=True, help="Name of the new campaign.")
@click.option("--description", default=None, help="Description of the new campaign.")
@click.option(
    "--method",
    default="traditional",
    show_default=True,
    help="How to copy the template (one of the registered seeders: traditional, ...).",
)
@click.option(
    "--image-mode",
    type=click.Choice(["share", "copy"]),
    default=None,
    help="Share the template's image files or copy them (default: IMAGE_SHARING).",
)
def seed_command(
    owner_email: str, name: str, description: str | None, method: str, image_mode: str | None
) -> None:
    """Create a campaign for OWNER and fill it with a copy of the master template."""
    if method not in SEEDERS:
        raise click.BadParameter(
            f"{method!r} is not a seeding method; one of: {', '.join(sorted(SEEDERS))}",
            param_hint="--method",
        )
    session = db_session()
    mode = image_mode or current_app.config["SETTINGS"].image_sharing
    owner = session.scalar(
        sa.select(User).where(sa.func.lower(User.email) == owner_email.strip().lower())
    )
    if owner is None:
        raise click.ClickException(f"no user with email {owner_email!r}")
    template = find_master_template(session)
    if template is None:
        raise click.ClickException("there is no master template: run `template generate` first")
    name = name.strip()
    if not name:
        raise click.ClickException("the campaign name must not be blank")
    try:
        target = create_campaign_shell(session, owner, name, description)
        seeder = SEEDERS[method](session, get_image_store(), mode)
        result = seeder.seed(target, template)
    except (CampaignError, SeedingError) as error:
        session.rollback()
        raise click.ClickException(str(error)) from None
    except sa.exc.SQLAlchemyError as error:
        session.rollback()
        first_line = (str(error).splitlines() or [""])[0]
        raise click.ClickException(f"database error, nothing was created: {first_line}") from None
    payload = dataclasses.asdict(result)
    payload["campaign_id"] = str(result.campaign_id)
    payload["total_rows"] = result.total_rows
    payload["image_mode"] = mode
    click.echo(json.dumps(payload, sort_keys=True))

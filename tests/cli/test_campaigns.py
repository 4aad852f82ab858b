"""`flask --app app campaigns seed|verify`: output scripts can read, exit codes they can trust."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from portal.cli import campaigns as campaigns_cli
from portal.extensions import db
from portal.models import Campaign, Schtick
from portal.services.images.backend import get_image_store
from tests.support.small_template import build_small_template, make_user


@pytest.fixture
def owner_email(app) -> str:
    build_small_template(db.session, get_image_store())
    owner = make_user(db.session, "gm")
    db.session.commit()
    return owner.email


def seed(runner, email: str, name: str = "Night Market", *extra: str):
    return runner.invoke(args=["campaigns", "seed", "--owner", email, "--name", name, *extra])


def campaign_named(name: str) -> Campaign | None:
    db.session.expire_all()
    return db.session.scalars(sa.select(Campaign).filter_by(name=name)).one_or_none()


def test_seed_prints_the_result_as_json_and_verify_says_ok(runner, owner_email):
    result = seed(runner, owner_email.upper(), "Night Market", "--image-mode", "copy")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    campaign = campaign_named("Night Market")
    assert payload["campaign_id"] == str(campaign.id)
    assert payload["method"] == "traditional" and payload["image_mode"] == "copy"
    assert payload["rows"]["schticks"] == 6 and payload["rows"]["image_blobs"] == 17
    assert payload["total_rows"] == sum(payload["rows"].values())
    assert campaign.seeding_method == "traditional" and campaign.seeded_at is not None

    verified = runner.invoke(args=["campaigns", "verify", str(campaign.id)])
    assert verified.exit_code == 0, verified.output
    first, summary = verified.stdout.splitlines()
    assert first.startswith(f"OK: campaign {campaign.id} matches template")
    assert "6 schticks" in summary and "0 shared, 17 copied" in summary


def test_verify_exits_1_with_a_readable_diff(runner, owner_email):
    assert seed(runner, owner_email).exit_code == 0
    campaign = campaign_named("Night Market")
    db.session.execute(
        sa.delete(Schtick).where(
            Schtick.campaign_id == campaign.id, Schtick.name == "Carnival of Carnage"
        )
    )
    db.session.commit()

    result = runner.invoke(args=["campaigns", "verify", str(campaign.id)])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"DIFFERS: campaign {campaign.id} differs from template")
    assert "  - schticks: 5 in the campaign, 6 in the template" in lines
    assert "  - schtick ('Guns', 'Carnival of Carnage'): missing" in lines
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("argument", "message"),
    [("not-a-uuid", "is not a UUID"), (str(uuid.UUID(int=7)), "no campaign with id")],
)
def test_verify_a_bad_id_exits_2_without_a_traceback(runner, owner_email, argument, message):
    result = runner.invoke(args=["campaigns", "verify", argument])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


def test_seed_errors_are_clear_and_write_nothing(runner, owner_email):
    assert seed(runner, owner_email).exit_code == 0
    again = seed(runner, owner_email)
    assert again.exit_code == 1 and "already has a campaign named 'Night Market'" in again.output
    nobody = seed(runner, "nobody@example.com", "Other")
    assert nobody.exit_code == 1 and "no user with email 'nobody@example.com'" in nobody.output
    blank = seed(runner, owner_email, "   ")
    assert blank.exit_code == 1 and "must not be blank" in blank.output
    unknown = seed(runner, owner_email, "Other", "--method", "teleport")
    assert unknown.exit_code == 2 and "'teleport' is not a seeding method" in unknown.output
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Campaign)) == 2


def test_seed_method_table_is_extensible(runner, owner_email, monkeypatch):
    """Another seeder is one more entry in SEEDERS; the command picks it up by name."""
    calls = []

    class Recording(campaigns_cli.TraditionalSeeder):
        def seed(self, target, template):
            calls.append(self.image_mode)
            return super().seed(target, template)

    monkeypatch.setitem(
        campaigns_cli.SEEDERS,
        "recording",
        lambda s, store, mode: Recording(s, store, image_mode=mode),
    )
    result = seed(runner, owner_email, "Recorded", "--method", "recording")
    assert result.exit_code == 0, result.output
    assert calls == ["share"]  # IMAGE_SHARING's default


def test_seed_without_a_template_fails_cleanly(runner, app):
    owner = make_user(db.session)
    db.session.commit()
    result = seed(runner, owner.email)
    assert result.exit_code == 1 and "there is no master template" in result.output

"""`flask template generate|import|export|stats` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from portal.extensions import db
from portal.models import Base, Campaign
from portal.services.campaigns.records import find_master_template
from tests.conftest import make_app


def row_counts() -> dict[str, int]:
    db.session.rollback()  # see what the CLI's own session committed
    return {
        t.name: db.session.scalar(sa.select(sa.func.count()).select_from(t))
        for t in Base.metadata.sorted_tables
    }


def without_timestamp(path: Path) -> dict:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("exported_at")
    return data


def test_stats_without_a_template_fails_with_a_hint(runner):
    result = runner.invoke(args=["template", "stats"])
    assert result.exit_code == 1
    assert "template generate" in result.output


def test_generate_then_stats_prints_one_json_object(runner):
    result = runner.invoke(args=["template", "generate"])
    assert result.exit_code == 0, result.output
    assert "Generated master template 'Master Campaign' (version 1)" in result.output
    stats = runner.invoke(args=["template", "stats"])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    assert data["template_version"] == 1
    assert data["character_types"]["PC"] == 35
    assert (data["schticks"], data["image_attachments"], data["distinct_images"]) == (643, 789, 49)


def test_generate_twice_fails_and_changes_nothing(template_app):
    runner = template_app.test_cli_runner()
    before = row_counts()
    result = runner.invoke(args=["template", "generate"])
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert row_counts() == before


def test_export_then_import_into_an_empty_database(
    template_app, tmp_path, databases, migrated_golden, redis_url
):
    first = tmp_path / "template.json"
    result = template_app.test_cli_runner().invoke(args=["template", "export", str(first)])
    assert result.exit_code == 0, result.output
    assert first.stat().st_size > 0

    # a second, empty database, driven only through the CLI
    url = databases.clone(migrated_golden)
    other = make_app(url, redis_url)
    second = tmp_path / "again.json"
    # the CLI reuses an app context that is already pushed, so push the other app's own
    with other.app_context():
        try:
            runner = other.test_cli_runner()
            imported = runner.invoke(args=["template", "import", str(first)])
            assert imported.exit_code == 0, imported.output
            assert runner.invoke(args=["template", "export", str(second)]).exit_code == 0
        finally:
            db.session.remove()
            db.engine.dispose()
    databases.drop(url)
    assert without_timestamp(second) == without_timestamp(first)


def test_import_of_a_broken_file_exits_1_and_writes_nothing(runner, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"format": "campaign-pool-template", "version": 1, ', encoding="utf-8")
    before = row_counts()
    result = runner.invoke(args=["template", "import", str(path)])
    assert result.exit_code == 1
    assert "broken.json: not valid JSON" in result.output
    assert row_counts() == before


def test_import_needs_replace_when_a_master_exists(template_app, tmp_path):
    runner = template_app.test_cli_runner()
    path = tmp_path / "t.json"
    assert runner.invoke(args=["template", "export", str(path)]).exit_code == 0
    old_id = find_master_template(db.session).id

    refused = runner.invoke(args=["template", "import", str(path)])
    assert refused.exit_code == 1 and "already exists" in refused.output

    replaced = runner.invoke(args=["template", "import", str(path), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert "(version 2)" in replaced.output
    db.session.rollback()
    assert find_master_template(db.session).id != old_id
    assert db.session.get(Campaign, old_id).is_master_template is False


def test_export_to_stdout_and_to_a_missing_directory(template_app, tmp_path):
    runner = template_app.test_cli_runner()
    result = runner.invoke(args=["template", "export", "-"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["format"] == "campaign-pool-template"
    missing = runner.invoke(args=["template", "export", str(tmp_path / "nope" / "t.json")])
    assert missing.exit_code == 1
    assert "no such directory" in missing.output

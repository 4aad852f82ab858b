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
    assert (data["schticks"], data["image_attachments"], data["distinct_images"]) == (643, 788, 105)
    assert (data["carries"], data["vehicles"], data["image_positions"]) == (0, 0, 0)
    assert "105 file(s) stored" in result.output


def test_generate_the_rich_shape(runner):
    result = runner.invoke(args=["template", "generate", "--shape", "rich"])
    assert result.exit_code == 0, result.output
    data = json.loads(runner.invoke(args=["template", "stats"]).stdout)
    assert (data["carries"], data["vehicles"], data["image_positions"]) == (42, 6, 60)
    assert data["junctures_linked_to_factions"] == 7


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
    assert "--replace" in refused.output  # the flag's real name

    replaced = runner.invoke(args=["template", "import", str(path), "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert "(version 2)" in replaced.output
    assert "0 file(s) stored (0.0 MB), 105 reused" in replaced.output  # content-addressed
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


def _problem_file(tmp_path: Path, template_app) -> Path:
    """An export of the generated template, given raw-export NULLs and a page posing as PNG."""
    import base64
    import hashlib

    path = tmp_path / "t.json"
    assert (
        template_app.test_cli_runner().invoke(args=["template", "export", str(path)]).exit_code == 0
    )
    data = json.loads(path.read_text("utf-8"))
    for schtick in data["schticks"][:10]:
        schtick["bonus"] = None
    page = b"<!DOCTYPE html><html><script>steal()</script></html>"
    old = data["weapons"][0]["attachments"][0]["image"]
    new = hashlib.sha256(page).hexdigest()
    data["images"][new] = {
        "content_type": "image/png",
        "byte_size": len(page),
        "data": base64.b64encode(page).decode(),
    }
    data["weapons"][0]["attachments"][0]["image"] = new
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    del data["images"][old]  # (still used by the other weapons: only the first is swapped)
    return path


def test_check_reports_every_problem_and_writes_nothing(template_app, tmp_path):
    path = _problem_file(tmp_path, template_app)
    runner = template_app.test_cli_runner()
    before = row_counts()
    result = runner.invoke(args=["template", "import", str(path), "--replace", "--check"])
    assert result.exit_code == 1
    assert "11 problems of 2 kinds; nothing was written" in result.output
    assert "schticks[*].bonus: must not be null; --normalize reads it as false — 10 records" in (
        result.output
    )
    assert f"{path.name}" in result.output and "the bytes are HTML" in result.output
    assert row_counts() == before
    # the same through a real import, and from stdin
    result = runner.invoke(
        args=["template", "import", "-", "--replace", "--normalize"], input=path.read_bytes()
    )
    assert result.exit_code == 1 and "<stdin>: 1 problem;" in result.output
    assert "images[*]: refused" in result.output
    assert row_counts() == before


def test_normalize_reports_what_it_changed(template_app, tmp_path):
    path = _problem_file(tmp_path, template_app)
    data = json.loads(path.read_text("utf-8"))
    data["weapons"][0]["attachments"][0]["image"] = data["weapons"][1]["attachments"][0]["image"]
    data["images"] = {k: v for k, v in data["images"].items() if v["byte_size"] > 100}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    runner = template_app.test_cli_runner()
    checked = runner.invoke(args=["template", "import", str(path), "--check", "--normalize"])
    assert checked.exit_code == 0, checked.output
    assert "Normalized: schticks.bonus: null -> false (10)" in checked.output
    assert "valid (788 image attachments on 105 images); nothing was written" in checked.output
    result = runner.invoke(args=["template", "import", str(path), "--replace", "--normalize"])
    assert result.exit_code == 0, result.output
    assert "Normalized: schticks.bonus: null -> false (10)" in result.output

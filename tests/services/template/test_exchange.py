"""Template export/import: an exact round trip, and broken files rejected with nothing written."""

from __future__ import annotations

import base64
import copy
import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from portal.extensions import db
from portal.models import Base, Campaign, ImageBlob, Schtick
from portal.services.campaigns.records import find_master_template
from portal.services.images.backend import get_image_store
from portal.services.images.store import ImageStoreError, LocalImageStore
from portal.services.template import (
    TemplateError,
    build_template_document,
    dump_template,
    export_template,
    import_template,
    load_template_file,
    parse_template,
    template_stats,
)
from tests.conftest import app_on
from tests.support import PROJECT_ROOT


@functools.cache
def _generated() -> dict[str, Any]:
    return build_template_document()


def valid_document() -> dict[str, Any]:
    """A fresh, valid, mutable template document (the generator's output)."""
    return copy.deepcopy(_generated())


def content_of(document: dict[str, Any]) -> str:
    """The exported text without the export timestamp: what must round-trip byte for byte."""
    return dump_template({k: v for k, v in document.items() if k != "exported_at"})


def row_counts() -> dict[str, int]:
    return {
        table.name: db.session.scalar(sa.select(sa.func.count()).select_from(table))
        for table in Base.metadata.sorted_tables
    }


def stored_files() -> set[Path]:
    store = get_image_store()
    assert isinstance(store, LocalImageStore)
    return {p for p in store.root.rglob("*") if p.is_file()} if store.root.exists() else set()


@pytest.fixture
def empty_app(databases, migrated_golden, redis_url) -> Callable[[], Any]:
    """Opens (as a context manager) one more app on a fresh, empty, migrated database."""

    @contextmanager
    def opener() -> Iterator[Flask]:
        yield from app_on(databases, migrated_golden, redis_url)

    return opener


# ------------------------------------------------------------------------------- round trip


def test_export_import_export_is_byte_identical(template_app, empty_app):
    first = export_template(db.session)
    text = dump_template(first)
    with empty_app():
        import_template(db.session, get_image_store(), parse_template(text))
        second = export_template(db.session)
        assert template_stats(db.session)["schticks"] == 643
    assert content_of(second) == content_of(first)


def test_export_uses_refs_and_deduplicated_images(template_app):
    document = export_template(db.session)
    master = find_master_template(db.session)
    text = dump_template(document)
    assert str(master.id) not in text  # no database ids in the file
    assert document["format"] == "campaign-pool-template" and document["version"] == 1
    assert len(document["images"]) == 49
    assert sum(len(s["attachments"]) for s in document["schticks"]) == 643
    refs = [s["ref"] for s in document["schticks"]]
    assert refs == sorted(refs) and len(set(refs)) == 643
    linked = [s for s in document["schticks"] if s["prerequisite"]]
    assert len(linked) == 130 and all(s["prerequisite"] in refs for s in linked)


def test_generated_document_round_trips_through_an_empty_database(app, empty_app):
    import_template(db.session, get_image_store(), valid_document())
    first = export_template(db.session)
    with empty_app():
        import_template(db.session, get_image_store(), json.loads(dump_template(first)))
        assert content_of(export_template(db.session)) == content_of(first)


def test_import_gives_the_same_shape_as_generate(app):
    import_template(db.session, get_image_store(), valid_document())
    stats = template_stats(db.session)
    assert stats["template_version"] == 1
    assert (stats["schticks"], stats["prerequisite_links"], stats["max_prerequisite_depth"]) == (
        643,
        130,
        5,
    )
    assert (stats["image_blobs"], stats["distinct_images"]) == (789, 49)


# ------------------------------------------------------------------------------- replace


def test_import_refuses_to_overwrite_the_master_without_replace(template_app):
    before = row_counts()
    files = stored_files()
    with pytest.raises(TemplateError, match="already exists"):
        import_template(db.session, get_image_store(), valid_document())
    assert row_counts() == before
    assert stored_files() == files


def test_import_with_replace_demotes_the_old_master(template_app):
    old = find_master_template(db.session)
    old_id, old_name = old.id, old.name
    exported = export_template(db.session)
    new = import_template(db.session, get_image_store(), exported, replace=True)
    assert new.id != old_id and new.template_version == 2 and new.is_master_template
    demoted = db.session.get(Campaign, old_id)
    assert demoted.is_master_template is False and demoted.active is False
    assert demoted.name != old_name and demoted.name.startswith(old_name)
    # nothing deleted: both campaigns keep their schticks
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Schtick)) == 2 * 643
    assert content_of(export_template(db.session)) == content_of(exported)


def test_a_broken_replacement_leaves_the_old_master_in_place(template_app):
    old = find_master_template(db.session)
    before = row_counts()
    files = stored_files()
    document = valid_document()
    document["weapons"][3]["damage"] = "lots"
    with pytest.raises(TemplateError, match=r"weapons\[3\].*damage: must be an integer"):
        import_template(db.session, get_image_store(), document, replace=True)
    assert find_master_template(db.session).id == old.id
    assert row_counts() == before
    assert stored_files() == files


# ------------------------------------------------------------------------------- broken input


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        target = doc
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return mutate


def _duplicate_ref(doc: dict[str, Any]) -> None:
    doc["weapons"][1]["ref"] = doc["weapons"][0]["ref"]


def _duplicate_weapon_name(doc: dict[str, Any]) -> None:
    doc["weapons"][1]["name"] = doc["weapons"][0]["name"]


def _duplicate_schtick_in_category(doc: dict[str, Any]) -> None:
    doc["schticks"][1]["name"] = doc["schticks"][0]["name"]
    doc["schticks"][1]["category"] = doc["schticks"][0]["category"]


def _prerequisite_cycle(doc: dict[str, Any]) -> None:
    child = next(s for s in doc["schticks"] if s["prerequisite"])
    parent = next(s for s in doc["schticks"] if s["ref"] == child["prerequisite"])
    parent["prerequisite"] = child["ref"]


def _corrupt_image(doc: dict[str, Any]) -> None:
    entry = next(iter(doc["images"].values()))
    data = bytearray(base64.b64decode(entry["data"]))
    data[-1] ^= 0xFF
    entry["data"] = base64.b64encode(bytes(data)).decode()


def _unknown_image(doc: dict[str, Any]) -> None:
    doc["factions"][0]["attachments"][0]["image"] = "0" * 64


def _link_to_missing_schtick(doc: dict[str, Any]) -> None:
    doc["characters"][0]["schticks"].append("schtick-9999")


def _faction_ref_to_a_weapon(doc: dict[str, Any]) -> None:
    doc["junctures"][0]["faction"] = doc["weapons"][0]["ref"]


BROKEN: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("wrong format", _set(("format",), "other"), r"^format: must be 'campaign-pool-template'"),
    ("future version", _set(("version",), 2), r"^version: unsupported version 2"),
    ("missing section", _delete(("weapons",)), r"^weapons: missing field"),
    (
        "missing field",
        _delete(("schticks", 5, "name")),
        r"^schticks\[5\] \(ref .*\)\.name: missing",
    ),
    ("unknown field", _set(("factions", 2, "colour"), "red"), r"factions\[2\].*colour: unknown"),
    ("null name", _set(("weapons", 0, "name"), None), r"weapons\[0\].*name: must not be null"),
    ("too long", _set(("schticks", 7, "category"), "x" * 101), r"category: is 101 characters"),
    ("bad boolean", _set(("schticks", 0, "bonus"), "yes"), r"bonus: must be true or false"),
    (
        "prerequisite nowhere",
        _set(("schticks", 10, "prerequisite"), "schtick-9999"),
        r"schticks\[10\].*prerequisite: points to no record in schticks: 'schtick-9999'",
    ),
    ("prerequisite cycle", _prerequisite_cycle, r"prerequisite: prerequisite cycle: "),
    ("duplicate ref", _duplicate_ref, r"weapons\[1\].*ref: duplicate ref"),
    ("duplicate weapon name", _duplicate_weapon_name, r"weapons\[1\].*duplicate name"),
    ("duplicate schtick", _duplicate_schtick_in_category, r"schticks\[1\].*duplicate category"),
    ("character link nowhere", _link_to_missing_schtick, r"characters\[0\].*schticks\[4\]: points"),
    ("ref to wrong section", _faction_ref_to_a_weapon, r"junctures\[0\].*faction: points to no"),
    ("checksum mismatch", _corrupt_image, r"^images\[.*\]: checksum mismatch"),
    (
        "empty image entry",
        _set(("images",), {"a" * 64: {}}),
        r"^images\['a+'\]\.content_type: missing",
    ),
    ("unknown image", _unknown_image, r"factions\[0\].*attachments\[0\]\.image: no image"),
    (
        "position nowhere",
        _set(("image_positions", 0, "record"), "nobody"),
        r"^image_positions\[0\]\.record: points to no record",
    ),
    ("empty document", lambda doc: doc.clear(), r"^format: must be"),
]


@pytest.mark.parametrize(("mutate", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_documents_are_rejected_and_nothing_is_written(app, mutate, message):
    document = valid_document()
    mutate(document)
    before, files = row_counts(), stored_files()
    with pytest.raises(TemplateError, match=message):
        import_template(db.session, get_image_store(), document)
    assert row_counts() == before
    assert stored_files() == files


def test_invalid_base64_is_rejected():
    document = valid_document()
    checksum = next(iter(document["images"]))
    document["images"][checksum]["data"] = "not base64!!"
    with pytest.raises(TemplateError, match=r"data: is not valid base64"):
        from portal.services.template import validate_template

        validate_template(document)


def test_bad_json_names_the_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(dump_template(valid_document())[:5000], encoding="utf-8")
    with pytest.raises(TemplateError, match=r"broken\.json: not valid JSON: .* line \d+ column"):
        load_template_file(path)


def test_duplicate_json_keys_are_rejected(tmp_path):
    path = tmp_path / "dupe.json"
    path.write_text('{"format": "campaign-pool-template", "format": "x"}', encoding="utf-8")
    with pytest.raises(TemplateError, match=r"dupe\.json: duplicate key 'format'"):
        load_template_file(path)


def test_missing_file_and_non_utf8_are_reported(tmp_path):
    with pytest.raises(TemplateError, match="cannot read"):
        load_template_file(tmp_path / "absent.json")
    path = tmp_path / "latin1.json"
    path.write_bytes('{"name": "café"}'.encode("latin-1"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        load_template_file(path)
    with pytest.raises(TemplateError, match="NaN is not valid JSON"):
        parse_template('{"x": NaN}')


# ------------------------------------------------------------------------------- cleanup


class FailingStore(LocalImageStore):
    """The real local store, failing for good after `limit` files (an ImageKit outage)."""

    def __init__(self, root: Path, limit: int) -> None:
        super().__init__(root)
        self.limit = limit
        self.puts = 0

    def put(self, key, filename, content, content_type, *, context):
        if self.puts >= self.limit:
            raise ImageStoreError("image service unavailable")
        self.puts += 1
        return super().put(key, filename, content, content_type, context=context)


def test_a_store_failure_midway_deletes_the_files_already_stored(app):
    store = FailingStore(get_image_store().root, limit=100)
    before, files = row_counts(), stored_files()
    with pytest.raises(ImageStoreError):
        import_template(db.session, store, valid_document())
    assert store.puts == 100  # files really were stored before the failure
    assert stored_files() == files
    assert row_counts() == before


def test_a_database_failure_after_storing_files_deletes_them(app):
    before, files = row_counts(), stored_files()

    def refuse_attachments(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO IMAGE_ATTACHMENTS"):
            raise RuntimeError("database went away")

    sa.event.listen(db.engine, "before_cursor_execute", refuse_attachments)
    try:
        with pytest.raises(RuntimeError, match="database went away"):
            import_template(db.session, get_image_store(), valid_document())
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", refuse_attachments)
    assert stored_files() == files
    assert row_counts() == before
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ImageBlob)) == 0


# ------------------------------------------------------------------------------- the docs


def test_the_documented_example_imports_and_round_trips(app):
    doc = (PROJECT_ROOT / "docs" / "template-format.md").read_text("utf-8")
    example = doc.split("```json\n", 1)[1].split("```", 1)[0]
    import_template(db.session, get_image_store(), parse_template(example, "docs example"))
    stats = template_stats(db.session)
    assert (stats["schticks"], stats["prerequisite_links"], stats["max_prerequisite_depth"]) == (
        2,
        1,
        2,
    )
    assert (stats["image_blobs"], stats["distinct_images"]) == (2, 1)
    exported = export_template(db.session)
    assert exported["characters"][0]["schticks"] == ["schtick-0001", "schtick-0002"]
    assert exported["image_positions"][0]["style_overrides"] == {"objectFit": "cover"}

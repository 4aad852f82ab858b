"""Template export/import: an exact round trip, streamed files, and broken files rejected with
every problem reported at once and nothing written."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import re
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
    TemplateProblems,
    build_template_document,
    dump_template,
    export_template,
    import_template,
    import_template_file,
    parse_template,
    read_template,
    template_stats,
    write_export,
)
from portal.services.template.imagefiles import InlineImages
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


def test_the_rich_shape_round_trips_too(rich_template_app, empty_app):
    """Carries, vehicles, image positions and juncture->faction links survive the format."""
    first = export_template(db.session)
    assert len(first["vehicles"]) == 6 and len(first["image_positions"]) == 60
    assert sum(len(c["weapons"]) for c in first["characters"]) == 42
    with empty_app():
        import_template(db.session, get_image_store(), json.loads(dump_template(first)))
        assert content_of(export_template(db.session)) == content_of(first)


def test_export_uses_refs_and_deduplicated_images(template_app):
    document = export_template(db.session)
    master = find_master_template(db.session)
    text = dump_template(document)
    assert str(master.id) not in text  # no database ids in the file
    assert document["format"] == "campaign-pool-template" and document["version"] == 1
    assert len(document["images"]) == 105
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
        6,
    )
    assert (stats["image_blobs"], stats["distinct_images"]) == (105, 105)


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
    ref = document["weapons"][3]["ref"]
    with pytest.raises(TemplateError, match=rf"weapons\[\*\]\.damage: must be an integer .*{ref}"):
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
    ("wrong format", _set(("format",), "other"), r"format: must be 'campaign-pool-template'"),
    ("future version", _set(("version",), 2), r"version: unsupported version 2"),
    ("missing section", _delete(("weapons",)), r"  weapons: missing field"),
    ("missing field", _delete(("schticks", 5, "name")), r"schticks\[\*\]\.name: missing field"),
    ("unknown field", _set(("factions", 2, "colour"), "red"), r"factions\[\*\]\.colour: unknown"),
    ("null name", _set(("weapons", 0, "name"), None), r"weapons\[\*\]\.name: must not be null"),
    ("too long", _set(("schticks", 7, "category"), "x" * 101), r"category: longer than 100"),
    ("bad boolean", _set(("schticks", 0, "bonus"), "yes"), r"bonus: must be true or false"),
    (
        "prerequisite nowhere",
        _set(("schticks", 10, "prerequisite"), "schtick-9999"),
        r"schticks\[\*\]\.prerequisite: points to no record in schticks .*'schtick-9999'",
    ),
    ("prerequisite cycle", _prerequisite_cycle, r"prerequisite: prerequisite cycle .* -> "),
    ("duplicate ref", _duplicate_ref, r"weapons\[\*\]\.ref: duplicate ref"),
    ("duplicate weapon name", _duplicate_weapon_name, r"weapons\[\*\]: duplicate name"),
    ("duplicate schtick", _duplicate_schtick_in_category, r"schticks\[\*\]: duplicate category"),
    (
        "character link nowhere",
        _link_to_missing_schtick,
        r"characters\[\*\]\.schticks\[\*\]: points",
    ),
    ("ref to wrong section", _faction_ref_to_a_weapon, r"junctures\[\*\]\.faction: points to no"),
    ("checksum mismatch", _corrupt_image, r"images\[\*\]: checksum mismatch"),
    (
        "empty image entry",
        _set(("images",), {"a" * 64: {}}),
        r"images\[\*\]\.content_type: missing",
    ),
    ("unknown image", _unknown_image, r"factions\[\*\]\.attachments\[\*\]\.image: no image"),
    (
        "position nowhere",
        _set(
            ("image_positions",),
            [
                {
                    "record": "nobody",
                    "context": "x",
                    "x_position": 0,
                    "y_position": 0,
                    "style_overrides": None,
                }
            ],
        ),
        r"image_positions\[\*\]\.record: points to no record",
    ),
    ("empty document", lambda doc: doc.clear(), r"format: must be"),
]


@pytest.mark.parametrize(("mutate", "message"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_broken_documents_are_rejected_and_nothing_is_written(app, mutate, message):
    document = valid_document()
    mutate(document)
    before, files = row_counts(), stored_files()
    with pytest.raises(TemplateProblems) as info:
        import_template(db.session, get_image_store(), document)
    assert re.search(message, str(info.value)), str(info.value)
    assert "nothing was written" in str(info.value)
    assert row_counts() == before
    assert stored_files() == files


def test_invalid_base64_is_rejected():
    document = valid_document()
    checksum = next(iter(document["images"]))
    document["images"][checksum]["data"] = "not base64!!"
    with pytest.raises(TemplateError, match=r"images\[\*\]\.data: is not valid base64"):
        from portal.services.template import validate_template

        validate_template(document)


def _read(path: Path) -> Any:
    return read_template(path, InlineImages())


def test_bad_json_names_the_file_and_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(dump_template(valid_document())[:5000], encoding="utf-8")
    with pytest.raises(TemplateError, match=r"broken\.json: not valid JSON: .* line \d+ column"):
        _read(path)


def test_duplicate_json_keys_are_rejected(tmp_path):
    path = tmp_path / "dupe.json"
    path.write_text('{"format": "campaign-pool-template", "format": "x"}', encoding="utf-8")
    with pytest.raises(
        TemplateError, match=r"(?s)dupe\.json: .*duplicate key in a JSON object.*'format'"
    ):
        _read(path)


def test_missing_file_and_non_utf8_are_reported(tmp_path):
    with pytest.raises(TemplateError, match="cannot read"):
        _read(tmp_path / "absent.json")
    path = tmp_path / "latin1.json"
    path.write_bytes('{"name": "café"}'.encode("latin-1"))
    with pytest.raises(TemplateError, match="not UTF-8"):
        _read(path)
    path.write_text('{"x": NaN}', encoding="utf-8")
    with pytest.raises(TemplateError, match="not valid JSON"):
        _read(path)
    with pytest.raises(TemplateError, match="NaN is not valid JSON"):
        parse_template('{"x": NaN}')


# ------------------------------------------------------------------------------- every problem


def _raw_export_quirks(doc: dict[str, Any]) -> dict[str, int]:
    """What exports of the original system contain: NULL booleans and blank path/color."""
    for schtick in doc["schticks"][:635]:
        schtick["bonus"] = None
    for weapon in doc["weapons"]:
        weapon["kachunk"] = None
    paths = [s for s in doc["schticks"] if s["path"]][:3]
    for schtick in paths:
        schtick["path"] = ""
    for schtick in doc["schticks"][-8:]:
        schtick["color"] = ""
    return {
        "schticks.bonus: null -> false": 635,
        "schticks.color: blank -> null": 8,
        "schticks.path: blank -> null": 3,
        "weapons.kachunk: null -> false": 86,
    }


def _svg_declared_png(doc: dict[str, Any]) -> str:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    return _swap_image(doc, svg, "image/png")


def _swap_image(doc: dict[str, Any], content: bytes, content_type: str) -> str:
    """Replace the weapons' first picture with `content`; return its new checksum."""
    old = doc["weapons"][0]["attachments"][0]["image"]
    new = hashlib.sha256(content).hexdigest()
    del doc["images"][old]
    doc["images"][new] = {
        "content_type": content_type,
        "byte_size": len(content),
        "data": base64.b64encode(content).decode(),
    }
    for section in ("factions", "junctures", "schticks", "weapons", "characters"):
        for record in doc[section]:
            for attachment in record["attachments"]:
                if attachment["image"] == old:
                    attachment["image"] = new
    return new


def test_four_kinds_of_problems_are_reported_in_one_run_and_nothing_is_written(app):
    document = valid_document()
    _raw_export_quirks(document)  # 635 + 86 NULL booleans, 3 + 8 blank strings
    document["schticks"][20]["name"] = "x" * 300
    document["characters"][1]["schticks"].append("schtick-9999")
    svg = _svg_declared_png(document)
    store = get_image_store()
    before, files = row_counts(), stored_files()
    with pytest.raises(TemplateProblems) as info:
        import_template(db.session, store, document)
    message = str(info.value)
    lines = info.value.lines
    assert "nothing was written" in message
    assert any(
        line.startswith(
            "schticks[*].bonus: must not be null; --normalize reads it as false — "
            "635 records: schtick-"
        )
        for line in lines
    ), lines
    assert any(
        line.startswith("weapons[*].kachunk: must not be null") and "86 records" in line
        for line in lines
    )
    assert any(
        line.startswith("schticks[*].path: must not be blank") and "3 records" in line
        for line in lines
    )
    assert any(
        line.startswith("schticks[*].name: longer than 255 characters — 1 record: ")
        for line in lines
    )
    assert any(
        "characters[*].schticks[*]: points to no record in schticks" in line
        and "'schtick-9999'" in line
        for line in lines
    )
    image_line = next(line for line in lines if line.startswith("images[*]: refused"))
    assert svg[:16] in image_line and "the bytes are SVG" in image_line
    assert "weapon-" in image_line  # named by checksum and by the file name its records use
    assert len(max(lines, key=len)) < 400  # first few refs only, not 635
    assert row_counts() == before
    assert stored_files() == files


def test_normalize_reads_raw_export_quirks_and_counts_them(app):
    document = valid_document()
    expected = _raw_export_quirks(document)
    from portal.services.template import validate_template

    template = validate_template(copy.deepcopy(document), normalize=True)
    assert template.normalized == expected
    report_campaign = import_template(db.session, get_image_store(), document, normalize=True)
    schticks = db.session.scalars(
        sa.select(Schtick).where(Schtick.campaign_id == report_campaign.id)
    ).all()
    assert sum(1 for s in schticks if s.bonus is False) >= 635
    assert sum(1 for s in schticks if s.path == "") == 0


@pytest.mark.parametrize(
    ("content", "declared", "message"),
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml", "'image/svg+xml' is not"),
        (b"<!DOCTYPE html><html><script>x()</script></html>", "image/png", "bytes are HTML"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64, "image/png", "bytes are image/jpeg"),
    ],
    ids=["svg", "html-as-png", "jpeg-as-png"],
)
def test_non_raster_or_mismatched_images_are_refused_naming_the_image(
    app, content, declared, message
):
    document = valid_document()
    checksum = _swap_image(document, content, declared)
    before, files = row_counts(), stored_files()
    with pytest.raises(TemplateProblems) as info:
        import_template(db.session, get_image_store(), document)
    line = next(line for line in info.value.lines if line.startswith("images[*]"))
    assert checksum[:16] in line and message in line
    assert row_counts() == before and stored_files() == files


def test_an_image_over_the_limit_is_refused(app):
    document = valid_document()
    sizes = [entry["byte_size"] for entry in document["images"].values()]
    with pytest.raises(TemplateProblems) as info:
        import_template(db.session, get_image_store(), document, max_image_bytes=min(sizes) + 10)
    line = next(line for line in info.value.lines if "larger than the image size limit" in line)
    assert f"limit of {min(sizes) + 10} bytes" in line
    assert row_counts()["image_blobs"] == 0


# ------------------------------------------------------------------------------- streamed files


def test_export_file_streamed_is_the_same_text_and_imports_streamed(
    template_app, empty_app, tmp_path
):
    path = tmp_path / "template.json"
    with path.open("wb") as handle:
        report = write_export(db.session, get_image_store(), handle)
    assert (report.images, report.attachments) == (105, 788)
    text = path.read_text("utf-8")
    document = json.loads(text)
    assert dump_template(document) == text  # exactly what dump_template writes
    with empty_app():
        result = import_template_file(db.session, get_image_store(), path)
        assert (result.images, result.uploaded, result.reused, result.attachments) == (
            105,
            105,
            0,
            788,
        )
        again = tmp_path / "again.json"
        with again.open("wb") as handle:
            write_export(db.session, get_image_store(), handle)
        assert content_of(json.loads(again.read_text("utf-8"))) == content_of(document)
        # importing the same content again stores nothing new: the files are content-addressed
        blobs = row_counts()["image_blobs"]
        result = import_template_file(db.session, get_image_store(), again, replace=True)
        assert (result.uploaded, result.reused) == (0, 105)
        assert row_counts()["image_blobs"] == blobs


def test_a_version_1_file_with_a_name_per_attachment_still_imports(app, tmp_path):
    """Exports written before images were stored once name every attachment's file after its
    record; such files import, each image keeping the name most of its records give it."""
    document = valid_document()
    renamed = 0
    for section in ("schticks", "weapons"):
        for record in document[section]:
            for attachment in record["attachments"]:
                attachment["filename"] = f"{record['ref']}.png"
                renamed += 1
    path = tmp_path / "old.json"
    path.write_text(dump_template(document), encoding="utf-8")
    report = import_template_file(db.session, get_image_store(), path)
    assert report.images == 105 and report.attachments == 788
    assert 0 < report.filenames_unified <= renamed
    assert template_stats(db.session)["distinct_images"] == 105


def test_import_memory_is_bounded_by_the_largest_image(app, tmp_path, monkeypatch):
    """Six 2 MB pictures: streaming holds one at a time (its base64 text and its bytes), so
    the peak stays far below the file's 16 MB (reads of 1 MiB here; 8 MiB by default)."""
    import tracemalloc

    from portal.services.template import reader

    monkeypatch.setattr(reader, "READ_CHUNK", 1024 * 1024)

    from portal.services.template.pictures import render_large_picture

    document = json.loads(DOC_EXAMPLE)
    checksum = document["campaign"]["attachments"][0]["image"]
    document["images"] = {}
    for i, record in enumerate(
        [
            *document["factions"],
            *document["schticks"],
            *document["weapons"],
            document["characters"][0],
            document["junctures"][0],
        ]
    ):
        content = render_large_picture("icon", i, 2_000_000)
        digest = hashlib.sha256(content).hexdigest()
        document["images"][digest] = {
            "content_type": "image/png",
            "byte_size": len(content),
            "data": base64.b64encode(content).decode(),
        }
        record["attachments"] = [{"name": "image", "filename": f"{i}.png", "image": digest}]
    document["campaign"]["attachments"] = [
        {"name": "image", "filename": "0.png", "image": next(iter(document["images"]))}
    ]
    assert checksum not in document["images"]
    path = tmp_path / "big.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    size = path.stat().st_size
    del document
    assert size > 15_000_000
    tracemalloc.start()
    try:
        report = import_template_file(db.session, get_image_store(), path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.images == 6
    assert peak < 9_000_000, f"peak {peak} bytes for a {size}-byte file"


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
    store = FailingStore(get_image_store().root, limit=50)
    before, files = row_counts(), stored_files()
    with pytest.raises(ImageStoreError):
        import_template(db.session, store, valid_document())
    assert store.puts == 50  # files really were stored before the failure
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


DOC_EXAMPLE = (
    (PROJECT_ROOT / "docs" / "template-format.md")
    .read_text("utf-8")
    .split("```json\n", 1)[1]
    .split("```", 1)[0]
)


def test_the_documented_example_imports_and_round_trips(app):
    import_template(db.session, get_image_store(), parse_template(DOC_EXAMPLE, "docs example"))
    stats = template_stats(db.session)
    assert (stats["schticks"], stats["prerequisite_links"], stats["max_prerequisite_depth"]) == (
        2,
        1,
        2,
    )
    assert (stats["image_blobs"], stats["distinct_images"]) == (1, 1)
    exported = export_template(db.session)
    assert exported["characters"][0]["schticks"] == ["schtick-0001", "schtick-0002"]
    assert exported["image_positions"][0]["style_overrides"] == {"objectFit": "cover"}

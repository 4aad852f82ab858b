"""`flask --app app template generate|import PATH [--replace]|export PATH|stats|version|bump`.

Thin wrappers over portal.services.template: each command calls one service and reports. Data
(JSON stats, an export written to `-`) goes to stdout, status lines to stderr, so scripts can pipe
the output. Any error exits 1 with the service's message, and the services guarantee nothing was
written.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from portal.appcontext import db_session
from portal.extensions import db
from portal.services.images.backend import get_image_store
from portal.services.images.store import ImageStoreError
from portal.services.template import (
    SpooledImages,
    TemplateError,
    WriteReport,
    import_template_file,
    read_template,
    template_stats,
    write_export,
)
from portal.services.template.generator import SHAPES, generate_template_report

cli = AppGroup("template", help="Generate, import, export and describe the master template.")


def _fail(error: Exception) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(str(error))


def _summary(verb: str, report: WriteReport | None = None) -> str:
    stats = template_stats(db_session())
    line = (
        f"{verb} master template {stats['campaign_name']!r} (version {stats['template_version']}): "
        f"{stats['schticks']} schticks, {stats['weapons']} weapons, {stats['factions']} factions, "
        f"{stats['junctures']} junctures, {stats['characters']} characters, "
        f"{stats['image_attachments']} image attachments on {stats['distinct_images']} images"
    )
    if report is not None:
        line += (
            f"; {report.uploaded} file(s) stored ({report.bytes_uploaded / 1e6:.1f} MB), "
            f"{report.reused} reused"
        )
        if report.filenames_unified:
            line += (
                f"; {report.filenames_unified} attachment(s) named their image differently: "
                "each image keeps the name most of its attachments give it"
            )
    return line


def _normalized(counts: dict[str, int]) -> str | None:
    if not counts:
        return None
    return "Normalized: " + ", ".join(f"{what} ({n})" for what, n in counts.items())


@cli.command("generate")
@click.option(
    "--shape",
    type=click.Choice(SHAPES),
    default="production",
    show_default=True,
    help="production: the production template's facts (no carries, vehicles or image "
    "positions; 788 attachments on 105 images). rich: also juncture->faction links, carries, "
    "vehicles and image positions.",
)
@click.option(
    "--large-images",
    is_flag=True,
    help="MB-sized pictures (1.8-3.7 MB each, 297 MB in all, like production) instead of "
    "32x32 ones.",
)
def generate_command(shape: str, large_images: bool) -> None:
    """Generate the master template (refused if one exists)."""
    try:
        report = generate_template_report(
            db_session(), get_image_store(), shape=shape, large_images=large_images
        )
        click.echo(_summary("Generated", report), err=True)
    except (TemplateError, ImageStoreError) as error:
        raise _fail(error) from None


@cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--replace",
    is_flag=True,
    help="Supersede the current master template (it is kept, inactive and renamed).",
)
@click.option(
    "--normalize",
    is_flag=True,
    help="Read NULL booleans as false and blank optional strings (path, color ...) as null, "
    "as raw exports of the original system have them; the changes are counted.",
)
@click.option(
    "--max-image-bytes",
    type=click.IntRange(min=1),
    default=None,
    help="The largest image accepted, in bytes (default: IMAGE_MAX_BYTES, 25 MiB).",
)
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Validate the file and report every problem; write nothing.",
)
def import_command(
    path: str, replace: bool, normalize: bool, max_image_bytes: int | None, check_only: bool
) -> None:
    """Import a master template from PATH (`-` reads stdin), streamed; see
    docs/template-format.md. Every problem of the file is reported at once, and nothing is
    written unless there are none."""
    settings = current_app.config["SETTINGS"]
    limit = max_image_bytes or settings.image_max_bytes
    source: Any = sys.stdin.buffer if path == "-" else path
    name = "<stdin>" if path == "-" else path
    try:
        if check_only:
            with SpooledImages() as spool:
                template = read_template(
                    source, spool, normalize=normalize, max_image_bytes=limit, name=name
                )
            note = _normalized(template.normalized)
            if note:
                click.echo(note, err=True)
            click.echo(
                f"{name}: valid ({template.attachment_count()} image attachments on "
                f"{len(template.images)} images); nothing was written",
                err=True,
            )
            return
        report = import_template_file(
            db_session(),
            get_image_store(),
            source,
            replace=replace,
            normalize=normalize,
            max_image_bytes=limit,
            name=name,
        )
        note = _normalized(report.normalized)
        if note:
            click.echo(note, err=True)
        click.echo(_summary("Imported", report), err=True)
    except (TemplateError, ImageStoreError) as error:
        raise _fail(error) from None


@cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
def export_command(path: str) -> None:
    """Export the master template to PATH (`-` writes stdout), streamed: one image at a time."""
    store = get_image_store()
    try:
        if path == "-":
            write_export(db_session(), store, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return
        target = Path(path)
        if not target.parent.is_dir():
            raise click.ClickException(f"{target.parent}: no such directory")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                report = write_export(db_session(), store, handle)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (TemplateError, ImageStoreError) as error:
        raise _fail(error) from None
    except OSError as error:
        raise click.ClickException(f"{path}: cannot write ({error.strerror or error})") from None
    finally:
        db.session.rollback()  # read-only: end the transaction
    click.echo(
        f"Exported the master template to {target} ({target.stat().st_size} bytes; "
        f"{report.attachments} image attachments on {report.images} images, "
        f"{report.image_bytes / 1e6:.1f} MB of image data)",
        err=True,
    )


@cli.command("stats")
def stats_command() -> None:
    """Print the master template's counts as one JSON object."""
    try:
        stats = template_stats(db_session())
    except TemplateError as error:
        raise _fail(error) from None
    db.session.rollback()
    click.echo(json.dumps(stats, ensure_ascii=False, indent=2))


@cli.command("version")
def version_command() -> None:
    """Print the template version, its stored fingerprint and whether the content has been
    edited since (JSON; the monitor bumps the version when `edited` is true)."""
    from portal.services.template.versions import version_state

    try:
        state = version_state(db_session())
    except TemplateError as error:
        raise _fail(error) from None
    db.session.rollback()
    click.echo(json.dumps(state.as_dict(), indent=2))


@cli.command("bump")
@click.option(
    "--if-edited",
    is_flag=True,
    help="Bump only if the content changed since the version was set (what the monitor does).",
)
def bump_command(if_edited: bool) -> None:
    """Bump the template version: pool campaigns of older versions are retired at once (never
    handed out) and the pools are rebuilt at the new version (docs/pool.md)."""
    from portal.services.infra.queue import enqueue_replenish, get_redis
    from portal.services.template.versions import bump_if_edited, bump_template_version

    try:
        if if_edited:
            change = bump_if_edited(db_session())
        else:
            change = bump_template_version(db_session(), actor=_operator())
    except TemplateError as error:
        raise _fail(error) from None
    if change is None:
        click.echo("The template content is unchanged; the version stays.", err=True)
        return
    if not current_app.config["SETTINGS"].embedded_queue:
        enqueue_replenish(get_redis(), "all")  # the monitor would do it within a minute
    click.echo(json.dumps(change.as_dict(), indent=2))
    click.echo(
        f"Template version {change.previous} -> {change.current}; "
        f"{change.retired} pool campaign(s) retired, the pools rebuild at the new version.",
        err=True,
    )


def _operator() -> str:
    """Who ran the command, for the bump's pool event (the login name, else "cli")."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return "cli"

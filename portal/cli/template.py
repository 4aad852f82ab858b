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

import click
from flask.cli import AppGroup

from portal.appcontext import db_session
from portal.extensions import db
from portal.services.images.backend import get_image_store
from portal.services.images.store import ImageStoreError
from portal.services.template import (
    TemplateError,
    dump_template,
    export_template,
    generate_template,
    import_template,
    load_template_file,
    parse_template,
    template_stats,
)

cli = AppGroup("template", help="Generate, import, export and describe the master template.")


def _fail(error: Exception) -> click.ClickException:
    db.session.rollback()
    return click.ClickException(str(error))


def _summary(verb: str) -> str:
    stats = template_stats(db_session())
    return (
        f"{verb} master template {stats['campaign_name']!r} (version {stats['template_version']}): "
        f"{stats['schticks']} schticks, {stats['weapons']} weapons, {stats['factions']} factions, "
        f"{stats['junctures']} junctures, {stats['characters']} characters, "
        f"{stats['image_attachments']} images"
    )


@cli.command("generate")
def generate_command() -> None:
    """Generate the master template (refused if one exists)."""
    try:
        generate_template(db_session(), get_image_store())
        click.echo(_summary("Generated"), err=True)
    except (TemplateError, ImageStoreError) as error:
        raise _fail(error) from None


@cli.command("import")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--replace",
    is_flag=True,
    help="Supersede the current master template (it is kept, inactive and renamed).",
)
def import_command(path: str, replace: bool) -> None:
    """Import a master template from PATH (`-` reads stdin); see docs/template-format.md."""
    try:
        if path == "-":
            data = parse_template(sys.stdin.buffer.read(), "<stdin>")
        else:
            data = load_template_file(path)
        import_template(db_session(), get_image_store(), data, replace=replace)
        click.echo(_summary("Imported"), err=True)
    except (TemplateError, ImageStoreError) as error:
        raise _fail(error) from None


def _write_atomically(path: Path, text: str) -> None:
    """Write next to the target and rename, so a failed export never leaves half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, allow_dash=True))
def export_command(path: str) -> None:
    """Export the master template to PATH (`-` writes stdout)."""
    try:
        text = dump_template(export_template(db_session(), get_image_store()))
    except (TemplateError, ImageStoreError) as error:
        raise _fail(error) from None
    db.session.rollback()  # read-only: end the transaction
    if path == "-":
        click.echo(text, nl=False)
        return
    target = Path(path)
    if not target.parent.is_dir():
        raise click.ClickException(f"{target.parent}: no such directory")
    try:
        _write_atomically(target, text)
    except OSError as error:
        raise click.ClickException(f"{target}: cannot write ({error.strerror or error})") from None
    click.echo(f"Exported the master template to {target} ({len(text.encode())} bytes)", err=True)


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
    from flask import current_app

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

"""`flask --app app ...` commands, one module per command group; each module exposes `cli`."""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    from portal.cli import bench, campaigns, pool, serve, template, users

    for module in (users, template, campaigns, pool, bench, serve):
        app.cli.add_command(module.cli)

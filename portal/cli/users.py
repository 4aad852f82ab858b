"""`flask --app app users ...`: create users and manage their API tokens.

Human-readable status goes to stderr and a token alone to stdout, so a script can capture it:
`TOKEN=$(flask --app app users create gm@example.com --name GM --password - --token < pw)`.
Any error rolls back and exits 1 with a message: a failed command writes nothing.
"""

from __future__ import annotations

import sys
import uuid
from typing import NoReturn

import click
from flask.cli import AppGroup

from portal.appcontext import db_session
from portal.extensions import db
from portal.models import User
from portal.services.accounts.tokens import TokenError, issue_token, revoke_all
from portal.services.accounts.users import (
    UserError,
    create_user,
    find_by_email,
    set_active,
    set_password,
    unlock,
)

cli = AppGroup(
    "users", help="Create users, manage their API tokens, passwords, activation and lockouts."
)


def _read_password(value: str) -> str:
    """`-` means "read it from stdin", which keeps the password out of shell history and ps."""
    if value != "-":
        return value
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _fail(message: str) -> NoReturn:
    db.session.rollback()
    raise click.ClickException(message)


@cli.command("create")
@click.argument("email")
@click.option("--name", required=True, help="Display name.")
@click.option(
    "--password",
    required=True,
    help="At least 8 characters; `-` reads one line from stdin instead.",
)
@click.option("--admin", is_flag=True, help="May use the admin portal.")
@click.option("--gamemaster", is_flag=True, help="May create campaigns through the API.")
@click.option("--token", "with_token", is_flag=True, help="Also issue an API token and print it.")
def create_command(
    email: str, name: str, password: str, admin: bool, gamemaster: bool, with_token: bool
) -> None:
    """Create a user (and optionally its first API token)."""
    try:
        user = create_user(
            db_session(),
            email,
            name,
            _read_password(password),
            admin=admin,
            gamemaster=gamemaster,
        )
        token = issue_token(db_session(), user) if with_token else None
    except (UserError, TokenError) as error:
        _fail(str(error))
    db.session.commit()
    if gamemaster:
        _request_user_pool(user.id)
    roles = [role for role, on in (("admin", admin), ("gamemaster", gamemaster)) if on]
    click.echo(
        f"Created user {user.email} ({', '.join(roles) or 'no roles'}) id={user.id}", err=True
    )
    if token:
        click.echo("API token (shown once, store it now):", err=True)
        click.echo(token)


def _request_user_pool(user_id: uuid.UUID) -> None:
    """A new gamemaster gets their own pool: ask the workers to build it. With the embedded
    queue this process has no worker; the scheduled refill in `make run` builds it instead."""
    from flask import current_app

    from portal.services.infra.queue import enqueue_replenish, get_redis

    if not current_app.config["SETTINGS"].embedded_queue:
        enqueue_replenish(get_redis(), "user", user_id)


@cli.command("token")
@click.argument("email")
@click.option("--name", default="api", show_default=True, help="A label for the token.")
def token_command(email: str, name: str) -> None:
    """Issue a new API token for an existing user and print it."""
    user = find_by_email(db_session(), email)
    if user is None:
        _fail(f"no user with email {email!r}")
    if not user.active:
        _fail(f"user {user.email} is inactive; its tokens would be refused")
    try:
        token = issue_token(db_session(), user, name)
    except TokenError as error:
        _fail(str(error))
    db.session.commit()
    click.echo(f"Issued token {name!r} for {user.email} (shown once, store it now):", err=True)
    click.echo(token)


@cli.command("revoke-tokens")
@click.argument("email")
def revoke_tokens_command(email: str) -> None:
    """Revoke every API token of a user."""
    user = find_by_email(db_session(), email)
    if user is None:
        _fail(f"no user with email {email!r}")
    count = revoke_all(db_session(), user)
    db.session.commit()
    click.echo(f"Revoked {count} token(s) of {user.email}.")


def _user_or_fail(email: str) -> User:
    user = find_by_email(db_session(), email)
    if user is None:
        _fail(f"no user with email {email!r}")
    return user


@cli.command("set-password")
@click.argument("email")
@click.option("--password", required=True, help="At least 8 characters; `-` reads stdin.")
def set_password_command(email: str, password: str) -> None:
    """Change a user's password; every portal sign-in of the user ends (docs/security.md)."""
    user = _user_or_fail(email)
    try:
        set_password(db_session(), user, _read_password(password))
    except UserError as error:
        _fail(str(error))
    db.session.commit()
    click.echo(f"Password of {user.email} changed; its sign-ins have ended.", err=True)


@cli.command("deactivate")
@click.argument("email")
def deactivate_command(email: str) -> None:
    """Refuse the user everywhere: sign-ins end, tokens and passwords are refused."""
    user = _user_or_fail(email)
    set_active(db_session(), user, False)
    db.session.commit()
    click.echo(f"Deactivated {user.email}; its sign-ins have ended.", err=True)


@cli.command("activate")
@click.argument("email")
def activate_command(email: str) -> None:
    """Let a deactivated user sign in again."""
    user = _user_or_fail(email)
    set_active(db_session(), user, True)
    db.session.commit()
    click.echo(f"Activated {user.email}.", err=True)


@cli.command("unlock")
@click.argument("email")
def unlock_command(email: str) -> None:
    """Lift a lockout after too many failed sign-ins (also in the portal: Accounts)."""
    user = _user_or_fail(email)
    unlock(db_session(), user)
    db.session.commit()
    click.echo(f"{user.email} can sign in again.", err=True)

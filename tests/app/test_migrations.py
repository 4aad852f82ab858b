"""Migrations are the only way the schema is made, so they must build the documented
tables, agree exactly with the models (no drift an `alembic check` would catch), and go down and
up again cleanly, one revision at a time, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import downgrade, upgrade

from tests.conftest import make_app
from tests.support.databases import TestDatabases

# SQLite cannot reflect the expression index on lower(email) (see EXPRESSION_INDEXES).
pytestmark = [
    pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index"),
    pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based"),
]

TIMESTAMPS = {"created_at", "updated_at"}

# docs/architecture.md (data model): these table names and columns are a contract other programs
# rely on.
CONTRACT: dict[str, set[str]] = {
    "users": {
        "id",
        "email",
        "name",
        "password_hash",
        "admin",
        "gamemaster",
        "active",
        *TIMESTAMPS,
    },
    "api_tokens": {
        "id",
        "user_id",
        "token_hash",
        "name",
        "created_at",
        "last_used_at",
        "revoked_at",
    },
    "campaigns": {
        "id",
        "user_id",
        "name",
        "description",
        "active",
        "is_master_template",
        "seeded_at",
        *TIMESTAMPS,
        "is_pool",
        "pool_type",
        "pool_status",
        "pool_created_at",
        "activated_at",
        "template_version",
        "seeding_method",
        "seeding_duration_ms",
    },
    "schticks": {
        "id",
        "campaign_id",
        "name",
        "description",
        "category",
        "path",
        "color",
        "bonus",
        "archetypes",
        "prerequisite_id",
        "active",
        *TIMESTAMPS,
    },
    "weapons": {
        "id",
        "campaign_id",
        "name",
        "description",
        "damage",
        "concealment",
        "reload_value",
        "juncture",
        "mook_bonus",
        "category",
        "kachunk",
        "active",
        *TIMESTAMPS,
    },
    "factions": {"id", "campaign_id", "name", "description", "active", *TIMESTAMPS},
    "junctures": {"id", "campaign_id", "faction_id", "name", "description", "active", *TIMESTAMPS},
    "characters": {
        "id",
        "campaign_id",
        "user_id",
        "faction_id",
        "juncture_id",
        "name",
        "action_values",
        "description",
        "skills",
        "is_template",
        "active",
        "color",
        "summary",
        *TIMESTAMPS,
    },
    "vehicles": {
        "id",
        "campaign_id",
        "user_id",
        "faction_id",
        "juncture_id",
        "name",
        "action_values",
        "active",
        *TIMESTAMPS,
    },
    "character_schticks": {"character_id", "schtick_id"},
    "carries": {"character_id", "weapon_id"},
    "image_positions": {
        "positionable_type",
        "positionable_id",
        "context",
        "x_position",
        "y_position",
        "style_overrides",
    },
    "image_blobs": {
        "id",
        "key",
        "filename",
        "content_type",
        "byte_size",
        "checksum",
        "service_name",
        "metadata",
        "created_at",
    },
    "image_attachments": {"id", "name", "record_type", "record_id", "blob_id", "created_at"},
    "pool_events": {
        "kind",
        "campaign_id",
        "user_id",
        "pool_type",
        "duration_ms",
        "detail",
        "created_at",
    },
    "pool_settings": set(),  # "targets, low watermark, max": its shape is not part of the contract
}

# SQLite cannot reflect an index on an expression, so autogenerate sees the case-insensitive
# email index as missing there; it is checked on its own below instead.
EXPRESSION_INDEXES = {"uq_users_email_lower"}


@pytest.fixture
def fresh(databases: TestDatabases) -> Iterator[Flask]:
    """An app on a brand-new database with no tables at all, inside an app context."""
    url = databases.empty("migrations")
    app = make_app(url)
    with app.app_context():
        yield app
        from portal.extensions import db

        db.session.remove()
        db.engine.dispose()
    databases.drop(url)


def _engine() -> sa.Engine:
    from portal.extensions import db

    return db.engine


def _tables() -> set[str]:
    return set(sa.inspect(_engine()).get_table_names())


def _revisions() -> list[str]:
    """Revision ids from base to head, read from the migrations directory."""
    from flask import current_app

    config = current_app.extensions["migrate"].migrate.get_config()
    script = ScriptDirectory.from_config(config)
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _drift(metadata: sa.MetaData | None = None) -> list[Any]:
    """What `alembic check` would report: differences between the models and the database."""
    from portal.extensions import db

    with _engine().connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        diffs = compare_metadata(context, metadata if metadata is not None else db.metadata)

    def is_expression_index(diff: Any) -> bool:
        return (
            isinstance(diff, tuple)
            and diff[0] in ("add_index", "remove_index")
            and diff[1].name in EXPRESSION_INDEXES
        )

    return [d for d in diffs if not is_expression_index(d)]


def test_upgrade_creates_every_contract_table_and_column(fresh: Flask) -> None:
    assert _tables() == set()
    upgrade()
    inspector = sa.inspect(_engine())
    tables = set(inspector.get_table_names())
    assert set(CONTRACT) | {"alembic_version"} <= tables
    for table, columns in CONTRACT.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        assert columns <= present, f"{table} lacks {sorted(columns - present)}"


def test_upgrade_builds_the_contract_constraints(fresh: Flask) -> None:
    upgrade()
    inspector = sa.inspect(_engine())

    def unique_sets(table: str) -> set[tuple[str, ...]]:
        found = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
        found |= {tuple(i["column_names"]) for i in inspector.get_indexes(table) if i.get("unique")}
        return found

    assert ("user_id", "name") in unique_sets("campaigns")
    assert ("campaign_id", "category", "name") in unique_sets("schticks")
    assert ("campaign_id", "name") in unique_sets("weapons")
    assert ("token_hash",) in unique_sets("api_tokens")
    assert ("key",) in unique_sets("image_blobs")
    schtick_fks = inspector.get_foreign_keys("schticks")
    assert any(fk["referred_table"] == "schticks" for fk in schtick_fks)  # prerequisite chain
    pool_defaults = {c["name"]: c for c in inspector.get_columns("campaigns")}
    assert pool_defaults["is_pool"]["nullable"] is False


def test_emails_are_unique_case_insensitively(fresh: Flask) -> None:
    """The expression index autogenerate cannot compare on SQLite, checked by its effect."""
    upgrade()
    insert = sa.text(
        "INSERT INTO users (id, email, name, admin, gamemaster, active, created_at, updated_at) "
        "VALUES (:id, :email, 'n', false, false, true, :now, :now)"
    )
    import uuid
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(tzinfo=None)
    with _engine().begin() as conn:
        conn.execute(insert, {"id": uuid.uuid4().hex, "email": "Ann@Example.com", "now": now})
    with pytest.raises(sa.exc.IntegrityError), _engine().begin() as conn:
        conn.execute(insert, {"id": uuid.uuid4().hex, "email": "ann@example.COM", "now": now})


def test_models_and_migrations_do_not_drift(fresh: Flask) -> None:
    upgrade()
    assert _drift() == []


def test_drift_check_would_catch_a_model_change(fresh: Flask) -> None:
    """The comparison above is not vacuous: a column the migrations lack shows up."""
    from portal.extensions import db

    upgrade()
    changed = sa.MetaData()
    for table in db.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["pool_settings"].append_column(sa.Column("not_in_any_migration", sa.Integer))
    diffs = _drift(changed)
    assert any(d[0] == "add_column" and d[3].name == "not_in_any_migration" for d in diffs)
    assert _drift() == []


def test_downgrade_to_base_and_up_again(fresh: Flask) -> None:
    upgrade()
    downgrade(revision="base")
    assert _tables() <= {"alembic_version"}
    upgrade()
    assert set(CONTRACT) <= _tables()
    assert _drift() == []


def test_each_revision_goes_up_and_down(fresh: Flask) -> None:
    revisions = _revisions()
    assert len(revisions) >= 2, revisions
    seen: list[set[str]] = [set()]  # tables after each step, base first
    for revision in revisions:
        upgrade(revision=revision)
        tables = _tables() - {"alembic_version"}
        assert tables >= seen[-1], f"{revision} dropped tables {seen[-1] - tables}"
        seen.append(tables)
        with _engine().connect() as conn:
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == revision
    for index in range(len(revisions) - 1, -1, -1):
        target = revisions[index - 1] if index else "base"
        downgrade(revision=target)
        assert _tables() - {"alembic_version"} == seen[index], f"down to {target}"
        if index:  # and back up one step, which must work again after a downgrade
            upgrade(revision=revisions[index])
            assert _tables() - {"alembic_version"} == seen[index + 1]
            downgrade(revision=target)
    assert _tables() <= {"alembic_version"}


def test_pool_revision_leaves_existing_campaigns_ordinary(fresh: Flask) -> None:
    """An existing deployment gets the pool columns with values that change nothing."""
    import uuid
    from datetime import UTC, datetime

    revisions = _revisions()
    upgrade(revision=revisions[0])
    now = datetime.now(UTC).replace(tzinfo=None)
    user_id, campaign_id = uuid.uuid4().hex, uuid.uuid4().hex
    with _engine().begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, email, name, created_at, updated_at) "
                "VALUES (:id, 'gm@example.com', 'GM', :now, :now)"
            ),
            {"id": user_id, "now": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO campaigns (id, user_id, name, created_at, updated_at) "
                "VALUES (:id, :user_id, 'Old campaign', :now, :now)"
            ),
            {"id": campaign_id, "user_id": user_id, "now": now},
        )
    upgrade()
    with _engine().connect() as conn:
        row = conn.execute(
            sa.text("SELECT name, is_pool, pool_status, pool_type FROM campaigns")
        ).one()
    assert row.name == "Old campaign"
    assert not row.is_pool and row.pool_status is None and row.pool_type is None

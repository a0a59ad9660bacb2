"""Brings a state database up to the current schema with Alembic, on SQLite and PostgreSQL alike.

Databases written by the SQLite-only bot/state.py of earlier versions counted their migrations in
PRAGMA user_version (1: updates and turns, 2: nudges); they are stamped with the matching Alembic
revision first, then upgraded like any other. The whole upgrade is one transaction (SQLite: BEGIN
IMMEDIATE; PostgreSQL: transactional DDL under an advisory lock), so two bots starting at once, or a
crash mid-way, never leave half a migration.

To add a migration: a new file in coach/state/migrations/versions/ with the next revision id, whose
down_revision is the current head, and the same change in coach/state/schema.py (a test compares them).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from coach.errors import StateError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LEGACY_REVISIONS = {1: "0001", 2: "0002"}  # PRAGMA user_version of bot/state.py -> Alembic revision
# Any fixed 64-bit number: PostgreSQL's advisory lock that lets one starting bot migrate at a time.
ADVISORY_LOCK = 0x636F_6163_6873_7461
MIGRATION_WAIT_S = 30  # how long a starting bot waits for another one's migration


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    config = alembic_config(connection)
    current = MigrationContext.configure(connection).get_current_revision()
    if current is None and connection.dialect.name == "sqlite":
        legacy = connection.exec_driver_sql("PRAGMA user_version").scalar() or 0
        if legacy:
            if legacy not in LEGACY_REVISIONS:
                raise StateError(
                    f"the state database has schema version {legacy}, which this version of the coach "
                    "does not know; was it written by a newer one?"
                )
            command.stamp(config, LEGACY_REVISIONS[legacy])
    try:
        command.upgrade(config, "head")
    except CommandError as exc:  # e.g. a revision from a newer version of the coach
        raise StateError(f"cannot migrate the state database: {exc}") from None


async def migrate(url: URL) -> None:
    """Upgrade the database at `url` to the current schema (a no-op when it is current)."""
    sqlite = url.get_backend_name() == "sqlite"
    connect_args: dict[str, object] = {"timeout": MIGRATION_WAIT_S} if sqlite else {}
    engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
    if sqlite:
        # pysqlite's own transaction handling begins only before INSERT/UPDATE/DELETE, so DDL would run
        # outside any transaction; SQLAlchemy's recipe for transactional DDL on SQLite takes it over.
        @event.listens_for(engine.sync_engine, "connect")
        def _no_driver_transactions(dbapi_connection, _record) -> None:  # noqa: ANN001
            dbapi_connection.isolation_level = None
            # WAL (kept by the file): readers never wait for the writer, nor the writer for readers.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin_immediate(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        await engine.dispose()

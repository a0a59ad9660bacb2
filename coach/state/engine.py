"""Which database holds the bot's state, as an async SQLAlchemy engine: SQLite (aiosqlite) in
COACH_DATA_DIR by default, PostgreSQL (psycopg 3, async) when COACH_STATE_URL names one."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from coach.errors import StateError

# How long a statement waits for a lock another connection or process holds (a backup, a stray sqlite3
# shell). Short, so a locked database costs a chat a second, and callers carry on without the state.
BUSY_TIMEOUT_MS = 1000
CONNECT_TIMEOUT_S = 5
# PostgreSQL: a statement that has waited this long for a lock or run this long is cancelled (it becomes
# a StateError), so a stuck database never holds a handler for long.
STATEMENT_TIMEOUT_MS = 5000
POOL_SIZE = 5  # the bot's state calls are short; a few connections serve 32 concurrent updates

ASYNC_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def state_url(url: str | None, sqlite_path: Path) -> URL:
    """The async driver's URL for COACH_STATE_URL (a plain postgresql://user:password@host:port/db, as
    deployment files write it), or the SQLite file when it is unset. Never echoes the URL back: it may
    carry a password."""
    if not url:
        return URL.create("sqlite+aiosqlite", database=str(sqlite_path))  # its folder: made by the opener
    try:
        parsed = make_url(url.strip())
    except ArgumentError:
        raise StateError(
            "COACH_STATE_URL is not a database URL; write it as postgresql://user:password@host:5432/db"
        ) from None
    driver = ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise StateError(
            f"COACH_STATE_URL names a {parsed.get_backend_name()!r} database; the bot's state needs "
            "PostgreSQL (postgresql://user:password@host:5432/db), or unset it for SQLite"
        )
    return parsed.set(drivername=driver)


def masked(url: URL) -> str:
    """The URL for logs and messages, password hidden."""
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=True)


def create_engine(url: URL) -> AsyncEngine:
    """An engine for `url` with the settings each engine needs (bounded waits, WAL on SQLite)."""
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            # journal_mode=WAL is set once, by the migration, and stays with the file; setting it here
            # would need a lock, so a connection opened while another process writes would fail.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.close()

        return engine
    connect_args: dict[str, object] = {}
    if url.drivername == "postgresql+psycopg":
        connect_args = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}",
        }
    return create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=POOL_SIZE,
        pool_timeout=CONNECT_TIMEOUT_S,
        pool_pre_ping=True,  # a server restart drops pooled connections: find out before using one
    )

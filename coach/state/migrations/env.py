"""Alembic's environment for the state database: migrations run on the connection coach/state/migrate.py
hands over (config.attributes["connection"]), never on one of their own, so the caller owns the engine,
the transaction and the lock that keeps two starting bots from migrating at once."""

from __future__ import annotations

from alembic import context

from coach.state.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
)
with context.begin_transaction():
    context.run_migrations()

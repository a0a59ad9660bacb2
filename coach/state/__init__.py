"""The bot's state behind small interfaces (coach/state/interfaces.py) with one SQLAlchemy Core
implementation (coach/state/sql.py): SQLite in COACH_DATA_DIR by default, PostgreSQL when
COACH_STATE_URL names one. Storage failures are StateError (coach/errors.py)."""

from __future__ import annotations

from pathlib import Path

from coach.state.interfaces import (
    UPDATE_WINDOW,
    Claim,
    Conversations,
    Deliveries,
    Delivery,
    State,
    Stats,
    Subscription,
    Subscriptions,
    UpdateLog,
)
from coach.state.sql import SqlState


async def open_state(state_url: str | None, sqlite_path: Path) -> State:
    """Open (and migrate) the state database: `state_url` (postgresql://...) or the SQLite file."""
    return await SqlState.open(state_url, sqlite_path)


__all__ = [
    "UPDATE_WINDOW",
    "Claim",
    "Conversations",
    "Deliveries",
    "Delivery",
    "SqlState",
    "State",
    "Stats",
    "Subscription",
    "Subscriptions",
    "UpdateLog",
    "open_state",
]

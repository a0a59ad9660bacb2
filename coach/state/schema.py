"""The state database's tables as SQLAlchemy Core metadata, the same on SQLite and PostgreSQL.

This is what the queries use; the migrations (coach/state/migrations/) create it, and a test checks that
migrating an empty database gives exactly these tables. Timestamps are seconds since the epoch (REAL /
double precision), as the SQLite database of earlier versions stored them; dates are SQL dates (ISO text
on SQLite, as before).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    true,
)

metadata = MetaData()

# SQLite makes only an INTEGER PRIMARY KEY an auto-numbered rowid; PostgreSQL gets a 64-bit identity.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

processed_updates = Table(
    "processed_updates",
    metadata,
    Column("update_id", BigInteger, primary_key=True, autoincrement=False),
    Column("handled_at", Float, nullable=False),
)

chat_turns = Table(
    "chat_turns",
    metadata,
    Column("id", ROW_ID, primary_key=True, autoincrement=True),
    Column("chat_id", BigInteger, nullable=False),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("chat_turns_chat", "chat_id", "id"),
    sqlite_autoincrement=True,
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("chat_id", BigInteger, primary_key=True, autoincrement=False),
    Column("local_time", Text, nullable=False),
    Column("tz", Text, nullable=False),
    Column("frequency", Text, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("active", Boolean, nullable=False, server_default=true()),
    Column("reason", Text),
    Column("updated_at", Float, nullable=False),
    # The next nudge owed, recomputed with zoneinfo whenever the subscription changes or a nudge is
    # claimed, so "what is due" is one indexed range query in any engine.
    Column("next_due_at", Float),
    Column("next_due_date", Date),
    Index(
        "subscriptions_due",
        "next_due_at",
        sqlite_where=Column("active"),
        postgresql_where=Column("active"),
    ),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("chat_id", BigInteger, primary_key=True, autoincrement=False),
    Column("local_date", Date, primary_key=True),
    Column("day", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("claimed_at", Float, nullable=False),
    Column("sent_at", Float),
    Column("late_s", Float),
    Column("done_at", Float),
    Column("snooze_until", Float),
    Column("snooze_sent_at", Float),
    Index(
        "deliveries_snoozed",
        "snooze_until",
        sqlite_where=Column("snooze_sent_at").is_(None),
        postgresql_where=Column("snooze_sent_at").is_(None),
    ),
    Index(
        "deliveries_claimed",
        "claimed_at",
        sqlite_where=Column("status") == "claimed",
        postgresql_where=Column("status") == "claimed",
    ),
)

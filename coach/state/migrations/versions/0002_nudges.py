"""Daily nudges: subscriptions and the delivery log (PRAGMA user_version 2 of bot/state.py). The delivery
log's primary key is what lets each (subscriber, local date) through once.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("local_time", sa.Text, nullable=False),
        sa.Column("tz", sa.Text, nullable=False),
        sa.Column("frequency", sa.Text, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("reason", sa.Text),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("chat_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("local_date", sa.Date, primary_key=True),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("claimed_at", sa.Float, nullable=False),
        sa.Column("sent_at", sa.Float),
        sa.Column("late_s", sa.Float),
        sa.Column("done_at", sa.Float),
        sa.Column("snooze_until", sa.Float),
        sa.Column("snooze_sent_at", sa.Float),
    )
    op.create_index(
        "deliveries_snoozed",
        "deliveries",
        ["snooze_until"],
        sqlite_where=sa.text("snooze_sent_at IS NULL"),
        postgresql_where=sa.text("snooze_sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("deliveries")
    op.drop_table("subscriptions")

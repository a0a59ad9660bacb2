"""One periodic tick instead of a job per subscriber: each subscription keeps its next due nudge (UTC
instant and local date), so "what is due" is one indexed query; claims are found by status for settling.
Existing subscriptions get their next nudge computed when the bot starts (it needs the clock and grace).

Revision ID: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("next_due_at", sa.Float))
    op.add_column("subscriptions", sa.Column("next_due_date", sa.Date))
    op.create_index(
        "subscriptions_due",
        "subscriptions",
        ["next_due_at"],
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    op.create_index(
        "deliveries_claimed",
        "deliveries",
        ["claimed_at"],
        sqlite_where=sa.text("status = 'claimed'"),
        postgresql_where=sa.text("status = 'claimed'"),
    )


def downgrade() -> None:
    op.drop_index("deliveries_claimed", "deliveries")
    op.drop_index("subscriptions_due", "subscriptions")
    op.drop_column("subscriptions", "next_due_date")
    op.drop_column("subscriptions", "next_due_at")

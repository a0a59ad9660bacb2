"""Handled update ids and each chat's recent turns (PRAGMA user_version 1 of the SQLite-only bot/state.py).

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "processed_updates",
        sa.Column("update_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("handled_at", sa.Float, nullable=False),
    )
    op.create_table(
        "chat_turns",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("chat_turns_chat", "chat_turns", ["chat_id", "id"])


def downgrade() -> None:
    op.drop_table("chat_turns")
    op.drop_table("processed_updates")

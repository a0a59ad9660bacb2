"""The bot's SQLite state (data_dir/bot.sqlite): which updates were handled, and each chat's recent turns."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from coach.answer import Turn

# Telegram numbers updates consecutively; ids this far below the newest one are never served again, so
# their rows can go and anything that old is treated as handled.
UPDATE_WINDOW = 10_000
# How long a statement waits for a lock held by another process (a backup, a stray sqlite3 shell). The
# connection is used on the event loop's thread, so this wait holds up every chat: keep it short, and
# let callers carry on without the state when it runs out (see bot/handlers.py).
BUSY_TIMEOUT_MS = 1000

# Schema changes are appended, never edited: PRAGMA user_version says how many have run. The nudge
# scheduler (#6) adds its subscriptions table as the next entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE processed_updates (update_id INTEGER PRIMARY KEY, handled_at REAL NOT NULL);
    CREATE TABLE chat_turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        chat_id INTEGER NOT NULL,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX chat_turns_chat ON chat_turns (chat_id, id);
    """,
]


class BotState:
    """One SQLite connection, used from the event loop's thread only. Every statement is a small indexed
    read or write, quick enough not to need a thread of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def open(self) -> BotState:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        self._db = db
        return self

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("BotState is not open")
        return self._db

    # --- updates --------------------------------------------------------------------------------------

    def claim_update(self, update_id: int) -> bool:
        """True the first time an update id is seen, False ever after (also after a restart). The id is
        claimed before the update is handled: a crash mid-handling loses that update rather than
        answering it twice."""
        newest = self.last_update_id()
        if newest is not None and update_id <= newest - UPDATE_WINDOW:
            return False
        inserted = self.db.execute(
            "INSERT OR IGNORE INTO processed_updates (update_id, handled_at) VALUES (?, ?)",
            (update_id, time.time()),
        ).rowcount
        if inserted and newest is not None and update_id > newest:
            self.db.execute(
                "DELETE FROM processed_updates WHERE update_id <= ?", (update_id - UPDATE_WINDOW,)
            )
        return bool(inserted)

    def last_update_id(self) -> int | None:
        return self.db.execute("SELECT MAX(update_id) FROM processed_updates").fetchone()[0]

    # --- conversation history -------------------------------------------------------------------------

    def history(self, chat_id: int, limit: int) -> list[Turn]:
        rows = self.db.execute(
            "SELECT question, answer FROM chat_turns WHERE chat_id = ? ORDER BY id DESC LIMIT ?",
            (chat_id, limit),
        ).fetchall()
        return [Turn(question=q, answer=a) for q, a in reversed(rows)]

    def add_turn(self, chat_id: int, turn: Turn, keep: int) -> None:
        self.db.execute(
            "INSERT INTO chat_turns (chat_id, question, answer, at) VALUES (?, ?, ?, ?)",
            (chat_id, turn.question, turn.answer, time.time()),
        )
        self.db.execute(
            "DELETE FROM chat_turns WHERE chat_id = ? AND id NOT IN "
            "(SELECT id FROM chat_turns WHERE chat_id = ? ORDER BY id DESC LIMIT ?)",
            (chat_id, chat_id, keep),
        )

    def forget(self, chat_id: int) -> int:
        """Delete a chat's history; returns how many turns were forgotten."""
        return self.db.execute("DELETE FROM chat_turns WHERE chat_id = ?", (chat_id,)).rowcount

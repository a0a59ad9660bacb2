"""The bot's SQLite state (data_dir/bot.sqlite): handled updates, each chat's recent turns, nudge
subscriptions and the nudge delivery log."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from coach.models import Turn

# Telegram numbers updates consecutively; ids this far below the newest one are never served again, so
# their rows can go and anything that old is treated as handled.
UPDATE_WINDOW = 10_000
# How long a statement waits for a lock held by another process (a backup, a stray sqlite3 shell). The
# connection is used on the event loop's thread, so this wait holds up every chat: keep it short, and
# let callers carry on without the state when it runs out (see bot/handlers.py).
BUSY_TIMEOUT_MS = 1000

# Schema changes are appended, never edited: PRAGMA user_version says how many have run.
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
    # 2: daily nudges (#6). One row per subscriber; the delivery log's primary key is what makes each
    # (subscriber, local date) delivered at most once.
    """
    CREATE TABLE subscriptions (
        chat_id INTEGER PRIMARY KEY,
        local_time TEXT NOT NULL,          -- HH:MM on the subscriber's wall clock
        tz TEXT NOT NULL,                  -- an IANA zone name
        frequency TEXT NOT NULL,           -- daily | twice-weekly
        start_date TEXT NOT NULL,          -- local date of programme day 1
        active INTEGER NOT NULL DEFAULT 1,
        reason TEXT,                       -- why inactive: unsubscribed | blocked | chat not found
        updated_at REAL NOT NULL
    );
    CREATE TABLE deliveries (
        chat_id INTEGER NOT NULL,
        local_date TEXT NOT NULL,
        day INTEGER NOT NULL,
        status TEXT NOT NULL,              -- claimed | sent | unknown | blocked | failed
        claimed_at REAL NOT NULL,
        sent_at REAL,
        late_s REAL,                       -- seconds after its scheduled time it went out
        done_at REAL,
        snooze_until REAL,
        snooze_sent_at REAL,
        PRIMARY KEY (chat_id, local_date)
    );
    CREATE INDEX deliveries_snoozed ON deliveries (snooze_until) WHERE snooze_sent_at IS NULL;
    """,
]


@dataclass(frozen=True)
class Subscription:
    chat_id: int
    local_time: str
    tz: str
    frequency: str
    start_date: date
    active: bool
    reason: str | None = None

    @property
    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.local_time.split(":")
        return int(hour), int(minute)


@dataclass(frozen=True)
class Delivery:
    chat_id: int
    local_date: date
    day: int
    status: str
    sent_at: float | None
    done_at: float | None
    snooze_until: float | None
    snooze_sent_at: float | None


@dataclass(frozen=True)
class Stats:
    sent: int
    done: int
    streak: int
    best_streak: int


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

    # --- nudge subscriptions ------------------------------------------------------------------------

    def subscribe(
        self, chat_id: int, local_time: str, tz: str, frequency: str, start_date: date
    ) -> Subscription:
        """Create or change a subscription. A runner who changes the time keeps their programme day; one
        who comes back after unsubscribing starts again at day 1."""
        self.db.execute(
            "INSERT INTO subscriptions (chat_id, local_time, tz, frequency, start_date, active, reason, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 1, NULL, ?) ON CONFLICT (chat_id) DO UPDATE SET local_time = excluded.local_time,"
            " tz = excluded.tz, frequency = excluded.frequency, reason = NULL, updated_at = excluded.updated_at,"
            " start_date = CASE WHEN active THEN start_date ELSE excluded.start_date END, active = 1",
            (chat_id, local_time, tz, frequency, start_date.isoformat(), time.time()),
        )
        subscription = self.subscription(chat_id)
        assert subscription is not None
        return subscription

    def deactivate(self, chat_id: int, reason: str) -> bool:
        """Stop a subscription (kept, with the reason, for /stats and the log); False if none was active."""
        return bool(
            self.db.execute(
                "UPDATE subscriptions SET active = 0, reason = ?, updated_at = ? WHERE chat_id = ? AND active",
                (reason, time.time(), chat_id),
            ).rowcount
        )

    def subscription(self, chat_id: int) -> Subscription | None:
        row = self.db.execute(
            "SELECT chat_id, local_time, tz, frequency, start_date, active, reason FROM subscriptions"
            " WHERE chat_id = ?",
            (chat_id,),
        ).fetchone()
        return _subscription(row) if row else None

    def active_subscriptions(self) -> list[Subscription]:
        rows = self.db.execute(
            "SELECT chat_id, local_time, tz, frequency, start_date, active, reason FROM subscriptions"
            " WHERE active ORDER BY chat_id"
        ).fetchall()
        return [_subscription(row) for row in rows]

    # --- the delivery log ---------------------------------------------------------------------------

    def claim_delivery(self, chat_id: int, local_date: date, day: int, now: float) -> bool:
        """True for the one caller that may send this (subscriber, local date)'s nudge; False ever after."""
        return bool(
            self.db.execute(
                "INSERT OR IGNORE INTO deliveries (chat_id, local_date, day, status, claimed_at)"
                " VALUES (?, ?, ?, 'claimed', ?)",
                (chat_id, local_date.isoformat(), day, now),
            ).rowcount
        )

    def finish_delivery(
        self, chat_id: int, local_date: date, status: str, *, now: float, late_s: float | None = None
    ) -> None:
        sent_at = now if status == "sent" else None
        self.db.execute(
            "UPDATE deliveries SET status = ?, sent_at = ?, late_s = ? WHERE chat_id = ? AND local_date = ?",
            (status, sent_at, late_s, chat_id, local_date.isoformat()),
        )

    def release_delivery(self, chat_id: int, local_date: date) -> None:
        """Forget a claim whose message certainly did not reach Telegram, so it may be tried again."""
        self.db.execute(
            "DELETE FROM deliveries WHERE chat_id = ? AND local_date = ? AND status = 'claimed'",
            (chat_id, local_date.isoformat()),
        )

    def delivery(self, chat_id: int, local_date: date) -> Delivery | None:
        row = self.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE chat_id = ? AND local_date = ?",
            (chat_id, local_date.isoformat()),
        ).fetchone()
        return _delivery(row) if row else None

    def deliveries(self, chat_id: int) -> list[Delivery]:
        rows = self.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE chat_id = ? ORDER BY local_date", (chat_id,)
        ).fetchall()
        return [_delivery(row) for row in rows]

    def stale_claims(self) -> list[Delivery]:
        """Claims never marked sent: the process stopped between claiming and hearing back from Telegram."""
        rows = self.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE status = 'claimed' ORDER BY chat_id"
        ).fetchall()
        return [_delivery(row) for row in rows]

    def mark_done(self, chat_id: int, local_date: date, now: float) -> bool:
        """Record "Done" for a sent nudge; False if there is no such nudge or it was already done."""
        return bool(
            self.db.execute(
                "UPDATE deliveries SET done_at = ? WHERE chat_id = ? AND local_date = ? AND done_at IS NULL"
                " AND status = 'sent'",
                (now, chat_id, local_date.isoformat()),
            ).rowcount
        )

    def snooze(self, chat_id: int, local_date: date, until: float) -> bool:
        """Ask for the nudge again at `until`; False if it is done, unknown, or was snoozed already."""
        return bool(
            self.db.execute(
                "UPDATE deliveries SET snooze_until = ? WHERE chat_id = ? AND local_date = ? AND status = 'sent'"
                " AND done_at IS NULL AND snooze_until IS NULL",
                (until, chat_id, local_date.isoformat()),
            ).rowcount
        )

    def claim_snooze(self, chat_id: int, local_date: date, now: float) -> bool:
        """True for the one caller that may send this snoozed reminder (at most once, like the nudge)."""
        return bool(
            self.db.execute(
                "UPDATE deliveries SET snooze_sent_at = ? WHERE chat_id = ? AND local_date = ?"
                " AND snooze_until IS NOT NULL AND snooze_until <= ? AND snooze_sent_at IS NULL",
                (now, chat_id, local_date.isoformat(), now),
            ).rowcount
        )

    def pending_snoozes(self) -> list[Delivery]:
        rows = self.db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE snooze_until IS NOT NULL"
            " AND snooze_sent_at IS NULL AND done_at IS NULL ORDER BY snooze_until"
        ).fetchall()
        return [_delivery(row) for row in rows]

    def stats(self, chat_id: int, today: date) -> Stats:
        """Nudges sent and done; the streak counts consecutive sent nudges marked Done, today's open one
        not breaking it."""
        sent = [d for d in self.deliveries(chat_id) if d.status == "sent"]
        counted = sent[:-1] if sent and sent[-1].done_at is None and sent[-1].local_date == today else sent
        streak = best = run = 0
        for d in counted:
            run = run + 1 if d.done_at is not None else 0
            best = max(best, run)
        streak = run
        return Stats(sent=len(sent), done=sum(1 for d in sent if d.done_at), streak=streak, best_streak=best)


_DELIVERY_COLUMNS = "chat_id, local_date, day, status, sent_at, done_at, snooze_until, snooze_sent_at"


def _subscription(row: tuple) -> Subscription:
    chat_id, local_time, tz, frequency, start, active, reason = row
    return Subscription(chat_id, local_time, tz, frequency, date.fromisoformat(start), bool(active), reason)


def _delivery(row: tuple) -> Delivery:
    chat_id, local_date, day, status, sent_at, done_at, snooze_until, snooze_sent_at = row
    return Delivery(
        chat_id, date.fromisoformat(local_date), day, status, sent_at, done_at, snooze_until, snooze_sent_at
    )

"""The bot's state as four small interfaces (update log, conversations, subscriptions, deliveries) and the
plain types they return; coach/state/sql.py implements all four on SQLAlchemy Core."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from coach.models import Turn

# Telegram numbers updates consecutively; ids this far below the newest one are never served again, so
# their rows can go and anything that old is treated as handled.
UPDATE_WINDOW = 10_000


@dataclass(frozen=True)
class Subscription:
    chat_id: int
    local_time: str  # HH:MM on the subscriber's wall clock
    tz: str  # an IANA zone name
    frequency: str  # daily | twice-weekly
    start_date: date  # local date of programme day 1
    active: bool
    reason: str | None = None  # why inactive: unsubscribed | blocked | chat not found
    next_due_at: datetime | None = None  # UTC instant of the next nudge owed (past = due now)
    next_due_date: date | None = None  # its local date

    @property
    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.local_time.split(":")
        return int(hour), int(minute)


@dataclass(frozen=True)
class Delivery:
    chat_id: int
    local_date: date
    day: int
    status: str  # claimed | sent | unknown | blocked | chat not found | failed
    sent_at: float | None
    done_at: float | None
    snooze_until: float | None
    snooze_sent_at: float | None


@dataclass(frozen=True)
class Claim:
    """A nudge this process won the right to send: the (chat, local date) row is in the delivery log."""

    subscription: Subscription
    local_date: date
    day: int  # programme day
    scheduled_at: datetime  # the UTC instant it was due


@dataclass(frozen=True)
class Stats:
    sent: int
    done: int
    streak: int
    best_streak: int


def utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class UpdateLog(Protocol):
    """Telegram update ids already taken, so a re-delivered update is handled once."""

    async def claim_update(self, update_id: int) -> bool:
        """True the first time an update id is seen, False ever after (also after a restart)."""
        ...

    async def last_update_id(self) -> int | None: ...


class Conversations(Protocol):
    """Each chat's recent turns, for follow-up questions."""

    async def history(self, chat_id: int, limit: int) -> list[Turn]: ...

    async def add_turn(self, chat_id: int, turn: Turn, keep: int) -> None: ...

    async def forget(self, chat_id: int) -> int:
        """Delete a chat's history; returns how many turns were forgotten."""
        ...


class Subscriptions(Protocol):
    """Who gets a daily nudge, when (a wall-clock time in a zone) and the next one owed (in UTC)."""

    async def subscribe(
        self,
        chat_id: int,
        local_time: str,
        tz: str,
        frequency: str,
        start_date: date,
        *,
        now: datetime,
        grace: timedelta,
    ) -> Subscription:
        """Create or change a subscription and compute its next due nudge. A runner who changes the time
        keeps their programme day; one who comes back after unsubscribing starts again at day 1."""
        ...

    async def deactivate(self, chat_id: int, reason: str) -> bool: ...

    async def subscription(self, chat_id: int) -> Subscription | None: ...

    async def active_subscriptions(self) -> list[Subscription]: ...

    async def schedule_unscheduled(self, now: datetime, grace: timedelta) -> int:
        """Compute the next due nudge of active subscriptions that have none (after an upgrade)."""
        ...


class Deliveries(Protocol):
    """The delivery log: one row per (chat, local date), which lets one sender through."""

    async def claim_due(self, now: datetime, grace: timedelta, limit: int) -> list[Claim]:
        """Claim up to `limit` nudges due at `now` (one query over every subscription) and move each
        subscription on to its next one; nudges more than `grace` late are skipped. Each (chat, local
        date) is claimed by exactly one caller, across processes sharing the database."""
        ...

    async def claim_delivery(self, chat_id: int, local_date: date, day: int, now: float) -> bool: ...

    async def finish_delivery(
        self, chat_id: int, local_date: date, status: str, *, now: float, late_s: float | None = None
    ) -> None: ...

    async def release_delivery(self, chat_id: int, local_date: date, retry_at: datetime) -> None:
        """Forget a claim whose message certainly did not reach Telegram; try it again at `retry_at`."""
        ...

    async def delivery(self, chat_id: int, local_date: date) -> Delivery | None: ...

    async def deliveries(self, chat_id: int) -> list[Delivery]: ...

    async def settle_stale_claims(self, older_than: float, now: float) -> list[Delivery]:
        """Claims never confirmed sent (their process stopped mid-send) become "unknown", not resent."""
        ...

    async def mark_done(self, chat_id: int, local_date: date, now: float) -> bool: ...

    async def snooze(self, chat_id: int, local_date: date, until: float) -> bool: ...

    async def claim_due_snoozes(self, now: float, limit: int) -> list[Delivery]:
        """Claim snoozed nudges whose hour is up; each is claimed by exactly one caller."""
        ...

    async def stats(self, chat_id: int, today: date) -> Stats: ...


class State(UpdateLog, Conversations, Subscriptions, Deliveries, Protocol):
    """All of the bot's state, as one object the bot opens at start and closes at shutdown."""

    async def close(self) -> None: ...

    @property
    def where(self) -> str:
        """The database, for logs: a path or a URL with the password masked."""
        ...

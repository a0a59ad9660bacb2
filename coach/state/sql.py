"""The bot's state on SQLAlchemy Core (async): one implementation of the four store interfaces for SQLite
and PostgreSQL. Every statement is portable but the insert-if-absent, which each dialect spells itself;
every storage failure leaves as a StateError, so no caller knows the engine."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Row, bindparam, delete, func, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from coach.errors import StateError
from coach.models import Turn
from coach.state.engine import create_engine, masked, state_url
from coach.state.interfaces import UPDATE_WINDOW, Claim, Delivery, Stats, Subscription, utc
from coach.state.migrate import migrate
from coach.state.schedule import local_today, next_nudge, programme_day, wall_clock_utc
from coach.state.schema import chat_turns, deliveries, processed_updates, subscriptions

log = logging.getLogger(__name__)

WRITE_QUEUE_S = 5.0  # SQLite: the most a write waits behind this process's earlier writes

P = ParamSpec("P")
R = TypeVar("R")

_SUBSCRIPTION_COLUMNS = (
    subscriptions.c.chat_id,
    subscriptions.c.local_time,
    subscriptions.c.tz,
    subscriptions.c.frequency,
    subscriptions.c.start_date,
    subscriptions.c.active,
    subscriptions.c.reason,
    subscriptions.c.next_due_at,
    subscriptions.c.next_due_date,
)
_DELIVERY_COLUMNS = (
    deliveries.c.chat_id,
    deliveries.c.local_date,
    deliveries.c.day,
    deliveries.c.status,
    deliveries.c.sent_at,
    deliveries.c.done_at,
    deliveries.c.snooze_until,
    deliveries.c.snooze_sent_at,
)


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong, from the driver's own message (which carries no password)."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def _guarded(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Storage failures of any engine become one StateError naming the database (password masked)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
            where = args[0].where if args and isinstance(args[0], SqlState) else "?"
            raise StateError(f"the bot's state database ({where}) failed: {_reason(exc)}") from exc

    return wrapper


def _subscription(row: Row[Any]) -> Subscription:
    return Subscription(
        chat_id=row.chat_id,
        local_time=row.local_time,
        tz=row.tz,
        frequency=row.frequency,
        start_date=row.start_date,
        active=bool(row.active),
        reason=row.reason,
        next_due_at=utc(row.next_due_at),
        next_due_date=row.next_due_date,
    )


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        chat_id=row.chat_id,
        local_date=row.local_date,
        day=row.day,
        status=row.status,
        sent_at=row.sent_at,
        done_at=row.done_at,
        snooze_until=row.snooze_until,
        snooze_sent_at=row.snooze_sent_at,
    )


class SqlState:
    """The update log, conversations, subscriptions and delivery log in one database. Open with
    `await SqlState.open(url, sqlite_path)`; every method is a short transaction of its own."""

    def __init__(self, engine: AsyncEngine, where: str) -> None:
        self.engine = engine
        self.where = where
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        # SQLite has one writer at a time. This process's writers queue here, in order, instead of
        # polling the file lock against each other (a transaction spans awaits, so a busy event loop
        # would otherwise run other writers out of their busy timeout); PostgreSQL locks rows itself.
        self._writer = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed at the end of the block, rolled back on an error."""
        if self._writer is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        try:
            async with asyncio.timeout(WRITE_QUEUE_S):
                await self._writer.acquire()
        except TimeoutError:
            raise StateError(
                f"the bot's state database ({self.where}) failed: more than {WRITE_QUEUE_S:g} s "
                "waiting for earlier writes"
            ) from None
        try:
            async with self.engine.begin() as conn:
                yield conn
        finally:
            self._writer.release()

    @classmethod
    async def open(cls, url: str | None, sqlite_path: Path) -> SqlState:
        """Connect to `url` (a plain postgresql:// URL) or, when it is None, the SQLite file at
        `sqlite_path`, and migrate it to the current schema."""
        address = state_url(url, sqlite_path)
        where = masked(address)
        try:
            if address.get_backend_name() == "sqlite" and address.database:
                Path(address.database).parent.mkdir(parents=True, exist_ok=True)
            await migrate(address)
        except (SQLAlchemyError, OSError) as exc:
            raise StateError(f"cannot open the bot's state database ({where}): {_reason(exc)}") from exc
        return cls(create_engine(address), where)

    async def close(self) -> None:
        await self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # --- updates --------------------------------------------------------------------------------------

    @_guarded
    async def claim_update(self, update_id: int) -> bool:
        """True the first time an update id is seen, False ever after (also after a restart, and across
        processes sharing the database). The id is claimed before the update is handled: a crash
        mid-handling loses that update rather than answering it twice."""
        async with self._write() as conn:
            newest = await conn.scalar(select(func.max(processed_updates.c.update_id)))
            if newest is not None and update_id <= newest - UPDATE_WINDOW:
                return False
            # RETURNING says whether the row went in: psycopg reports no rowcount for an INSERT here.
            inserted = await conn.scalar(
                self._insert(processed_updates)
                .values(update_id=update_id, handled_at=time.time())
                .on_conflict_do_nothing()
                .returning(processed_updates.c.update_id)
            )
            if inserted is not None and newest is not None and update_id > newest:
                await conn.execute(
                    delete(processed_updates).where(
                        processed_updates.c.update_id <= update_id - UPDATE_WINDOW
                    )
                )
            return inserted is not None

    @_guarded
    async def last_update_id(self) -> int | None:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.max(processed_updates.c.update_id)))

    # --- conversation history -------------------------------------------------------------------------

    @_guarded
    async def history(self, chat_id: int, limit: int) -> list[Turn]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(chat_turns.c.question, chat_turns.c.answer)
                .where(chat_turns.c.chat_id == chat_id)
                .order_by(chat_turns.c.id.desc())
                .limit(limit)
            )
            return [Turn(question=q, answer=a) for q, a in reversed(rows.all())]

    @_guarded
    async def add_turn(self, chat_id: int, turn: Turn, keep: int) -> None:
        async with self._write() as conn:
            await conn.execute(
                chat_turns.insert().values(
                    chat_id=chat_id, question=turn.question, answer=turn.answer, at=time.time()
                )
            )
            newest = (
                select(chat_turns.c.id)
                .where(chat_turns.c.chat_id == chat_id)
                .order_by(chat_turns.c.id.desc())
                .limit(keep)
            )
            await conn.execute(
                delete(chat_turns).where(chat_turns.c.chat_id == chat_id, chat_turns.c.id.not_in(newest))
            )

    @_guarded
    async def forget(self, chat_id: int) -> int:
        async with self._write() as conn:
            return (await conn.execute(delete(chat_turns).where(chat_turns.c.chat_id == chat_id))).rowcount

    # --- nudge subscriptions ------------------------------------------------------------------------

    @_guarded
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
        async with self._write() as conn:
            current = (
                await conn.execute(
                    select(subscriptions.c.active, subscriptions.c.start_date)
                    .where(subscriptions.c.chat_id == chat_id)
                    .with_for_update()
                )
            ).first()
            # A running programme keeps its day count; one that has not begun yet (subscribed after
            # today's time) begins today when the new time is still ahead today.
            start = (
                min(current.start_date, start_date) if current is not None and current.active else start_date
            )
            sub = Subscription(chat_id, local_time, tz, frequency, start, True)
            due = await self._next_due(conn, sub, now, grace)
            values = {
                "local_time": local_time,
                "tz": tz,
                "frequency": frequency,
                "start_date": start,
                "active": True,
                "reason": None,
                "updated_at": time.time(),
                "next_due_at": due[1].timestamp() if due else None,
                "next_due_date": due[0] if due else None,
            }
            await conn.execute(
                self._insert(subscriptions)
                .values(chat_id=chat_id, **values)
                .on_conflict_do_update(index_elements=[subscriptions.c.chat_id], set_=values)
            )
            row = (
                await conn.execute(select(*_SUBSCRIPTION_COLUMNS).where(subscriptions.c.chat_id == chat_id))
            ).one()
            return _subscription(row)

    async def _next_due(
        self, conn: AsyncConnection, sub: Subscription, now: datetime, grace: timedelta
    ) -> tuple[date, datetime] | None:
        """The subscription's next nudge owed, passing over the dates the delivery log already has."""
        since = local_today(sub, now) - timedelta(days=1)
        delivered = set(
            (
                await conn.scalars(
                    select(deliveries.c.local_date).where(
                        deliveries.c.chat_id == sub.chat_id, deliveries.c.local_date >= since
                    )
                )
            ).all()
        )
        return next_nudge(sub, now, grace, delivered=delivered.__contains__)

    @_guarded
    async def deactivate(self, chat_id: int, reason: str) -> bool:
        """Stop a subscription (kept, with the reason, for /stats and the log); False if none was active."""
        async with self._write() as conn:
            result = await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.chat_id == chat_id, subscriptions.c.active)
                .values(
                    active=False, reason=reason, updated_at=time.time(), next_due_at=None, next_due_date=None
                )
            )
            return bool(result.rowcount)

    @_guarded
    async def subscription(self, chat_id: int) -> Subscription | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(select(*_SUBSCRIPTION_COLUMNS).where(subscriptions.c.chat_id == chat_id))
            ).first()
            return _subscription(row) if row is not None else None

    @_guarded
    async def active_subscriptions(self) -> list[Subscription]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*_SUBSCRIPTION_COLUMNS).where(subscriptions.c.active).order_by(subscriptions.c.chat_id)
            )
            return [_subscription(row) for row in rows]

    @_guarded
    async def schedule_unscheduled(self, now: datetime, grace: timedelta) -> int:
        async with self._write() as conn:
            rows = (
                await conn.execute(
                    select(*_SUBSCRIPTION_COLUMNS)
                    .where(subscriptions.c.active, subscriptions.c.next_due_at.is_(None))
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                due = await self._next_due(conn, _subscription(row), now, grace)
                await conn.execute(
                    update(subscriptions)
                    .where(subscriptions.c.chat_id == row.chat_id)
                    .values(
                        next_due_at=due[1].timestamp() if due else None,
                        next_due_date=due[0] if due else None,
                    )
                )
            return len(rows)

    # --- the delivery log ---------------------------------------------------------------------------

    @_guarded
    async def claim_due(self, now: datetime, grace: timedelta, limit: int) -> list[Claim]:
        """The tick's one query: due subscriptions, oldest first, rows locked so that another process's
        tick skips them (PostgreSQL; SQLite has one writer at a time). For each, the (chat, local date)
        row is inserted into the delivery log only if absent, which is what makes each nudge go out
        once, and the subscription moves on to its next nudge in the same transaction."""
        while limit > 0:
            claims, examined = await self._claim_batch(now, grace, limit)
            # A batch of only skipped (too late) or taken nudges: look at the next, not wait a tick.
            if claims or examined < limit:
                return claims
        return []

    async def _claim_batch(self, now: datetime, grace: timedelta, limit: int) -> tuple[list[Claim], int]:
        async with self._write() as conn:
            rows = (
                await conn.execute(
                    select(*_SUBSCRIPTION_COLUMNS)
                    .where(subscriptions.c.active, subscriptions.c.next_due_at <= now.timestamp())
                    .order_by(subscriptions.c.next_due_at)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return [], 0
            candidates: dict[tuple[int, date], Claim] = {}
            moves = []
            for row in rows:
                sub = _subscription(row)
                local_date = row.next_due_date
                at = wall_clock_utc(local_date, sub.local_time, sub.tz)
                if now > at + grace:
                    log.info(
                        "nudge for chat %s on %s is %s late, past the grace window: skipped",
                        sub.chat_id,
                        local_date,
                        now - at,
                    )
                else:
                    candidates[(sub.chat_id, local_date)] = Claim(
                        sub, local_date, programme_day(sub, local_date), at
                    )
                after = next_nudge(sub, now, grace, after=local_date)
                moves.append(
                    {
                        "b_chat": sub.chat_id,
                        "b_at": after[1].timestamp() if after else None,
                        "b_date": after[0] if after else None,
                    }
                )
            won: set[tuple[int, date]] = set()
            if candidates:
                claimed_at = now.timestamp()
                inserted = await conn.execute(
                    self._insert(deliveries)
                    .values(
                        [
                            {
                                "chat_id": c.subscription.chat_id,
                                "local_date": c.local_date,
                                "day": c.day,
                                "status": "claimed",
                                "claimed_at": claimed_at,
                            }
                            for c in candidates.values()
                        ]
                    )
                    .on_conflict_do_nothing()
                    .returning(deliveries.c.chat_id, deliveries.c.local_date)
                )
                won = {(chat_id, local_date) for chat_id, local_date in inserted}
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.chat_id == bindparam("b_chat"))
                .values(next_due_at=bindparam("b_at"), next_due_date=bindparam("b_date")),
                moves,
            )
            return [claim for key, claim in candidates.items() if key in won], len(rows)

    @_guarded
    async def claim_delivery(self, chat_id: int, local_date: date, day: int, now: float) -> bool:
        """True for the one caller that may send this (subscriber, local date)'s nudge; False ever after."""
        async with self._write() as conn:
            inserted = await conn.scalar(
                self._insert(deliveries)
                .values(chat_id=chat_id, local_date=local_date, day=day, status="claimed", claimed_at=now)
                .on_conflict_do_nothing()
                .returning(deliveries.c.chat_id)
            )
            return inserted is not None

    @_guarded
    async def finish_delivery(
        self, chat_id: int, local_date: date, status: str, *, now: float, late_s: float | None = None
    ) -> None:
        async with self._write() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.chat_id == chat_id, deliveries.c.local_date == local_date)
                .values(status=status, sent_at=now if status == "sent" else None, late_s=late_s)
            )

    @_guarded
    async def release_delivery(self, chat_id: int, local_date: date, retry_at: datetime) -> None:
        async with self._write() as conn:
            await conn.execute(
                delete(deliveries).where(
                    deliveries.c.chat_id == chat_id,
                    deliveries.c.local_date == local_date,
                    deliveries.c.status == "claimed",
                )
            )
            await conn.execute(
                update(subscriptions)
                .where(subscriptions.c.chat_id == chat_id, subscriptions.c.active)
                .values(next_due_at=retry_at.timestamp(), next_due_date=local_date)
            )

    @_guarded
    async def delivery(self, chat_id: int, local_date: date) -> Delivery | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*_DELIVERY_COLUMNS).where(
                        deliveries.c.chat_id == chat_id, deliveries.c.local_date == local_date
                    )
                )
            ).first()
            return _delivery(row) if row is not None else None

    @_guarded
    async def deliveries(self, chat_id: int) -> list[Delivery]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*_DELIVERY_COLUMNS)
                .where(deliveries.c.chat_id == chat_id)
                .order_by(deliveries.c.local_date)
            )
            return [_delivery(row) for row in rows]

    @_guarded
    async def settle_stale_claims(self, older_than: float, now: float) -> list[Delivery]:
        async with self._write() as conn:
            rows = await conn.execute(
                update(deliveries)
                .where(deliveries.c.status == "claimed", deliveries.c.claimed_at <= older_than)
                .values(status="unknown", sent_at=None)
                .returning(*_DELIVERY_COLUMNS)
            )
            return sorted((_delivery(row) for row in rows), key=lambda d: (d.chat_id, d.local_date))

    @_guarded
    async def mark_done(self, chat_id: int, local_date: date, now: float) -> bool:
        """Record "Done" for a sent nudge; False if there is no such nudge or it was already done."""
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.chat_id == chat_id,
                    deliveries.c.local_date == local_date,
                    deliveries.c.done_at.is_(None),
                    deliveries.c.status == "sent",
                )
                .values(done_at=now)
            )
            return bool(result.rowcount)

    @_guarded
    async def snooze(self, chat_id: int, local_date: date, until: float) -> bool:
        """Ask for the nudge again at `until`; False if it is done, unknown, or was snoozed already."""
        async with self._write() as conn:
            result = await conn.execute(
                update(deliveries)
                .where(
                    deliveries.c.chat_id == chat_id,
                    deliveries.c.local_date == local_date,
                    deliveries.c.status == "sent",
                    deliveries.c.done_at.is_(None),
                    deliveries.c.snooze_until.is_(None),
                )
                .values(snooze_until=until)
            )
            return bool(result.rowcount)

    @_guarded
    async def claim_due_snoozes(self, now: float, limit: int) -> list[Delivery]:
        async with self._write() as conn:
            keys = (
                await conn.execute(
                    select(deliveries.c.chat_id, deliveries.c.local_date)
                    .where(
                        deliveries.c.snooze_until <= now,
                        deliveries.c.snooze_sent_at.is_(None),
                        deliveries.c.done_at.is_(None),
                    )
                    .order_by(deliveries.c.snooze_until)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not keys:
                return []
            rows = await conn.execute(
                update(deliveries)
                .where(
                    tuple_(deliveries.c.chat_id, deliveries.c.local_date).in_([tuple(k) for k in keys]),
                    deliveries.c.snooze_sent_at.is_(None),
                )
                .values(snooze_sent_at=now)
                .returning(*_DELIVERY_COLUMNS)
            )
            return sorted((_delivery(row) for row in rows), key=lambda d: (d.snooze_until or 0.0, d.chat_id))

    async def stats(self, chat_id: int, today: date) -> Stats:
        """Nudges sent and done; the streak counts consecutive sent nudges marked Done, today's open one
        not breaking it."""
        return streaks(await self.deliveries(chat_id), today)


def streaks(log_rows: Iterable[Delivery], today: date) -> Stats:
    sent = [d for d in log_rows if d.status == "sent"]
    counted = sent[:-1] if sent and sent[-1].done_at is None and sent[-1].local_date == today else sent
    best = run = 0
    for d in counted:
        run = run + 1 if d.done_at is not None else 0
        best = max(best, run)
    return Stats(sent=len(sent), done=sum(1 for d in sent if d.done_at), streak=run, best_streak=best)

"""Daily exercise nudges: one periodic JobQueue tick sends every nudge that is due, at most once per
(subscriber, local date), through PTB's rate limiter, also when several bot processes share the state.

Each subscription keeps its next due nudge as a UTC instant (coach/state/schedule.py: wall-clock time in
the runner's zone, through zoneinfo), so every TICK_S seconds one query finds what is due. Delivery is
claim, send, mark:

1. `claim_due` locks due subscriptions (FOR UPDATE SKIP LOCKED on PostgreSQL, so another process's tick
   takes other rows), inserts each (chat, local date) into the delivery log only if absent (the primary
   key lets exactly one sender through, across ticks, restarts and processes) and moves the
   subscription on to its next nudge, in one transaction.
2. The message is sent. PTB's AIORateLimiter paces every send under the overall limit and waits out a
   429 itself; what it gives up on is waited out here, a bounded number of times.
3. The row is marked sent (or blocked / failed / unknown).

A crash between 1 and 3 leaves a row "claimed": we cannot know whether Telegram got the message, so such
rows are never sent again; after STALE_CLAIM_S (far longer than any send takes) a tick marks them
"unknown". That day's nudge may be lost, never doubled (the same choice the update log makes). A send
that certainly did not reach Telegram (a connection error, a 5xx) releases its claim and is tried again
a minute later, while inside the grace window.
"""

from __future__ import annotations

import asyncio
import html
import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application, CallbackContext, JobQueue
from telegram.warnings import PTBDeprecationWarning

from bot.delivery import transient
from coach.errors import StateError
from coach.routines import Frequency, Library, routine_for
from coach.state import Claim, Delivery, State
from coach.state.schedule import (  # noqa: F401 - the schedule's names, for the bot's other modules
    due_date,
    first_day,
    local_today,
    next_fire,
    next_nudge,
    programme_day,
    wall_clock_utc,
)

log = logging.getLogger(__name__)

TICK_S = 20.0  # how often due nudges are looked for: a nudge goes out at most this late
TICK_JOB = "nudges"
RETRY_LATER_S = 60.0  # after a send that certainly failed (network, 5xx), try again this much later
TIMEOUT_BACKOFF_S = 1.0  # first pause between retries of a timed-out send; doubles each time
# A claim older than this was never confirmed sent: its process stopped mid-send (a send takes seconds,
# retries included), so it is settled as "unknown". Any live process's claims are far younger.
STALE_CLAIM_S = 600.0
SNOOZE = timedelta(hours=1)
DONE, SNOOZE_DATA = "done", "snz"
# Nudges claimed and in flight at once. Enough to keep the rate limiter busy (about two seconds of
# sends at 30/s), few enough that a crash mid-broadcast leaves few "unknown" claims. New claims are made
# when REFILL slots are free, so the database sees one claim query per REFILL messages.
MAX_IN_FLIGHT = 64
REFILL = 16


class Clock(Protocol):
    """What time it is (aware, UTC). Injected so tests can move time without waiting."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# --- parsing what a runner types -----------------------------------------------------------------


def parse_time(text: str) -> str | None:
    """ "7:30", "07:30" or "07.30" as "07:30"; None for anything that is not a time of day."""
    hour, sep, minute = text.strip().replace(".", ":").partition(":")
    if not sep or not (hour.isdigit() and minute.isdigit()) or len(minute) != 2 or len(hour) > 2:
        return None
    if int(hour) > 23 or int(minute) > 59:
        return None
    return f"{int(hour):02d}:{minute}"


def parse_zone(name: str) -> str | None:
    """An IANA zone name zoneinfo knows ("Europe/Berlin", "UTC"); None otherwise."""
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name.strip()


# --- what: the message ---------------------------------------------------------------------------


def render_routine(library: Library, day: int, frequency: Frequency, titles: dict[str, str]) -> str:
    """A routine as Telegram HTML: each exercise with how and dose where an article gives them, and the
    passage that names it."""
    routine = routine_for(library, day, frequency)
    lines = [f"<b>Day {routine.day}: today's {html.escape(library.routines.title)}</b>"]
    for number, ex in enumerate(routine.exercises, start=1):
        lines.append(f"\n<b>{number}. {html.escape(ex.name)}</b>")
        if ex.how:
            lines.append(f"How: {html.escape(ex.how)}")
        if ex.dose:
            lines.append(f"Dose: {html.escape(ex.dose)}")
        title = titles.get(ex.source_id, ex.source_id)
        lines.append(f"<i>“{html.escape(ex.quote)}”</i> – {html.escape(title)}")
    lines.append(f"\n{html.escape(routine.note)}")
    return "\n".join(lines)


def nudge_keyboard(local_date: date, *, snooze: bool = True) -> InlineKeyboardMarkup:
    buttons = [InlineKeyboardButton("Done", callback_data=f"{DONE}|{local_date.isoformat()}")]
    if snooze:
        buttons.append(
            InlineKeyboardButton("Snooze 1 h", callback_data=f"{SNOOZE_DATA}|{local_date.isoformat()}")
        )
    return InlineKeyboardMarkup([buttons])


def _retry_after_s(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int form is deprecated; both forms are fine here
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# --- sending ----------------------------------------------------------------------------------------


class NudgeKeyboards:
    """The messages that carry a day's Done button (the nudge, its reminder, /routine), per chat and
    local date, so that once one is used the others' buttons go. In memory and bounded: after a restart
    an older message keeps its buttons, and a press on it says "Already marked done"."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._messages: OrderedDict[tuple[int, date], list[int]] = OrderedDict()

    def add(self, chat_id: int, local_date: date, message_id: int) -> None:
        self._messages.setdefault((chat_id, local_date), []).append(message_id)
        self._messages.move_to_end((chat_id, local_date))
        while len(self._messages) > self.size:
            self._messages.popitem(last=False)

    def others(self, chat_id: int, local_date: date, message_id: int | None) -> list[int]:
        """The day's other messages with buttons, forgotten as they are returned."""
        ids = self._messages.pop((chat_id, local_date), [])
        return [i for i in ids if i != message_id]


@dataclass
class Outcome:
    status: str  # sent | blocked | chat not found | failed | unknown | retry | not due
    local_date: date | None = None
    chat_id: int | None = None


class Nudger:
    """Sends due nudges and snoozed reminders from one periodic tick (`start`), or when called
    (`run_due`, what tests drive with a clock they move). Runs on the event loop; awaits the state."""

    def __init__(
        self,
        *,
        bot: Bot,
        state: State,
        library: Library,
        titles: dict[str, str],
        grace: timedelta,
        retries: int,
        clock: Clock,
    ) -> None:
        self.bot, self.state = bot, state
        self.library, self.titles = library, titles
        self.grace, self.retries, self.clock = grace, retries, clock
        self.keyboards = NudgeKeyboards()
        self._running = asyncio.Lock()
        self.caught_up = asyncio.Event()  # set once the tick at start has sent what was owed
        self._application: Application | None = None

    # --- the tick -----------------------------------------------------------------------------------

    async def prepare(self) -> int:
        """At start: give subscriptions written before next-due times existed their next nudge."""
        return await self.state.schedule_unscheduled(self.clock.now(), self.grace)

    def start(self, job_queue: JobQueue) -> None:
        """One repeating job serves every subscriber, on multiples of TICK_S (so a 07:30 nudge leaves at
        07:30:00), plus one tick right away: the catch-up after downtime."""
        self._application = job_queue.application
        phase = self.clock.now().timestamp() % TICK_S
        job_queue.run_once(self._catch_up, when=0, name=TICK_JOB)
        job_queue.run_repeating(self._tick, interval=TICK_S, first=TICK_S - phase, name=TICK_JOB)

    async def _catch_up(self, context: CallbackContext) -> None:
        try:
            await self._tick(context)
        finally:
            self.caught_up.set()

    async def _tick(self, _context: CallbackContext) -> None:
        if self._running.locked():  # the last tick is still sending: it takes what is due now too
            return
        try:
            await self.run_due()
        except StateError as exc:  # the database is away: the next tick tries again
            log.warning("nudge tick skipped: %s", exc)

    async def run_due(self) -> list[Outcome]:
        """Send every nudge and reminder due now; returns what became of each."""
        async with self._running:
            now = self.clock.now()
            for stale in await self.state.settle_stale_claims(
                now.timestamp() - STALE_CLAIM_S, now.timestamp()
            ):
                log.warning(
                    "nudge for chat %s on %s was claimed but never confirmed sent (a stop mid-send); "
                    "not resending",
                    stale.chat_id,
                    stale.local_date,
                )
            outcomes = await self._drain()
            outcomes += await self._remind_due()
            return outcomes

    async def _drain(self) -> list[Outcome]:
        """Claim and send until nothing is due, at most MAX_IN_FLIGHT claimed and unsent at once."""
        pending: set[asyncio.Task[Outcome]] = set()
        outcomes: list[Outcome] = []
        try:
            while True:
                free = MAX_IN_FLIGHT - len(pending)
                if (free >= REFILL or not pending) and not self._stopping():
                    claims = await self.state.claim_due(self.clock.now(), self.grace, free)
                    pending.update(asyncio.create_task(self._deliver(c)) for c in claims)
                if not pending:
                    return outcomes
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                outcomes.extend(task.result() for task in done)
        finally:
            if pending:  # a StateError or cancellation: let the sends in flight finish and be recorded
                await asyncio.gather(*pending, return_exceptions=True)

    def _stopping(self) -> bool:
        """The application is shutting down: finish the sends in flight, claim no more (the next
        process's tick takes the rest, late but inside the grace window)."""
        return self._application is not None and not self._application.running

    async def _deliver(self, claim: Claim) -> Outcome:
        """Send one claimed nudge and record what happened."""
        sub, local_date = claim.subscription, claim.local_date
        text = render_routine(self.library, claim.day, sub.frequency, self.titles)  # type: ignore[arg-type]
        late_s = (self.clock.now() - claim.scheduled_at).total_seconds()
        status = await self._send(sub.chat_id, text, nudge_keyboard(local_date), local_date)
        try:
            if status == "retry":
                retry_at = self.clock.now() + timedelta(seconds=RETRY_LATER_S)
                await self.state.release_delivery(sub.chat_id, local_date, retry_at)
            else:
                await self.state.finish_delivery(
                    sub.chat_id, local_date, status, now=self.clock.now().timestamp(), late_s=late_s
                )
            if status in ("blocked", "chat not found"):
                await self.state.deactivate(sub.chat_id, status)
                log.info("chat %s: %s; subscription stopped", sub.chat_id, status)
        except StateError as exc:  # the claim stays: the nudge is never sent twice
            log.warning("chat %s: nudge %s, but not recorded: %s", sub.chat_id, status, exc)
        return Outcome(status, local_date, sub.chat_id)

    async def _remind_due(self) -> list[Outcome]:
        """The snoozed nudges whose hour is up: each claimed once, and not sent when far past (the bot
        was down) or the runner has unsubscribed since."""
        now = self.clock.now()
        claimed = await self.state.claim_due_snoozes(now.timestamp(), MAX_IN_FLIGHT)
        return list(await asyncio.gather(*(self._remind(d, now) for d in claimed)))

    async def _remind(self, delivery: Delivery, now: datetime) -> Outcome:
        sub = await self.state.subscription(delivery.chat_id)
        late = now.timestamp() - (delivery.snooze_until or 0.0)
        if sub is None or not sub.active or late > self.grace.total_seconds():
            return Outcome("not due", delivery.local_date, delivery.chat_id)
        text = "Reminder, as you asked:\n\n" + render_routine(
            self.library,
            delivery.day,
            sub.frequency,  # type: ignore[arg-type]
            self.titles,
        )
        markup = nudge_keyboard(delivery.local_date, snooze=False)
        status = await self._send(delivery.chat_id, text, markup, delivery.local_date)
        if status in ("blocked", "chat not found"):
            await self.state.deactivate(delivery.chat_id, status)
        return Outcome(status, delivery.local_date, delivery.chat_id)

    async def _send(self, chat_id: int, text: str, markup: InlineKeyboardMarkup, local_date: date) -> str:
        """One message through the rate limiter; the Bot API's faults become a status."""
        attempt = 0
        while True:
            try:
                message: Message = await self.bot.send_message(
                    chat_id=chat_id, text=text, reply_markup=markup
                )
            except RetryAfter as exc:
                # AIORateLimiter already waited out its own retries; keep waiting, boundedly.
                if attempt >= self.retries:
                    log.warning("chat %s: still rate limited after %d retries", chat_id, attempt)
                    return "retry"
                await asyncio.sleep(_retry_after_s(exc))
            except Forbidden:
                return "blocked"
            except BadRequest as exc:
                if "chat not found" in exc.message.lower():
                    return "chat not found"
                log.warning("chat %s: nudge rejected: %s", chat_id, exc.message)
                return "failed"
            except TimedOut:
                # The request may or may not have reached Telegram; Telegram has no idempotency key,
                # so a retry here is the one place a nudge could show twice. We retry (boundedly)
                # because a lost nudge is the likelier harm; after the last try it is "unknown".
                if attempt >= self.retries:
                    log.warning("chat %s: nudge timed out %d times", chat_id, attempt + 1)
                    return "unknown"
                await asyncio.sleep(TIMEOUT_BACKOFF_S * 2**attempt)
            except NetworkError as exc:  # connection refused, 5xx: it did not get through
                log.warning("chat %s: nudge not sent (%s)", chat_id, exc.message)
                if attempt >= self.retries:
                    return "retry"
                await asyncio.sleep(TIMEOUT_BACKOFF_S * 2**attempt)
            except TelegramError as exc:
                if not transient(exc):  # anything else Telegram refuses (a migrated chat, ...): not sent
                    log.warning("chat %s: nudge refused: %s", chat_id, exc.message)
                    return "failed"
                # A reply that is not JSON: like a timeout, the nudge may or may not have arrived.
                if attempt >= self.retries:
                    log.warning("chat %s: garbled replies to the nudge %d times", chat_id, attempt + 1)
                    return "unknown"
                await asyncio.sleep(TIMEOUT_BACKOFF_S * 2**attempt)
            else:
                log.debug("nudge to chat %s sent as message %s", chat_id, message.message_id)
                self.keyboards.add(chat_id, local_date, message.message_id)
                return "sent"
            attempt += 1

"""Daily exercise nudges: when each subscriber's nudge is due (a pure function of the store and a clock),
and sending it at most once per (subscriber, local date) through PTB's JobQueue and rate limiter.

Delivery is claim, send, mark:

1. `claim_delivery` inserts the (chat, local date) row; the primary key lets exactly one caller through,
   across jobs, restarts and a catch-up after downtime.
2. The message is sent. PTB's AIORateLimiter paces every send under the overall limit and waits out a
   429 itself; what it gives up on is waited out here, a bounded number of times.
3. The row is marked sent (or blocked / failed / unknown).

A crash between 1 and 3 leaves a row "claimed": we cannot know whether Telegram got the message, so on
restart such rows become "unknown" and are NOT sent again. That day's nudge may be lost, never doubled
(the same choice bot/state.py makes for updates). A send that certainly did not reach Telegram (a
connection error, a 5xx) releases its claim and is tried again a minute later, while inside the grace
window.
"""

from __future__ import annotations

import asyncio
import html
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.ext import CallbackContext, JobQueue
from telegram.warnings import PTBDeprecationWarning

from bot.state import BotState, Subscription
from coach.routines import Frequency, Library, is_training_day, routine_for

log = logging.getLogger(__name__)

RETRY_LATER_S = 60.0  # after a send that certainly failed (network, 5xx), try again this much later
TIMEOUT_BACKOFF_S = 1.0  # first pause between retries of a timed-out send; doubles each time
SNOOZE = timedelta(hours=1)
DONE, SNOOZE_DATA = "done", "snz"
# Nudges claimed and in flight at once. Enough to keep the rate limiter busy (about two seconds of
# sends at 30/s), few enough that a crash mid-broadcast leaves few "unknown" claims.
MAX_CONCURRENT_SENDS = 64


def _job_id(chat_id: int) -> str:
    return f"nudge-{chat_id}"


class Clock(Protocol):
    """What time it is (aware, UTC). Injected so tests can move time without waiting."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# --- when: pure functions of a subscription and an instant -------------------------------------------


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


def wall_clock_utc(local_date: date, local_time: str, tz: str) -> datetime:
    """The UTC instant of `local_time` on `local_date` in zone `tz`.

    zoneinfo applies the offset in force on that date, so a 07:30 nudge stays at 07:30 on the runner's
    clock across daylight-saving changes. A time that does not exist (the spring-forward gap, 02:30 when
    clocks jump 02:00 -> 03:00) is read with the offset before the change (fold=0), i.e. it fires at
    03:30 new time; a time that happens twice (the autumn overlap) fires at the first of the two.
    """
    hour, minute = (int(part) for part in local_time.split(":"))
    local = datetime.combine(local_date, time(hour, minute), tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def local_today(sub: Subscription, now: datetime) -> date:
    return now.astimezone(ZoneInfo(sub.tz)).date()


def programme_day(sub: Subscription, local_date: date) -> int:
    return (local_date - sub.start_date).days + 1


def first_day(local_time: str, tz: str, now: datetime) -> date:
    """Day 1 of a new subscription: today if its time is still ahead, else tomorrow (no instant nudge)."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return today if wall_clock_utc(today, local_time, tz) > now else today + timedelta(days=1)


def _nudge_days(sub: Subscription, around: date, before: int, after: int) -> list[date]:
    days = [around + timedelta(days=offset) for offset in range(-before, after + 1)]
    return [
        d
        for d in days
        if d >= sub.start_date and is_training_day(programme_day(sub, d), sub.frequency)  # type: ignore[arg-type]
    ]


def due_date(
    sub: Subscription, now: datetime, grace: timedelta, delivered: Callable[[date], bool]
) -> date | None:
    """The local date whose nudge should go out now: its time has come, it is at most `grace` late, and
    the delivery log has no row for it. None if nothing is due."""
    if not sub.active:
        return None
    for d in reversed(_nudge_days(sub, local_today(sub, now), before=1, after=0)):
        at = wall_clock_utc(d, sub.local_time, sub.tz)
        if at <= now <= at + grace and not delivered(d):
            return d
    return None


def next_fire(sub: Subscription, now: datetime) -> datetime | None:
    """The next instant after `now` at which this subscriber has a nudge (UTC)."""
    if not sub.active:
        return None
    for d in _nudge_days(sub, local_today(sub, now), before=1, after=8):
        at = wall_clock_utc(d, sub.local_time, sub.tz)
        if at > now:
            return at
    return None


def due_nudges(state: BotState, now: datetime, grace: timedelta) -> list[tuple[Subscription, date]]:
    """Every (subscriber, local date) due at `now`: the one decision the jobs and the catch-up share."""
    due = []
    for sub in state.active_subscriptions():
        d = due_date(sub, now, grace, lambda day, sub=sub: state.delivery(sub.chat_id, day) is not None)
        if d is not None:
            due.append((sub, d))
    return due


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


@dataclass
class Outcome:
    status: str  # sent | not due | taken | blocked | chat not found | failed | unknown | retry
    local_date: date | None = None


class Nudger:
    """Schedules each subscriber's next nudge as a JobQueue job (named by chat id, payload in data=) and
    sends due nudges. Runs on the event loop's thread, like BotState."""

    def __init__(
        self,
        *,
        bot: Bot,
        job_queue: JobQueue | None,
        state: BotState,
        library: Library,
        titles: dict[str, str],
        grace: timedelta,
        retries: int,
        clock: Clock,
    ) -> None:
        self.bot, self.job_queue, self.state = bot, job_queue, state
        self.library, self.titles = library, titles
        self.grace, self.retries, self.clock = grace, retries, clock
        self._sends = asyncio.Semaphore(MAX_CONCURRENT_SENDS)

    # --- scheduling ---------------------------------------------------------------------------------

    def rebuild(self) -> int:
        """At start: settle claims a crash left open, then one job per active subscriber (and snooze)."""
        now = self.clock.now()
        for stale in self.state.stale_claims():
            log.warning(
                "nudge for chat %s on %s was claimed but not confirmed sent before a stop; not resending",
                stale.chat_id,
                stale.local_date,
            )
            self.state.finish_delivery(stale.chat_id, stale.local_date, "unknown", now=now.timestamp())
        subs = self.state.active_subscriptions()
        for sub in subs:
            self.schedule(sub.chat_id)
        for pending in self.state.pending_snoozes():
            self.schedule_snooze(pending.chat_id, pending.local_date, pending.snooze_until or 0.0)
        return len(subs)

    def schedule(self, chat_id: int, *, retry: bool = False) -> datetime | None:
        """Replace the chat's job by one at its next nudge (now, if one is due); returns when (UTC)."""
        self.unschedule(chat_id)
        sub = self.state.subscription(chat_id)
        if sub is None or not sub.active or self.job_queue is None:
            return None
        now = self.clock.now()
        if due_date(sub, now, self.grace, lambda d: self.state.delivery(chat_id, d) is not None):
            at = now + timedelta(seconds=RETRY_LATER_S if retry else 0)
        else:
            at = next_fire(sub, now)
            if at is None:
                return None
        # JobQueue waits in real time; the delay comes from our clock so a test clock lines up with it.
        self.job_queue.run_once(
            self._nudge_job,
            when=max(0.0, (at - now).total_seconds()),
            name=str(chat_id),
            data=chat_id,
            chat_id=chat_id,
            # Many subscribers share a time: a job started late is still run (the due check decides).
            job_kwargs={
                "id": _job_id(chat_id),
                "replace_existing": True,
                "misfire_grace_time": int(self.grace.total_seconds()) or None,
                "coalesce": True,
            },
        )
        return at

    def unschedule(self, chat_id: int) -> None:
        """Remove the chat's job. Looked up by its APScheduler id, a dict lookup: get_jobs_by_name scans
        every job, which made rebuilding 10,000 subscribers' jobs take 20 s."""
        if self.job_queue is None:
            return
        job = self.job_queue.scheduler.get_job(_job_id(chat_id))
        if job is not None:
            job.remove()

    def schedule_snooze(self, chat_id: int, local_date: date, until: float) -> None:
        if self.job_queue is None:
            return
        name = f"snooze-{chat_id}"
        for job in self.job_queue.get_jobs_by_name(name):
            job.schedule_removal()
        delay = max(0.0, until - self.clock.now().timestamp())
        self.job_queue.run_once(
            self._snooze_job, when=delay, name=name, data=(chat_id, local_date.isoformat()), chat_id=chat_id
        )

    async def _nudge_job(self, context: CallbackContext) -> None:
        chat_id = int(context.job.data)  # type: ignore[union-attr, arg-type]
        outcome = await self.deliver(chat_id)
        self.schedule(chat_id, retry=outcome.status == "retry")

    async def _snooze_job(self, context: CallbackContext) -> None:
        chat_id, local_date = context.job.data  # type: ignore[union-attr, misc]
        await self.remind(chat_id, date.fromisoformat(local_date))

    # --- delivery -----------------------------------------------------------------------------------

    async def run_due(self) -> list[Outcome]:
        """Send every nudge due now (the catch-up after downtime, and what tests drive with a fake clock)."""
        due = due_nudges(self.state, self.clock.now(), self.grace)
        return list(await asyncio.gather(*(self.deliver(sub.chat_id) for sub, _d in due)))

    async def deliver(self, chat_id: int) -> Outcome:
        """Send this chat's due nudge, at most once for its local date."""
        now = self.clock.now()
        sub = self.state.subscription(chat_id)
        if sub is None:
            return Outcome("not due")
        local_date = due_date(sub, now, self.grace, lambda d: self.state.delivery(chat_id, d) is not None)
        if local_date is None:
            return Outcome("not due")
        day = programme_day(sub, local_date)
        async with self._sends:
            if not self.state.claim_delivery(chat_id, local_date, day, self.clock.now().timestamp()):
                return Outcome("taken", local_date)
            text = render_routine(self.library, day, sub.frequency, self.titles)  # type: ignore[arg-type]
            late_s = (self.clock.now() - wall_clock_utc(local_date, sub.local_time, sub.tz)).total_seconds()
            status = await self._send(chat_id, text, nudge_keyboard(local_date))
        if status == "retry":
            self.state.release_delivery(chat_id, local_date)
        else:
            self.state.finish_delivery(
                chat_id, local_date, status, now=self.clock.now().timestamp(), late_s=late_s
            )
        if status in ("blocked", "chat not found"):
            self.state.deactivate(chat_id, status)
            log.info("chat %s: %s; subscription stopped", chat_id, status)
        return Outcome(status, local_date)

    async def remind(self, chat_id: int, local_date: date) -> Outcome:
        """The snoozed nudge, an hour later: at most once, and not if it is far past (bot was down)."""
        now = self.clock.now()
        delivery = self.state.delivery(chat_id, local_date)
        sub = self.state.subscription(chat_id)
        if delivery is None or sub is None or not sub.active:
            return Outcome("not due", local_date)
        if not self.state.claim_snooze(chat_id, local_date, now.timestamp()):
            return Outcome("taken", local_date)
        if (
            delivery.snooze_until is not None
            and now.timestamp() - delivery.snooze_until > self.grace.total_seconds()
        ):
            return Outcome("not due", local_date)
        text = "Reminder, as you asked:\n\n" + render_routine(
            self.library,
            delivery.day,
            sub.frequency,  # type: ignore[arg-type]
            self.titles,
        )
        async with self._sends:
            status = await self._send(chat_id, text, nudge_keyboard(local_date, snooze=False))
        if status in ("blocked", "chat not found"):
            self.state.deactivate(chat_id, status)
        return Outcome(status, local_date)

    async def _send(self, chat_id: int, text: str, markup: InlineKeyboardMarkup) -> str:
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
            else:
                log.debug("nudge to chat %s sent as message %s", chat_id, message.message_id)
                return "sent"
            attempt += 1

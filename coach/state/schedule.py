"""When a subscriber's nudges fall: pure functions of a subscription's wall-clock time, its IANA zone and
an instant, so the store can keep each subscription's next due instant in UTC (and query it with SQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from coach.routines import is_training_day

# How far around "today" a nudge is looked for: a day back (the grace window is under 24 h, so a nudge
# due late last night may still be owed) and a week and a day ahead (twice-weekly has gaps of 4 days).
DAYS_BACK, DAYS_AHEAD = 1, 8


class Schedule(Protocol):
    """What of a subscription decides when its nudges fall."""

    local_time: str  # HH:MM on the subscriber's wall clock
    tz: str  # an IANA zone name
    frequency: str  # daily | twice-weekly
    start_date: date  # local date of programme day 1
    active: bool


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


def local_today(sub: Schedule, now: datetime) -> date:
    return now.astimezone(ZoneInfo(sub.tz)).date()


def programme_day(sub: Schedule, local_date: date) -> int:
    return (local_date - sub.start_date).days + 1


def first_day(local_time: str, tz: str, now: datetime) -> date:
    """Day 1 of a new subscription: today if its time is still ahead, else tomorrow (no instant nudge)."""
    today = now.astimezone(ZoneInfo(tz)).date()
    return today if wall_clock_utc(today, local_time, tz) > now else today + timedelta(days=1)


def nudge_days(sub: Schedule, around: date, before: int = DAYS_BACK, after: int = DAYS_AHEAD) -> list[date]:
    """The local dates near `around` that have a nudge (on or after day 1, training days only)."""
    days = [around + timedelta(days=offset) for offset in range(-before, after + 1)]
    return [
        d
        for d in days
        if d >= sub.start_date and is_training_day(programme_day(sub, d), sub.frequency)  # type: ignore[arg-type]
    ]


def next_nudge(
    sub: Schedule,
    now: datetime,
    grace: timedelta,
    *,
    after: date | None = None,
    delivered: Callable[[date], bool] = lambda d: False,
) -> tuple[date, datetime] | None:
    """The first nudge still owed at `now`: its (local date, UTC instant), where the instant is at most
    `grace` in the past (then it is due now, late) or in the future. Dates up to `after`, and those the
    delivery log already has, are passed over. None if the subscription is stopped."""
    if not sub.active:
        return None
    for d in nudge_days(sub, local_today(sub, now)):
        if (after is not None and d <= after) or delivered(d):
            continue
        at = wall_clock_utc(d, sub.local_time, sub.tz)
        if at + grace >= now:
            return d, at
    return None


def due_date(
    sub: Schedule, now: datetime, grace: timedelta, delivered: Callable[[date], bool]
) -> date | None:
    """The local date whose nudge should go out now: its time has come, it is at most `grace` late, and
    the delivery log has no row for it. None if nothing is due."""
    found = next_nudge(sub, now, grace, delivered=delivered)
    return found[0] if found is not None and found[1] <= now else None


def next_fire(sub: Schedule, now: datetime) -> datetime | None:
    """The next instant after `now` at which this subscriber has a nudge (UTC)."""
    if not sub.active:
        return None
    for d in nudge_days(sub, local_today(sub, now)):
        at = wall_clock_utc(d, sub.local_time, sub.tz)
        if at > now:
            return at
    return None

"""When nudges are due: local wall-clock times in IANA zones, across daylight-saving changes, with a grace
window after downtime; a timed-out send is retried boundedly and never re-sent (real SQLite). The delivery
log itself is tested on SQLite and PostgreSQL in tests/integration/test_state.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.nudges import due_date, first_day, next_fire, parse_time, parse_zone, wall_clock_utc
from coach.state import SqlState, Subscription
from coach.state.schedule import next_nudge

GRACE = timedelta(minutes=180)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def sub(local_time: str, tz: str, start: date, frequency: str = "daily") -> Subscription:
    return Subscription(42, local_time, tz, frequency, start, True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("07:30", "07:30"), ("7:30", "07:30"), ("7.05", "07:05"), ("23:59", "23:59"), ("00:00", "00:00")]
    + [(bad, None) for bad in ("25:99", "24:00", "7", "7:3", "07:60", "ab:cd", "", "-1:30", "007:30")],
)
def test_parse_time(text: str, expected: str | None) -> None:
    assert parse_time(text) == expected


def test_parse_zone() -> None:
    assert parse_zone("Europe/Berlin") == "Europe/Berlin"
    assert parse_zone("UTC") == "UTC"
    for bad in ("Mars/Olympus", "../etc/passwd", "", "Europe/"):
        assert parse_zone(bad) is None


@pytest.mark.parametrize(
    ("tz", "local_time", "before", "after", "utc_before", "utc_after"),
    [
        # EU summer time starts 29 March 2026 and ends 25 October 2026.
        (
            "Europe/Berlin",
            "07:30",
            date(2026, 3, 28),
            date(2026, 3, 29),
            utc(2026, 3, 28, 6, 30),
            utc(2026, 3, 29, 5, 30),
        ),
        (
            "Europe/Berlin",
            "07:30",
            date(2026, 10, 24),
            date(2026, 10, 25),
            utc(2026, 10, 24, 5, 30),
            utc(2026, 10, 25, 6, 30),
        ),
        # US daylight time starts 8 March 2026 and ends 1 November 2026.
        (
            "America/New_York",
            "07:00",
            date(2026, 3, 7),
            date(2026, 3, 8),
            utc(2026, 3, 7, 12),
            utc(2026, 3, 8, 11),
        ),
        (
            "America/New_York",
            "07:00",
            date(2026, 10, 31),
            date(2026, 11, 1),
            utc(2026, 10, 31, 11),
            utc(2026, 11, 1, 12),
        ),
    ],
)
def test_local_time_holds_across_dst(tz, local_time, before, after, utc_before, utc_after) -> None:  # noqa: ANN001
    assert wall_clock_utc(before, local_time, tz) == utc_before
    assert wall_clock_utc(after, local_time, tz) == utc_after
    s = sub(local_time, tz, before)
    # The next run is computed in local time, so it is 23 or 25 hours after the last, not 24.
    assert next_fire(s, utc_before + timedelta(seconds=1)) == utc_after


def test_nonexistent_and_repeated_local_times() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026: it fires at 03:30 summer time.
    assert wall_clock_utc(date(2026, 3, 29), "02:30", "Europe/Berlin") == utc(2026, 3, 29, 1, 30)
    # 02:30 happens twice on 25 October 2026: the first one (summer time).
    assert wall_clock_utc(date(2026, 10, 25), "02:30", "Europe/Berlin") == utc(2026, 10, 25, 0, 30)


def test_due_inside_the_grace_window_only_and_once() -> None:
    s = sub("07:30", "Europe/Berlin", date(2026, 6, 1))
    at = utc(2026, 6, 1, 5, 30)
    never = lambda d: False  # noqa: E731
    assert due_date(s, at - timedelta(seconds=1), GRACE, never) is None
    assert due_date(s, at, GRACE, never) == date(2026, 6, 1)
    assert due_date(s, at + GRACE, GRACE, never) == date(2026, 6, 1)  # late, still sent
    assert due_date(s, at + GRACE + timedelta(seconds=1), GRACE, never) is None  # too late: skipped
    assert due_date(s, at, GRACE, lambda d: d == date(2026, 6, 1)) is None  # already delivered
    inactive = Subscription(42, "07:30", "Europe/Berlin", "daily", date(2026, 6, 1), False)
    assert due_date(inactive, at, GRACE, never) is None


def test_a_grace_window_across_midnight_finds_yesterdays_nudge() -> None:
    s = sub("23:30", "UTC", date(2026, 6, 1))
    assert due_date(s, utc(2026, 6, 2, 1, 0), GRACE, lambda d: False) == date(2026, 6, 1)


def test_twice_weekly_skips_rest_days() -> None:
    s = sub("07:00", "UTC", date(2026, 6, 1), "twice-weekly")  # days 1 and 4 of each week
    fires = []
    now = utc(2026, 6, 1)
    for _ in range(4):
        now = next_fire(s, now)
        fires.append(now.date())
    assert fires == [date(2026, 6, 1), date(2026, 6, 4), date(2026, 6, 8), date(2026, 6, 11)]
    assert due_date(s, utc(2026, 6, 2, 7, 0), GRACE, lambda d: False) is None


def test_first_day_is_today_only_if_the_time_is_still_ahead() -> None:
    assert first_day("07:30", "Europe/Berlin", utc(2026, 6, 1, 5, 0)) == date(2026, 6, 1)
    assert first_day("07:30", "Europe/Berlin", utc(2026, 6, 1, 5, 31)) == date(2026, 6, 2)
    # Late evening UTC is already tomorrow in Tokyo.
    assert first_day("07:30", "Asia/Tokyo", utc(2026, 6, 1, 23, 0)) == date(2026, 6, 3)


def test_next_nudge_is_the_first_still_owed() -> None:
    s = sub("07:30", "Europe/Berlin", date(2026, 6, 1))
    assert next_nudge(s, utc(2026, 6, 1, 5), GRACE) == (date(2026, 6, 1), utc(2026, 6, 1, 5, 30))
    late = utc(2026, 6, 1, 7)  # 90 minutes late, inside the window: owed now
    assert next_nudge(s, late, GRACE) == (date(2026, 6, 1), utc(2026, 6, 1, 5, 30))
    assert next_nudge(s, late, GRACE, after=date(2026, 6, 1)) == (date(2026, 6, 2), utc(2026, 6, 2, 5, 30))
    assert next_nudge(s, late, GRACE, delivered=lambda d: d == date(2026, 6, 1))[0] == date(2026, 6, 2)
    assert next_nudge(s, utc(2026, 6, 1, 8, 31), GRACE)[0] == date(2026, 6, 2)  # past the window: skipped
    assert next_nudge(Subscription(42, "07:30", "UTC", "daily", date(2026, 6, 1), False), late, GRACE) is None


class FlakyBot:
    """Raises the scripted errors in order, then "sends" (a fake for the one fault the stand-in cannot
    cause quickly: a client-side timeout)."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def send_message(self, **kwargs: object) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return type("Sent", (), {"message_id": self.calls})()


@pytest.mark.parametrize(("timeouts", "status", "calls"), [(1, "sent", 2), (9, "unknown", 3)])
async def test_timeouts_are_retried_with_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, timeouts: int, status: str, calls: int
) -> None:
    from telegram.error import TimedOut

    from bot import nudges
    from coach.routines import Library

    monkeypatch.setattr(nudges, "TIMEOUT_BACKOFF_S", 0.01)
    state = await SqlState.open(None, tmp_path / "bot.sqlite")
    try:
        clock = type("C", (), {"now": lambda self: utc(2026, 6, 1, 7, 30)})()
        await state.subscribe(
            42, "07:30", "UTC", "daily", date(2026, 6, 1), now=utc(2026, 6, 1, 7), grace=GRACE
        )
        bot = FlakyBot(*[TimedOut()] * timeouts)
        nudger = nudges.Nudger(
            bot=bot, state=state, library=Library(key=""), titles={}, grace=GRACE, retries=2, clock=clock
        )
        [outcome] = await nudger.run_due()
        assert outcome.status == status
        assert bot.calls == calls
        # Sent or not, the day is settled: a timed-out nudge may have arrived, so it is never re-sent.
        assert (await state.delivery(42, date(2026, 6, 1))).status == status
        assert await nudger.run_due() == []
        assert bot.calls == calls
    finally:
        await state.close()

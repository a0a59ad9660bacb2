"""When nudges are due: local wall-clock times in IANA zones, across daylight-saving changes, with a grace
window after downtime; the delivery log lets each (subscriber, local date) through once (real SQLite)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.nudges import due_date, due_nudges, first_day, next_fire, parse_time, parse_zone, wall_clock_utc
from bot.state import BotState, Subscription

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


def test_the_delivery_log_lets_one_claim_through(tmp_path: Path) -> None:
    state = BotState(tmp_path / "bot.sqlite").open()
    try:
        state.subscribe(42, "07:30", "Europe/Berlin", "daily", date(2026, 6, 1))
        state.subscribe(43, "08:00", "America/New_York", "daily", date(2026, 6, 1))
        now = utc(2026, 6, 1, 5, 30)
        assert [(s.chat_id, d) for s, d in due_nudges(state, now, GRACE)] == [(42, date(2026, 6, 1))]
        assert state.claim_delivery(42, date(2026, 6, 1), 1, now.timestamp())
        assert not state.claim_delivery(42, date(2026, 6, 1), 1, now.timestamp())
        assert due_nudges(state, now, GRACE) == []
        # The claim survives a reopen (a restart).
        state.close()
        state = BotState(tmp_path / "bot.sqlite").open()
        assert not state.claim_delivery(42, date(2026, 6, 1), 1, now.timestamp())
        assert [d.local_date for d in state.stale_claims()] == [date(2026, 6, 1)]
        # Changing the time keeps the programme day; coming back after leaving starts again.
        assert state.subscribe(42, "08:00", "UTC", "daily", date(2026, 6, 9)).start_date == date(2026, 6, 1)
        state.deactivate(42, "unsubscribed")
        assert state.subscribe(42, "08:00", "UTC", "daily", date(2026, 6, 9)).start_date == date(2026, 6, 9)
    finally:
        state.close()


def test_streaks(tmp_path: Path) -> None:
    state = BotState(tmp_path / "bot.sqlite").open()
    try:
        days = [date(2026, 6, d) for d in range(1, 7)]
        for n, d in enumerate(days, start=1):
            state.claim_delivery(42, d, n, 0.0)
            state.finish_delivery(42, d, "sent", now=1.0)
        for d in (days[0], days[1], days[3], days[4]):
            assert state.mark_done(42, d, 2.0)
        assert not state.mark_done(42, days[0], 3.0)  # once
        stats = state.stats(42, today=days[5])  # today's is still open: it does not break the streak
        assert (stats.sent, stats.done, stats.streak, stats.best_streak) == (6, 4, 2, 2)
        stats = state.stats(42, today=date(2026, 6, 7))  # a day later, the missed one does
        assert stats.streak == 0
    finally:
        state.close()


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
    state = BotState(tmp_path / "bot.sqlite").open()
    try:
        state.subscribe(42, "07:30", "UTC", "daily", date(2026, 6, 1))
        bot = FlakyBot(*[TimedOut()] * timeouts)
        clock = type("C", (), {"now": lambda self: utc(2026, 6, 1, 7, 30)})()
        nudger = nudges.Nudger(
            bot=bot,
            job_queue=None,
            state=state,
            library=Library(key=""),
            titles={},
            grace=GRACE,
            retries=2,
            clock=clock,
        )
        outcome = await nudger.deliver(42)
        assert outcome.status == status
        assert bot.calls == calls
        # Sent or not, the day is settled: a timed-out nudge may have arrived, so it is never re-sent.
        assert state.delivery(42, date(2026, 6, 1)).status == status
        assert (await nudger.deliver(42)).status == "not due"
        assert bot.calls == calls
    finally:
        state.close()

"""The state stores (coach/state), one suite run on real SQLite and on a real PostgreSQL server: the
update log, conversations, subscriptions with their next due nudge, the delivery log and its claims
(also by two stores racing on one database), migrations (from the SQLite-only schema of earlier
versions too), and storage errors as StateError without the password."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from coach.errors import StateError
from coach.models import Turn
from coach.state import UPDATE_WINDOW, SqlState
from coach.state.engine import state_url as driver_url
from coach.state.migrate import head_revision
from coach.state.schema import metadata

pytestmark = pytest.mark.integration

GRACE = timedelta(minutes=180)
JUNE_1 = date(2026, 6, 1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
async def store(state_url: str | None, tmp_path: Path):
    opened = await SqlState.open(state_url, tmp_path / "bot.sqlite")
    yield opened
    await opened.close()


async def reopen(store: SqlState, state_url: str | None, tmp_path: Path) -> SqlState:
    """A restart: the old engine closed, a new one on the same database."""
    await store.close()
    return await SqlState.open(state_url, tmp_path / "bot.sqlite")


# --- the update log --------------------------------------------------------------------------------


async def test_each_update_is_claimed_once_across_reopen(
    store: SqlState, state_url: str | None, tmp_path: Path
) -> None:
    assert await store.claim_update(10)
    assert not await store.claim_update(10)
    assert await store.claim_update(12)
    assert await store.claim_update(11)  # out of order (webhook retries) is still new
    store = await reopen(store, state_url, tmp_path)
    try:
        assert [await store.claim_update(i) for i in (10, 11, 12, 13)] == [False, False, False, True]
        assert await store.last_update_id() == 13
        assert await store.claim_update(13 + UPDATE_WINDOW)
        assert not await store.claim_update(12)  # older than the window: treated as handled
        assert not await store.claim_update(13)  # its row is gone, and it is as old
    finally:
        await store.close()


async def test_two_stores_racing_for_updates_claim_each_once(state_url: str | None, tmp_path: Path) -> None:
    """Two bot processes behind one webhook URL: separate engines on one database."""
    a = await SqlState.open(state_url, tmp_path / "bot.sqlite")
    b = await SqlState.open(state_url, tmp_path / "bot.sqlite")
    try:
        ids = list(range(1, 101))
        won_a, won_b = await asyncio.gather(
            asyncio.gather(*(a.claim_update(i) for i in ids)),
            asyncio.gather(*(b.claim_update(i) for i in ids)),
        )
        assert [x + y for x, y in zip(won_a, won_b, strict=True)] == [1] * len(ids)
    finally:
        await a.close()
        await b.close()


# --- conversations ---------------------------------------------------------------------------------


async def test_recent_turns_per_chat_and_forget(store: SqlState) -> None:
    for i in range(5):
        await store.add_turn(1, Turn(question=f"q{i}", answer=f"a{i}"), keep=3)
    await store.add_turn(2, Turn(question="other", answer="x"), keep=3)
    assert [t.question for t in await store.history(1, limit=10)] == ["q2", "q3", "q4"]
    assert [t.question for t in await store.history(1, limit=2)] == ["q3", "q4"]
    assert await store.forget(1) == 3
    assert await store.history(1, limit=10) == []
    assert await store.forget(1) == 0
    assert [t.question for t in await store.history(2, limit=10)] == ["other"]
    # Unicode and a chat id beyond 32 bits (supergroups) survive the round trip.
    await store.add_turn(-1001234567890, Turn(question="Knie – warum? 🏃", answer="…"), keep=3)
    assert await store.history(-1001234567890, 5) == [Turn(question="Knie – warum? 🏃", answer="…")]


# --- subscriptions ---------------------------------------------------------------------------------


async def test_subscribe_computes_the_next_due_nudge_and_keeps_the_programme_day(store: SqlState) -> None:
    now = utc(2026, 6, 1, 5, 0)  # 07:00 in Berlin
    sub = await store.subscribe(42, "07:30", "Europe/Berlin", "daily", JUNE_1, now=now, grace=GRACE)
    assert (sub.active, sub.start_date, sub.frequency) == (True, JUNE_1, "daily")
    assert (sub.next_due_at, sub.next_due_date) == (utc(2026, 6, 1, 5, 30), JUNE_1)
    assert await store.subscription(42) == sub
    # Changing the time keeps the programme day; the next nudge follows the new time and zone.
    later = await store.subscribe(42, "08:00", "UTC", "twice-weekly", date(2026, 6, 9), now=now, grace=GRACE)
    assert later.start_date == JUNE_1
    assert (later.next_due_at, later.frequency) == (utc(2026, 6, 1, 8, 0), "twice-weekly")
    # Coming back after leaving starts again at day 1.
    assert await store.deactivate(42, "unsubscribed")
    assert not await store.deactivate(42, "unsubscribed")
    stopped = await store.subscription(42)
    assert (stopped.active, stopped.reason, stopped.next_due_at) == (False, "unsubscribed", None)
    assert await store.active_subscriptions() == []
    again = await store.subscribe(42, "08:00", "UTC", "daily", date(2026, 6, 9), now=now, grace=GRACE)
    assert again.start_date == date(2026, 6, 9)
    assert again.reason is None
    assert again.next_due_at == utc(2026, 6, 9, 8, 0)
    assert [s.chat_id for s in await store.active_subscriptions()] == [42]


async def test_a_changed_time_does_not_resend_a_delivered_day(store: SqlState) -> None:
    await store.subscribe(42, "07:30", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 7, 0), grace=GRACE)
    [claim] = await store.claim_due(utc(2026, 6, 1, 7, 30), GRACE, 10)
    assert claim.local_date == JUNE_1
    changed = await store.subscribe(42, "09:00", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 8), grace=GRACE)
    assert changed.next_due_at == utc(2026, 6, 2, 9, 0)  # not today's 09:00: today's went out
    # A change to a time already past today, with today not yet delivered, is owed now (late).
    await store.subscribe(43, "10:00", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 7, 0), grace=GRACE)
    moved = await store.subscribe(43, "08:00", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 9), grace=GRACE)
    assert moved.next_due_at == utc(2026, 6, 1, 8, 0)


# --- the delivery log ------------------------------------------------------------------------------


async def test_claim_due_claims_each_nudge_once_and_moves_on(
    store: SqlState, state_url: str | None, tmp_path: Path
) -> None:
    await store.subscribe(42, "07:30", "Europe/Berlin", "daily", JUNE_1, now=utc(2026, 6, 1, 5), grace=GRACE)
    await store.subscribe(
        43, "08:00", "America/New_York", "daily", JUNE_1, now=utc(2026, 6, 1, 5), grace=GRACE
    )
    now = utc(2026, 6, 1, 5, 30)
    assert await store.claim_due(now - timedelta(seconds=1), GRACE, 10) == []
    [claim] = await store.claim_due(now, GRACE, 10)
    assert (claim.subscription.chat_id, claim.local_date, claim.day, claim.scheduled_at) == (
        42,
        JUNE_1,
        1,
        now,
    )
    assert await store.claim_due(now, GRACE, 10) == []
    assert (await store.delivery(42, JUNE_1)).status == "claimed"
    assert not await store.claim_delivery(42, JUNE_1, 1, now.timestamp())
    assert (await store.subscription(42)).next_due_at == utc(2026, 6, 2, 5, 30)
    # The claim survives a restart, and is settled as "unknown" only once it is stale.
    store = await reopen(store, state_url, tmp_path)
    try:
        assert await store.settle_stale_claims(now.timestamp() - 600, now.timestamp()) == []
        [stale] = await store.settle_stale_claims(now.timestamp(), now.timestamp() + 600)
        assert (stale.chat_id, stale.local_date, stale.status) == (42, JUNE_1, "unknown")
        assert (await store.delivery(42, JUNE_1)).status == "unknown"
        assert await store.claim_due(utc(2026, 6, 1, 7, 0), GRACE, 10) == []  # New York is not due yet
        [ny] = await store.claim_due(utc(2026, 6, 1, 12, 0), GRACE, 10)
        assert (ny.subscription.chat_id, ny.local_date) == (43, JUNE_1)
    finally:
        await store.close()


async def test_nudges_past_the_grace_window_are_skipped_not_sent(store: SqlState) -> None:
    for chat_id in range(1, 6):
        await store.subscribe(chat_id, "07:00", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 6), grace=GRACE)
    # Down from before 07:00 to 09:01 the next day: the 1 June nudges are skipped (even when a whole
    # batch is skipped), 2 June's are owed (2 hours late, inside the 3-hour window).
    claims = await store.claim_due(utc(2026, 6, 2, 9, 1), GRACE, 2)
    claims += await store.claim_due(utc(2026, 6, 2, 9, 1), GRACE, 10)
    assert sorted((c.subscription.chat_id, c.local_date) for c in claims) == [
        (chat_id, date(2026, 6, 2)) for chat_id in range(1, 6)
    ]
    assert await store.delivery(1, JUNE_1) is None  # skipped: no row, nothing sent
    # Later than that: also 2 June's are past the window.
    await store.subscribe(9, "07:00", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 6), grace=GRACE)
    assert await store.claim_due(utc(2026, 6, 3, 6, 0), GRACE, 10) == []
    assert (await store.subscription(9)).next_due_at == utc(2026, 6, 3, 7, 0)


async def test_a_released_claim_is_owed_again_later(store: SqlState) -> None:
    await store.subscribe(42, "07:00", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 6), grace=GRACE)
    [claim] = await store.claim_due(utc(2026, 6, 1, 7), GRACE, 10)
    await store.release_delivery(42, claim.local_date, retry_at=utc(2026, 6, 1, 7, 1))
    assert await store.delivery(42, JUNE_1) is None
    assert await store.claim_due(utc(2026, 6, 1, 7, 0, 30), GRACE, 10) == []
    [again] = await store.claim_due(utc(2026, 6, 1, 7, 1), GRACE, 10)
    assert (again.local_date, again.scheduled_at) == (JUNE_1, utc(2026, 6, 1, 7))


async def test_two_stores_racing_for_due_nudges_claim_each_once(
    state_url: str | None, tmp_path: Path
) -> None:
    """Two bot processes' ticks on one database: every due nudge claimed by exactly one of them."""
    a = await SqlState.open(state_url, tmp_path / "bot.sqlite")
    b = await SqlState.open(state_url, tmp_path / "bot.sqlite")
    try:
        for chat_id in range(1, 201):
            await a.subscribe(chat_id, "07:00", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 6), grace=GRACE)
        now = utc(2026, 6, 1, 7)

        async def drain(store: SqlState) -> list[int]:
            taken: list[int] = []
            while claims := await store.claim_due(now, GRACE, 16):
                taken += [c.subscription.chat_id for c in claims]
                await asyncio.sleep(0)
            return taken

        by_a, by_b = await asyncio.gather(drain(a), drain(b))
        assert sorted(by_a + by_b) == list(range(1, 201))  # none lost, none doubled
        if state_url is not None:  # PostgreSQL: SKIP LOCKED lets both work at once (SQLite: one writer)
            assert by_a
            assert by_b
    finally:
        await a.close()
        await b.close()


async def test_done_snooze_and_streaks(store: SqlState) -> None:
    days = [date(2026, 6, d) for d in range(1, 7)]
    for n, d in enumerate(days, start=1):
        assert await store.claim_delivery(42, d, n, 0.0)
        await store.finish_delivery(42, d, "sent", now=1.0, late_s=0.5)
    for d in (days[0], days[1], days[3], days[4]):
        assert await store.mark_done(42, d, 2.0)
    assert not await store.mark_done(42, days[0], 3.0)  # once
    assert not await store.mark_done(42, date(2026, 7, 1), 3.0)  # no such nudge
    stats = await store.stats(42, today=days[5])  # today's is still open: it does not break the streak
    assert (stats.sent, stats.done, stats.streak, stats.best_streak) == (6, 4, 2, 2)
    assert (await store.stats(42, today=date(2026, 6, 7))).streak == 0  # a day later, the missed one does
    # Snooze: once, and the reminder is claimed once when its hour is up.
    assert await store.snooze(42, days[5], until=100.0)
    assert not await store.snooze(42, days[5], until=200.0)
    assert not await store.snooze(42, days[0], until=100.0)  # done already
    assert await store.claim_due_snoozes(99.0, 10) == []
    [reminder] = await store.claim_due_snoozes(100.0, 10)
    assert (reminder.chat_id, reminder.local_date, reminder.snooze_sent_at) == (42, days[5], 100.0)
    assert await store.claim_due_snoozes(500.0, 10) == []


async def test_schedule_unscheduled_fills_in_next_due_times(store: SqlState) -> None:
    from sqlalchemy import update

    from coach.state.schema import subscriptions

    await store.subscribe(42, "07:30", "UTC", "daily", JUNE_1, now=utc(2026, 6, 1, 6), grace=GRACE)
    async with store.engine.begin() as conn:  # as a database migrated from before next_due_at existed
        await conn.execute(update(subscriptions).values(next_due_at=None, next_due_date=None))
    assert await store.claim_due(utc(2026, 6, 1, 7, 30), GRACE, 10) == []
    assert await store.schedule_unscheduled(utc(2026, 6, 1, 7, 30), GRACE) == 1
    assert await store.schedule_unscheduled(utc(2026, 6, 1, 7, 30), GRACE) == 0
    [claim] = await store.claim_due(utc(2026, 6, 1, 7, 30), GRACE, 10)
    assert claim.local_date == JUNE_1


# --- schema and migrations -------------------------------------------------------------------------


async def test_migrations_build_exactly_the_schema_the_queries_use(store: SqlState) -> None:
    def differences(connection) -> list:  # noqa: ANN001
        return compare_metadata(MigrationContext.configure(connection), metadata)

    def revision(connection) -> str | None:  # noqa: ANN001
        return MigrationContext.configure(connection).get_current_revision()

    async with store.engine.connect() as conn:
        assert await conn.run_sync(differences) == []
        assert await conn.run_sync(revision) == head_revision()


async def test_concurrent_first_opens_migrate_once(state_url: str | None, tmp_path: Path) -> None:
    """Two bots starting at once on an empty database: one migrates, the other waits, both work."""
    a, b = await asyncio.gather(
        SqlState.open(state_url, tmp_path / "bot.sqlite"), SqlState.open(state_url, tmp_path / "bot.sqlite")
    )
    try:
        assert await a.claim_update(1)
        assert not await b.claim_update(1)
    finally:
        await a.close()
        await b.close()


# The schema of the SQLite-only bot/state.py, verbatim, as PRAGMA user_version 1 and 2 left it.
LEGACY_V1 = """
CREATE TABLE processed_updates (update_id INTEGER PRIMARY KEY, handled_at REAL NOT NULL);
CREATE TABLE chat_turns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX chat_turns_chat ON chat_turns (chat_id, id);
"""
LEGACY_V2 = """
CREATE TABLE subscriptions (
    chat_id INTEGER PRIMARY KEY,
    local_time TEXT NOT NULL,
    tz TEXT NOT NULL,
    frequency TEXT NOT NULL,
    start_date TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    reason TEXT,
    updated_at REAL NOT NULL
);
CREATE TABLE deliveries (
    chat_id INTEGER NOT NULL,
    local_date TEXT NOT NULL,
    day INTEGER NOT NULL,
    status TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    sent_at REAL,
    late_s REAL,
    done_at REAL,
    snooze_until REAL,
    snooze_sent_at REAL,
    PRIMARY KEY (chat_id, local_date)
);
CREATE INDEX deliveries_snoozed ON deliveries (snooze_until) WHERE snooze_sent_at IS NULL;
"""


def legacy_database(path: Path, version: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(f"BEGIN; {LEGACY_V1}; PRAGMA user_version = 1; COMMIT;")
    db.execute("INSERT INTO processed_updates VALUES (500, 1.0)")
    db.execute("INSERT INTO chat_turns (chat_id, question, answer, at) VALUES (7, 'why?', 'because', 1.0)")
    if version >= 2:
        db.executescript(f"BEGIN; {LEGACY_V2}; PRAGMA user_version = 2; COMMIT;")
        db.execute(
            "INSERT INTO subscriptions VALUES (42, '07:30', 'Europe/Berlin', 'daily', '2026-06-01', 1, NULL, 1.0)"
        )
        db.execute(
            "INSERT INTO subscriptions VALUES (43, '07:30', 'UTC', 'daily', '2026-05-01', 0, 'blocked', 1.0)"
        )
        db.execute(
            "INSERT INTO deliveries (chat_id, local_date, day, status, claimed_at, sent_at, done_at) VALUES (42, '2026-06-01', 1, 'sent', 1.0, 2.0, 3.0)"
        )
    db.close()


@pytest.mark.parametrize("version", [1, 2])
async def test_a_database_of_the_sqlite_only_bot_migrates_and_keeps_its_rows(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "bot.sqlite"
    legacy_database(path, version)
    store = await SqlState.open(None, path)
    try:
        assert not await store.claim_update(500)  # handled before the upgrade: still handled
        assert await store.claim_update(501)
        assert await store.history(7, 5) == [Turn(question="why?", answer="because")]
        await store.add_turn(7, Turn(question="and?", answer="so"), keep=6)
        assert [t.question for t in await store.history(7, 5)] == ["why?", "and?"]
        if version == 2:
            sub = await store.subscription(42)
            assert (sub.local_time, sub.tz, sub.start_date, sub.active) == (
                "07:30",
                "Europe/Berlin",
                JUNE_1,
                True,
            )
            assert sub.next_due_at is None  # computed by the bot at start (schedule_unscheduled)
            assert (await store.subscription(43)).reason == "blocked"
            stats = await store.stats(42, today=date(2026, 6, 2))
            assert (stats.sent, stats.done, stats.streak) == (1, 1, 1)
            assert await store.schedule_unscheduled(utc(2026, 6, 1, 7), GRACE) == 1
            assert (await store.subscription(42)).next_due_at == utc(2026, 6, 2, 5, 30)  # 1 June was sent
        else:
            assert await store.active_subscriptions() == []
    finally:
        await store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
    finally:
        db.close()


async def test_a_database_of_an_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 9")
    db.close()
    with pytest.raises(StateError, match="schema version 9"):
        await SqlState.open(None, path)


# --- URLs and errors -------------------------------------------------------------------------------


def test_plain_urls_map_to_the_async_drivers(tmp_path: Path) -> None:
    assert driver_url(None, tmp_path / "bot.sqlite").drivername == "sqlite+aiosqlite"
    for plain in ("postgresql://u:pw@db:5432/coach", "postgres://u:pw@db/coach"):
        url = driver_url(plain, tmp_path)
        assert (url.drivername, url.host, url.database, url.password) == (
            "postgresql+psycopg",
            "db",
            "coach",
            "pw",
        )
    with pytest.raises(StateError, match="needs PostgreSQL") as info:
        driver_url("mysql://u:hunter2@db/coach", tmp_path)
    assert "hunter2" not in str(info.value)
    with pytest.raises(StateError, match="not a database URL"):
        driver_url("not a url at all", tmp_path)


async def test_an_unreachable_server_is_a_state_error_without_the_password(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(StateError) as info:
        await SqlState.open(f"postgresql://coach:s3cret-pw@127.0.0.1:{port}/coach", tmp_path / "x.sqlite")
    assert "s3cret-pw" not in str(info.value)
    assert f"coach:***@127.0.0.1:{port}/coach" in str(info.value)


async def test_a_wrong_password_is_a_state_error_without_it(postgres, tmp_path: Path) -> None:  # noqa: ANN001
    url = postgres.url().replace(postgres.password, "wrong-pw-123")
    with pytest.raises(StateError) as info:
        await SqlState.open(url, tmp_path / "x.sqlite")
    assert "wrong-pw-123" not in str(info.value)
    assert postgres.password not in str(info.value)


async def test_a_server_gone_mid_way_is_a_state_error(postgres, tmp_path: Path) -> None:  # noqa: ANN001
    """The database dropped under a running store: each call fails with StateError, none hangs."""
    import psycopg

    url = postgres.create_database("gone_midway")
    store = await SqlState.open(url, tmp_path / "x.sqlite")
    try:
        assert await store.claim_update(1)
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE gone_midway WITH (FORCE)")
        for call in (store.claim_update(2), store.history(1, 5), store.claim_due(utc(2026, 6, 1), GRACE, 5)):
            with pytest.raises(StateError):
                await asyncio.wait_for(call, timeout=20)
    finally:
        await store.close()


async def test_a_locked_sqlite_database_is_a_state_error(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite"
    store = await SqlState.open(None, path)
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StateError, match="locked"):
            await store.claim_update(1)
        assert await store.history(1, 5) == []  # WAL: readers are not held up by the writer
        locker.execute("COMMIT")
        assert await store.claim_update(1)
    finally:
        locker.close()
        await store.close()


def test_the_compose_health_check_passes_against_a_real_server(postgres) -> None:  # noqa: ANN001
    """docker-compose.yml's postgres health check, run as written (port and user aimed at the test server)."""
    import subprocess

    from tests.deploy import load_compose
    from tests.pg import USER, bin_dir

    test = load_compose()["services"]["postgres"]["healthcheck"]["test"]
    argv = [str(bin_dir() / test[1]), *test[2:]]
    argv[argv.index("-p") + 1] = str(postgres.port)
    argv[argv.index("-U") + 1] = USER
    argv[argv.index("-d") + 1] = "postgres"
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode == 0
    argv[argv.index("-p") + 1] = str(postgres.port + 1 if postgres.port < 65535 else postgres.port - 1)
    assert subprocess.run(argv, capture_output=True, timeout=30).returncode != 0  # nothing there: unhealthy

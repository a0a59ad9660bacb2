"""Benchmark: one day's nudges to many subscribers through the Bot API stand-in, which allows `rate`
messages a second in all and answers 429 (retry_after) beyond it; prints the achieved rate, lost and
doubled. Run by hand: `python -m evals.nudge_bench` (SQLite), `--state postgresql` (a throwaway
PostgreSQL server on loopback), `--processes 2` (two bot processes sharing that PostgreSQL).

The real delivery path runs: the bot's nudge tick (PTB's JobQueue) claims due subscriptions in the
database (one query per batch, FOR UPDATE SKIP LOCKED on PostgreSQL), sends through PTB's AIORateLimiter
over HTTP, and marks each sent. With several processes, each is a separate Python process with its own
application, engine and rate limiter, paced at rate / processes (Telegram's limit is per bot token).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from bot.app import build_application
from bot.nudges import Nudger, Outcome
from bot.settings import BotSettings
from coach.domain import load_domain
from coach.routines import build_library
from coach.settings import PROJECT_ROOT
from coach.state import SqlState, Subscription
from coach.state.schedule import next_nudge
from coach.state.schema import deliveries, subscriptions
from ingest.loader import corpus_chunks

TOKEN = "123456789:AAE-bench_Token-never-logged-0123456789"
DAY = date(2026, 6, 1)
START = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # the instant every subscriber's nudge falls on
# Subscribers in several zones whose local times all fall on 07:00 UTC that day: one broadcast.
ZONES = (("UTC", "07:00"), ("Europe/Berlin", "09:00"), ("America/New_York", "03:00"), ("Asia/Tokyo", "16:00"))
GRACE = timedelta(minutes=180)
RECORD_WAIT_S = 10.0


def _library(corpus: Path):  # noqa: ANN202
    """The exercise library ingest would build, from the corpus directly (no embeddings needed here)."""
    chunks, texts, titles = corpus_chunks(corpus)
    return build_library(chunks, texts, domain=load_domain(corpus)), titles


class ShiftedClock:
    """Real time, shifted by a fixed offset (the same in every process) so the run starts at START."""

    def __init__(self, offset_s: float) -> None:
        self.offset = timedelta(seconds=offset_s)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def seed(state: SqlState, subscribers: int) -> None:
    """Subscribers 1..n, due at START. One bulk insert: seeding is not what is measured."""
    rows = []
    for chat_id in range(1, subscribers + 1):
        zone, local_time = ZONES[chat_id % len(ZONES)]
        sub = Subscription(chat_id, local_time, zone, "daily", DAY, True)
        local_date, at = next_nudge(sub, START - timedelta(seconds=1), GRACE)  # type: ignore[misc]
        rows.append(
            {
                "chat_id": chat_id,
                "local_time": local_time,
                "tz": zone,
                "frequency": "daily",
                "start_date": DAY,
                "active": True,
                "updated_at": time.time(),
                "next_due_at": at.timestamp(),
                "next_due_date": local_date,
            }
        )
    async with state.engine.begin() as conn:
        await conn.execute(insert(subscriptions), rows)


async def settled(state: SqlState) -> int:
    """Deliveries whose outcome is recorded (sent, blocked, ...), whoever sent them."""
    async with state.engine.connect() as conn:
        return await conn.scalar(select(func.count()).where(deliveries.c.status != "claimed")) or 0


async def statuses(state: SqlState) -> dict[str, int]:
    async with state.engine.connect() as conn:
        rows = await conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
        return dict(rows.all())


async def run_bot(settings: BotSettings, clock: ShiftedClock, stop: asyncio.Event) -> Counter:
    """One bot's nudge side, as post_init builds it (without a CoachService: delivery only), until
    `stop` is set; returns the outcomes of the nudges this process sent."""
    library, titles = _library(settings.corpus_dir)
    application = build_application(settings, service=None, clock=clock)  # type: ignore[arg-type]
    state = await SqlState.open(
        settings.state_url.get_secret_value() if settings.state_url else None, settings.bot_db
    )
    await application.initialize()
    await application.start()
    nudger = Nudger(
        bot=application.bot,
        state=state,
        library=library,
        titles=titles,
        grace=timedelta(minutes=settings.nudge_grace_min),
        retries=settings.nudge_send_retries,
        clock=clock,
    )
    counted: Counter = Counter()
    deliver = nudger._deliver

    async def counting(claim) -> Outcome:  # noqa: ANN001
        outcome = await deliver(claim)
        counted[outcome.status] += 1
        return outcome

    nudger._deliver = counting  # type: ignore[method-assign]
    try:
        nudger.start(application.job_queue)  # the real tick: once now, then every TICK_S
        await stop.wait()
    finally:
        await application.stop()
        await application.shutdown()
        await state.close()
    return counted


def bot_settings(data_dir: Path, base_url: str, state_url: str | None, bot_rate: float | None) -> BotSettings:
    return BotSettings(
        data_dir=data_dir,
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        telegram_base_url=base_url,
        state_url=state_url,
        **({"bot_rate_per_s": bot_rate} if bot_rate else {}),
    )


@contextlib.contextmanager
def workers(n: int, argv: list[str], state_url: str | None) -> Iterator[list[subprocess.Popen]]:
    """n bot processes (`python -m evals.nudge_bench --worker ...`); each stops when its stdin closes.
    The state URL travels in the environment, as in a deployment, never on a command line."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "COACH_STATE_URL": state_url or ""}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "evals.nudge_bench", "--worker", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
            env=env,
        )
        for _ in range(n)
    ]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(OSError):
                    p.stdin.close()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def poll_until(done: Callable[[], Awaitable[bool]], deadline: float) -> None:
    """Until `done()` or the deadline (monotonic): the database is the only place all processes report."""
    while time.monotonic() < deadline:
        if await done():
            return
        await asyncio.sleep(0.5)


async def run_nudge_bench(
    subscribers: int,
    rate: float,
    data_dir: Path,
    *,
    timeout_s: float,
    bot_rate: float | None = None,
    state_url: str | None = None,
    processes: int = 1,
) -> dict:
    """Seed `subscribers` due now, let `processes` bots deliver, and count what the stand-in received."""
    from tests.botapi import BotApiStandIn  # the stand-in the tests use

    if bot_rate is None and processes > 1:
        bot_rate = rate / processes  # Telegram's limit is per token: replicas share it
    api = await BotApiStandIn(token=TOKEN, rate_limit=rate, per_chat_interval_s=1.0).start()
    settings = bot_settings(data_dir, api.base_url, state_url, bot_rate)
    state = await SqlState.open(state_url, settings.bot_db)
    await seed(state, subscribers)
    offset_s = (START - datetime.now(UTC)).total_seconds()
    started = time.monotonic()
    deadline = started + timeout_s
    per_process: list[dict] = []
    all_sent_at: list[float] = []

    def all_sent_long_ago() -> bool:
        """Every subscriber reached but some outcome never recorded: stop after RECORD_WAIT_S and let
        the statuses show it, rather than wait for the timeout."""
        if len(api.delivered) >= subscribers and not all_sent_at:
            all_sent_at.append(time.monotonic())
        return bool(all_sent_at) and time.monotonic() - all_sent_at[0] > RECORD_WAIT_S

    try:
        if processes == 1:
            stop = asyncio.Event()
            bot = asyncio.create_task(run_bot(settings, ShiftedClock(offset_s), stop))

            async def finished_one() -> bool:
                return bot.done() or await settled(state) >= subscribers or all_sent_long_ago()

            await poll_until(finished_one, deadline)
            finished = time.monotonic()
            stop.set()
            per_process.append(dict(await bot))
        else:
            argv = ["--base-url", api.base_url, "--offset", str(offset_s), "--data-dir", str(data_dir)]
            argv += ["--bot-rate", str(settings.bot_rate_per_s)]
            with workers(processes, argv, state_url) as procs:

                async def finished_all() -> bool:
                    return (
                        any(p.poll() is not None for p in procs)
                        or await settled(state) >= subscribers
                        or all_sent_long_ago()
                    )

                await poll_until(finished_all, deadline)
                finished = time.monotonic()
                for p in procs:
                    p.stdin.close()
                outputs = [await asyncio.to_thread(p.stdout.read) for p in procs]
            for out in outputs:
                lines = [line for line in (out or "").splitlines() if line.startswith("{")]
                per_process.append(json.loads(lines[-1]) if lines else {"error": "no report"})
        recorded = await statuses(state)
    finally:
        await api.stop()
        await state.close()

    per_chat = Counter(int(p["chat_id"]) for p in api.delivered)
    times = [c.at for c in api.calls if c.method == "sendMessage"]
    delivered = len(api.delivered)
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    achieved = delivered / span if span else float(delivered)
    return {
        "subscribers": subscribers,
        "state": "postgresql" if state_url else "sqlite",
        "processes": processes,
        "limit_per_s": rate,
        "bot_rate_per_s": settings.bot_rate_per_s,
        "delivered": delivered,
        "seconds": round(finished - started, 1),
        "achieved_per_s": round(achieved, 2),
        "share_of_limit": round(achieved / rate, 3),
        "lost": sum(1 for chat_id in range(1, subscribers + 1) if per_chat[chat_id] == 0),
        "doubled": sum(1 for n in per_chat.values() if n > 1),
        "answered_429": api.rejected_429,
        "statuses": recorded,
        "sent_by_process": per_process,
    }


async def _worker(args: argparse.Namespace) -> None:
    """One bot process of a multi-process run: deliver until the parent closes our stdin."""
    settings = bot_settings(args.data_dir, args.base_url, os.environ.get("COACH_STATE_URL"), args.bot_rate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    waiter = loop.run_in_executor(None, sys.stdin.read)  # returns at EOF: the parent is done
    waiter.add_done_callback(lambda _f: loop.call_soon_threadsafe(stop.set))
    counted = await run_bot(settings, ShiftedClock(args.offset), stop)
    print(json.dumps(dict(counted)), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=30.0, help="messages a second the stand-in allows")
    parser.add_argument(
        "--bot-rate",
        type=float,
        default=None,
        help="each bot's pace (default: COACH_BOT_RATE_PER_S's default, divided among --processes)",
    )
    parser.add_argument(
        "--state",
        default="sqlite",
        help="sqlite, postgresql (a throwaway server on loopback), or a postgresql:// URL",
    )
    parser.add_argument("--processes", type=int, default=1, help="bot processes sharing the state")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--offset", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if args.worker:
        asyncio.run(_worker(args))
        return 0
    if args.processes > 1 and args.state == "sqlite":
        parser.error("several processes share one PostgreSQL: add --state postgresql")
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nudge-bench-")))
        url = None
        if args.state == "postgresql":
            from tests.pg import running_postgres

            url = stack.enter_context(running_postgres()).create_database("bench")
        elif args.state != "sqlite":
            url = args.state
        result = asyncio.run(
            run_nudge_bench(
                args.subscribers,
                args.rate,
                tmp,
                timeout_s=args.timeout,
                bot_rate=args.bot_rate,
                state_url=url,
                processes=args.processes,
            )
        )
    print(
        f"{result['state']}, {result['processes']} process(es): {result['delivered']} of "
        f"{result['subscribers']} nudges in {result['seconds']} s: {result['achieved_per_s']} msg/s = "
        f"{result['share_of_limit']:.1%} of the {result['limit_per_s']:g}/s limit; lost {result['lost']}, "
        f"doubled {result['doubled']}; 429 answered {result['answered_429']}; sent by process "
        f"{[p.get('sent', 0) for p in result['sent_by_process']]}"
    )
    out = PROJECT_ROOT / "evals" / "results"
    out.mkdir(parents=True, exist_ok=True)
    name = f"nudge_bench_{result['state']}_{result['processes']}p.json"
    (out / name).write_text(json.dumps(result, indent=2), encoding="utf-8")
    target_met = result["share_of_limit"] >= 0.95 and result["lost"] == 0 and result["doubled"] == 0
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())

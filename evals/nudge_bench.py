"""Benchmark: one day's nudges to many subscribers through the Bot API stand-in, which allows `rate`
messages a second in all and answers 429 (retry_after) beyond it; prints the achieved rate, lost and
doubled. Run by hand: `python -m evals.nudge_bench` (10,000 subscribers at 30/s take about 5.5 minutes).

The real delivery path runs: the bot's post-start rebuild finds every subscriber due and queues one
JobQueue job each; each job claims its (subscriber, local date) in SQLite, sends through PTB's
AIORateLimiter over HTTP, and marks it sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bot.app import build_application
from bot.nudges import Nudger
from bot.settings import BotSettings
from bot.state import BotState
from coach.domain import load_domain
from coach.routines import build_library
from coach.settings import PROJECT_ROOT
from ingest.loader import corpus_chunks

TOKEN = "123456789:AAE-bench_Token-never-logged-0123456789"
DAY = date(2026, 6, 1)
# Subscribers in several zones whose local times all fall on 07:00 UTC that day: one broadcast.
ZONES = (("UTC", "07:00"), ("Europe/Berlin", "09:00"), ("America/New_York", "03:00"), ("Asia/Tokyo", "16:00"))


def _library(corpus: Path):  # noqa: ANN202
    """The exercise library ingest would build, from the corpus directly (no embeddings needed here)."""
    chunks, texts, titles = corpus_chunks(corpus)
    return build_library(chunks, texts, domain=load_domain(corpus)), titles


async def run_nudge_bench(
    subscribers: int, rate: float, data_dir: Path, *, timeout_s: float, bot_rate: float | None = None
) -> dict:
    from tests.botapi import BotApiStandIn  # the stand-in the tests use

    api = await BotApiStandIn(token=TOKEN, rate_limit=rate, per_chat_interval_s=1.0).start()
    settings = BotSettings(
        data_dir=data_dir,
        _env_file=None,
        TELEGRAM_BOT_TOKEN=TOKEN,
        telegram_base_url=api.base_url,
        **({"bot_rate_per_s": bot_rate} if bot_rate else {}),
    )
    state = BotState(settings.bot_db).open()
    state.db.execute("BEGIN")
    for chat_id in range(1, subscribers + 1):
        zone, local_time = ZONES[chat_id % len(ZONES)]
        state.subscribe(chat_id, local_time, zone, "daily", DAY)
    state.db.execute("COMMIT")

    offset = datetime(2026, 6, 1, 7, 0, tzinfo=UTC) - datetime.now(UTC)

    class Clock:  # real time, shifted so the run starts at the nudge time
        def now(self) -> datetime:
            return datetime.now(UTC) + offset

    library, titles = _library(settings.corpus_dir)
    # The bot without a CoachService: the benchmark exercises delivery only, so the nudger is built here
    # exactly as post_init builds it.
    application = build_application(settings, service=None, clock=Clock())  # type: ignore[arg-type]
    await application.initialize()
    await application.start()
    nudger = Nudger(
        bot=application.bot,
        job_queue=application.job_queue,
        state=state,
        library=library,
        titles=titles,
        grace=timedelta(minutes=settings.nudge_grace_min),
        retries=settings.nudge_send_retries,
        clock=Clock(),
    )
    started = time.monotonic()
    try:
        nudger.rebuild()  # every subscriber is due: one job each, now
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            done = state.db.execute("SELECT COUNT(*) FROM deliveries WHERE status != 'claimed'").fetchone()[0]
            if done >= subscribers:
                break
            await asyncio.sleep(0.5)
        finished = time.monotonic()
    finally:
        await application.stop()
        await application.shutdown()
        await api.stop()
    statuses = Counter(row[0] for row in state.db.execute("SELECT status FROM deliveries"))
    state.close()

    per_chat = Counter(int(p["chat_id"]) for p in api.delivered)
    times = [c.at for c in api.calls if c.method == "sendMessage"]
    delivered = len(api.delivered)
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    achieved = delivered / span if span else float(delivered)
    return {
        "subscribers": subscribers,
        "limit_per_s": rate,
        "bot_rate_per_s": settings.bot_rate_per_s,
        "delivered": delivered,
        "seconds": round(finished - started, 1),
        "achieved_per_s": round(achieved, 2),
        "share_of_limit": round(achieved / rate, 3),
        "lost": sum(1 for chat_id in range(1, subscribers + 1) if per_chat[chat_id] == 0),
        "doubled": sum(1 for n in per_chat.values() if n > 1),
        "answered_429": api.rejected_429,
        "statuses": dict(statuses),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=30.0, help="messages a second the stand-in allows")
    parser.add_argument(
        "--bot-rate",
        type=float,
        default=None,
        help="the bot's pace (default: COACH_BOT_RATE_PER_S's default)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    with tempfile.TemporaryDirectory(prefix="nudge-bench-") as tmp:
        result = asyncio.run(
            run_nudge_bench(
                args.subscribers, args.rate, Path(tmp), timeout_s=args.timeout, bot_rate=args.bot_rate
            )
        )
    print(
        f"{result['delivered']} of {result['subscribers']} nudges in {result['seconds']} s: "
        f"{result['achieved_per_s']} msg/s = {result['share_of_limit']:.1%} of the {result['limit_per_s']:g}/s "
        f"limit; lost {result['lost']}, doubled {result['doubled']}; 429 answered {result['answered_429']}"
    )
    out = PROJECT_ROOT / "evals" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nudge_bench.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    target_met = result["share_of_limit"] >= 0.95 and result["lost"] == 0 and result["doubled"] == 0
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())

"""A runner can only change their own subscription: the real bot and nudger against the Bot API stand-in."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from pathlib import Path

from telegram import Update

from coach.answer import CoachService
from tests.botapi import BotApiStandIn, callback, message, parse_html
from tests.conftest import make_bot_settings
from tests.integration.test_nudges import TOKEN, Bot, FakeClock, buttons, nudges

A, B, GROUP = 42, 77, -1001


async def test_a_runner_can_only_change_their_own_subscription(
    service: CoachService, tmp_path: Path, record
) -> None:
    api = await BotApiStandIn(token=TOKEN).start()
    clock = FakeClock(datetime(2026, 6, 1, 5, 0, tzinfo=UTC))  # 07:00 in Berlin
    settings = make_bot_settings(
        tmp_path / "bot-data", TELEGRAM_BOT_TOKEN=TOKEN, telegram_base_url=api.base_url
    )
    bot = await Bot(settings, service, clock).start()
    ids = itertools.count(1)

    async def send(update: dict) -> None:
        await bot.app.process_update(Update.de_json(update, bot.app.bot))

    try:
        state = bot.state
        await send(message(next(ids), "/subscribe 07:30 Europe/Berlin daily", user_id=A))
        clock.set(2026, 6, 1, 5, 30)
        await bot.nudger.run_due()
        done = buttons(nudges(api, A)[-1])["Done"]

        # The chat id always comes from the update; a button's data carries only a date.
        await send(callback(next(ids), done, user_id=B))
        streak = (await state.stats(A, date(2026, 6, 1))).streak
        record(
            "isolation",
            f"runner B replays runner A's Done button ({done!r}) from B's own chat",
            "A's nudge is not marked done",
            f"A's streak {streak}",
            streak == 0,
        )

        await send(message(next(ids), "/unsubscribe", user_id=B))
        sub = await state.subscription(A)
        record(
            "isolation",
            "runner B sends /unsubscribe",
            "A stays subscribed and A's next nudge stays due",
            f"A active: {sub.active}, A's next nudge: {sub.next_due_at}",
            sub.active and sub.next_due_at == datetime(2026, 6, 2, 5, 30, tzinfo=UTC),
        )

        await send(message(next(ids), "/subscribe 06:00 UTC twice-weekly", user_id=B))
        sub = await state.subscription(A)
        record(
            "isolation",
            "runner B subscribes at another time and zone",
            "A's time, zone and frequency unchanged",
            f"A: {sub.local_time} {sub.tz} {sub.frequency}",
            (sub.local_time, sub.tz, sub.frequency) == ("07:30", "Europe/Berlin", "daily"),
        )

        group = {"id": GROUP, "type": "group", "title": "Parkrun club"}
        await send(message(next(ids), "/subscribe 05:00 Asia/Tokyo daily", user_id=A, chat=group))
        await send(message(next(ids), "/unsubscribe", user_id=B, chat=group))
        replies = [parse_html(m["text"]) for m in api.sent(chat_id=GROUP)]
        group_sub, a_sub = await state.subscription(GROUP), await state.subscription(A)
        record(
            "isolation",
            "/subscribe and /unsubscribe sent in a group chat (any member could change a group's)",
            "refused with 'use a private chat'; no group subscription; A's own unchanged",
            f"replies {replies}; group subscription {group_sub}; A active {a_sub.active}",
            len(replies) == 2
            and all("private chat" in r for r in replies)
            and group_sub is None
            and a_sub.active,
        )

        await send(callback(next(ids), done, user_id=A))  # control: the owner's own press counts
        streak = (await state.stats(A, date(2026, 6, 2))).streak
        record(
            "isolation",
            "runner A presses their own Done button (control)",
            "counted: streak 1",
            f"A's streak {streak}",
            streak == 1,
        )
    finally:
        await bot.stop()
        await api.stop()

"""The bot with COACH_STATE_URL naming a real PostgreSQL server: it answers through the Bot API stand-in,
keeps update ids, turns and subscriptions there (no SQLite file appears), and never logs the password."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest

from bot.settings import BotSettings
from bot.state import open_bot_state
from coach.answer import CoachService
from coach.settings import Settings
from tests.botapi import BotApiStandIn, message, parse_html
from tests.integration.test_bot import KNEES, TOKEN, RunningBot, answers
from tests.pg import Server

pytestmark = pytest.mark.integration


def settings_from_env(data_dir: Path, api: BotApiStandIn) -> BotSettings:
    """As a deployment configures it: every value from the environment."""
    return BotSettings(
        _env_file=None, data_dir=data_dir, TELEGRAM_BOT_TOKEN=TOKEN, telegram_base_url=api.base_url
    )


async def test_the_bot_keeps_its_state_in_postgresql(
    service: CoachService, tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COACH_STATE_URL", postgres_url)
    api = await BotApiStandIn(token=TOKEN).start()
    settings = settings_from_env(tmp_path / "data", api)
    assert settings.state_url is not None
    update = message(700, KNEES, user_id=51)
    try:
        first = await RunningBot(settings, service).start()
        try:
            api.push(update)
            await api.wait_for(lambda: answers(api, 51))
            api.push(message(701, "/subscribe 07:30 Europe/Berlin daily", user_id=51))
            await api.wait_for(lambda: len(api.sent(chat_id=51)) >= 2)
        finally:
            await first.stop()
        # A restart: the replayed update is recognised from PostgreSQL and not answered again.
        second = await RunningBot(settings, service).start()
        try:
            api.push(update, message(702, "how do I strengthen my glutes?", user_id=52))
            await api.wait_for(lambda: answers(api, 52))
            await api.wait_for(lambda: api.confirmed_past(702))
        finally:
            await second.stop()
    finally:
        await api.stop()
    assert len(answers(api, 51)) == 1
    assert "Subscribed: a routine daily at 07:30 (Europe/Berlin)" in parse_html(
        api.sent(chat_id=51)[-1]["text"]
    )
    state = await open_bot_state(settings)
    try:
        assert "postgresql" in state.where
        assert [t.question for t in await state.history(51, 10)] == [KNEES]
        assert await state.last_update_id() == 702
        assert (await state.subscription(51)).tz == "Europe/Berlin"
    finally:
        await state.close()
    assert not settings.bot_db.exists()  # nothing went to SQLite


async def test_coach_bot_on_postgresql_answers_and_never_logs_the_password(
    api: BotApiStandIn, real_index: Settings, postgres: Server
) -> None:
    """`coach -v bot` as a deployment runs it, COACH_STATE_URL in its environment."""
    url = postgres.create_database("coach_bot_cli")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COACH_")},
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "COACH_TELEGRAM_BASE_URL": api.base_url,
        "COACH_DATA_DIR": str(real_index.data_dir),
        "COACH_STATE_URL": url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "-v", "bot", env=env, stdout=PIPE, stderr=PIPE
    )
    try:
        api.push(message(800, KNEES, user_id=61))
        await api.wait_for(lambda: answers(api, 61), within=120)
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = (stdout + stderr).decode()
    assert process.returncode == 0, output
    assert "bot state at postgresql+psycopg://coach:***@127.0.0.1" in output
    assert postgres.password not in output

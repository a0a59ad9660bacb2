"""The bot as a runner meets it, end to end against the Bot API stand-in over HTTP: answers that are
never lost (transient faults retried, then reported once), long stories and edited messages answered,
red flags found anywhere in a long message, edits that change nothing tolerated."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from bot.handlers import UNDELIVERED, UNSURE
from coach.answer import CoachService
from tests.botapi import BotApiStandIn, Fault, message, parse_html
from tests.integration.test_bot import KNEES, RunningBot, answers, bot_settings

pytestmark = pytest.mark.integration


@pytest.fixture
async def bot(api: BotApiStandIn, service: CoachService, tmp_path: Path):
    running = await RunningBot(bot_settings(tmp_path / "bot-data", api), service).start()
    yield running
    await running.stop()


async def test_transient_send_faults_are_retried_and_the_answer_arrives_once(
    api: BotApiStandIn, bot: RunningBot
) -> None:
    api.fail_next(42, Fault(502, "Bad Gateway"), Fault(malformed=True), Fault(500, "Internal Server Error"))
    api.push(message(1, KNEES))
    await api.wait_for(lambda: api.delivered_to(42), within=30)
    await asyncio.sleep(0.5)
    assert len(api.sent(chat_id=42)) == 4  # three faults, then the answer
    [delivered] = api.delivered_to(42)
    assert delivered.get("reply_markup")  # the answer itself, with its buttons
    assert [e for _, e in api.errors] == ["Bad Gateway", "malformed reply", "Internal Server Error"]


async def test_a_timed_out_answer_is_not_sent_twice_and_the_runner_is_told(
    api: BotApiStandIn, bot: RunningBot
) -> None:
    api.fail_next(42, Fault(hang_s=6.0))  # past PTB's 5-s read timeout
    api.push(message(1, KNEES))
    await api.wait_for(lambda: api.delivered_to(42), within=30)
    await asyncio.sleep(1.5)  # the stand-in answers the hung request (500: it was not delivered)
    [note] = api.delivered_to(42)
    assert parse_html(note["text"]) == parse_html(UNSURE.format(question=KNEES))
    assert len(api.sent(chat_id=42)) == 2  # the answer once (timed out), the note once


async def test_an_answer_that_cannot_be_sent_is_reported_once(
    api: BotApiStandIn, bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    api.fail_next(42, *[Fault(503, "Service Unavailable")] * 4)  # every try of the answer fails
    api.push(message(1, KNEES))
    await api.wait_for(lambda: api.delivered_to(42), within=30)
    await asyncio.sleep(0.5)
    [report] = api.delivered_to(42)
    assert parse_html(report["text"]) == parse_html(UNDELIVERED.format(question=KNEES))
    assert "answer not delivered after retries" in caplog.text
    # The bot is fine afterwards: the next question is answered.
    api.push(message(2, "how do I strengthen my glutes?"))
    await api.wait_for(lambda: answers(api, 42))


async def test_a_long_story_is_answered_by_its_question_and_says_so(
    api: BotApiStandIn, bot: RunningBot
) -> None:
    story = (
        "I started running two years ago and now run about 40 km a week, mostly on roads. " * 30
        + "Lately my left knee aches on the outside after long runs, and my hips feel tired. "
        + "What should I do about my knee pain?"
    )
    assert 2000 < len(story) <= 4096  # over the coach's question limit, within Telegram's message limit
    api.push(message(1, story))
    await api.wait_for(lambda: api.sent(chat_id=42), within=30)
    [reply] = api.sent(chat_id=42)
    shown = parse_html(reply["text"])
    assert shown.startswith(
        "Your message was long, so I answered its last question: “What should I do about my knee pain?”"
    )
    assert reply.get("reply_markup")  # a real cited answer, with its buttons
    assert "[1]" in shown
    assert api.errors == []


async def test_a_red_flag_anywhere_in_a_long_story_is_answered_first(
    api: BotApiStandIn, bot: RunningBot
) -> None:
    story = (
        "Yesterday during my tempo run I had chest pain and felt dizzy, so I stopped. "
        + "Otherwise training is going well and I run five times a week on trails and roads. " * 30
        + "How often should I train my glutes?"
    )
    assert len(story) > 2000
    api.push(message(1, story))
    await api.wait_for(lambda: api.sent(chat_id=42), within=30)
    await asyncio.sleep(0.5)
    [reply] = api.sent(chat_id=42)
    assert parse_html(reply["text"]).startswith("Please stop running and get help from a professional")


async def test_an_edit_that_changes_nothing_is_not_an_error(api: BotApiStandIn, bot: RunningBot) -> None:
    """Two quick presses of one button under the /subscribe message (the second from the same, stale
    view): the second edit would change nothing; Telegram refuses it and the bot lets it be."""
    api.push(message(1, "/subscribe"))
    await api.wait_for(lambda: api.live_keyboards(42))
    flow = api.last(42)
    update = api.press_update(42, flow.message_id, "07:30", update_id=2)
    api.push(update, {**update, "update_id": 3, "callback_query": {**update["callback_query"], "id": "cq-3"}})
    await api.wait_for(lambda: len(api.sent("answerCallbackQuery")) == 2)
    await asyncio.sleep(0.5)
    assert flow.text.startswith("07:30 in which time zone?")
    assert flow.edits == 1
    assert len(api.messages(42)) == 1  # no second message, no "something went wrong"
    assert [e for _, e in api.errors if "not modified" in e]


async def test_no_typing_after_a_refusal(api: BotApiStandIn, service: CoachService, tmp_path: Path) -> None:
    running = await RunningBot(bot_settings(tmp_path / "one", api, bot_burst=1), service).start()
    try:
        api.push(message(1, KNEES))
        await api.wait_for(lambda: answers(api, 42))
        api.push(message(2, "how do I strengthen my glutes?"))
        await api.wait_for(lambda: len(api.sent(chat_id=42)) == 2)
        await asyncio.sleep(4.5)  # longer than the typing loop's period: any "typing…" would come now
    finally:
        await running.stop()
    refusal = api.sent(chat_id=42)[-1]
    assert refusal["reply_parameters"]["message_id"] == 2
    refused_at = [c.at for c in api.calls if c.method == "sendMessage"][-1]
    assert [c.method for c in api.calls if c.at > refused_at and c.method != "getUpdates"] == []
    typing = [c for c in api.calls if c.method == "sendChatAction"]
    assert typing  # the answer had its "typing…"

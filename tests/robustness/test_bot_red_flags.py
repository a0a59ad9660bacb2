"""Through the bot (real PTB, Bot API stand-in on loopback): a red flag is answered within 2 s inside a
burst, while the runner's previous question is still being answered (ahead of the questions queued
behind it), and with the Chroma server hung; every message the per-user gate refuses gets a reply."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from bot.handlers import TOO_FAST
from coach.answer import CoachService
from coach.embeddings import fake_embeddings
from coach.safety import URGENT_PREFIX
from ingest.pipeline import run_ingest
from tests.botapi import BotApiStandIn, message, parse_html
from tests.conftest import make_settings
from tests.integration.test_bot import TOKEN, RunningBot, bot_settings
from tests.integration.test_chroma_server import start_chroma
from tests.integration.test_llm_backends import llm_service
from tests.robustness.phrasings import KNEES
from tests.standin import Hang, StandIn

WITHIN_S = 2.0
RED_FLAG = "my chest is being crushed and my left arm has gone numb"
REFUSALS = (TOO_FAST.split("{")[0],)


def hung_line(replies: list[str]) -> bool:
    """The service's one line for an index that did not answer within the deadline."""
    return any("did not answer within" in " ".join(t.split()) for t in replies)


def urgent_reply(api: BotApiStandIn, chat_id: int) -> tuple[dict, float] | None:
    """The first urgent reply to a chat and when it was sent (monotonic), if any."""
    for call in api.calls:
        mine = call.method == "sendMessage" and int(call.params["chat_id"]) == chat_id
        if mine and parse_html(call.params["text"]).startswith(URGENT_PREFIX):
            return call.params, call.at
    return None


def texts(api: BotApiStandIn, chat_id: int) -> list[str]:
    return [parse_html(m["text"]) for m in api.sent(chat_id=chat_id)]


async def test_red_flag_inside_a_burst(service: CoachService, tmp_path: Path, record) -> None:
    api = await BotApiStandIn(token=TOKEN).start()
    running = await RunningBot(bot_settings(tmp_path / "bot", api), service).start()
    try:
        burst = [KNEES, "how do I strengthen my glutes?", "what are clams?", RED_FLAG, KNEES, "hip drop?"]
        started = time.monotonic()
        api.push(*(message(10 + i, text, user_id=7) for i, text in enumerate(burst)))
        await api.wait_for(lambda: urgent_reply(api, 7) is not None, within=30)
        await api.wait_for(lambda: len(api.sent(chat_id=7)) >= len(burst), within=60)
    finally:
        await running.stop()
        await api.stop()
    _, at = urgent_reply(api, 7)
    replies = api.sent(chat_id=7)
    refused = [m for m in replies if parse_html(m["text"]).startswith(REFUSALS)]
    quoted = sorted(m["reply_parameters"]["message_id"] for m in refused)
    record(
        "bot",
        f"a red flag 4th in a burst of {len(burst)} from one runner",
        f"the urgent reply within {WITHIN_S:.0f} s; every other message one reply (an answer, or a refusal "
        "quoting it)",
        f"urgent after {at - started:.2f} s; {len(replies)} replies to {len(burst)} messages, "
        f"{len(refused)} refusals quoting messages {quoted}",
        at - started <= WITHIN_S
        and len(replies) == len(burst)
        and len(set(quoted)) == len(refused)
        and 13 not in quoted,
    )


async def test_red_flag_while_the_previous_question_is_still_answered(
    service: CoachService, tmp_path: Path, record
) -> None:
    with StandIn(default=Hang()) as model:
        coach = llm_service(service, model.url, answer_deadline_s=8.0)
        api = await BotApiStandIn(token=TOKEN).start()
        running = await RunningBot(bot_settings(tmp_path / "bot", api, answer_deadline_s=8.0), coach).start()
        try:
            api.push(message(1, KNEES, user_id=8))  # the model hangs: this one is in flight for 8 s
            await api.wait_for(lambda: any(c.method == "sendChatAction" for c in api.calls), within=30)
            started = time.monotonic()
            api.push(message(2, RED_FLAG, user_id=8), message(3, "what are clams?", user_id=8))
            await api.wait_for(lambda: urgent_reply(api, 8) is not None)
            busy_replies = texts(api, 8)
            await api.wait_for(lambda: len(api.sent(chat_id=8)) >= 3, within=30)
        finally:
            await running.stop()
            await api.stop()
    _, at = urgent_reply(api, 8)
    after = texts(api, 8)
    record(
        "bot",
        "a red flag while the runner's previous question is still being answered (the model hangs)",
        f"the urgent reply within {WITHIN_S:.0f} s, ahead of the queue; the other message waits its turn "
        "and is answered after the one in flight",
        f"urgent after {at - started:.2f} s; while busy: {[t[:40] for t in busy_replies]}; "
        f"then {[t[:40] for t in after[1:]]}",
        at - started <= WITHIN_S
        and len(busy_replies) == 1
        and busy_replies[0].startswith(URGENT_PREFIX)
        and len(after) == 3
        and not after[2].startswith(REFUSALS),
    )


async def test_red_flag_with_the_chroma_server_hung(tmp_path: Path, record) -> None:
    server = start_chroma(tmp_path / "chroma")
    fake = fake_embeddings()
    stopped = False
    try:
        settings = make_settings(tmp_path / "data", chroma_url=server.url)
        run_ingest(settings, fake)
        coach = CoachService.open(settings, embeddings=fake)
        api = await BotApiStandIn(token=TOKEN).start()
        bot = bot_settings(tmp_path / "bot", api, chroma_url=server.url, answer_deadline_s=3.0)
        running = await RunningBot(bot, coach).start()
        try:
            os.kill(server.process.pid, signal.SIGSTOP)  # accepts connections, answers nothing
            stopped = True
            api.push(message(1, KNEES, user_id=9))
            await api.wait_for(lambda: any(c.method == "sendChatAction" for c in api.calls), within=30)
            started = time.monotonic()
            api.push(message(2, RED_FLAG, user_id=9), message(3, RED_FLAG, user_id=10))
            await api.wait_for(lambda: urgent_reply(api, 9) and urgent_reply(api, 10), within=30)
            await api.wait_for(lambda: hung_line(texts(api, 9)), within=30)
        finally:
            if stopped:
                os.kill(server.process.pid, signal.SIGCONT)  # lets the hung answer thread finish
            await running.stop()
            await api.stop()
    finally:
        if stopped:
            os.kill(server.process.pid, signal.SIGCONT)
        server.stop()
    (_, own), (_, other) = urgent_reply(api, 9), urgent_reply(api, 10)
    record(
        "bot",
        "a red flag with the Chroma server hung (SIGSTOP), from the runner waiting on it and from another",
        f"both urgent replies within {WITHIN_S:.0f} s; the ordinary question gets the one line 'the index did not answer'",
        f"urgent after {own - started:.2f} s and {other - started:.2f} s; replies to the waiting runner: "
        f"{[t[:40] for t in texts(api, 9)]}",
        max(own, other) - started <= WITHIN_S and hung_line(texts(api, 9)),
    )

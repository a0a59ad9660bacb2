"""Nothing from one chat's history appears in another chat's answer (the bot keeps history per chat)."""

from __future__ import annotations

from pathlib import Path

from bot.state import open_bot_state
from coach.answer import CoachService
from tests.botapi import BotApiStandIn, message, parse_html
from tests.integration.test_bot import TOKEN, RunningBot, bot_settings
from tests.integration.test_llm_backends import llm_service
from tests.robustness.helpers import quote_first_passage
from tests.standin import Reply, StandIn

MARKER = "Biscuitzebra"  # a word only chat A ever uses
FOLLOW_UP = "and what about my hips?"


async def test_one_chats_history_never_reaches_another(service: CoachService, tmp_path: Path, record) -> None:
    with StandIn(default=Reply(quote_first_passage)) as model:
        api = await BotApiStandIn(token=TOKEN).start()
        settings = bot_settings(tmp_path / "bot", api)
        running = await RunningBot(settings, llm_service(service, model.url)).start()
        try:
            api.push(message(1, f"my dog {MARKER} runs with me, why do my knees hurt?", user_id=21))
            await api.wait_for(lambda: api.sent(chat_id=21))
            seen_before_b = len(model.chat_requests())
            api.push(message(2, FOLLOW_UP, user_id=22))  # chat B: a follow-up with no history of its own
            await api.wait_for(lambda: api.sent(chat_id=22))
            for_b = model.chat_requests()[seen_before_b:]
            seen_before_a = len(model.chat_requests())
            api.push(message(3, FOLLOW_UP, user_id=21))  # chat A's own follow-up: its history is used
            await api.wait_for(lambda: len(api.sent(chat_id=21)) >= 2)
            for_a = model.chat_requests()[seen_before_a:]
        finally:
            await running.stop()
            await api.stop()
    state = await open_bot_state(settings)
    try:
        history_b = await state.history(22, 10)
        history_a = await state.history(21, 10)
    finally:
        await state.close()
    reply_b = " ".join(parse_html(m["text"]) for m in api.sent(chat_id=22))
    sent_for_b = "\n".join(r.text() for r in for_b)
    leaked = [
        where
        for where, text in [
            ("chat B's reply", reply_b),
            ("the model requests for chat B", sent_for_b),
            ("chat B's stored history", " ".join(t.question + t.answer for t in history_b)),
        ]
        if MARKER.lower() in text.lower()
    ]
    control = any(MARKER in r.text() for r in for_a)  # the same check finds chat A's own history
    record(
        "isolation",
        f"chat A mentions {MARKER!r}; chat B then asks {FOLLOW_UP!r} (LLM backend, condensing on)",
        "nothing of chat A in chat B's reply, model requests or history; chat A's follow-up does use it",
        f"{len(for_b)} model requests for B, {len(history_b)} turns stored for B, {len(history_a)} for A; "
        + (f"LEAK in {', '.join(leaked)}" if leaked else "no leak")
        + f"; A's own follow-up sent its history to the model: {control}",
        not leaked and control and len(history_b) == 1,
    )
    # /reset in one chat forgets that chat only
    api = await BotApiStandIn(token=TOKEN).start()
    running = await RunningBot(bot_settings(tmp_path / "bot", api), service).start()
    try:
        api.push(message(10, "/reset", user_id=22))
        await api.wait_for(lambda: api.sent(chat_id=22))
    finally:
        await running.stop()
        await api.stop()
    state = await open_bot_state(settings)
    try:
        after_a, after_b = await state.history(21, 10), await state.history(22, 10)
    finally:
        await state.close()
    record(
        "isolation",
        "chat B sends /reset",
        "chat B's history is gone, chat A's is untouched",
        f"chat A turns: {len(history_a)} -> {len(after_a)}; chat B turns: {len(history_b)} -> {len(after_b)}",
        len(after_a) == len(history_a) == 2 and after_b == [],
    )

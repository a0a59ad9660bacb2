"""End-to-end: the real bot (PTB's run_polling / run_webhook, real CoachService) against a Bot API stand-in
on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import threading
from asyncio.subprocess import PIPE
from pathlib import Path

import httpx
import pytest

from bot.app import build_application, run_bot
from bot.formatting import MAX_MESSAGE, render_answer, utf16_len, visible_text
from bot.handlers import EXPIRED, SOMETHING_WRONG, TEXT_ONLY, TOO_FAST
from coach.answer import CoachService
from coach.models import Answer, Disagreement, Position
from coach.settings import Settings
from tests.botapi import BotApiStandIn, callback, message, parse_html, photo, sticker, voice
from tests.conftest import make_bot_settings

pytestmark = pytest.mark.integration

TOKEN = "123456789:AAE-test_Token-never-logged-0123456789"
KNEES = "why do my knees hurt?"


class RunningBot:
    """The production entry point, run_bot(), on its own thread and event loop, stopped the way a signal
    would stop it."""

    def __init__(self, settings: Settings, service: CoachService) -> None:
        self.application = build_application(settings, service)
        self.settings = settings
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            run_bot(self.application, self.settings, poll_timeout=1, handle_signals=False)
        except BaseException as exc:  # reported by stop()
            self.failure = exc

    async def start(self) -> RunningBot:
        self._thread.start()
        for _ in range(400):
            if self.application.running or self.failure or not self._thread.is_alive():
                break
            await asyncio.sleep(0.05)
        assert self.application.running, f"bot did not start: {self.failure!r}"
        return self

    async def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.application.stop_running)
        await asyncio.to_thread(self._thread.join, 30)
        assert not self._thread.is_alive(), "bot did not stop"
        assert self.failure is None, repr(self.failure)


def bot_settings(data_dir: Path, api: BotApiStandIn, **extra: object) -> Settings:
    return make_bot_settings(data_dir, TELEGRAM_BOT_TOKEN=TOKEN, telegram_base_url=api.base_url, **extra)


@pytest.fixture
async def bot(api: BotApiStandIn, service: CoachService, tmp_path: Path):
    running = await RunningBot(bot_settings(tmp_path / "bot-data", api), service).start()
    yield running
    await running.stop()


def answers(api: BotApiStandIn, chat_id: int) -> list[dict]:
    """Messages that carry answer buttons (the last part of every answer with citations)."""
    return [m for m in api.sent(chat_id=chat_id) if m.get("reply_markup")]


def buttons(msg: dict) -> dict[str, str]:
    return {b["text"]: b["callback_data"] for row in msg["reply_markup"]["inline_keyboard"] for b in row}


async def test_question_gets_a_cited_answer_and_the_sources_button_works(
    api: BotApiStandIn, bot: RunningBot, service: CoachService
) -> None:
    expected = await service.aanswer(KNEES)
    assert expected.citations, "the real index answers this question with citations"
    api.push(message(1, KNEES))
    await api.wait_for(lambda: answers(api, 42))

    [msg] = answers(api, 42)
    assert msg["parse_mode"] == "HTML"
    assert msg["link_preview_options"] == {"is_disabled": True}
    shown = parse_html(msg["text"])
    for c in expected.citations:
        assert f"[{c.n}]" in shown
    assert shown == visible_text(render_answer(expected))
    typing = [c for c in api.calls if c.method == "sendChatAction"]
    assert typing[0].params["action"] == "typing"
    assert typing[0].at <= next(c.at for c in api.calls if c.method == "sendMessage")
    # No disagreement map on this branch: the answer has none, so there is no such button.
    assert expected.disagreements == []
    labels = buttons(msg)
    assert list(labels) == ["Sources"]
    assert len(labels["Sources"].encode()) <= 64

    shown = api.last(42)
    api.press(42, shown.message_id, "Sources", update_id=2)
    await api.wait_for(lambda: len(api.sent(chat_id=42)) >= 2 and not api.live_keyboards(42))
    [ack] = api.sent("answerCallbackQuery")
    assert ack["callback_query_id"] == "cq-2"
    quotes = parse_html(api.sent(chat_id=42)[-1]["text"])
    for c in expected.citations:
        assert c.quote in quotes
        assert c.title in quotes
    assert api.used_but_live(42) == []  # the used button is gone; the answer's text is unchanged
    assert api.shown[(42, shown.message_id)].text == shown.text

    # A button whose answer has expired (a restart, or evicted): a toast, and no chat message.
    api.push(callback(3, "src:nosuchid"))
    await api.wait_for(lambda: len(api.sent("answerCallbackQuery")) >= 2)
    assert api.sent("answerCallbackQuery")[-1]["text"] == EXPIRED
    await asyncio.sleep(0.3)
    assert len(api.sent(chat_id=42)) == 2
    assert api.errors == []


async def test_commands(api: BotApiStandIn, bot: RunningBot, service: CoachService) -> None:
    assert [c["command"] for c in api.sent("setMyCommands")[0]["commands"]] == [
        "start",
        "help",
        "sources",
        "debates",
        "reset",
        "subscribe",
        "unsubscribe",
        "routine",
        "stats",
    ]
    script = ["/start", "/help", "/sources", "/debates", "/reset", "/frobnicate<b>&"]
    for i, text in enumerate(script, start=10):
        api.push(message(i, text))
        await api.wait_for(lambda n=i - 9: len(api.sent(chat_id=42)) >= n)
    start, help_, sources, debates, reset, unknown = (parse_html(m["text"]) for m in api.sent(chat_id=42))
    for source in service.sources():
        assert source.title in start
        assert source.title in sources
    assert "I am not a medical service" in start
    # What the library covers, from the library's own description (corpus/domain.toml).
    assert service.domain.description
    assert service.domain.description in start
    assert "any question about running" not in start
    assert "/reset" in help_
    assert "nothing to forget" in reset
    # /debates is short: the topics, and one button per topic for its evidence.
    items = service.debates()
    assert len(debates) < 600
    listing = next(m for m in api.messages(42) if m.text.startswith("Where the articles disagree"))
    labels = [b["text"] for row in listing.reply_markup["inline_keyboard"] for b in row]
    assert len(labels) == len(items)
    for item in items:
        assert item["topic"] in debates
        assert item["positions"][0]["evidence"][0]["quote"] not in debates
    titles = {s.source_id: s.title for s in service.sources()}

    # The runner taps every topic quickly, each press from the list as it looked before any edit.
    before = len(api.sent(chat_id=42))
    view = api.as_message(listing)
    for n in range(len(items)):
        update = api.press_update(42, listing.message_id, labels[n], update_id=100 + n)
        update["callback_query"]["message"] = view
        api.push(update)
    await api.wait_for(lambda: len(api.sent(chat_id=42)) == before + len(items))
    await api.wait_for(lambda: not api.live_keyboards(42))  # every topic read: no buttons left
    shown_topics = [parse_html(m["text"]) for m in api.sent(chat_id=42)[before:]]
    for item in items:
        [evidence] = [t for t in shown_topics if t.startswith(item["topic"])]
        assert evidence.startswith(item["topic"])
        for position in item["positions"]:
            for e in position["evidence"]:
                assert evidence.count(e["quote"]) == 1  # each quote once, with its article's title
                assert titles[e["source_id"]] in evidence
                assert e["source_id"] not in evidence  # titles, not slugs
    assert unknown.startswith("I don't know /frobnicate<b>&")
    assert "/sources" in unknown
    assert api.errors == []


async def test_reset_forgets_history(api: BotApiStandIn, bot: RunningBot, tmp_path: Path) -> None:
    api.push(message(20, KNEES))
    await api.wait_for(lambda: answers(api, 42))
    api.push(message(21, "/reset"))
    await api.wait_for(lambda: "Forgotten" in api.sent(chat_id=42)[-1]["text"])


async def test_markup_in_a_question_is_escaped(api: BotApiStandIn, bot: RunningBot) -> None:
    api.push(message(30, "<b>why</b> do my knees hurt & ache?"))
    await api.wait_for(lambda: answers(api, 42) or api.errors)
    assert api.errors == []
    assert "[1]" in parse_html(answers(api, 42)[0]["text"])
    # Markup and nothing else: no words are left once it is removed, so the user is asked for words
    # (no buttons), still valid HTML.
    api.push(message(31, "<script>alert('&amp;')</script> & <b>"))
    await api.wait_for(lambda: len(api.sent(chat_id=42)) >= 2)
    assert api.errors == []
    assert "in words" in parse_html(api.sent(chat_id=42)[-1]["text"])


class LongService(CoachService):
    """The real service, with each answer made long: its real cited text repeated (and the question,
    markup and all, quoted in it) past 6,000 characters; the citations stay the real ones."""

    async def aanswer(self, question: str, history=()) -> Answer:  # noqa: ANN001
        real = await super().aanswer(question, history)
        paragraphs = [f"You asked: {question}"]
        while sum(len(p) for p in paragraphs) < 6500:
            paragraphs.append(real.answer)
        return real.model_copy(update={"answer": "\n\n".join(paragraphs)})


def clone(service: CoachService, cls: type[CoachService]) -> CoachService:
    twin = object.__new__(cls)
    twin.__dict__.update(service.__dict__)
    return twin


async def test_a_long_answer_is_split(api: BotApiStandIn, service: CoachService, tmp_path: Path) -> None:
    running = await RunningBot(bot_settings(tmp_path / "d", api), clone(service, LongService)).start()
    try:
        question = "<b>why</b> do my knees hurt & ache?"
        api.push(message(40, question))
        await api.wait_for(lambda: answers(api, 42) or api.errors)
    finally:
        await running.stop()
    assert api.errors == []
    parts = api.sent(chat_id=42)
    expected = await clone(service, LongService).aanswer(question)
    assert len(expected.answer) > 6000
    assert len(parts) >= 2
    assert all(utf16_len(p["text"]) <= MAX_MESSAGE for p in parts)
    assert [bool(p.get("reply_markup")) for p in parts] == [False] * (len(parts) - 1) + [True]
    shown = [parse_html(p["text"]) for p in parts]
    assert shown[0].startswith(f"You asked: {question}")
    assert " ".join(" ".join(shown).split()) == " ".join(visible_text(render_answer(expected)).split())
    # every cut fell between paragraphs: each part ends where a paragraph of the whole answer ends
    whole = visible_text(render_answer(expected))
    for part in shown[:-1]:
        assert part.rstrip() + "\n\n" in whole


class EchoService(CoachService):
    """The real service, each answer opening with the question it answers (to see the order)."""

    async def aanswer(self, question: str, history=()) -> Answer:  # noqa: ANN001
        real = await super().aanswer(question, history)
        return real.model_copy(update={"answer": f"You asked: {question}\n\n{real.answer}"})


class DisagreeingService(CoachService):
    """The real service, with a disagreement laid over each answer's real citations: the disagreement map
    (#3) is not on this branch, and this exercises the button's plumbing end to end."""

    async def aanswer(self, question: str, history=()) -> Answer:  # noqa: ANN001
        real = await super().aanswer(question, history)
        positions = [
            Position(summary="The glutes drive you forward & up.", citations=[1]),
            Position(summary="They keep the <hips> centred.", citations=[2]),
        ]
        conflict = Disagreement(
            topic="Do the glutes propel you?", kind="conflicting_opinions", positions=positions
        )
        return real.model_copy(update={"disagreements": [conflict]})


async def test_the_disagreement_button(api: BotApiStandIn, service: CoachService, tmp_path: Path) -> None:
    running = await RunningBot(bot_settings(tmp_path / "d", api), clone(service, DisagreeingService)).start()
    try:
        api.push(message(45, KNEES))
        await api.wait_for(lambda: answers(api, 42))
        labels = buttons(answers(api, 42)[0])
        assert list(labels) == ["Sources", "Where sources disagree"]
        api.press(42, api.last(42).message_id, "Where sources disagree", update_id=46)
        await api.wait_for(lambda: len(api.sent(chat_id=42)) >= 2 and not api.used_but_live(42))
    finally:
        await running.stop()
    shown = parse_html(api.sent(chat_id=42)[-1]["text"])
    assert "Do the glutes propel you? (conflicting opinions)" in shown
    assert "– They keep the <hips> centred. [2]" in shown
    expected = await service.aanswer(KNEES)
    # The panel quotes the passages its positions cite ([1] and [2]), not the rest of the answer's.
    assert expected.citations[1].quote in shown
    assert expected.citations[0].quote in shown
    for c in expected.citations[2:]:
        assert f"[{c.n}]" not in shown
    # The used button is gone, the other stays.
    assert [b["text"] for row in api.messages(42)[0].reply_markup["inline_keyboard"] for b in row] == [
        "Sources"
    ]
    assert api.errors == []


async def test_unusable_questions_get_the_reason(api: BotApiStandIn, bot: RunningBot) -> None:
    api.push(message(48, "x " * 2000, user_id=43))  # over COACH_MAX_QUESTION_CHARS
    await api.wait_for(lambda: api.sent(chat_id=43), within=10)
    assert "characters long" in parse_html(api.sent(chat_id=43)[0]["text"])


async def test_stickers_photos_voice_edits_and_channel_posts(api: BotApiStandIn, bot: RunningBot) -> None:
    edit = message(53, "why do my hips hurt?", user_id=4, kind="edited_message")
    api.push(
        sticker(50, user_id=1),
        photo(51, user_id=2),
        voice(52, user_id=3),
        edit,
        message(54, "race day tips", user_id=5, kind="channel_post"),
        message(55, KNEES, user_id=6),
        {**edit, "update_id": 56},  # the same edit delivered again under a new update id
    )
    await api.wait_for(lambda: answers(api, 6) and answers(api, 4))
    await api.wait_for(lambda: api.confirmed_past(56))
    await asyncio.sleep(0.5)
    for chat in (1, 2, 3):
        assert [m["text"] for m in api.sent(chat_id=chat)] == [TEXT_ONLY]
    assert len(api.sent(chat_id=4)) == 1  # an edited message is a new question, answered once
    assert api.sent(chat_id=-100123) == []
    assert all(m["text"] != SOMETHING_WRONG for m in api.sent())
    assert api.errors == []


def too_fast_texts() -> list[str]:
    return [TOO_FAST.format(seconds=n) for n in range(1, 61)]


async def test_a_flood_from_one_user_is_bounded_and_every_message_answered(
    api: BotApiStandIn, service: CoachService, tmp_path: Path
) -> None:
    settings = bot_settings(tmp_path / "flood", api, bot_refusals_per_s=20.0)
    running = await RunningBot(settings, clone(service, EchoService)).start()
    try:
        flood = [message(100 + i, f"{KNEES} ({i})", user_id=7) for i in range(30)]
        api.push(*flood, message(200, KNEES, user_id=8))
        await api.wait_for(lambda: answers(api, 8))
        await api.wait_for(lambda: len(api.sent(chat_id=7)) >= len(flood), within=60)
        await asyncio.sleep(1.0)  # anything more from the flood (there must be nothing) would arrive now
    finally:
        await running.stop()
    sent = api.sent(chat_id=7)
    assert len(sent) == len(flood)  # every message gets exactly one reply
    answered = [m for m in sent if m["text"].startswith("You asked:")]
    assert len(answered) == settings.bot_burst  # a burst is queued and answered, not refused
    # ... in the order asked (EchoService quotes each question at the top of its answer)
    asked = [parse_html(m["text"]).split("\n")[0] for m in answered]
    assert asked == [f"You asked: {KNEES} ({i})" for i in range(len(answered))]
    refused = [m for m in sent if not m["text"].startswith("You asked:")]
    assert all(m["text"] in too_fast_texts() for m in refused)
    quoted = [m["reply_parameters"]["message_id"] for m in refused]
    assert len(quoted) == len(set(quoted))
    assert set(quoted) == {100 + i for i in range(settings.bot_burst, 30)}
    # No "typing…" once the last answer is out: the refusals after it come without one.
    last_answer = max(c.at for c in api.calls if c.params.get("text", "").startswith("You asked:"))
    assert not [c for c in api.calls if c.method == "sendChatAction" and c.at > last_answer]
    # The refusals are paced per chat (COACH_BOT_REFUSALS_PER_S), not sent as a flood.
    times = [c.at for c in api.calls if c.method == "sendMessage" and int(c.params["chat_id"]) == 7]
    times = [t for t, m in zip(times, sent, strict=True) if m in refused]
    assert times[-1] - times[0] >= (len(times) - 1) / 20.0 * 0.8
    assert len(answers(api, 8)) == 1  # another user is not held up by the flood
    assert api.errors == []


async def test_an_update_served_twice_across_a_restart_is_answered_once(
    api: BotApiStandIn, service: CoachService, tmp_path: Path
) -> None:
    settings = bot_settings(tmp_path / "restart", api)
    update = message(300, KNEES)
    first = await RunningBot(settings, service).start()
    api.push(update)
    await api.wait_for(lambda: answers(api, 42))
    await first.stop()

    second = await RunningBot(settings, service).start()
    try:
        # the replayed update, and a new one from someone else to show the bot is live and past it
        api.push(update, message(301, "how do I strengthen my glutes?", user_id=43))
        await api.wait_for(lambda: answers(api, 43))
        await api.wait_for(lambda: api.confirmed_past(301))
    finally:
        await second.stop()
    assert len(api.sent(chat_id=42)) == 1
    assert len(answers(api, 43)) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_webhook_rejects_a_wrong_or_missing_secret(
    api: BotApiStandIn, service: CoachService, tmp_path: Path
) -> None:
    port, secret = free_port(), "s3cret_token-42"
    url = f"http://127.0.0.1:{port}/telegram/hook"
    settings = bot_settings(
        tmp_path / "hook",
        api,
        webhook_url=url,
        webhook_secret=secret,
        webhook_listen="127.0.0.1",
        webhook_port=port,
    )
    running = await RunningBot(settings, service).start()
    try:
        [hook] = api.sent("setWebhook")
        assert hook["url"] == url
        assert hook["secret_token"] == secret
        body = message(400, KNEES)
        async with httpx.AsyncClient(timeout=10) as client:
            missing = await client.post(url, json=body)
            wrong = await client.post(url, json=body, headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
            assert (missing.status_code, wrong.status_code) == (403, 403)
            await asyncio.sleep(0.5)
            assert api.sent(chat_id=42) == []
            right = await client.post(url, json=body, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
            assert right.status_code == 200
        await api.wait_for(lambda: answers(api, 42))
    finally:
        await running.stop()
    assert not any(c.method == "getUpdates" for c in api.calls)


class BrokenService(CoachService):
    async def aanswer(self, question: str, history=()) -> Answer:  # noqa: ANN001
        raise RuntimeError(f"backend down at https://api.telegram.org/bot{TOKEN}/sendMessage")


async def test_errors_are_reported_and_the_token_never_logged(
    api: BotApiStandIn, service: CoachService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    running = RunningBot(bot_settings(tmp_path / "err", api), clone(service, BrokenService))
    # Defense in depth: even with httpx logging every request URL, the token is redacted.
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    try:
        await running.start()
        api.push(message(500, KNEES))
        await api.wait_for(lambda: api.sent(chat_id=42))
        await running.stop()
    finally:
        logging.getLogger("httpx").setLevel(logging.WARNING)
    assert [m["text"] for m in api.sent(chat_id=42)] == [SOMETHING_WRONG]
    assert any(r.levelno == logging.ERROR and r.exc_info for r in caplog.records)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)
    assert "[REDACTED]" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage()


async def test_coach_bot_command_runs_and_stops_on_sigint(api: BotApiStandIn, real_index: Settings) -> None:
    """`coach -v bot` as a user runs it: verbose logging on, Ctrl-C stops it, the token is nowhere."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("COACH_")},
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "COACH_TELEGRAM_BASE_URL": api.base_url,
        "COACH_DATA_DIR": str(real_index.data_dir),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "-v", "bot", env=env, stdout=PIPE, stderr=PIPE
    )
    try:
        api.push(message(600, KNEES))
        await api.wait_for(lambda: answers(api, 42), within=120)
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = (stdout + stderr).decode()
    assert process.returncode == 0, output
    assert "getUpdates" in output  # verbose: the requests are logged...
    assert TOKEN not in output  # ...with the token redacted
    assert TOKEN.split(":")[1] not in output
    assert (real_index.data_dir / "bot.sqlite").exists()

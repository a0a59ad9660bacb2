"""Bad input everywhere: CoachService, `coach ask` and its arguments, and the bot over the Bot API stand-in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.handlers import SOMETHING_WRONG
from cli.main import app
from coach.answer import CoachService
from coach.errors import UsageError
from coach.settings import Settings
from tests.botapi import BotApiStandIn, message, parse_html
from tests.contract import assert_contract
from tests.integration.test_bot import TOKEN, RunningBot, bot_settings
from tests.robustness.helpers import describe
from tests.robustness.phrasings import BAD_COMMANDS, BAD_INPUTS, KNEES

INPUT_IDS = [name for name, _ in BAD_INPUTS]


@pytest.mark.parametrize(("name", "text"), BAD_INPUTS, ids=INPUT_IDS)
def test_service(name: str, text: str, service: CoachService, record) -> None:
    try:
        answer = service.answer(text)
    except UsageError as exc:
        message_ = str(exc)
        ok = bool(message_) and "\n" not in message_ and len(message_) < 200
        record(
            "bad input",
            f"[CoachService] {name}",
            "an Answer, or a one-line UsageError",
            f"UsageError: {message_}",
            ok,
        )
        return
    payload = json.loads(answer.model_dump_json())
    try:
        assert_contract(payload)
        problem = ""
    except AssertionError as exc:
        problem = f"; contract broken: {exc}"
    record(
        "bad input",
        f"[CoachService] {name}",
        "an Answer, or a one-line UsageError",
        describe(answer) + problem,
        not problem,
    )


def test_markup_does_not_make_the_coach_abstain(service: CoachService, record) -> None:
    plain = service.answer("why do my knees hurt & ache?")
    marked = service.answer("why do my knees hurt & ache? <script>alert(1)</script>")
    record(
        "bad input",
        "[CoachService] why do my knees hurt & ache? <script>alert(1)</script>",
        "the same answer as without the markup (markup words do not lower coverage)",
        describe(marked),
        not marked.abstained and marked.citations == plain.citations,
    )


def ask(args: list[str], data_dir: Path):  # noqa: ANN201
    return CliRunner().invoke(app, args, env={"COACH_DATA_DIR": str(data_dir)})


def cli_outcome(result) -> tuple[bool, str]:  # noqa: ANN001
    """A clear outcome: exit 0 with the JSON contract, or exit 2 / 1 with one error line and no traceback."""
    if "Traceback" in result.output or result.exception and not isinstance(result.exception, SystemExit):
        return False, f"exit {result.exit_code}, crashed: {result.exception!r}"
    if result.exit_code == 0:
        try:
            payload = json.loads(result.stdout)
            assert_contract(payload)
        except (ValueError, AssertionError) as exc:
            return False, f"exit 0 but no valid JSON answer: {exc}"
        kind = "urgent" if payload["urgent"] else "abstained" if payload["abstained"] else "answered"
        return True, f"exit 0, {kind}, {len(payload['citations'])} citations"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    one_line = len(lines) == 1 and lines[0].startswith(("error:", "Usage:")) or "Usage:" in result.stderr
    return (
        one_line and result.exit_code == 2,
        f"exit {result.exit_code}: {' '.join(result.stderr.split())[:150]}",
    )


@pytest.mark.parametrize(("name", "text"), BAD_INPUTS, ids=INPUT_IDS)
def test_coach_ask(name: str, text: str, real_index: Settings, record) -> None:
    ok, result = cli_outcome(ask(["ask", "--json", text], real_index.data_dir))
    record(
        "bad input",
        f"[coach ask --json] {name}",
        "exit 0 with the JSON contract, or exit 2 with one line",
        result,
        ok,
    )


MALFORMED_ARGS = [
    ["nosuchcommand"],
    ["ask"],
    ["ask", "--bogus", KNEES],
    ["ask", KNEES, "and another argument"],
    ["debates", "--json", "extra"],
    ["ingest", "--rebuild=maybe"],
    ["--verbose=3", "ask", KNEES],
]


@pytest.mark.parametrize("args", MALFORMED_ARGS, ids=[" ".join(a) for a in MALFORMED_ARGS])
def test_coach_malformed_arguments(args: list[str], real_index: Settings, record) -> None:
    result = ask(args, real_index.data_dir)
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    said = " ".join(result.stderr.split())
    record(
        "bad input",
        f"[coach] {' '.join(args)}",
        "exit 2 with a usage message, no traceback",
        f"exit {result.exit_code}: {said[:150]}",
        result.exit_code == 2 and not crashed and "Traceback" not in result.output and bool(said),
    )


async def test_bot(service: CoachService, tmp_path: Path, record) -> None:
    """Every bad input and bad command, each from its own user, to one running bot; then a real question."""
    api = await BotApiStandIn(token=TOKEN).start()
    running = await RunningBot(bot_settings(tmp_path / "bot", api), service).start()
    sent: list[tuple[str, int, str]] = []  # (kind, chat id, text)
    try:
        # Telegram never delivers an empty message, so the bot is not asked to answer one.
        cases = [("message", text, name) for name, text in BAD_INPUTS if text]
        cases += [("command", text, text) for text in BAD_COMMANDS]
        for i, (kind, text, _name) in enumerate(cases):
            chat = 2000 + i
            api.push(message(1000 + i, text, user_id=chat))
            sent.append((kind, chat, text))
        for _kind, chat, _text in sent:
            await api.wait_for(lambda c=chat: api.sent(chat_id=c), within=60)
        api.push(message(1999, KNEES, user_id=2999))  # still running: a real question is answered
        await api.wait_for(lambda: api.sent(chat_id=2999), within=60)
    finally:
        await running.stop()
        await api.stop()
    for (kind, chat, _text), (_k, _t, name) in zip(sent, cases, strict=True):
        replies = api.sent(chat_id=chat)
        shown = [parse_html(m["text"]) for m in replies]
        ok = len(replies) >= 1 and SOMETHING_WRONG not in shown and all(s.strip() for s in shown)
        if kind == "command":
            ok = ok and (shown[0].startswith("I don't know /") or bool(re.search(r"\w", shown[0])))
        record(
            "bad input",
            f"[bot {kind}] {name if kind == 'message' else name[:80]}",
            "a clear reply (valid Telegram HTML), never 'something went wrong'",
            f"{len(replies)} replies: {' '.join(shown[0].split())[:120] if shown else '(none)'}",
            ok,
        )
    final = api.sent(chat_id=2999)
    record(
        "fault",
        "[bot] a real question after all the bad input",
        "answered with citations: the bot kept running",
        f"{len(final)} replies, Sources button: {bool(final and final[-1].get('reply_markup'))}",
        bool(final and final[-1].get("reply_markup")) and api.errors == [],
    )

"""One deadline, owned by the service: with the model or the Chroma server hung, `coach chat` and the bot
still answer (the marked extractive fallback, or one clear line) within the deadline plus a second, and
the hung call is cancelled, not left running.

The hung Chroma server is a real `chroma run` frozen with SIGSTOP after the coach has opened it: its
kernel still accepts connections, nothing answers. The hung model is the stand-in holding the request."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coach.answer import NOTE_UNAVAILABLE, CoachService
from coach.embeddings import load_minilm
from coach.errors import StoreError
from coach.settings import Settings
from ingest.pipeline import run_ingest
from tests.botapi import BotApiStandIn, parse_html
from tests.conftest import make_settings
from tests.integration.test_bot import TOKEN, RunningBot, bot_settings, message
from tests.integration.test_chroma_server import ChromaServer, start_chroma
from tests.integration.test_llm_backends import llm_service
from tests.standin import Hang, StandIn

pytestmark = pytest.mark.integration

KNEES = "why do my knees hurt?"
DEADLINE_S = 2.0
SLACK_S = 1.0  # the bound: an answer within the deadline plus one second


@pytest.fixture(scope="module")
def chroma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChromaServer, Settings]]:
    server = start_chroma(tmp_path_factory.mktemp("chroma") / "server")
    try:
        settings = make_settings(
            tmp_path_factory.mktemp("data"), chroma_url=server.url, answer_deadline_s=DEADLINE_S
        )
        run_ingest(settings, load_minilm())
        yield server, settings
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()


@contextlib.contextmanager
def frozen(server: ChromaServer) -> Iterator[None]:
    """The server stops answering (SIGSTOP) and resumes afterwards, whatever the test did."""
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


async def test_a_hung_index_gives_one_line_in_time_and_answers_again_after(chroma) -> None:
    server, settings = chroma
    service = CoachService.open(settings)
    assert (await service.aanswer(KNEES)).citations  # the async client is made and used
    with frozen(server):
        start = time.monotonic()
        with pytest.raises(StoreError, match="did not answer within 2 s") as raised:
            await service.aanswer(KNEES)
        seconds = time.monotonic() - start
    assert seconds <= DEADLINE_S + SLACK_S, seconds
    assert "\n" not in str(raised.value)
    assert (await service.aanswer(KNEES)).citations  # the next question is answered again


async def test_the_bot_replies_one_line_in_time_with_the_index_hung(chroma, tmp_path: Path) -> None:
    server, settings = chroma
    service = CoachService.open(settings)
    api = await BotApiStandIn(token=TOKEN).start()
    running = await RunningBot(
        bot_settings(tmp_path / "bot", api, answer_deadline_s=DEADLINE_S), service
    ).start()
    try:
        with frozen(server):
            start = time.monotonic()
            api.push(message(1, KNEES, user_id=5))
            await api.wait_for(lambda: api.sent(chat_id=5), within=10)
            seconds = time.monotonic() - start
        api.push(message(2, KNEES, user_id=6))  # another runner, once the index is back
        await api.wait_for(lambda: api.sent(chat_id=6), within=10)
    finally:
        await running.stop()
        await api.stop()
    first, second = parse_html(api.sent(chat_id=5)[0]["text"]), parse_html(api.sent(chat_id=6)[0]["text"])
    assert seconds <= DEADLINE_S + SLACK_S, seconds
    assert "did not answer within 2 s" in first
    assert "[1]" in second  # the index answers again once it is back


async def test_the_bot_with_a_hung_model_answers_in_time_and_cancels_the_call(
    service, tmp_path: Path
) -> None:
    with StandIn(default=Hang()) as model:
        coach = llm_service(service, model.url, answer_deadline_s=DEADLINE_S)
        api = await BotApiStandIn(token=TOKEN).start()
        settings = bot_settings(tmp_path / "bot", api, answer_deadline_s=DEADLINE_S)
        running = await RunningBot(settings, coach).start()
        try:
            start = time.monotonic()
            api.push(message(1, KNEES, user_id=7))
            await api.wait_for(lambda: api.sent(chat_id=7), within=10)
            seconds = time.monotonic() - start
            replied_at = time.monotonic()
        finally:
            await running.stop()
            await api.stop()
        closed = list(model.closed_by_client)
    assert seconds <= DEADLINE_S + SLACK_S, seconds
    assert parse_html(api.sent(chat_id=7)[0]["text"]).startswith(NOTE_UNAVAILABLE)
    # The hung request was cancelled (the client hung up) before the reply went out: nothing is left
    # waiting on the model after the deadline.
    assert closed, "the hung model call was never cancelled"
    assert closed[0] <= replied_at


class Chat:
    """`coach chat` in a subprocess: a line in, what it printed (stdout and stderr) until its next prompt."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "chat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **env},
        )
        self.out = ""
        self.err = ""

    def until_prompt(self, within: float) -> tuple[str, str, float]:
        """Read until "you> " appears on stdout; (stdout, stderr, seconds waited)."""
        start = time.monotonic()
        out_from, err_from = len(self.out), len(self.err)
        streams = {self.process.stdout.fileno(): "out", self.process.stderr.fileno(): "err"}
        while "you> " not in self.out[out_from:]:
            left = within - (time.monotonic() - start)
            assert left > 0, f"no prompt within {within} s: {self.out[out_from:]!r} {self.err[err_from:]!r}"
            readable, _, _ = select.select(list(streams), [], [], left)
            for fd in readable:
                chunk = os.read(fd, 65536).decode("utf-8", "replace")
                assert chunk or self.process.poll() is None, f"chat exited: {self.err[-2000:]}"
                if streams[fd] == "out":
                    self.out += chunk
                else:
                    self.err += chunk
        return self.out[out_from:], self.err[err_from:], time.monotonic() - start

    def ask(self, question: str, within: float) -> tuple[str, str, float]:
        self.process.stdin.write(question.encode() + b"\n")
        self.process.stdin.flush()
        return self.until_prompt(within)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def test_coach_chat_with_the_index_hung_says_so_in_time_and_goes_on(chroma) -> None:
    server, settings = chroma
    chat = Chat(
        {
            "COACH_DATA_DIR": str(settings.data_dir),
            "COACH_CHROMA_URL": server.url,
            "COACH_ANSWER_DEADLINE_S": str(DEADLINE_S),
        }
    )
    try:
        chat.until_prompt(within=60)  # model load and opening the index
        with frozen(server):
            out, err, seconds = chat.ask(KNEES, within=DEADLINE_S + 10)
        again, _, _ = chat.ask(KNEES, within=30)
    finally:
        chat.close()
    assert seconds <= DEADLINE_S + SLACK_S, (seconds, out, err)
    assert "did not answer within 2 s" in " ".join(err.split())
    assert "[1]" in again


def test_coach_chat_with_a_hung_model_gives_the_marked_fallback_in_time(real_index) -> None:
    with StandIn(default=Hang()) as model:
        chat = Chat(
            {
                "COACH_DATA_DIR": str(real_index.data_dir),
                "COACH_LLM": "openai:stand-in",
                "COACH_LLM_BASE_URL": f"{model.url}/v1",
                "COACH_ANSWER_DEADLINE_S": str(DEADLINE_S),
            }
        )
        try:
            chat.until_prompt(within=60)
            out, err, seconds = chat.ask(KNEES, within=DEADLINE_S + 10)
            answered_at = time.monotonic()
        finally:
            chat.close()
        closed = list(model.closed_by_client)
    assert seconds <= DEADLINE_S + SLACK_S, (seconds, err)
    assert NOTE_UNAVAILABLE in " ".join(out.split())
    assert "[1]" in out
    assert closed, "the hung model call was never cancelled"
    assert closed[0] <= answered_at

"""Faults: a locked, corrupt or foreign index, an unreachable Chroma server, a hung or failing model, a
locked bot database, a Bot API that times out. Each gets a clear message, nothing stored is lost."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.handlers import SOMETHING_WRONG, UNSURE
from cli.main import app
from coach.answer import EXTRACTIVE, NOTE_UNAVAILABLE, CoachService
from coach.embeddings import fake_embeddings, load_minilm
from coach.errors import CoachError, IndexMismatchError, StoreError
from coach.settings import Settings
from ingest.pipeline import INDEX_BATCH, run_ingest
from tests.botapi import BotApiStandIn, message, parse_html
from tests.conftest import make_settings
from tests.integration.test_bot import TOKEN, RunningBot, bot_settings
from tests.integration.test_llm_backends import llm_service
from tests.robustness.phrasings import KNEES
from tests.standin import Fail, Hang, StandIn

LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute(sys.argv[2])
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
"""


@contextlib.contextmanager
def locked(path: Path, statement: str = "BEGIN EXCLUSIVE") -> Iterator[None]:
    """Another process holding a SQLite lock on `path` until the block ends."""
    process = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(path), statement],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        yield
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def copy_index(real_index: Settings, target: Path) -> Settings:
    """A private copy of the session's index (Chroma caches clients by path, so each test needs its own)."""
    shutil.copytree(real_index.data_dir, target)
    return make_settings(target)


def attempt(fn) -> tuple[str, float]:  # noqa: ANN001
    """What a user would see: the answer's kind or the error's one line, and how long it took."""
    start = time.monotonic()
    try:
        outcome = fn()
    except CoachError as exc:
        return f"{type(exc).__name__}: {exc}", time.monotonic() - start
    return f"ok: {outcome}", time.monotonic() - start


def ids_of(settings: Settings) -> list[str]:
    db = sqlite3.connect(settings.chroma_dir / "chroma.sqlite3")
    try:
        return sorted(r[0] for r in db.execute("SELECT embedding_id FROM embeddings"))
    finally:
        db.close()


def test_index_locked_by_another_writer(real_index: Settings, tmp_path: Path, record) -> None:
    settings = copy_index(real_index, tmp_path / "data")
    before = ids_of(settings)
    database = settings.chroma_dir / "chroma.sqlite3"
    with locked(database, "BEGIN EXCLUSIVE"):
        opened, open_s = attempt(lambda: CoachService.open(settings).answer(KNEES).abstained)
        cli = CliRunner().invoke(app, ["ask", KNEES], env={"COACH_DATA_DIR": str(settings.data_dir)})
    record(
        "fault",
        "index locked by another process (BEGIN EXCLUSIVE on chroma.sqlite3): open the coach",
        "a one-line 'locked' error within seconds, not a wait without end",
        f"{opened[:150]} ({open_s:.1f} s)",
        "locked by another process" in opened and open_s < 15,
    )
    cli_lines = [line for line in cli.stderr.splitlines() if line.strip()]
    record(
        "fault",
        "index locked: `coach ask`",
        "exit 1 with one line",
        f"exit {cli.exit_code}: {' '.join(cli.stderr.split())[:150]}",
        cli.exit_code == 1 and len(cli_lines) == 1 and "locked" in cli_lines[0],
    )
    with locked(database, "BEGIN IMMEDIATE"):  # a writer mid-transaction (Chroma's client writes on start)
        reading, read_s = attempt(lambda: CoachService.open(settings).answer(KNEES).abstained)
        writing, write_s = attempt(lambda: run_ingest(settings, load_minilm()).summary())
    record(
        "fault",
        "another writer mid-transaction (BEGIN IMMEDIATE): open the coach, then ingest",
        "both refuse with the one-line 'locked' error within seconds",
        f"open: {reading[:60]}... ({read_s:.1f} s); ingest: {writing[:60]}... ({write_s:.1f} s)",
        "locked by another process" in reading
        and "locked by another process" in writing
        and max(read_s, write_s) < 15,
    )
    after_answer, _ = attempt(lambda: len(CoachService.open(settings).answer(KNEES).citations))
    after = ids_of(settings)
    record(
        "fault",
        "index lock released",
        "answers work again; every chunk still there",
        f"answer: {after_answer}; {len(after)} of {len(before)} chunks",
        after_answer.startswith("ok") and after == before,
    )


def test_corrupt_index(tmp_path: Path, record) -> None:
    settings = make_settings(tmp_path / "data")
    settings.chroma_dir.mkdir(parents=True)
    garbage = b"this is not a sqlite database" * 100
    (settings.chroma_dir / "chroma.sqlite3").write_bytes(garbage)
    opened, _ = attempt(lambda: CoachService.open(settings))
    kept = (settings.chroma_dir / "chroma.sqlite3").read_bytes() == garbage
    record(
        "fault",
        "corrupt index (chroma.sqlite3 is garbage)",
        "a one-line error naming `coach ingest --rebuild`; the file left as it was",
        f"{opened[:160]}; file untouched: {kept}",
        opened.startswith("StoreError") and "--rebuild" in opened and kept,
    )
    rebuilt, _ = attempt(lambda: run_ingest(settings, load_minilm(), rebuild=True).chunks_total)
    aside = list(settings.data_dir.glob("chroma.broken-*"))
    saved = bool(aside) and (aside[0] / "chroma.sqlite3").read_bytes() == garbage
    answer, _ = attempt(lambda: len(CoachService.open(settings).answer(KNEES).citations))
    record(
        "fault",
        "corrupt index, then `coach ingest --rebuild`",
        "a new index that answers; the corrupt one kept aside",
        f"rebuild: {rebuilt}; answer citations: {answer}; kept aside: {saved}",
        rebuilt.startswith("ok") and answer.startswith("ok") and answer != "ok: 0" and saved,
    )


def test_index_from_another_embedding_model(tmp_path: Path, record) -> None:
    settings = make_settings(tmp_path / "data")
    run_ingest(settings, fake_embeddings(dim=32))
    opened, _ = attempt(lambda: CoachService.open(settings))
    record(
        "fault",
        "index built with another embedding model",
        "refused with one line naming both models and `coach ingest --rebuild`",
        opened[:200],
        opened.startswith(IndexMismatchError.__name__)
        and "fake-deterministic" in opened
        and "--rebuild" in opened,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_chroma_server_unreachable(tmp_path: Path, record) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(tmp_path / "data", chroma_url=url)
    opened, seconds = attempt(lambda: CoachService.open(settings))
    cli = CliRunner().invoke(
        app, ["ask", KNEES], env={"COACH_DATA_DIR": str(tmp_path / "data"), "COACH_CHROMA_URL": url}
    )
    record(
        "fault",
        "Chroma server mode, nothing listening at COACH_CHROMA_URL",
        "one line 'not reachable' (library call and `coach ask`, exit 1), within the 5 s heartbeat",
        f"{opened[:140]} ({seconds:.1f} s); coach ask exit {cli.exit_code}",
        opened.startswith(StoreError.__name__)
        and "not reachable" in opened
        and seconds < 6
        and cli.exit_code == 1,
    )


@pytest.mark.parametrize(
    ("name", "script"),
    [("hung (accepts, never answers)", Hang()), ("failing (HTTP 500 on every call)", Fail(500))],
)
def test_model_hung_or_failing(name: str, script, service: CoachService, record) -> None:  # noqa: ANN001
    with StandIn(default=script) as server:
        coach = llm_service(service, server.url, answer_deadline_s=2.0, llm_max_retries=1)
        start = time.monotonic()
        answer = coach.answer(KNEES)
        seconds = time.monotonic() - start
    record(
        "fault",
        f"LLM backend {name}",
        "the extractive answer, marked as such, within the 2 s deadline",
        f"backend {answer.backend}, {len(answer.citations)} citations, {seconds:.1f} s: {answer.answer[:70]}",
        answer.backend == EXTRACTIVE
        and answer.answer.startswith(NOTE_UNAVAILABLE)
        and bool(answer.citations)
        and seconds < 2.0,
    )


async def test_bot_with_a_hung_model(service: CoachService, tmp_path: Path, record) -> None:
    with StandIn(default=Hang()) as server:
        coach = llm_service(service, server.url, answer_deadline_s=2.0)
        api = await BotApiStandIn(token=TOKEN).start()
        settings = bot_settings(tmp_path / "bot", api, answer_deadline_s=2.0)
        running = await RunningBot(settings, coach).start()
        try:
            api.push(message(1, KNEES, user_id=7))
            await api.wait_for(lambda: api.sent(chat_id=7), within=30)
        finally:
            await running.stop()
            await api.stop()
    shown = parse_html(api.sent(chat_id=7)[0]["text"])
    record(
        "fault",
        "bot, LLM backend hung",
        "the user gets the marked extractive answer with its Sources button",
        f"{len(api.sent(chat_id=7))} replies: {shown[:90]}",
        shown.startswith(NOTE_UNAVAILABLE) and bool(api.sent(chat_id=7)[-1].get("reply_markup")),
    )


async def test_bot_database_locked(service: CoachService, tmp_path: Path, record) -> None:
    api = await BotApiStandIn(token=TOKEN).start()
    settings = bot_settings(tmp_path / "bot", api)
    running = await RunningBot(settings, service).start()
    try:
        api.push(message(1, KNEES, user_id=8))  # a turn stored before the fault
        await api.wait_for(lambda: api.sent(chat_id=8))
        with locked(settings.bot_db, "BEGIN EXCLUSIVE"):
            start = time.monotonic()
            api.push(message(2, "how do I strengthen my glutes?", user_id=9))
            await api.wait_for(lambda: api.sent(chat_id=9), within=30)
            locked_s = time.monotonic() - start
            api.push(message(3, "/reset", user_id=8))
            await api.wait_for(lambda: len(api.sent(chat_id=8)) >= 2, within=30)
        api.push(message(4, "what exercises strengthen the glutes?", user_id=10))  # after the lock
        await api.wait_for(lambda: api.sent(chat_id=10), within=30)
        await api.wait_for(lambda: api.confirmed_past(4))
    finally:
        await running.stop()
        await api.stop()
    db = sqlite3.connect(settings.bot_db)
    try:
        chats = dict(db.execute("SELECT chat_id, count(*) FROM chat_turns GROUP BY chat_id").fetchall())
    finally:
        db.close()
    during = parse_html(api.sent(chat_id=9)[0]["text"])
    record(
        "fault",
        "bot.sqlite locked by another process (BEGIN EXCLUSIVE): a question",
        "answered anyway (without history), never 'something went wrong'",
        f"{locked_s:.1f} s: {during[:80]}",
        bool(api.sent(chat_id=9)[-1].get("reply_markup")) and during != SOMETHING_WRONG,
    )
    reset_reply = parse_html(api.sent(chat_id=8)[-1]["text"])
    record(
        "fault",
        "bot.sqlite locked: /reset",
        "a clear 'try again' reply; the chat's history kept",
        f"{reset_reply[:90]}; chat 8 still has {chats.get(8, 0)} turn(s)",
        "try again" in reset_reply and chats.get(8, 0) == 1,
    )
    record(
        "fault",
        "bot.sqlite lock released",
        "the bot answers and stores turns again; the turn stored before the lock is still there",
        f"turns per chat: {chats}",
        chats.get(10) == 1 and chats.get(8) == 1 and bool(api.sent(chat_id=10)[-1].get("reply_markup")),
    )


class SlowBotApi(BotApiStandIn):
    """A Bot API whose first sendMessage hangs past the bot's HTTP timeouts (python-telegram-bot's 5 s)."""

    hang_s: float = 6.5
    hung: int = 0

    async def api_sendMessage(self, params: dict) -> dict:  # noqa: N802 - the Bot API's name
        if self.hung == 0:
            self.hung += 1
            await asyncio.sleep(self.hang_s)
        return await super().api_sendMessage(params)


async def test_bot_api_timing_out(service: CoachService, tmp_path: Path, record) -> None:
    api = await SlowBotApi(token=TOKEN).start()
    running = await RunningBot(bot_settings(tmp_path / "bot", api), service).start()
    try:
        api.push(message(1, KNEES, user_id=11))
        # The first send times out (it arrives, late): not resent, which would double it; the runner is
        # told once that it may not have got through.
        await api.wait_for(lambda: len(api.sent(chat_id=11)) >= 2, within=30)
        api.push(message(2, "how often should I do glute exercises?", user_id=11))
        await api.wait_for(lambda: len(api.sent(chat_id=11)) >= 3, within=30)
        alive = running.application.running
    finally:
        await running.stop()
        await api.stop()
    texts = [parse_html(m["text"]) for m in api.sent(chat_id=11)]
    record(
        "fault",
        "Bot API times out on sendMessage (hangs 6.5 s)",
        "the bot logs it, tells the user once (not resent: it may have arrived), keeps running and answers "
        "the next question",
        f"bot running: {alive}; messages sent: {len(texts)}; after the timeout: {texts[1][:50]!r}; next: {texts[2][:50]!r}",
        alive
        and texts[1] == parse_html(UNSURE.format(question=KNEES))
        and len(texts) == 3
        and bool(api.sent(chat_id=11)[-1].get("reply_markup")),
    )


def reader_thread(number: int, comments: int) -> str:
    """A synthetic article whose many reader comments make many small chunks (and, being comments, no
    claims for the disagreement map, which keeps the builds quick)."""
    lines = [
        f"Reader thread {number}: glute work for club runners",
        "",
        f"Club {number} asked its runners how glute exercises changed their running over one season.",
        "",
        "Comments",
        "",
    ]
    for i in range(comments):
        lines += [
            f"{i + 1}. Runner {number}-{i} says:",
            f"After {i + 2} weeks of clams and bridges in club {number}, my knees felt steadier on hill {i}.",
            "",
        ]
    return "\n".join(lines)


def chunk_rows(settings: Settings) -> tuple[int, int, int]:
    """(vectors, distinct chunk contents, record-manager keys) of an index."""
    from ingest.pipeline import record_manager

    service = CoachService.open(settings)
    chunks = service.store.all_chunks()
    distinct = {(c.source_id, c.section, c.commenter, c.text) for c in chunks}
    return len(chunks), len(distinct), len(record_manager(settings).list_keys())


def test_killed_during_ingest_the_next_run_recovers(tmp_path: Path, record) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(make_settings(tmp_path).corpus_dir, corpus)
    # More chunks than one index batch (about 60 per thread), so that the kill falls between batches.
    for number in range(INDEX_BATCH // 60 + 4):
        (corpus / f"reader-thread-{number}.txt").write_text(reader_thread(number, 60), encoding="utf-8")
    settings = make_settings(tmp_path / "data", corpus_dir=corpus)
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("COACH_")},
        "COACH_DATA_DIR": str(settings.data_dir),
        "COACH_CORPUS_DIR": str(corpus),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ingest"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    recorded_at_kill = 0
    try:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            # the record manager commits after each batch of INDEX_BATCH chunks is in the index
            with contextlib.suppress(sqlite3.Error):
                db = sqlite3.connect(f"file:{settings.record_db}?mode=ro", uri=True, timeout=0.1)
                try:
                    recorded_at_kill = db.execute("SELECT count(*) FROM upsertion_record").fetchone()[0]
                finally:
                    db.close()
            if recorded_at_kill > 0:
                process.kill()  # SIGKILL: no cleanup, no atexit, as a power cut or the OOM killer would
                break
            time.sleep(0.02)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    killed_mid_way = process.returncode == -9 and recorded_at_kill > 0
    report = run_ingest(settings, load_minilm())
    clean = make_settings(tmp_path / "clean", corpus_dir=corpus)
    clean_report = run_ingest(clean, load_minilm())
    vectors, distinct, keys = chunk_rows(settings)
    answer = CoachService.open(settings).answer(KNEES)
    record(
        "fault",
        f"`coach ingest` killed (SIGKILL) mid-way through {clean_report.chunks_total} chunks, then run again",
        "the next run completes: as many chunks as a clean build, no duplicates, records match, answers work",
        f"killed after {recorded_at_kill} chunks were recorded (exit {process.returncode}); next run embedded "
        f"{report.chunks_embedded}, kept {report.chunks_unchanged}; {vectors} vectors, {distinct} distinct, "
        f"{keys} records; clean build {clean_report.chunks_total}; answer citations {len(answer.citations)}",
        killed_mid_way
        and recorded_at_kill < clean_report.chunks_total
        and vectors == distinct == keys == clean_report.chunks_total
        and report.chunks_embedded < clean_report.chunks_total
        and bool(answer.citations),
    )

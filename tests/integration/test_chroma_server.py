"""Server mode for real: `chroma run` on loopback, the corpus ingested into it, the same answers as embedded."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli.main import app
from coach.embeddings import load_minilm
from coach.settings import Settings
from coach.store import HEARTBEAT_PATH
from evals.cases import load_cases
from ingest.pipeline import run_ingest
from tests.conftest import make_settings
from tests.deploy import chroma_healthcheck

pytestmark = pytest.mark.integration

CHROMA = Path(sys.executable).with_name("chroma")  # installed by the chromadb package
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class ChromaServer:
    process: subprocess.Popen
    port: int
    path: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_chroma(path: Path, port: int | None = None) -> ChromaServer:
    """`chroma run` on 127.0.0.1 at a free port, returned once its heartbeat answers (bounded wait)."""
    assert CHROMA.exists(), f"{CHROMA} missing: the chromadb package installs it"
    path.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = path.with_suffix(".log")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ChromaServer(process=process, port=port, path=path, log=log)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"chroma exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(server.url + HEARTBEAT_PATH, timeout=1.0).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"chroma gave no heartbeat in {START_TIMEOUT_S} s: {log.read_text()[-2000:]}"
                )
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise


@pytest.fixture
def chroma_factory(tmp_path: Path) -> Iterator[Callable[[], ChromaServer]]:
    """Starts servers on demand; every one is stopped at teardown, whatever the test did."""
    started: list[ChromaServer] = []

    def start(path: Path | None = None, port: int | None = None) -> ChromaServer:
        server = start_chroma(path or tmp_path / f"chroma-server-{len(started)}", port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ChromaServer, Settings]]:
    """One real server for the module, with the corpus ingested into it by the real model."""
    server = start_chroma(tmp_path_factory.mktemp("chroma") / "server")
    try:
        settings = make_settings(tmp_path_factory.mktemp("server-data"), chroma_url=server.url)
        report = run_ingest(settings, load_minilm())
        assert report.chunks_embedded == report.chunks_total > 30
        yield server, settings
    finally:
        server.stop()


def test_answers_through_the_server_equal_the_embedded_stores(server_index, service) -> None:
    from coach.answer import CoachService
    from coach.models import Turn

    server, settings = server_index
    remote = CoachService.open(settings)
    assert remote.store.client.get_settings().chroma_api_impl == "chromadb.api.fastapi.FastAPI"  # HTTP
    assert service.store.client.get_settings().chroma_api_impl != "chromadb.api.fastapi.FastAPI"
    assert sorted(remote.store.ids()) == sorted(service.store.ids())
    cases = load_cases()
    assert len(cases) >= 10
    for case in cases:
        history = tuple(Turn(question=q, answer="") for q in case.history)
        over_http = remote.answer(case.question, history=history)
        embedded = service.answer(case.question, history=history)
        assert over_http.model_dump() == embedded.model_dump(), case.question
        assert (over_http.abstained, over_http.urgent) == (case.abstain, case.urgent), case.question


def test_reingest_and_rebuild_against_the_server(server_index) -> None:
    _server, settings = server_index
    again = run_ingest(settings, load_minilm())
    assert again.chunks_embedded == 0
    assert again.chunks_unchanged == again.chunks_total
    rebuilt = run_ingest(settings, load_minilm(), rebuild=True)
    assert rebuilt.chunks_embedded == rebuilt.chunks_total == again.chunks_total


def test_doctor_passes_against_the_server(server_index) -> None:
    import json

    server, settings = server_index
    result = CliRunner().invoke(
        app,
        ["doctor", "--json"],
        env={"COACH_DATA_DIR": str(settings.data_dir), "COACH_CHROMA_URL": server.url},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [c["status"] for c in report["checks"]] == ["ok"] * 5
    assert report["settings"]["COACH_CHROMA_URL"] == server.url


def test_compose_health_check_command_against_a_real_server(chroma_factory) -> None:
    """The chroma service's health check (bash /dev/tcp, GET the heartbeat) is healthy on a live server
    and unhealthy once it stops; chroma run is the same server the chromadb/chroma image runs."""
    server = chroma_factory()
    healthy = subprocess.run(chroma_healthcheck(server.port), capture_output=True, timeout=10, check=False)
    assert healthy.returncode == 0, healthy.stderr
    server.stop()
    down = subprocess.run(chroma_healthcheck(server.port), capture_output=True, timeout=10, check=False)
    assert down.returncode != 0


def test_stopped_server_gives_users_one_clear_line(chroma_factory, tmp_path: Path) -> None:
    from coach.answer import CoachService
    from coach.errors import StoreError

    server = chroma_factory()
    env = {"COACH_DATA_DIR": str(tmp_path / "data"), "COACH_CHROMA_URL": server.url}
    runner = CliRunner()
    first = runner.invoke(app, ["ask", "--json", "What exercises strengthen the glutes?"], env=env)
    assert first.exit_code == 0, first.output  # built the index in the server on first use
    open_service = CoachService.open(make_settings(tmp_path / "data", chroma_url=server.url))

    server.stop()

    for args in (["ask", "Why do my knees hurt when I run?"], ["ingest"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: The Chroma server at " + server.url + " is not reachable")
        assert "COACH_CHROMA_URL" in lines[0]
    # A process that opened the store while the server was up (the bot) gets the same message mid-way.
    with pytest.raises(StoreError, match=f"The Chroma server at {server.url} is not reachable"):
        open_service.answer("Why do my knees hurt when I run?")
    doctor = runner.invoke(app, ["doctor"], env=env)
    assert doctor.exit_code == 1
    assert "not reachable" in doctor.stdout
    assert "docker compose up -d chroma" in doctor.stdout


def test_server_lost_during_ingest_is_one_line_and_the_next_ingest_completes(
    chroma_factory, tmp_path
) -> None:
    """The server dies between embedding and writing; after a restart (same data, same URL) the next
    ingest finishes the job with no duplicates. Fake embeddings: the failure path does not need meaning."""
    from langchain_core.embeddings import Embeddings

    from coach.embeddings import NamedEmbeddings, fake_embeddings
    from coach.errors import StoreError
    from ingest.loader import chunk_source, load_corpus

    server = chroma_factory()
    settings = make_settings(tmp_path / "data", chroma_url=server.url)
    fake = fake_embeddings(dim=32)

    class StopsTheServer(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            server.stop()
            return fake.embed_documents(texts)

        def embed_query(self, text: str) -> list[float]:
            return fake.embed_query(text)

    with pytest.raises(StoreError, match=f"^The Chroma server at {server.url} is not reachable"):
        run_ingest(settings, NamedEmbeddings(StopsTheServer(), name=fake.name, dim=fake.dim))

    chroma_factory(path=server.path, port=server.port)  # back, with the collection created before the loss
    resumed = run_ingest(settings, fake)
    expected = sum(len(chunk_source(ls)) for ls in load_corpus(settings.corpus_dir))
    assert resumed.chunks_total == expected
    assert resumed.chunks_embedded == expected  # nothing was written before the loss
    assert run_ingest(settings, fake).chunks_embedded == 0

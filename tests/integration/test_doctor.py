"""`coach doctor` on real indexes: healthy passes; each broken part fails with the fix that mends it."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.integration

EDIT_FROM = "The first step in getting your glutes to fire during running is to become aware of them."


def doctor(env: dict[str, str], *, as_json: bool = True):
    return CliRunner().invoke(app, ["doctor", "--json"] if as_json else ["doctor"], env=env)


def checks(result) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_server() -> Iterator[str]:
    """A loopback HTTP server answering 404 to everything: reachable, like an LLM server's bare root."""

    class NotFound(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_healthy_embedded_index_passes(real_index, tmp_path: Path) -> None:
    from coach.embeddings import load_minilm
    from coach.store import ChunkStore

    result = doctor({"COACH_DATA_DIR": str(real_index.data_dir)})
    assert result.exit_code == 0, result.output
    found = checks(result)
    assert [c["status"] for c in found.values()] == ["ok"] * 5
    count = ChunkStore(real_index, load_minilm()).count()
    assert (
        found["store"]["summary"] == f"{count} chunks in collection 'coach_chunks' at {real_index.chroma_dir}"
    )
    assert "5 articles" in found["corpus"]["summary"]
    assert found["backend"]["summary"].startswith("extractive")
    assert "questions embed on onnxruntime" in found["model"]["summary"]
    without_export = checks(
        doctor({"COACH_DATA_DIR": str(real_index.data_dir), "COACH_MODEL_CACHE_DIR": str(tmp_path)})
    )
    assert without_export["model"]["status"] == "ok"  # slower, not broken
    assert "coach export-model" in without_export["model"]["summary"]

    text = doctor({"COACH_DATA_DIR": str(real_index.data_dir)}, as_json=False)
    assert text.exit_code == 0
    assert "All checks pass." in text.stdout
    assert "COACH_DATA_DIR" in text.stdout


def test_missing_index_fails_with_ingest_hint_and_creates_nothing(tmp_path: Path) -> None:
    data = tmp_path / "never-ingested"
    result = doctor({"COACH_DATA_DIR": str(data)})
    assert result.exit_code == 1
    found = checks(result)
    assert found["store"]["status"] == "fail"
    assert "no index" in found["store"]["summary"]
    assert "coach ingest" in found["store"]["fix"]
    assert found["model"]["status"] == "skipped"
    assert found["corpus"]["status"] == "fail"
    assert "no source snapshot" in found["corpus"]["summary"]
    assert not data.exists()  # the doctor looks, it does not build


def test_stale_snapshot_names_the_changed_article(real_index, corpus_copy: Path) -> None:
    path = corpus_copy / "glutes-fire-in-running.txt"
    path.write_text(path.read_text(encoding="utf-8").replace(EDIT_FROM, "Edited."), encoding="utf-8")
    (corpus_copy / "hill-strides.md").write_text("# Hill strides\n\nShort hills.\n", encoding="utf-8")
    result = doctor({"COACH_DATA_DIR": str(real_index.data_dir), "COACH_CORPUS_DIR": str(corpus_copy)})
    assert result.exit_code == 1
    found = checks(result)
    assert found["store"]["status"] == found["model"]["status"] == "ok"
    corpus = found["corpus"]
    assert corpus["status"] == "fail"
    assert "6 articles" in corpus["summary"]
    assert "changed: glutes-fire-in-running" in corpus["summary"]
    assert "added: hill-strides" in corpus["summary"]
    assert "coach ingest" in corpus["fix"]
    assert "--rebuild" not in corpus["fix"]


def test_foreign_model_index_fails_with_rebuild_hint(tmp_path: Path) -> None:
    from coach.embeddings import fake_embeddings
    from ingest.pipeline import run_ingest
    from tests.conftest import make_settings

    run_ingest(make_settings(tmp_path / "data"), fake_embeddings(dim=32))
    result = doctor({"COACH_DATA_DIR": str(tmp_path / "data")})
    assert result.exit_code == 1
    found = checks(result)
    assert found["store"]["status"] == "ok"
    assert found["model"]["status"] == "fail"
    assert "fake-deterministic (dimension 32)" in found["model"]["summary"]
    assert "coach ingest --rebuild" in found["model"]["fix"]


def test_unreachable_chroma_url_fails_with_start_hint(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = doctor({"COACH_DATA_DIR": str(tmp_path / "d"), "COACH_CHROMA_URL": url})
    assert result.exit_code == 1
    found = checks(result)
    assert found["store"]["status"] == "fail"
    assert f"The Chroma server at {url} is not reachable" in found["store"]["summary"]
    assert "docker compose up -d chroma" in found["store"]["fix"]
    assert "COACH_CHROMA_URL" in found["store"]["fix"]
    assert found["model"]["status"] == "skipped"

    text = doctor({"COACH_DATA_DIR": str(tmp_path / "d"), "COACH_CHROMA_URL": url}, as_json=False)
    assert text.exit_code == 1
    assert "fix: start the Chroma server" in text.stdout
    assert "Traceback" not in text.output


def test_llm_backend_reachable_and_unreachable(real_index, http_server: str) -> None:
    base = {"COACH_DATA_DIR": str(real_index.data_dir), "COACH_LLM": "openai:gpt-4o-mini"}
    up = doctor({**base, "COACH_LLM_BASE_URL": http_server})
    assert up.exit_code == 0, up.output
    assert checks(up)["backend"]["summary"] == f"LLM openai:gpt-4o-mini at {http_server} (reachable)"

    down_url = f"http://127.0.0.1:{free_port()}/v1"
    down = doctor({**base, "COACH_LLM_BASE_URL": down_url})
    assert down.exit_code == 1
    backend = checks(down)["backend"]
    assert backend["status"] == "fail"
    assert "not reachable" in backend["summary"]
    assert "COACH_LLM_BASE_URL" in backend["fix"]

    no_key = doctor(base)
    assert no_key.exit_code == 1
    assert "OPENAI_API_KEY is not set" in checks(no_key)["backend"]["summary"]


def test_secrets_never_appear(real_index, http_server: str) -> None:
    secrets = {
        "TELEGRAM_BOT_TOKEN": "123456:AAE-token-value-xyz",
        "COACH_WEBHOOK_SECRET": "webhook-secret-value",
        "OPENAI_API_KEY": "sk-openai-key-value",
        "ANTHROPIC_API_KEY": "sk-ant-key-value",
    }
    password = "url-password-value"
    llm_url = http_server.replace("http://", f"http://coach:{password}@")
    env = {"COACH_DATA_DIR": str(real_index.data_dir), "COACH_LLM": "openai:x", "COACH_LLM_BASE_URL": llm_url}
    for as_json in (True, False):
        result = doctor({**env, **secrets}, as_json=as_json)
        assert result.exit_code == 0, result.output
        for value in [*secrets.values(), password]:
            assert value not in result.output
    shown = json.loads(doctor({**env, **secrets}).stdout)["settings"]
    assert shown["TELEGRAM_BOT_TOKEN"] == shown["OPENAI_API_KEY"] == "set (hidden)"
    assert shown["COACH_LLM_BASE_URL"] == llm_url.replace(password, "***")


def test_invalid_settings_fail_in_one_report(tmp_path: Path) -> None:
    result = doctor({"COACH_DATA_DIR": str(tmp_path), "COACH_TOP_K": "lots"})
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    found = checks(result)
    assert found["settings"]["status"] == "fail"
    assert "COACH_TOP_K: Input should be a valid integer" in found["settings"]["summary"]
    assert "lots" not in found["settings"]["summary"]  # pydantic's input echo is off (hide_input_in_errors)
    assert {found[n]["status"] for n in ("store", "model", "corpus", "backend")} == {"skipped"}

"""Bad input and broken state: one line on stderr, the right exit code, nothing indexed lost."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

pytestmark = pytest.mark.integration


def run(args: list[str], **env: str):
    return CliRunner().invoke(app, args, env=env)


def assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    ("question", "fragment"),
    [
        ("", "type a question"),
        ("   ", "type a question"),
        ("x" * 20_000, "20,000 characters"),
        ("🏃🔥😅", "in words"),
        ("\u200b\u200c\u200d", "type a question"),
    ],
)
def test_unusable_questions_exit_2(question: str, fragment: str, real_index) -> None:
    assert_one_line_error(run(["ask", question], COACH_DATA_DIR=str(real_index.data_dir)), 2, fragment)


def test_missing_question_is_a_usage_error() -> None:
    assert run(["ask"]).exit_code == 2


def test_missing_corpus_directory(tmp_path: Path) -> None:
    result = run(
        ["ask", "why do my knees hurt?"],
        COACH_DATA_DIR=str(tmp_path / "d"),
        COACH_CORPUS_DIR=str(tmp_path / "nope"),
    )
    assert_one_line_error(result, 1, "does not exist")


def test_corrupt_index_is_reported_and_kept(tmp_path: Path) -> None:
    chroma = tmp_path / "data" / "chroma"
    chroma.mkdir(parents=True)
    garbage = b"this is not a sqlite database" * 100
    (chroma / "chroma.sqlite3").write_bytes(garbage)
    result = run(["ask", "why do my knees hurt?"], COACH_DATA_DIR=str(tmp_path / "data"))
    assert_one_line_error(result, 1, "--rebuild")
    assert (chroma / "chroma.sqlite3").read_bytes() == garbage  # nothing touched

    rebuilt = run(["ingest", "--rebuild"], COACH_DATA_DIR=str(tmp_path / "data"))
    assert rebuilt.exit_code == 0, rebuilt.output
    broken = list((tmp_path / "data").glob("chroma.broken-*"))
    assert len(broken) == 1
    assert (broken[0] / "chroma.sqlite3").read_bytes() == garbage
    answer = run(["ask", "--json", "why do my knees hurt?"], COACH_DATA_DIR=str(tmp_path / "data"))
    assert answer.exit_code == 0, answer.output


def test_foreign_index_is_refused_by_ask(tmp_path: Path) -> None:
    from coach.embeddings import fake_embeddings
    from ingest.pipeline import run_ingest
    from tests.conftest import make_settings

    run_ingest(make_settings(tmp_path / "data"), fake_embeddings(dim=32))
    result = run(["ask", "why do my knees hurt?"], COACH_DATA_DIR=str(tmp_path / "data"))
    assert_one_line_error(result, 1, "was built with fake-deterministic")


def test_unwritable_data_directory(tmp_path: Path) -> None:
    result = run(["ask", "why do my knees hurt?"], COACH_DATA_DIR="/sys/coach-data")
    assert_one_line_error(result, 1, "/sys/coach-data")


def test_read_only_data_directory_with_an_index(tmp_path: Path, real_index) -> None:
    """A data directory mounted read-only: answers still work, ingest says what is wrong, nothing changes."""
    mount_point = tmp_path / f"ro-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(real_index.data_dir), str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount read-only here: {mounted.stderr.decode().strip()}")
    try:
        before = sorted((p.name, p.stat().st_size) for p in mount_point.rglob("*") if p.is_file())
        ingest = run(["ingest"], COACH_DATA_DIR=str(mount_point))
        assert_one_line_error(ingest, 1, "not writable")
        after = sorted((p.name, p.stat().st_size) for p in mount_point.rglob("*") if p.is_file())
        assert before == after
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_sources_lists_the_articles() -> None:
    result = run(["sources"])
    assert result.exit_code == 0
    assert "runners-need-strong-glutes" in result.stdout


@pytest.mark.parametrize("command", [["debates"], ["routine", "--day", "1"], ["eval"]])
def test_commands_other_than_ask_and_chat_never_build_the_index(command: list[str], tmp_path: Path) -> None:
    """Only `coach ask` and `coach chat` ingest first on a fresh clone; the rest say what to run."""
    result = run(command, COACH_DATA_DIR=str(tmp_path / "d"))
    assert_one_line_error(result, 1, "run `coach ingest`")
    assert not (tmp_path / "d" / "chroma").exists()


def test_ask_builds_a_missing_index_first(tmp_path: Path) -> None:
    result = run(["ask", "--json", "why do my knees hurt?"], COACH_DATA_DIR=str(tmp_path / "d"))
    assert result.exit_code == 0, result.output
    assert "Built the index" in result.stderr
    assert '"abstained": false' in result.stdout
    again = run(["ask", "--json", "why do my knees hurt?"], COACH_DATA_DIR=str(tmp_path / "d"))
    assert again.exit_code == 0
    assert "Built the index" not in again.stderr

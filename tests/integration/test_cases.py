"""The gold cases of evals/cases.toml hold through `coach ask --json` (real model, real Chroma)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.main import app
from coach.models import Turn
from coach.safety import URGENT_PREFIX
from coach.text import collapse
from evals.cases import load_cases
from tests.contract import assert_contract, source_text

pytestmark = pytest.mark.integration
CASES = load_cases()


def ask_json(question: str, data_dir: str) -> dict:
    result = CliRunner().invoke(app, ["ask", "--json", question], env={"COACH_DATA_DIR": data_dir})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("case", CASES, ids=[c.question[:40] for c in CASES])
def test_gold_case(case, real_index, service) -> None:
    if case.history:  # a follow-up needs its conversation, which one `coach ask` does not have
        turns = tuple(Turn(question=q, answer="") for q in case.history)
        payload = service.answer(case.question, history=turns).model_dump(mode="json")
    else:
        payload = ask_json(case.question, str(real_index.data_dir))
    assert_contract(payload)
    assert payload["backend"] == "extractive"
    cited = {c["source_id"] for c in payload["citations"]}
    if case.urgent:
        assert payload["urgent"] is True
        assert payload["answer"].startswith(URGENT_PREFIX)
    elif case.abstain:
        assert payload["abstained"] is True
        assert "don't cover" in payload["answer"]
    else:
        assert payload["abstained"] is False
        assert payload["urgent"] is False
        assert cited & set(case.expect_any), f"cited {cited}, expected one of {case.expect_any}"
    if case.disagreement:
        assert_lays_out(payload, case.disagreement.side_a, case.disagreement.side_b)


def position_sources(payload: dict) -> list[list[set[str]]]:
    """For each disagreement, the sources each of its positions cites."""
    by_n = {c["n"]: c["source_id"] for c in payload["citations"]}
    return [[{by_n[n] for n in p["citations"]} for p in d["positions"]] for d in payload["disagreements"]]


def assert_lays_out(payload: dict, side_a: list[str], side_b: list[str]) -> None:
    """Some disagreement has a position citing a side-A source and another citing a side-B source."""
    for positions in position_sources(payload):
        for i, a in enumerate(positions):
            for j, b in enumerate(positions):
                if i != j and a & set(side_a) and b & set(side_b):
                    return
    raise AssertionError(f"no disagreement lays out {side_a} against {side_b}: {payload['disagreements']}")


def test_debates_json_lists_each_disagreement_once_with_verbatim_evidence(real_index) -> None:
    result = CliRunner().invoke(app, ["debates", "--json"], env={"COACH_DATA_DIR": str(real_index.data_dir)})
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert len(entries) >= 2
    topics = [e["topic"] for e in entries]
    assert len(topics) == len(set(topics))
    for entry in entries:
        assert set(entry) == {"topic", "kind", "positions"}
        assert entry["topic"].endswith("?")
        assert entry["kind"] in {"conflicting_opinions", "complementary", "outdated", "misinformation"}
        assert len(entry["positions"]) >= 2
        seen: set[str] = set()
        for position in entry["positions"]:
            assert set(position) == {"summary", "evidence"}
            assert position["summary"]
            sources = {e["source_id"] for e in position["evidence"]}
            assert sources
            assert not sources & seen
            seen |= sources
            for evidence in position["evidence"]:
                assert set(evidence) == {"source_id", "quote"}
                assert collapse(evidence["quote"]) in source_text(evidence["source_id"])
    # the two gold disagreements are in the map, with their sources on opposite sides
    for case in CASES:
        if case.disagreement:
            sides = [
                [{e["source_id"] for e in p["evidence"]} for p in entry["positions"]] for entry in entries
            ]
            assert any(
                a & set(case.disagreement.side_a) and b & set(case.disagreement.side_b)
                for positions in sides
                for a in positions
                for b in positions
                if a is not b
            ), case.question


def test_readable_debates_lists_topics_and_sources(real_index) -> None:
    result = CliRunner().invoke(app, ["debates"], env={"COACH_DATA_DIR": str(real_index.data_dir)})
    assert result.exit_code == 0, result.output
    assert "Do the glutes propel you forward when you run?" in result.stdout
    assert "glutes-fire-in-running" in result.stdout


def test_readable_answer_shows_where_the_sources_disagree(real_index) -> None:
    result = CliRunner().invoke(
        app,
        ["ask", "Do the glutes propel you forward when you run?"],
        env={"COACH_DATA_DIR": str(real_index.data_dir)},
    )
    assert result.exit_code == 0, result.output
    assert "Where the sources disagree" in result.stdout
    assert "Do the glutes propel you forward" in result.stdout


def test_ask_in_a_real_process_builds_the_index_and_answers(tmp_path) -> None:
    env = {**os.environ, "COACH_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "ask", "--json", "why do my knees hurt?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert_contract(payload)
    assert len(payload["citations"]) >= 2
    assert "Traceback" not in proc.stderr


def test_readable_answer_lists_sources(real_index) -> None:
    result = CliRunner().invoke(
        app, ["ask", "why do my knees hurt?"], env={"COACH_DATA_DIR": str(real_index.data_dir)}
    )
    assert result.exit_code == 0, result.output
    assert "Sources" in result.stdout
    assert "[1]" in result.stdout

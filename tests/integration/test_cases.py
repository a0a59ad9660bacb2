"""The gold cases of evals/cases.toml hold through `coach ask --json` (real model, real Chroma)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from coach.answer import Turn
from coach.cli import app
from coach.safety import URGENT_PREFIX
from evals.cases import load_cases
from tests.contract import assert_contract

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


def test_ask_in_a_real_process_builds_the_index_and_answers(tmp_path) -> None:
    env = {**os.environ, "COACH_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.run(
        [sys.executable, "-m", "coach.cli", "ask", "--json", "why do my knees hurt?"],
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

"""A cold `coach ask` on an existing index loads no torch: what it imports, checked in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coach.embeddings import find_export
from coach.settings import Settings

pytestmark = pytest.mark.integration

# Runs the CLI in-process (as the `coach` script does), then prints the answer's backend and every
# module the process loaded.
WRAPPER = """
import json, sys
from cli.main import app
try:
    app(["ask", "--json", sys.argv[1]])
except SystemExit as exit_:
    code = exit_.code
import coach.embeddings as e
backends = sorted({m.backend for m in e._OnnxCache.models.values()})
print(json.dumps({"code": code, "modules": sorted(sys.modules), "onnx_models": backends}), file=sys.stderr)
"""
HEAVY = ("torch", "transformers", "sentence_transformers", "langchain_huggingface", "sklearn")


def ask_in_a_fresh_process(settings: Settings, question: str) -> tuple[dict, dict]:
    env = {**os.environ, "COACH_DATA_DIR": str(settings.data_dir)}
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, question], env=env, capture_output=True, text=True, timeout=120
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), proc.stderr[-2000:]
    return json.loads(proc.stdout), report


@pytest.mark.parametrize(
    "question",
    ["why do my knees hurt?", "Do the glutes propel you forward when you run?", "what is a taper plan?"],
)
def test_coach_ask_answers_without_torch(real_index: Settings, question: str) -> None:
    assert find_export(real_index.model_dir) is not None
    answer, report = ask_in_a_fresh_process(real_index, question)
    assert answer["question"] == question
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert report["onnx_models"] == ["onnxruntime"]  # the question was embedded on the ONNX path
    # LangChain's Chroma wrapper and chat models are for ingest and model backends, not this path.
    assert "langchain_chroma" not in loaded
    assert "langchain_core.language_models" not in report["modules"]


def test_coach_export_model_reuses_the_export(real_index: Settings) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "export-model"],
        env={**os.environ, "COACH_DATA_DIR": str(real_index.data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert str(find_export(real_index.model_dir)) in " ".join(proc.stdout.split())

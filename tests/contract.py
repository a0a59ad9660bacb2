"""Checks of the `coach ask --json` contract (ARCHITECTURE.md), shared by tests."""

from __future__ import annotations

import re

from coach.settings import PROJECT_ROOT
from coach.text import collapse

CORPUS = PROJECT_ROOT / "corpus"


def source_text(source_id: str) -> str:
    matches = sorted(CORPUS.glob(f"{source_id}.*"))
    assert matches, f"no source file for {source_id}"
    return collapse(matches[0].read_text(encoding="utf-8"))


def assert_contract(payload: dict) -> None:
    """Every [n] resolves, n counts from 1, every quote is verbatim in its source file."""
    assert set(payload) == {
        "question",
        "backend",
        "answer",
        "abstained",
        "urgent",
        "citations",
        "disagreements",
    }
    numbers = [c["n"] for c in payload["citations"]]
    assert numbers == list(range(1, len(numbers) + 1))
    marks = {int(m) for m in re.findall(r"\[(\d+)\]", payload["answer"])}
    assert marks <= set(numbers), f"unresolved marks {marks - set(numbers)}"
    assert marks == set(numbers), "a citation is never used in the answer"
    for citation in payload["citations"]:
        assert collapse(citation["quote"]) in source_text(citation["source_id"]), citation["quote"]
        assert citation["chunk_id"].startswith(citation["source_id"] + ":")
    for disagreement in payload["disagreements"]:
        for position in disagreement["positions"]:
            assert set(position["citations"]) <= set(numbers)
    if payload["abstained"]:
        assert payload["citations"] == []

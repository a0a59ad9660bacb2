"""Checks of the `coach ask --json` contract (ARCHITECTURE.md), shared by tests."""

from __future__ import annotations

import re
from pathlib import Path

from coach.settings import PROJECT_ROOT
from coach.text import collapse
from ingest.clean import clean_html
from ingest.loader import read_article

CORPUS = PROJECT_ROOT / "corpus"


def source_text(source_id: str, corpus: Path = CORPUS) -> str:
    """The source file's text as quotes must match it: white space collapsed, after the repair every
    article gets at load (mojibake fixed, invisible characters dropped, NFC; identity on clean text),
    and for HTML the page's extracted text."""
    matches = sorted(p for p in corpus.glob(f"{source_id}.*") if p.suffix != ".toml")
    assert matches, f"no source file for {source_id}"
    text = read_article(matches[0], max_article_mb=1000)
    if matches[0].suffix.lower() in (".html", ".htm"):
        # an HTML page's text is its main content as trafilatura extracts it (list items numbered, tags
        # gone): what ingest indexes and quotes from
        text = clean_html(text, title="")[1]
    return collapse(text)


def assert_contract(payload: dict, corpus: Path = CORPUS) -> None:
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
    # A citation is used by the answer's text or by a disagreement's position (its evidence).
    position_marks = {n for d in payload["disagreements"] for p in d["positions"] for n in p["citations"]}
    assert marks | position_marks == set(numbers), "a citation is never used in the answer"
    for citation in payload["citations"]:
        assert collapse(citation["quote"]) in source_text(citation["source_id"], corpus), citation["quote"]
        assert citation["chunk_id"].startswith(citation["source_id"] + ":")
    by_n = {c["n"]: c for c in payload["citations"]}
    for disagreement in payload["disagreements"]:
        assert disagreement["kind"] in {"conflicting_opinions", "complementary", "outdated", "misinformation"}
        assert len(disagreement["positions"]) >= 2
        seen: set[str] = set()
        for position in disagreement["positions"]:
            assert position["citations"], "a position without evidence"
            assert set(position["citations"]) <= set(numbers)
            sources = {by_n[n]["source_id"] for n in position["citations"]}
            assert not sources & seen, "two positions of one disagreement cite one source"
            seen |= sources
    if payload["abstained"] or payload["urgent"]:
        assert payload["disagreements"] == []
    if payload["abstained"]:
        assert payload["citations"] == []

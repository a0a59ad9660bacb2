"""The answer check before anything leaves CoachService, over a real Chroma store with fake embeddings."""

from __future__ import annotations

import pytest

from coach.answer import CoachService
from coach.embeddings import fake_embeddings
from coach.extractive import Draft
from coach.models import Citation
from ingest.pipeline import run_ingest
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def fake_service(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("fake"))
    embeddings = fake_embeddings()
    run_ingest(settings, embeddings)
    return CoachService.open(settings, embeddings=embeddings)


def test_unverifiable_citations_are_dropped_and_the_rest_renumbered(fake_service) -> None:
    retrieval = fake_service.retrieve("why do my knees hurt?")
    chunk = retrieval.hits[0].chunk
    real_quote = chunk.text.splitlines()[0].split(". ")[0]
    draft = Draft(
        text=f"• invented claim [1]\n• {real_quote} [2]\n• unretrieved [3]",
        citations=[
            Citation(
                n=1,
                source_id=chunk.source_id,
                title="t",
                chunk_id=chunk.chunk_id,
                quote="Glutes cure everything.",
            ),
            Citation(n=2, source_id=chunk.source_id, title="t", chunk_id=chunk.chunk_id, quote=real_quote),
            Citation(n=3, source_id=chunk.source_id, title="t", chunk_id="not-retrieved", quote=real_quote),
        ],
    )
    checked = fake_service._verified(draft, retrieval)
    assert checked.text == f"• {real_quote} [1]"
    assert [(c.n, c.quote) for c in checked.citations] == [(1, real_quote)]


def test_red_flag_comes_before_retrieval(fake_service) -> None:
    answer = fake_service.answer("I fainted during my run and my chest hurts")
    assert answer.urgent is True
    assert answer.citations == []


def test_every_answer_cites_only_retrieved_verbatim_passages(fake_service) -> None:
    answer = fake_service.answer("What exercises strengthen the glutes?")
    for citation in answer.citations:
        assert citation.quote in fake_service.snapshot[citation.source_id]["text"]


def _entry(evidence_by_side: list[list[tuple[str, str, str]]], vector: list[float]):
    from coach.debates import Evidence, MapDisagreement, MapPosition

    return MapDisagreement(
        topic="Is it true?",
        kind="conflicting_opinions",
        rule="negation",
        positions=[
            MapPosition(
                summary=f"side {i}",
                evidence=[Evidence(source_id=s, chunk_id=c, quote=q) for s, c, q in side],
            )
            for i, side in enumerate(evidence_by_side)
        ],
        vectors=[vector],
    )


def _two_sources(service):
    chunks = [c for c in service.lexical.chunks if c.kind == "article"]
    first = chunks[0]
    second = next(c for c in chunks if c.source_id != first.source_id)
    return [(c.source_id, c.chunk_id, c.text.splitlines()[0]) for c in (first, second)]


def test_disagreement_evidence_is_verified_and_cited_after_the_answer(fake_service, monkeypatch) -> None:
    from coach.debates import DebateMap

    retrieval = fake_service.retrieve("why do my knees hurt?")
    (s1, c1, q1), (s2, c2, q2) = _two_sources(fake_service)
    entry = _entry(
        [
            [(s1, c1, q1), (s1, c1, "Glutes cure everything."), (s1, f"{s1}:nonexistent", q1)],
            [(s2, c2, q2)],
        ],
        retrieval.query_embedding,
    )
    monkeypatch.setattr(fake_service, "debate_map", DebateMap(key="k", disagreements=[entry]))
    own = Citation(n=1, source_id="x", title="t", chunk_id="x:1", quote="own")
    citations, disagreements = fake_service._disagreements("q", retrieval, [own])
    assert [p.citations for p in disagreements[0].positions] == [[2], [3]]
    assert [(c.n, c.chunk_id) for c in citations] == [(1, "x:1"), (2, c1), (3, c2)]


def test_a_disagreement_left_with_one_verified_side_is_not_shown(fake_service, monkeypatch) -> None:
    from coach.debates import DebateMap

    retrieval = fake_service.retrieve("why do my knees hurt?")
    (s1, c1, q1), (s2, c2, _q2) = _two_sources(fake_service)
    entry = _entry([[(s1, c1, q1)], [(s2, c2, "An invented quote.")]], retrieval.query_embedding)
    monkeypatch.setattr(fake_service, "debate_map", DebateMap(key="k", disagreements=[entry]))
    citations, disagreements = fake_service._disagreements("q", retrieval, [])
    assert (citations, disagreements) == ([], [])

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
    return CoachService.open(settings, embeddings=embeddings, auto_ingest=False)


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

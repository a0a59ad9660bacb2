"""The scale check in small (the full one is `coach bench`): a generated library ingested, re-ingested
unchanged, and with one article edited. Each article's claims are analysed once; a re-ingest works on
what changed only, and ends where a build from scratch ends. Fake embeddings: this is about what is
recomputed, not about what the map finds (the seed and second corpora test that with the real model):
a bag-of-words embedder with a fixed rule, so sentences sharing words are close and the map has work."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings

from coach.answer import CoachService
from coach.debates import PAIRS_FILE, build_map, read_map, source_dates
from coach.domain import load_domain
from coach.embeddings import NamedEmbeddings
from coach.retrieval import LexicalIndex
from coach.routines import read_library
from evals.library_gen import write_library
from ingest.loader import corpus_chunks
from ingest.pipeline import run_ingest
from tests.conftest import make_settings

pytestmark = pytest.mark.integration
ARTICLES = 12


class BagOfWords(Embeddings):
    """Each word a fixed random direction (seeded by its hash); a text is the normalised sum."""

    dim = 64

    def _vector(self, text: str) -> list[float]:
        total = np.zeros(self.dim)
        for word in re.findall(r"[a-z]+", text.lower()):
            seed = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)
            total += np.random.default_rng(seed).normal(size=self.dim)
        norm = np.linalg.norm(total)
        return (total / norm if norm else total).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class Recording(BagOfWords):
    """The same, keeping every text it is asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts.extend(texts)
        return super().embed_documents(texts)


def fake_embeddings() -> NamedEmbeddings:
    return NamedEmbeddings(BagOfWords(), name="fake-bag-of-words", dim=BagOfWords.dim)


@pytest.fixture
def library(tmp_path):
    corpus = write_library(tmp_path / "corpus", ARTICLES)
    settings = make_settings(tmp_path / "data", corpus)
    first = run_ingest(settings, fake_embeddings())
    return settings, first


def claim_files(settings) -> dict:
    """Each article's stored claims (not the negation pairs kept beside them, rewritten at every build)."""
    return {p.name: p.stat().st_mtime_ns for p in settings.cache_dir.rglob("*.npz") if p.name != PAIRS_FILE}


def fresh_map(settings):  # noqa: ANN001, ANN201
    """The map built from scratch from the corpus as it is now, with no stored analysis."""
    chunks, texts, _titles = corpus_chunks(settings.corpus_dir)
    snapshot = json.loads(settings.snapshot_path.read_text(encoding="utf-8"))
    from datetime import date

    dates = {sid: date.fromisoformat(d) for sid, d in source_dates(snapshot).items()}
    return build_map(chunks, texts, fake_embeddings(), "fresh", load_domain(settings.corpus_dir), dates)


def public(debate_map) -> list[dict]:
    return [d.public() for d in debate_map.disagreements]


def test_first_ingest_analyses_each_article_once_and_stores_every_part(library) -> None:
    settings, first = library
    assert first.chunks_total >= 25 * ARTICLES
    assert len(claim_files(settings)) == ARTICLES
    assert first.disagreements > 0  # the generated articles deny and prescribe: the map has work
    assert first.exercises > 0
    stored = LexicalIndex.load(settings.lexical_dir)
    assert stored is not None
    assert len(stored[0].chunks) == first.chunks_total
    assert public(read_map(settings.data_dir)) == public(fresh_map(settings))


def test_each_text_reaches_the_model_once_in_an_ingest(tmp_path) -> None:
    """The typed statements and the map's claims are mostly the same sentences, and the generated
    articles repeat sentences (as libraries do): an ingest embeds each distinct text once."""
    corpus = write_library(tmp_path / "corpus", ARTICLES)
    model = Recording()
    report = run_ingest(
        make_settings(tmp_path / "data", corpus),
        NamedEmbeddings(model, name="fake-bag-of-words", dim=BagOfWords.dim),
    )
    assert len(model.texts) > report.chunks_embedded  # sentences were embedded besides the chunks
    assert {text: n for text, n in Counter(model.texts).items() if n > 1} == {}


def test_unchanged_reingest_recomputes_nothing(library) -> None:
    settings, _first = library
    files = claim_files(settings)
    lexical = (settings.lexical_dir / "key").stat().st_mtime_ns
    again = run_ingest(settings, fake_embeddings())
    assert (again.chunks_embedded, again.debates_rebuilt, again.exercises_rebuilt) == (0, False, False)
    assert claim_files(settings) == files
    assert (settings.lexical_dir / "key").stat().st_mtime_ns == lexical


def test_one_edited_article_is_the_only_one_analysed_again(library) -> None:
    settings, first = library
    files = claim_files(settings)
    path = settings.corpus_dir / "gen-00003.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("## ", "## Revised: ", 1), encoding="utf-8")
    report = run_ingest(settings, fake_embeddings())
    assert report.sources_updated == 1
    assert report.debates_rebuilt
    assert report.exercises_rebuilt
    now = claim_files(settings)
    assert len(now) == ARTICLES
    assert len(set(now) - set(files)) == 1  # one new analysis, for the edited article; the others are
    # kept (a kept one is rewritten only when the new article's denials made some of its sentences
    # candidates, whose vectors are then added)
    # ...and the map and library are those of a build from scratch
    assert public(read_map(settings.data_dir)) == public(fresh_map(settings))
    library_now = read_library(settings.data_dir)
    assert library_now is not None
    assert report.chunks_total == first.chunks_total
    service = CoachService.open(settings, embeddings=fake_embeddings())
    assert service.lexical.by_id.keys() == {c.chunk_id for c in service.store.all_chunks()}


def test_removed_article_leaves_map_library_and_lexical_index(library) -> None:
    settings, _first = library
    (settings.corpus_dir / "gen-00000.md").unlink()
    report = run_ingest(settings, fake_embeddings())
    assert report.sources_deleted == 1
    assert len(claim_files(settings)) == ARTICLES - 1
    service = CoachService.open(settings, embeddings=fake_embeddings())
    assert not any(c.source_id == "gen-00000" for c in service.lexical.chunks)
    assert not any(
        e.source_id == "gen-00000"
        for d in service.debate_map.disagreements
        for p in d.positions
        for e in p.evidence
    )
    assert not any(e.source_id == "gen-00000" for e in service.library.exercises)
    assert public(service.debate_map) == public(fresh_map(settings))


def test_a_stale_lexical_index_stops_the_service_opening(library) -> None:
    from coach.errors import IndexNotReady

    settings, _first = library
    (settings.lexical_dir / "key").write_text("stale", encoding="utf-8")
    (settings.lexical_dir / "chunks.json").write_text('{"key": "stale", "idf": {}, "chunks": []}', "utf-8")
    with pytest.raises(IndexNotReady, match="coach ingest"):
        CoachService.open(settings, embeddings=fake_embeddings())
    run_ingest(settings, fake_embeddings())
    CoachService.open(settings, embeddings=fake_embeddings())

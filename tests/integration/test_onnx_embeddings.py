"""The ONNX query path against the sentence-transformers reference, on the real model and corpus."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from coach.embeddings import (
    EXPORT_META,
    MODEL_DIM,
    MODEL_NAME,
    ONNX,
    REFERENCE,
    NamedEmbeddings,
    export_dir,
    find_export,
    load_minilm,
    onnx_model,
    reference_model,
)
from coach.onnx_export import ensure_export
from coach.settings import Settings
from evals.bench import QUESTIONS
from evals.cases import load_cases
from ingest.loader import corpus_chunks
from tests.conftest import CORPUS

pytestmark = pytest.mark.integration

MIN_COSINE = 0.999


def cosines(a: list[list[float]], b: list[list[float]]) -> np.ndarray:
    x, y = np.asarray(a), np.asarray(b)
    return np.sum(x * y, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


@pytest.fixture(scope="module")
def exported(real_index: Settings) -> Path:
    """The export the session's first real ingest made (conftest's shared model cache)."""
    found = find_export(real_index.model_dir)
    assert found is not None, "the ingest did not export the model"
    return found


def test_every_chunk_of_the_corpus_embeds_as_the_reference_does(exported: Path) -> None:
    chunks, _, _ = corpus_chunks(CORPUS)
    texts = [c.text for c in chunks]
    assert len(texts) >= 40
    fast = onnx_model(exported).embed_documents(texts)
    reference = reference_model().embed_documents(texts)
    agreement = cosines(fast, reference)
    worst = int(np.argmin(agreement))
    assert agreement.min() >= MIN_COSINE, (chunks[worst].chunk_id, float(agreement.min()))
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)  # normalised like the reference


def test_questions_embed_as_the_reference_does(exported: Path) -> None:
    questions = sorted({c.question for c in load_cases()} | set(QUESTIONS))
    fast = [onnx_model(exported).embed_query(q) for q in questions]  # one at a time, as answers do
    reference = reference_model().embed_documents(questions)  # in a batch: the same vectors, faster
    agreement = cosines(fast, reference)
    assert len(questions) >= 40
    assert agreement.min() >= MIN_COSINE, questions[int(np.argmin(agreement))]
    # One text alone or in a batch with longer ones (padding): the same vector.
    batch = onnx_model(exported).embed_documents(questions)
    assert cosines(batch, fast).min() >= 0.99999


def test_texts_longer_than_the_model_limit_are_truncated_as_the_reference_does(exported: Path) -> None:
    chunks, _, _ = corpus_chunks(CORPUS)
    long_text = " ".join(c.text for c in chunks[:6])  # well over 256 tokens
    assert len(long_text.split()) > 400
    fast = onnx_model(exported).embed_documents([long_text, "glutes"])
    reference = reference_model().embed_documents([long_text, "glutes"])
    assert cosines(fast, reference).min() >= MIN_COSINE


def test_the_index_keeps_its_model_identity_whichever_path_embeds(real_index: Settings) -> None:
    embeddings = load_minilm(real_index.model_dir)
    assert (embeddings.name, embeddings.dim) == (MODEL_NAME, MODEL_DIM)
    assert embeddings.backend is None  # nothing loaded until something is embedded
    assert len(embeddings.embed_query("why do my knees hurt?")) == MODEL_DIM
    assert embeddings.backend == ONNX
    reference = load_minilm(backend=REFERENCE)
    reference.embed_query("x")
    assert (reference.name, reference.dim, reference.backend) == (MODEL_NAME, MODEL_DIM, REFERENCE)


def test_the_export_records_what_it_is_and_is_made_once(exported: Path, real_index: Settings) -> None:
    meta = json.loads((exported / EXPORT_META).read_text(encoding="utf-8"))
    assert meta["model"] == MODEL_NAME
    assert meta["dim"] == MODEL_DIM
    assert meta["max_seq_length"] == 256
    assert meta["check_min_cosine"] >= MIN_COSINE
    assert exported == export_dir(real_index.model_dir)
    again, made = ensure_export(real_index.model_dir)
    assert (again, made) == (exported, False)


def test_without_an_export_queries_fall_back_to_the_reference(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "no-models"
    with caplog.at_level(logging.WARNING, logger="coach.embeddings"):
        embeddings = load_minilm(empty)
        vector = embeddings.embed_query("why do my knees hurt?")
    assert embeddings.backend == REFERENCE
    assert "coach ingest" in caplog.text  # says how to get the fast path
    assert vector == reference_model().embed_query("why do my knees hurt?")
    with pytest.raises(FileNotFoundError, match="coach export-model"):
        load_minilm(empty, backend=ONNX).embed_query("x")


def test_an_incomplete_export_is_not_used(tmp_path: Path, exported: Path) -> None:
    target = export_dir(tmp_path)
    target.mkdir(parents=True)
    for name in ("export.json", "tokenizer.json"):  # model.onnx missing: a copy cut short
        shutil.copyfile(exported / name, target / name)
    assert find_export(tmp_path) is None


class Precomputed:
    """The reference's vectors of known questions, embedded in one batch (one at a time costs torch's
    per-call overhead sixty times); anything else is a test error."""

    def __init__(self, texts: list[str]) -> None:
        self.vectors = dict(zip(texts, reference_model().embed_documents(texts), strict=True))

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


def test_both_paths_retrieve_the_same_passages_for_every_gold_question(real_index: Settings) -> None:
    """The index is queried with each path's vectors: the retrieved passages must not notice."""
    from coach.answer import CoachService

    cases = load_cases()
    reference = NamedEmbeddings(Precomputed([c.question for c in cases]), name=MODEL_NAME, dim=MODEL_DIM)
    fast = CoachService.open(real_index, embeddings=load_minilm(real_index.model_dir, backend=ONNX))
    slow = CoachService.open(real_index, embeddings=reference)
    for case in cases:
        got, expected = fast.retrieve(case.question), slow.retrieve(case.question)
        assert [h.chunk.chunk_id for h in got.hits] == [h.chunk.chunk_id for h in expected.hits], (
            case.question
        )
        assert got.best_similarity == pytest.approx(expected.best_similarity, abs=1e-3)

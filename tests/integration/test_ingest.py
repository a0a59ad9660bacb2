"""Incremental ingest with the real model and a real Chroma directory."""

from __future__ import annotations

import json

import pytest

from coach.embeddings import fake_embeddings, load_minilm
from ingest.pipeline import run_ingest
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

EDIT_FROM = "The first step in getting your glutes to fire during running is to become aware of them."
EDIT_TO = "The very first step in getting your glutes to fire during running is to notice them."


@pytest.fixture
def indexed(tmp_path, corpus_copy):
    settings = make_settings(tmp_path / "data", corpus_copy)
    first = run_ingest(settings, load_minilm())
    return settings, first


def test_first_ingest_embeds_every_chunk(indexed) -> None:
    _settings, first = indexed
    assert first.chunks_embedded == first.chunks_total > 30
    assert first.sources_added == 5


def test_unchanged_corpus_embeds_nothing(indexed) -> None:
    settings, first = indexed
    second = run_ingest(settings, load_minilm())
    assert second.chunks_embedded == 0
    assert second.chunks_deleted == 0
    assert second.chunks_unchanged == first.chunks_total
    assert second.sources_unchanged == 5


def test_edited_article_reembeds_only_its_changed_chunk(indexed, corpus_copy) -> None:
    settings, first = indexed
    path = corpus_copy / "glutes-fire-in-running.txt"
    path.write_text(path.read_text(encoding="utf-8").replace(EDIT_FROM, EDIT_TO), encoding="utf-8")
    second = run_ingest(settings, load_minilm())
    assert second.chunks_embedded == 1
    assert second.chunks_deleted == 1
    assert second.chunks_total == first.chunks_total
    assert (second.sources_updated, second.sources_unchanged) == (1, 4)
    snapshot = json.loads(settings.snapshot_path.read_text(encoding="utf-8"))
    assert "to notice them" in snapshot["glutes-fire-in-running"]["text"]


def test_deleted_article_disappears_and_added_one_appears(indexed, corpus_copy) -> None:
    from coach.store import ChunkStore

    settings, first = indexed
    (corpus_copy / "oyf-cure-for-weak-glutes.txt").unlink()
    (corpus_copy / "hill-strides.md").write_text(
        "# Hill strides\n\nShort hill strides recruit the glutes more than flat running does.\n",
        encoding="utf-8",
    )
    second = run_ingest(settings, load_minilm())
    assert (second.sources_deleted, second.sources_added) == (1, 1)
    assert second.chunks_embedded == 1
    sources = {c.source_id for c in ChunkStore(settings, load_minilm()).all_chunks()}
    assert "oyf-cure-for-weak-glutes" not in sources
    assert "hill-strides" in sources


def test_lost_records_are_reconciled_without_duplicates(indexed) -> None:
    settings, first = indexed
    settings.record_db.unlink()
    second = run_ingest(settings, load_minilm())
    assert second.chunks_total == first.chunks_total


def test_index_of_another_model_is_refused_with_rebuild_hint(tmp_path) -> None:
    from coach.errors import IndexMismatchError

    settings = make_settings(tmp_path / "data")
    run_ingest(settings, fake_embeddings(dim=64))
    with pytest.raises(IndexMismatchError, match="--rebuild"):
        run_ingest(settings, load_minilm())
    rebuilt = run_ingest(settings, load_minilm(), rebuild=True)
    assert rebuilt.chunks_embedded == rebuilt.chunks_total

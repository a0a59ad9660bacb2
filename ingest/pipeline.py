"""Ingest: load -> clean -> chunk -> embed -> upsert (incremental), then save the source snapshot and the
disagreement map."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from langchain_core.documents import Document

from coach.debates import DebateMap, ensure_map
from coach.domain import Domain, load_domain, write_domain
from coach.embeddings import MODEL_NAME, CountingEmbeddings, NamedEmbeddings
from coach.errors import CoachError, StoreError
from coach.routines import Library, ensure_library
from coach.safety import ensure_anchors
from coach.settings import Settings
from coach.statements import Knowledge, ensure_statements
from coach.storage import read_snapshot, write_atomic
from coach.store import ChunkStore, move_aside, server_down
from coach.text import collapse
from ingest.loader import LoadedSource, chunk_key, chunk_source, load_corpus
from ingest.quarantine import Flagged

log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    sources: int
    sources_added: int
    sources_updated: int
    sources_deleted: int
    sources_unchanged: int
    chunks_embedded: int
    chunks_deleted: int
    chunks_unchanged: int
    chunks_total: int
    debates_rebuilt: bool = False
    disagreements: int = 0
    index_seconds: float = 0.0  # the embed-and-upsert step alone (what `coach bench` compares to encode)

    exercises_rebuilt: bool = False
    exercises: int = 0
    # Passages kept out of the index (ingest/quarantine.py), for the corpus's owner to fix.
    flagged: list[Flagged] = field(default_factory=list)
    model_exported: bool = False  # this run made the ONNX export the query path loads

    def summary(self) -> str:
        debates = "rebuilt" if self.debates_rebuilt else "unchanged"
        return (
            f"{self.sources} articles ({self.sources_added} added, {self.sources_updated} updated, "
            f"{self.sources_deleted} deleted, {self.sources_unchanged} unchanged); chunks: "
            f"{self.chunks_embedded} embedded, {self.chunks_deleted} deleted, {self.chunks_unchanged} unchanged, "
            f"{self.chunks_total} in the index; disagreement map {debates}: {self.disagreements} disagreements; "
            f"exercise library {'rebuilt' if self.exercises_rebuilt else 'unchanged'}: {self.exercises} exercises"
            + ("; embedding model exported to ONNX" if self.model_exported else "")
        )


def record_manager(settings: Settings):  # noqa: ANN201
    """LangChain's SQL record manager in the data directory, one namespace per store and collection."""
    from langchain_classic.indexes import SQLRecordManager

    namespace = f"chroma/{settings.chroma_url or 'embedded'}/{settings.collection}"
    manager = SQLRecordManager(namespace, db_url=f"sqlite:///{settings.record_db}")
    manager.create_schema()
    return manager


def _write_snapshot(settings: Settings, loaded: list[LoadedSource]) -> dict[str, dict]:
    snapshot = {
        ls.source.source_id: {**ls.source.model_dump(), "sha": ls.sha, "text": collapse(ls.verbatim_text)}
        for ls in loaded
    }
    write_atomic(settings.snapshot_path, json.dumps(snapshot, ensure_ascii=False))
    return snapshot


def _reconcile(store: ChunkStore, manager) -> None:  # noqa: ANN001
    """Make the record manager and the collection agree after a crash or a lost index.

    Records without vectors are forgotten (so they get embedded again); vectors without records are
    deleted (so cleanup can never miss them).
    """
    in_store = set(store.ids())
    recorded = set(manager.list_keys())
    stale_records = recorded - in_store
    if stale_records:
        log.warning("forgetting %d records whose vectors are missing", len(stale_records))
        manager.delete_keys(sorted(stale_records))
    orphans = in_store - recorded
    if orphans:
        log.warning("deleting %d vectors with no record", len(orphans))
        store.delete(sorted(orphans))


def _counting(docs: list[Document], on_doc: Callable[[], None] | None) -> Iterator[Document]:
    for doc in docs:
        yield doc
        if on_doc:
            on_doc()


def prepare_data_dir(settings: Settings) -> None:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=settings.data_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise StoreError(
            f"The data directory {settings.data_dir} is not writable ({exc.strerror}); "
            "set COACH_DATA_DIR to a writable directory."
        ) from exc


def run_ingest(
    settings: Settings,
    embeddings: NamedEmbeddings,
    *,
    rebuild: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_doc: Callable[[], None] | None = None,
) -> IngestReport:
    """Bring the index in line with the corpus, embedding only chunks it does not hold yet."""
    from langchain_core.indexing import index

    loaded = load_corpus(settings.corpus_dir)  # fails before anything is touched
    domain = load_domain(settings.corpus_dir)
    docs = [doc for ls in loaded for doc in chunk_source(ls)]
    prepare_data_dir(settings)
    model_exported = ensure_onnx_export(settings, embeddings)
    counter = CountingEmbeddings(embeddings)  # counts what this run really embeds
    store = _open_for_writing(settings, counter, rebuild=rebuild)
    manager = record_manager(settings)
    if rebuild:
        manager.delete_keys(manager.list_keys())
    store.vectorstore  # noqa: B018 - creates the collection with our model's identity, or refuses a foreign one
    _reconcile(store, manager)

    previous = read_snapshot(settings)
    if on_start:
        on_start(len(docs))
    started = time.perf_counter()
    try:
        result = index(
            _counting(docs, on_doc),
            manager,
            store.vectorstore,
            cleanup="full",
            source_id_key="source",
            key_encoder=chunk_key,
            batch_size=64,
        )
    except CoachError:
        raise
    except Exception as exc:
        if settings.chroma_url and server_down(exc):
            # Batches written before the failure are recorded; the next run embeds only the rest.
            raise store.failure("write", exc) from exc
        raise StoreError(
            f"Ingest failed while writing the index ({' '.join(str(exc).split())[:200]})."
        ) from exc
    index_seconds = time.perf_counter() - started
    snapshot = _write_snapshot(settings, loaded)
    write_domain(settings, domain)
    current = {ls.source.source_id: ls.sha for ls in loaded}
    (rebuilt, debate_map), (library_rebuilt, library) = update_maps(
        settings, embeddings, store, snapshot, domain
    )

    return IngestReport(
        sources=len(loaded),
        sources_added=sum(1 for sid in current if sid not in previous),
        sources_updated=sum(
            1 for sid, sha in current.items() if sid in previous and previous[sid]["sha"] != sha
        ),
        sources_deleted=sum(1 for sid in previous if sid not in current),
        sources_unchanged=sum(
            1 for sid, sha in current.items() if sid in previous and previous[sid]["sha"] == sha
        ),
        chunks_embedded=counter.documents_embedded,
        chunks_deleted=result["num_deleted"],
        chunks_unchanged=result["num_skipped"],
        chunks_total=store.count(),
        debates_rebuilt=rebuilt,
        disagreements=len(debate_map.disagreements),
        index_seconds=index_seconds,
        exercises_rebuilt=library_rebuilt,
        exercises=len(library.exercises),
        flagged=[f for ls in loaded for f in ls.flagged],
        model_exported=model_exported,
    )


def ensure_onnx_export(settings: Settings, embeddings: NamedEmbeddings) -> bool:
    """Export the real model to ONNX into settings.model_dir if it is not there yet (once per install and
    cache directory: `coach ask`, the bot and the evals then start without torch); True when made now.

    A failed export costs speed, not the ingest: it is logged and the reference model is used."""
    if embeddings.name != MODEL_NAME:  # a stand-in model (tests): nothing to export
        return False
    from coach.onnx_export import ExportError, ensure_export

    try:
        _, made = ensure_export(settings.model_dir)
    except ExportError as exc:
        log.warning("%s Queries embed with sentence-transformers until `coach export-model` succeeds.", exc)
        return False
    return made


def update_maps(
    settings: Settings,
    embeddings: NamedEmbeddings,
    store: ChunkStore,
    snapshot: dict[str, dict],
    domain: Domain,
) -> tuple[tuple[bool, DebateMap], tuple[bool, Library]]:
    """Rebuild the disagreement map, the typed statements (one article at a time) and the exercise
    library (from the statements' exercises) when the sources changed since they were built (each keyed
    by the snapshot's shas); every chunk is read from the store at most once, and only when one of them
    needs rebuilding."""
    shas = {sid: entry.get("sha", "") for sid, entry in snapshot.items()}
    texts = {sid: entry.get("text", "") for sid, entry in snapshot.items()}
    chunks = functools.cache(store.all_chunks)
    debates = ensure_map(settings.data_dir, chunks, texts, shas, embeddings, embeddings.name, domain)
    _, statements = ensure_statements(
        settings.data_dir, chunks, texts, shas, domain, embeddings, embeddings.name
    )
    library = ensure_library(settings.data_dir, Knowledge(statements).exercise_facts, shas, domain)
    ensure_anchors(settings.data_dir, embeddings, embeddings.name)  # the red-flag triage's descriptions
    return debates, library


def _open_for_writing(settings: Settings, embeddings: CountingEmbeddings, *, rebuild: bool) -> ChunkStore:
    try:
        store = ChunkStore(settings, embeddings)
    except StoreError as exc:
        locked = isinstance(exc.__cause__, sqlite3.OperationalError)
        if locked or not (rebuild and not settings.chroma_url and settings.chroma_dir.exists()):
            raise  # a locked index is busy, not broken: never moved aside
        move_aside(settings)
        return ChunkStore(settings, embeddings)
    if rebuild:
        store.reset()
    return store

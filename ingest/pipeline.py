"""Ingest: load -> repair -> clean -> chunk -> embed -> upsert (incremental), then save the source
snapshot, the lexical index, the disagreement map and the exercise library (each article's part kept, so
only changed articles are worked on again)."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from coach.debates import DebateMap, article_key, ensure_map, source_dates
from coach.domain import Domain, load_domain, write_domain
from coach.embeddings import MODEL_NAME, CountingEmbeddings, NamedEmbeddings
from coach.errors import CoachError, CorpusError, StoreError
from coach.knowledge import ensure_statements
from coach.models import Chunk
from coach.retrieval import LexicalIndex, chunk_terms, lexical_key, stored_key, stored_terms
from coach.routines import Library, ensure_library
from coach.safety import ensure_anchors
from coach.settings import Settings
from coach.storage import read_snapshot, write_atomic
from coach.store import ChunkStore, chunk_from, move_aside, server_down
from coach.text import collapse
from ingest.loader import (
    ArticleUnusable,
    LoadedSource,
    Skipped,
    chunk_key,
    chunk_source,
    load_corpus,
    note_skipped,
)
from ingest.quarantine import Flagged

# Chunks embedded and written per batch. The model sorts a batch's texts by length so that short ones are
# not padded to long ones: in batches of 64 a sample of the generated library indexed at 0.78x the speed of
# encoding the same chunks in one call, in batches of 512 at 1.01x (evals/bench.py, `coach bench`). A
# failure loses at most one batch's embedding.
INDEX_BATCH = 512
EXIT_SKIPPED = 3  # `coach ingest` exit status when some articles were skipped (the rest is indexed)

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
    skipped: list[Skipped] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # skipped articles whose last good version stays indexed
    maps_seconds: float = 0.0  # the lexical index, the disagreement map and the exercise library
    maps_embed_seconds: float = 0.0  # ...of which embedding claims (new or changed articles only)

    def summary(self) -> str:
        debates = "rebuilt" if self.debates_rebuilt else "unchanged"
        text = (
            f"{self.sources} articles ({self.sources_added} added, {self.sources_updated} updated, "
            f"{self.sources_deleted} deleted, {self.sources_unchanged} unchanged); chunks: "
            f"{self.chunks_embedded} embedded, {self.chunks_deleted} deleted, {self.chunks_unchanged} unchanged, "
            f"{self.chunks_total} in the index; disagreement map {debates}: {self.disagreements} disagreements; "
            f"exercise library {'rebuilt' if self.exercises_rebuilt else 'unchanged'}: {self.exercises} exercises"
            + ("; embedding model exported to ONNX" if self.model_exported else "")
        )
        if self.skipped:
            text += f"; {len(self.skipped)} skipped"
            if self.kept:
                text += f" ({len(self.kept)} of them still indexed as last ingested)"
        return text


def record_manager(settings: Settings):  # noqa: ANN201
    """LangChain's SQL record manager in the data directory, one namespace per store and collection."""
    from langchain_classic.indexes import SQLRecordManager

    namespace = f"chroma/{settings.chroma_url or 'embedded'}/{settings.collection}"
    manager = SQLRecordManager(namespace, db_url=f"sqlite:///{settings.record_db}")
    manager.create_schema()
    return manager


def _write_snapshot(
    settings: Settings, loaded: list[LoadedSource], docs: dict[str, list[Document]], kept: dict[str, dict]
) -> dict[str, dict]:
    """sources.json: each source's facts, sha, article key (its chunk ids) and collapsed text, the text
    quotes are checked against at answer time. Skipped articles indexed before keep their last entry."""
    snapshot = dict(kept)
    for ls in loaded:
        sid = ls.source.source_id
        snapshot[sid] = {
            **ls.source.model_dump(mode="json"),
            "sha": ls.sha,
            "article": article_key(sid, [chunk_key(d) for d in docs[sid]]),
            "raw": ls.raw,
            "chunks": len(docs[sid]),
            "text": collapse(ls.verbatim_text),
            # kept so that a re-ingest that does not read the article again still lists them
            "flagged": [dataclasses.asdict(f) for f in ls.flagged],
        }
    snapshot = dict(sorted(snapshot.items()))
    write_atomic(settings.snapshot_path, json.dumps(snapshot, ensure_ascii=False))
    return snapshot


def _reconcile(store: ChunkStore, manager) -> set[str]:  # noqa: ANN001
    """Make the record manager and the collection agree after a crash or a lost index; the keys recorded
    after it.

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
    return recorded - stale_records


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
    """Bring the index in line with the corpus, embedding only chunks it does not hold yet.

    An article that cannot be used is skipped (`IngestReport.skipped`, one line each) and the rest is
    indexed; if an earlier ingest indexed it, that version stays (nothing indexed is lost to a bad edit)."""
    with _without_cyclic_gc():
        return _run_ingest(settings, embeddings, rebuild=rebuild, on_start=on_start, on_doc=on_doc)


@contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Ingest holds a library's analysis alive at once (at 1,000 articles over a million claims, word
    sets and statements, none in a reference cycle); CPython's cyclic collector walks all of them again
    every few thousand allocations, which was half the time of re-ingesting one edited article. Reference
    counting still frees everything ingest drops; the collector is back on after, and runs when its own
    thresholds say (a forced full collection here would walk everything a long-lived process holds, at
    every ingest)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _run_ingest(
    settings: Settings,
    embeddings: NamedEmbeddings,
    *,
    rebuild: bool,
    on_start: Callable[[int], None] | None,
    on_doc: Callable[[], None] | None,
) -> IngestReport:
    from langchain_core.indexing import index

    skipped: list[Skipped] = []
    previous = read_snapshot(settings)
    # Articles whose file and facts are those already indexed are not read again (their chunks, claims
    # and terms are stored): a re-ingest of a large library works on what changed.
    known = (
        {} if rebuild else {sid: e["raw"] for sid, e in previous.items() if e.get("raw") and e.get("article")}
    )
    reused: dict[str, str] = {}
    loaded = load_corpus(
        settings.corpus_dir,
        max_article_mb=settings.max_article_mb,
        skipped=skipped,
        known=known,
        reused=reused,
    )
    domain = load_domain(settings.corpus_dir)
    usable: list[LoadedSource] = []
    docs_by_source: dict[str, list[Document]] = {}
    for ls in loaded:
        try:
            docs_by_source[ls.source.source_id] = chunk_source(ls)
        except ArticleUnusable as exc:
            note_skipped(skipped, Skipped(ls.path, str(exc)))
            continue
        usable.append(ls)
    kept = {} if rebuild else {s.path.stem: previous[s.path.stem] for s in skipped if s.path.stem in previous}
    carried = {sid: previous[sid] for sid in reused}
    if not usable and not kept and not carried:
        lines = "; ".join(s.line() for s in skipped)
        raise CorpusError(f"No usable articles in {settings.corpus_dir}: {lines}.")
    docs = [doc for ls in usable for doc in docs_by_source[ls.source.source_id]]
    prepare_data_dir(settings)
    model_exported = ensure_onnx_export(settings, embeddings)
    counter = CountingEmbeddings(embeddings)  # counts what this run really embeds
    store = _open_for_writing(settings, counter, rebuild=rebuild)
    manager = record_manager(settings)
    if rebuild:
        manager.delete_keys(manager.list_keys())
    store.vectorstore  # noqa: B018 - creates the collection with our model's identity, or refuses a foreign one
    keys = _reconcile(store, manager)
    # An article not read again must still be whole in the index (records lost with their vectors, or a
    # store emptied by hand): any that is not is read and indexed like a changed one.
    recorded = Counter(_source_of(key) for key in keys)
    for sid in [sid for sid, entry in carried.items() if recorded[sid] != entry.get("chunks")]:
        del carried[sid]
        try:
            ls = _reload(settings, sid)
            docs_by_source[sid] = chunk_source(ls)
        except ArticleUnusable as exc:
            note_skipped(skipped, Skipped(settings.corpus_dir / sid, str(exc)))
            continue
        usable.append(ls)
        docs.extend(docs_by_source[sid])

    if on_start:
        on_start(len(docs))
    started = time.perf_counter()
    try:
        # scoped_full: chunks of the sources in this run that are gone are deleted; a skipped source's
        # chunks are left alone (kept), and sources whose files are gone are removed just below.
        result = index(
            _counting(docs, on_doc),
            manager,
            store.vectorstore,
            cleanup="scoped_full",
            source_id_key="source",
            key_encoder=chunk_key,
            batch_size=INDEX_BATCH,
        )
        # keys from before indexing: indexing adds and deletes keys only of sources in this run
        deleted = _remove_gone(store, manager, keys, set(docs_by_source) | set(kept) | set(carried))
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
    snapshot = _write_snapshot(settings, usable, docs_by_source, {**kept, **carried})
    write_domain(settings, domain)
    chunks = {
        sid: [chunk_from(chunk_key(d), d.page_content, d.metadata) for d in group]
        for sid, group in docs_by_source.items()
    }
    started = time.perf_counter()
    timed = TimedEmbeddings(embeddings)
    (rebuilt, debate_map), (library_rebuilt, library) = update_maps(
        settings, timed, store, snapshot, domain, chunks
    )
    maps_seconds = time.perf_counter() - started
    current = {ls.source.source_id: ls.sha for ls in usable}

    return IngestReport(
        sources=len(snapshot),
        sources_added=sum(1 for sid in current if sid not in previous),
        sources_updated=sum(
            1 for sid, sha in current.items() if sid in previous and previous[sid]["sha"] != sha
        ),
        sources_deleted=sum(1 for sid in previous if sid not in snapshot),
        sources_unchanged=len(carried)
        + sum(1 for sid, sha in current.items() if sid in previous and previous[sid]["sha"] == sha),
        chunks_embedded=counter.documents_embedded,
        chunks_deleted=result["num_deleted"] + deleted,
        chunks_unchanged=result["num_skipped"] + sum(int(e.get("chunks", 0)) for e in carried.values()),
        chunks_total=store.count(),
        debates_rebuilt=rebuilt,
        disagreements=len(debate_map.disagreements),
        index_seconds=index_seconds,
        exercises_rebuilt=library_rebuilt,
        exercises=len(library.exercises),
        flagged=[Flagged(**f) for entry in snapshot.values() for f in entry.get("flagged", [])],
        model_exported=model_exported,
        skipped=skipped,
        kept=sorted(kept),
        maps_seconds=maps_seconds,
        maps_embed_seconds=timed.seconds,
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


class TimedEmbeddings(NamedEmbeddings):
    """The model, with the seconds spent embedding counted (what the maps' build time is net of)."""

    def __init__(self, inner: NamedEmbeddings) -> None:
        super().__init__(inner, name=inner.name, dim=inner.dim)
        self.seconds = 0.0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        try:
            return super().embed_documents(texts)
        finally:
            self.seconds += time.perf_counter() - started


def _reload(settings: Settings, source_id: str) -> LoadedSource:
    """Read one article that load_corpus passed over as unchanged."""
    from ingest.loader import ARTICLE_SUFFIXES, load_article, read_catalogue

    [path] = [p for p in settings.corpus_dir.glob(f"{source_id}.*") if p.suffix.lower() in ARTICLE_SUFFIXES]
    facts = read_catalogue(settings.corpus_dir).get(source_id, {})
    return load_article(path, facts, max_article_mb=settings.max_article_mb)


def _source_of(key: str) -> str:
    return key.rsplit(":", 1)[0]


def _remove_gone(store: ChunkStore, manager, keys: set[str], sources: set[str]) -> int:  # noqa: ANN001
    """Delete the chunks (and records) of sources no longer in the corpus; how many."""
    gone = sorted(key for key in keys if _source_of(key) not in sources)
    for start in range(0, len(gone), 5000):
        batch = gone[start : start + 5000]
        store.delete(batch)
        manager.delete_keys(batch)
    return len(gone)


def update_maps(
    settings: Settings,
    embeddings: NamedEmbeddings,
    store: ChunkStore,
    snapshot: dict[str, dict],
    domain: Domain,
    chunks: dict[str, list[Chunk]] | None = None,
) -> tuple[tuple[bool, DebateMap], tuple[bool, Library]]:
    """The lexical index, the disagreement map, the typed statements and the exercise library (from the
    statements' exercises), each brought up to date with the snapshot article by article. `chunks`: this
    run's chunks by source; a source not in it (unchanged, or a skipped article still indexed) is read
    from the store, and only if its stored parts are missing."""
    chunks = dict(chunks or {})

    def chunks_of(source_id: str) -> list[Chunk]:
        if source_id not in chunks:
            chunks[source_id] = store.chunks_of(source_id)
        return chunks[source_id]

    shas = {sid: entry.get("sha", "") for sid, entry in snapshot.items()}
    texts = {sid: entry.get("text", "") for sid, entry in snapshot.items()}
    articles = {sid: entry.get("article", "") for sid, entry in snapshot.items()}
    _update_lexical(settings, articles, chunks_of)
    # Statements first: nearly every claim the map embeds is a statement's sentence, embedded by then.
    shared = sentence_cache(embeddings)
    _, exercises = ensure_statements(
        settings.data_dir, chunks_of, texts, shas, domain, shared, embeddings.name
    )
    debates = ensure_map(
        settings.data_dir,
        settings.cache_dir,
        articles,
        chunks_of,
        texts,
        shas,
        shared,
        embeddings.name,
        domain,
        source_dates(snapshot),
    )
    library = ensure_library(settings.data_dir, lambda: exercises, shas, domain)
    ensure_anchors(settings.data_dir, embeddings, embeddings.name)  # the red-flag triage's descriptions
    return debates, library


def sentence_cache(embeddings: Embeddings) -> Embeddings:
    """The model, with every text it embedded kept (in memory) for the rest of one ingest, so each
    distinct sentence is embedded once: the typed statements and the map's claims are largely the same
    sentences, and a library repeats sentences across articles (boilerplate, syndicated text)."""
    from langchain_classic.embeddings import CacheBackedEmbeddings
    from langchain_core.stores import InMemoryBaseStore

    class Rows(InMemoryBaseStore):
        """Vectors kept as float32 rows (1.5 KB each; as the model's list of floats, 12 KB)."""

        def mset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
            super().mset([(key, np.asarray(value, dtype=np.float32)) for key, value in key_value_pairs])

    class Once(CacheBackedEmbeddings):
        """...and a text repeated within one call embedded once too (the cache looks up before it embeds)."""

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            unique = list(dict.fromkeys(texts))
            vectors = dict(zip(unique, super().embed_documents(unique), strict=True))
            return [vectors[text] for text in texts]

    return Once(embeddings, Rows())


def _update_lexical(
    settings: Settings, articles: dict[str, str], chunks_of: Callable[[str], list[Chunk]]
) -> None:
    """Store the BM25 index of every chunk, unless the stored one already is of these articles. Sources
    this run did not read come from the stored index (when it has them as they are), and the terms of
    chunks it has are reused, so only changed chunks are tokenised."""
    key = lexical_key(articles)
    if stored_key(settings.lexical_dir) == key:
        return
    stored = LexicalIndex.load(settings.lexical_dir)
    by_source: dict[str, list[Chunk]] = {}
    for chunk in stored[0].chunks if stored else []:
        by_source.setdefault(chunk.source_id, []).append(chunk)
    known = stored_terms(settings.lexical_dir)
    all_chunks: list[Chunk] = []
    for sid in sorted(articles):
        group = by_source.get(sid, [])
        if article_key(sid, [c.chunk_id for c in group]) != articles[sid]:
            group = chunks_of(sid)
        all_chunks.extend(group)
    tokenized = [known.get(c.chunk_id) or chunk_terms(c) for c in all_chunks]
    LexicalIndex(all_chunks, tokenized).save(settings.lexical_dir, key)


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

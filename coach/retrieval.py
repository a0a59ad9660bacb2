"""Hybrid retrieval: dense (Chroma) and BM25 ranked lists fused, several sources kept, a relevance gate."""

from __future__ import annotations

import asyncio
import difflib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from coach.domain import Domain
from coach.embeddings import NamedEmbeddings
from coach.models import Chunk
from coach.store import ChunkStore, DenseHit
from coach.text import stem, terms

Mode = Literal["hybrid", "dense", "bm25"]

RRF_K = 60  # the constant from the reciprocal-rank-fusion paper; robust across collections
CANDIDATES = 20  # per ranked list, before fusion
COMMENT_WEIGHT = 0.5  # reader comments rank below the articles they follow
PER_SOURCE_FIRST_PASS = 2  # at most this many chunks per source until every relevant source is in
TYPO_CUTOFF = 0.8  # difflib ratio for treating an unknown word as a misspelling of a known one


@dataclass
class Hit:
    chunk: Chunk
    score: float  # fused score, only meaningful for ordering
    similarity: float = 0.0  # cosine similarity to the question (0 when only BM25 found it)


@dataclass
class Retrieval:
    hits: list[Hit]
    best_similarity: float
    coverage: float  # share of the question's content words that occur anywhere in the corpus
    query_terms: list[str] = field(default_factory=list)
    # The question's embedding (dense and hybrid modes), reused by the disagreement lookup so an answer
    # embeds its question once.
    query_embedding: list[float] | None = None


LEXICAL_VERSION = "bm25s-v1"
CHUNKS_FILE = "chunks.json"  # every chunk's text and metadata, and the index's key
KEY_FILE = "key"
TERMS_FILE = "terms.json"  # every chunk's search terms: read only by ingest, to tokenise changed chunks only


class LexicalIndex:
    """BM25 over every chunk (bm25s: sparse, fast at 100k). Built by ingest and stored beside the index
    (`save`), so a process opens it (`load`) instead of reading every chunk back from the store."""

    def __init__(self, chunks: list[Chunk], tokenized: list[list[str]] | None = None) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self.chunks = chunks
        self.tokenized = tokenized if tokenized is not None else [chunk_terms(c) for c in chunks]
        doc_freq: dict[str, int] = {}
        for doc in self.tokenized:
            for t in set(doc):
                doc_freq[t] = doc_freq.get(t, 0) + 1
        n = max(len(chunks), 1)
        idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in doc_freq.items()}
        bm25 = bm25s.BM25()
        if chunks:
            bm25.index(self.tokenized, show_progress=False)
        self._setup(chunks, idf, bm25)

    def _setup(self, chunks: list[Chunk], idf: dict[str, float], bm25) -> None:  # noqa: ANN001
        self.chunks = chunks
        self.by_id = {c.chunk_id: i for i, c in enumerate(chunks)}
        self.idf = idf
        self.vocabulary = set(idf)
        self._by_initial: dict[str, list[str]] = {}
        for word in sorted(self.vocabulary):
            self._by_initial.setdefault(word[0], []).append(word)
        self._bm25 = bm25

    def save(self, directory: Path, key: str) -> None:
        """Write the index to `directory` (replacing what was there), marked with `key`."""
        import shutil
        import tempfile

        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}-"))
        try:
            if self.chunks:
                self._bm25.save(str(staging / "bm25"), show_progress=False)
            payload = {
                "key": key,
                "idf": self.idf,
                "chunks": [c.model_dump(exclude_defaults=True) for c in self.chunks],
            }
            (staging / CHUNKS_FILE).write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
            terms_by_id = {c.chunk_id: t for c, t in zip(self.chunks, self.tokenized, strict=True)}
            (staging / TERMS_FILE).write_text(json.dumps(terms_by_id, ensure_ascii=False), encoding="utf-8")
            (staging / KEY_FILE).write_text(key, encoding="utf-8")
            old = directory.with_name(f".{directory.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            if directory.exists():
                directory.replace(old)
            staging.replace(directory)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @classmethod
    def load(cls, directory: Path) -> tuple[LexicalIndex, str] | None:
        """The stored index and its key; None when there is none or it cannot be read."""
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        try:
            payload = json.loads((directory / CHUNKS_FILE).read_text(encoding="utf-8"))
            chunks = [Chunk(**c) for c in payload["chunks"]]
            bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False) if chunks else bm25s.BM25()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        index = cls.__new__(cls)
        index.tokenized = []  # not needed to search; ingest reads them with `stored_terms`
        index._setup(chunks, payload["idf"], bm25)
        return index, str(payload.get("key", ""))

    def correct(self, term: str) -> str:
        """The vocabulary word a misspelt query word most likely means ("excersises" -> "exercis").

        difflib over words of the same first letter and similar length: enough for typos, and cheap
        because it only runs for words the corpus does not have.
        """
        if term in self.vocabulary or len(term) < 4 or term.isdigit():
            return term
        candidates = self._by_initial.get(term[0], ())
        close = difflib.get_close_matches(
            term, [w for w in candidates if abs(len(w) - len(term)) <= 2], n=1, cutoff=TYPO_CUTOFF
        )
        return close[0] if close else term

    def split_compound(self, term: str) -> list[str]:
        """An unknown word that is two known words run together ("speedwork", "warmup", "shinsplints"),
        as those words; otherwise the word itself. Runners write compounds that articles spell apart."""
        if term in self.vocabulary or len(term) < 8:
            return [term]
        for cut in range(4, len(term) - 3):  # both parts at least four letters
            head, tail = stem(term[:cut]), stem(term[cut:])
            if head in self.vocabulary and tail in self.vocabulary:
                return [head, tail]
        return [term]

    def search(self, query_terms: list[str], k: int) -> list[tuple[int, float]]:
        known = [t for t in query_terms if t in self.vocabulary]
        if not known or not self.chunks:
            return []
        scores = self._bm25.get_scores(known)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        ranked = sorted(((int(i), float(scores[i])) for i in top if scores[i] > 0), key=lambda p: -p[1])
        return ranked


def stored_key(directory: Path) -> str | None:
    """The key of the stored lexical index, without reading the index."""
    try:
        return (directory / KEY_FILE).read_text(encoding="utf-8")
    except OSError:
        return None


def stored_terms(directory: Path) -> dict[str, list[str]]:
    """Search terms of every chunk in the stored index, by chunk id ({} when there is none)."""
    try:
        return json.loads((directory / TERMS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def chunk_terms(chunk: Chunk) -> list[str]:
    return terms(f"{chunk.section} {chunk.text}")


def lexical_key(articles: dict[str, str]) -> str:
    """Identity of a lexical index: every source's article key (its chunk ids), this version and the
    tokeniser (coach/text.py)."""
    import hashlib

    text_rules = hashlib.sha256(Path(terms.__code__.co_filename).read_bytes()).hexdigest()
    payload = json.dumps([LEXICAL_VERSION, text_rules, sorted(articles.items())])
    return hashlib.sha256(payload.encode()).hexdigest()


class HybridRetriever:
    """Fuses Chroma's dense ranking with BM25 by reciprocal rank fusion.

    LangChain's EnsembleRetriever does weighted RRF too, but returns documents without scores; the
    relevance gate and the source-diversity step below need the similarities, so the fusion is ours.
    """

    def __init__(
        self,
        store: ChunkStore,
        embeddings: NamedEmbeddings,
        lexical: LexicalIndex,
        domain: Domain | None = None,
    ) -> None:
        self.store = store
        self.embeddings = embeddings
        self.lexical = lexical
        self.domain = domain or Domain()

    def retrieve(
        self, question: str, *, k: int, mode: Mode = "hybrid", query_embedding: list[float] | None = None
    ) -> Retrieval:
        """Retrieval for callers without an event loop (evals, scripts). `query_embedding`: the
        question's embedding when the caller has it already (the triage computed it)."""
        if mode == "bm25":
            query_embedding = None
        elif query_embedding is None:
            query_embedding = self.embeddings.embed_query(question)
        dense = self.store.query(query_embedding, CANDIDATES) if query_embedding is not None else []
        return self._fuse(question, query_embedding, dense, k=k, mode=mode)

    async def aretrieve(
        self, question: str, *, k: int, mode: Mode = "hybrid", query_embedding: list[float] | None = None
    ) -> Retrieval:
        """The same, awaitable: the embedding in a worker thread, the vector query awaited (a Chroma
        server's request is cancelled when the caller's deadline passes)."""
        if mode == "bm25":
            query_embedding = None
        elif query_embedding is None:
            query_embedding = await asyncio.to_thread(self.embeddings.embed_query, question)
        dense = await self.store.aquery(query_embedding, CANDIDATES) if query_embedding is not None else []
        return self._fuse(question, query_embedding, dense, k=k, mode=mode)

    def _fuse(
        self,
        question: str,
        query_embedding: list[float] | None,
        dense: list[DenseHit],
        *,
        k: int,
        mode: Mode,
    ) -> Retrieval:
        query_terms = [
            part
            for t in terms(question, synonyms=self.domain.synonym_terms)
            for part in self.lexical.split_compound(self.lexical.correct(t))
        ]
        fused: dict[str, Hit] = {}
        best_similarity = 0.0
        for rank, hit in enumerate(dense):
            best_similarity = max(best_similarity, hit.similarity)
            entry = fused.setdefault(hit.chunk.chunk_id, Hit(chunk=hit.chunk, score=0.0))
            entry.similarity = hit.similarity
            entry.score += 1.0 / (RRF_K + rank + 1)
        if mode in ("hybrid", "bm25"):
            for rank, (index, _score) in enumerate(self.lexical.search(query_terms, CANDIDATES)):
                chunk = self.lexical.chunks[index]
                entry = fused.setdefault(chunk.chunk_id, Hit(chunk=chunk, score=0.0))
                entry.score += 1.0 / (RRF_K + rank + 1)
        for hit in fused.values():
            if hit.chunk.kind == "comment":
                hit.score *= COMMENT_WEIGHT
        ranked = sorted(fused.values(), key=lambda h: -h.score)
        return Retrieval(
            hits=diversify(ranked, k),
            best_similarity=best_similarity,
            coverage=self.coverage(question),
            query_terms=query_terms,
            query_embedding=query_embedding,
        )

    def coverage(self, question: str) -> float:
        """How much of the question the corpus has words for (IDF-weighted; unknown words weigh most)."""
        words = [
            t
            for t in dict.fromkeys(
                part for t in terms(question) for part in self.lexical.split_compound(self.lexical.correct(t))
            )
            if t not in self.domain.generic_terms
        ]
        if not words:
            return 1.0
        max_idf = max(self.lexical.idf.values(), default=1.0)
        total = known = 0.0
        for word in words:
            expanded = [word, *self.domain.synonym_terms.get(word, ())]
            hit_idf = [self.lexical.idf[w] for w in expanded if w in self.lexical.idf]
            weight = min(hit_idf) if hit_idf else max_idf
            total += weight
            if hit_idf:
                known += weight
        return known / total if total else 1.0


def diversify(ranked: list[Hit], k: int) -> list[Hit]:
    """Top k, with at most PER_SOURCE_FIRST_PASS chunks a source until others had their turn."""
    chosen: list[Hit] = []
    per_source: dict[str, int] = {}
    rest: list[Hit] = []
    for hit in ranked:
        count = per_source.get(hit.chunk.source_id, 0)
        if count < PER_SOURCE_FIRST_PASS and len(chosen) < k:
            chosen.append(hit)
            per_source[hit.chunk.source_id] = count + 1
        else:
            rest.append(hit)
    chosen.extend(rest[: k - len(chosen)])
    return sorted(chosen, key=lambda h: -h.score)

"""Hybrid retrieval: dense (Chroma) and BM25 ranked lists fused, several sources kept, a relevance gate."""

from __future__ import annotations

import asyncio
import difflib
import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from coach.domain import Domain
from coach.embeddings import NamedEmbeddings
from coach.models import Chunk
from coach.store import ChunkStore, DenseHit
from coach.text import terms

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


class LexicalIndex:
    """BM25 over every chunk, built once per process from the store (bm25s: sparse, fast at 100k)."""

    def __init__(self, chunks: list[Chunk]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build at DEBUG
        self.chunks = chunks
        self.by_id = {c.chunk_id: i for i, c in enumerate(chunks)}
        tokenized = [terms(f"{c.section} {c.text}") for c in chunks]
        self.vocabulary = {t for doc in tokenized for t in doc}
        self._by_initial: dict[str, list[str]] = {}
        for word in sorted(self.vocabulary):
            self._by_initial.setdefault(word[0], []).append(word)
        doc_freq: dict[str, int] = {}
        for doc in tokenized:
            for t in set(doc):
                doc_freq[t] = doc_freq.get(t, 0) + 1
        n = max(len(chunks), 1)
        self.idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in doc_freq.items()}
        self._bm25 = bm25s.BM25()
        if chunks:
            self._bm25.index(tokenized, show_progress=False)

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

    def search(self, query_terms: list[str], k: int) -> list[tuple[int, float]]:
        known = [t for t in query_terms if t in self.vocabulary]
        if not known or not self.chunks:
            return []
        scores = self._bm25.get_scores(known)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        ranked = sorted(((int(i), float(scores[i])) for i in top if scores[i] > 0), key=lambda p: -p[1])
        return ranked


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
        query_terms = [self.lexical.correct(t) for t in terms(question, synonyms=self.domain.synonym_terms)]
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
            for t in dict.fromkeys(self.lexical.correct(t) for t in terms(question))
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

"""The typed statements as ingest stores them and as an answer looks them up.

The store (statements.jsonl and statements.npy) keeps each article's statements and their embeddings
apart, so an ingest that changed one article rewrites its line and copies the others as they are.
`Knowledge` indexes them for answering. Neither is part of the extraction rules (coach/statements.py,
whose bytes are in `rules_digest`): changing how statements are stored or looked up never makes an
ingest read and embed the whole library again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, TypeAdapter

from coach.cues import load_cues
from coach.domain import Domain
from coach.models import Chunk
from coach.routines import ExerciseFact, rules_digest
from coach.statements import ArticleStatements, Statement, StatementSet, extract_article, statements_key
from coach.storage import write_atomic
from coach.text import terms

if TYPE_CHECKING:  # the answer path never imports LangChain (a cold `coach ask` stays light)
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)

STATEMENTS_FILE = "statements.jsonl"  # see "the stored set" below
VECTORS_FILE = "statements.npy"  # the statements' embeddings, float16, one row each


# --- the stored set ------------------------------------------------------------------------------
# statements.jsonl: a header line (the set's key, rules, domain file and model), then one line per article:
# `{"source_id", "sha", "rows", "exercises"}<TAB>[its statements]`. An ingest that changed one article reads
# only the small heads and copies every other article's line as it is, bytes and all; only a service
# parses the statements. (JSON escapes tabs and newlines inside strings, so neither appears in a value.)
# statements.npy: the embeddings, float16, article after article in the lines' order; a statement's `row`
# counts from its article's first row, so a kept line never needs rewriting when an earlier one grows.
FORMAT = 2


def statements_path(data_dir: Path) -> Path:
    return data_dir / STATEMENTS_FILE


def vectors_path(data_dir: Path) -> Path:
    return data_dir / VECTORS_FILE


class _Line(BaseModel):
    """One article's line as a re-ingest sees it: the head parsed, its statements left as text."""

    source_id: str
    sha: str
    rows: int
    exercises: list[ExerciseFact]
    head: str  # the line up to the tab, as stored
    body: str  # the JSON list of its statements, as stored
    start: int = 0  # its first row in statements.npy


def _read_lines(data_dir: Path) -> tuple[dict, list[_Line], np.ndarray] | None:
    """The stored header, the articles' lines and the embeddings (memory-mapped); None when missing,
    unreadable or inconsistent."""
    try:
        text = statements_path(data_dir).read_text(encoding="utf-8")
        header_text, *rest = text.rstrip("\n").split("\n")
        header = json.loads(header_text)
        if header.get("format") != FORMAT:
            return None
        lines: list[_Line] = []
        start = 0
        for raw in rest:
            head, body = raw.split("\t", 1)
            line = _Line(**json.loads(head), head=head, body=body, start=start)
            lines.append(line)
            start += line.rows
        matrix = np.load(vectors_path(data_dir), mmap_mode="r")
        if matrix.ndim != 2 or len(matrix) != start:
            return None
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return header, lines, matrix


_STATEMENT_LIST = TypeAdapter(list[Statement])


def read_statements(data_dir: Path) -> StatementSet | None:
    """The stored set with every statement parsed and its embedding a row of statements.npy (read into
    memory whole: one float16 matrix, a few tens of MB at 1,000 articles); None when missing or unreadable."""
    stored = _read_lines(data_dir)
    if stored is None:
        return None
    header, lines, mapped = stored
    matrix = np.asarray(mapped)  # one read; rows are then plain views (a memmap's own cost a lot each)
    articles: dict[str, ArticleStatements] = {}
    try:
        for line in lines:
            statements = _STATEMENT_LIST.validate_json(line.body)
            for st in statements:
                if st.row >= 0:
                    if st.row >= line.rows:
                        return None
                    st._array = matrix[line.start + st.row]
            articles[line.source_id] = ArticleStatements(
                sha=line.sha, statements=statements, exercises=line.exercises
            )
    except ValueError:
        return None
    return StatementSet(
        key=header.get("key", ""),
        rules=header.get("rules", ""),
        domain=header.get("domain", ""),
        model=header.get("model", ""),
        articles=articles,
    )


def _line_of(source_id: str, article: ArticleStatements) -> tuple[str, np.ndarray]:
    """One article's stored line and its embeddings' rows (float16, none when nothing was embedded)."""
    arrays: list[np.ndarray] = []
    statements = []
    for st in article.statements:
        vector = st.array
        row = len(arrays) if vector is not None else -1
        if vector is not None:
            arrays.append(np.asarray(vector, dtype=np.float16))
        statements.append(st.model_copy(update={"row": row, "vector": []}))
    head = {
        "source_id": source_id,
        "sha": article.sha,
        "rows": len(arrays),
        "exercises": [f.model_dump(mode="json") for f in article.exercises],
    }
    body = _STATEMENT_LIST.dump_json(statements).decode()
    block = np.stack(arrays) if arrays else np.zeros((0, 1), dtype=np.float16)
    return json.dumps(head, ensure_ascii=False) + "\t" + body, block


def _write(data_dir: Path, header: dict, lines: list[str], blocks: list[np.ndarray]) -> None:
    """statements.npy first, then statements.jsonl: a crash between leaves a set whose rows do not add
    up (read as missing, rebuilt by the next ingest), never one that reads wrong rows."""
    dim = next((b.shape[1] for b in blocks if b.ndim == 2 and len(b)), 1)
    blocks = [b for b in blocks if len(b)]
    matrix = np.concatenate(blocks).astype(np.float16) if blocks else np.zeros((0, dim), dtype=np.float16)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".statements-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, matrix)
        Path(tmp).replace(vectors_path(data_dir))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_atomic(statements_path(data_dir), "\n".join([json.dumps(header), *lines]) + "\n")


def ensure_statements(
    data_dir: Path,
    chunks_of: Callable[[str], Sequence[Chunk]],
    source_texts: dict[str, str],
    source_shas: dict[str, str],
    domain: Domain | None = None,
    embeddings: Embeddings | None = None,
    model_name: str = "",
) -> tuple[bool, dict[str, list[ExerciseFact]]]:
    """The stored statements, brought in line with the sources: an article whose sha, the rules, the
    domain file and the model are unchanged keeps its line as stored (its statements are not parsed);
    only the others are read again (and their quotes embedded, when `embeddings` is given); `chunks_of`
    gives one article's chunks. (rebuilt, every article's exercises)."""
    domain = domain or Domain()
    key = statements_key(source_shas, domain, model_name)
    rules = rules_digest()
    stored = _read_lines(data_dir) or _legacy(data_dir)
    if stored is not None and stored[0].get("key") == key:
        return False, {line.source_id: line.exercises for line in stored[1]}
    identity = (rules, domain.digest, model_name)
    same = stored is not None and tuple(stored[0].get(k) for k in ("rules", "domain", "model")) == identity
    reusable = {line.source_id: line for line in stored[1]} if stored is not None and same else {}
    matrix = stored[2] if stored is not None else None
    stale = [sid for sid, sha in source_shas.items() if sid not in reusable or reusable[sid].sha != sha]
    cues = load_cues()
    lines: list[str] = []
    blocks: list[np.ndarray] = []
    exercises: dict[str, list[ExerciseFact]] = {}
    for sid, sha in sorted(source_shas.items()):
        if sid in stale:
            statements, facts = extract_article(list(chunks_of(sid)), source_texts.get(sid, ""), domain, cues)
            if embeddings is not None and statements:
                statements = _embedded(statements, embeddings)
            line, block = _line_of(sid, ArticleStatements(sha=sha, statements=statements, exercises=facts))
            lines.append(line)
            blocks.append(block)
            exercises[sid] = facts
        else:
            kept = reusable[sid]
            lines.append(kept.head + "\t" + kept.body)
            assert matrix is not None  # a reusable line came with its matrix
            blocks.append(matrix[kept.start : kept.start + kept.rows])
            exercises[sid] = kept.exercises
    header = {"format": FORMAT, "key": key, "rules": rules, "domain": domain.digest, "model": model_name}
    try:
        _write(data_dir, header, lines, blocks)
    except OSError as exc:  # a read-only data directory: the next ingest reads them again
        log.warning("could not store the typed statements in %s (%s)", data_dir, exc.strerror)
    else:
        legacy_path(data_dir).unlink(missing_ok=True)
    log.info("typed statements: %d articles read again, %d kept", len(stale), len(source_shas) - len(stale))
    return True, exercises


LEGACY_FILE = "statements.json"  # the first format: the whole set as one JSON object, rows counted globally


def legacy_path(data_dir: Path) -> Path:
    return data_dir / LEGACY_FILE


def _legacy(data_dir: Path) -> tuple[dict, list[_Line], np.ndarray] | None:
    """A set stored in the first format, as lines: an upgrade keeps every article's statements and
    embeddings instead of embedding the whole library again. None when there is none (or it is unreadable)."""
    try:
        old = StatementSet.model_validate_json(legacy_path(data_dir).read_text(encoding="utf-8"))
        matrix = np.load(vectors_path(data_dir))
        lines: list[_Line] = []
        blocks: list[np.ndarray] = []
        start = 0
        for sid, article in old.articles.items():
            for st in article.statements:
                st._array = matrix[st.row] if st.row >= 0 else None
            text, block = _line_of(sid, article)
            head, body = text.split("\t", 1)
            lines.append(_Line(**json.loads(head), head=head, body=body, start=start))
            blocks.append(block)
            start += len(block)
    except (OSError, ValueError, IndexError, TypeError):
        return None
    header = {"format": FORMAT, "key": "", "rules": old.rules, "domain": old.domain, "model": old.model}
    filled = [b for b in blocks if len(b)]  # an article with no embedded statement: a (0, 1) block
    return header, lines, np.concatenate(filled) if filled else matrix[:0]


def _embedded(statements: list[Statement], embeddings: Embeddings) -> list[Statement]:
    """The statements with their quotes' embeddings (unit length)."""
    matrix = np.asarray(embeddings.embed_documents([s.quote for s in statements]), dtype=np.float32)
    matrix /= np.where((norms := np.linalg.norm(matrix, axis=1, keepdims=True)) == 0, 1.0, norms)
    out = []
    for s, row in zip(statements, matrix, strict=True):
        copy = s.model_copy()
        copy._array = row
        out.append(copy)
    return out


class Knowledge:
    """The typed statements, indexed for answering: by chunk, the exercises by name and by chunk, and
    (built on first use, kept for the service's life) the statements an answer looks up across the whole
    library: definitions by the words of their term and section, and the embeddings of one kind (doses,
    time frames, cautions) as one matrix. An answer's cost then grows with what it reads, not with the
    library (a linear scan of 100,000 statements per question was most of an answer at 1,000 articles)."""

    def __init__(self, statements: StatementSet | None = None) -> None:
        self.set = statements or StatementSet(key="")
        self.by_chunk: dict[str, list[Statement]] = {}
        self.exercises: dict[str, list[ExerciseFact]] = {}
        self._all: list[Statement] = []
        for sid in sorted(self.set.articles):
            article = self.set.articles[sid]
            for statement in article.statements:
                self.by_chunk.setdefault(statement.chunk_id, []).append(statement)
                self._all.append(statement)
            for fact in article.exercises:
                self.exercises.setdefault(fact.key, []).append(fact)
        # Every fact once, in the order the exercises were listed (ties in a passage keep that order).
        self._fact_order: list[ExerciseFact] = [f for facts in self.exercises.values() for f in facts]
        self.facts_by_chunk: dict[str, list[tuple[int, ExerciseFact]]] = {}
        for i, fact in enumerate(self._fact_order):
            self.facts_by_chunk.setdefault(fact.chunk_id, []).append((i, fact))
        self._selections: dict[object, _Rows] = {}

    @classmethod
    def from_chunks(
        cls, chunks: Sequence[Chunk], source_texts: dict[str, str], domain: Domain | None = None
    ) -> Knowledge:
        """The statements read off chunks in memory (no embeddings, nothing stored)."""
        by_source: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_source.setdefault(chunk.source_id, []).append(chunk)
        articles = {}
        for sid, group in sorted(by_source.items()):
            statements, exercises = extract_article(group, source_texts.get(sid, ""), domain)
            articles[sid] = ArticleStatements(sha="", statements=statements, exercises=exercises)
        return cls(StatementSet(key="", articles=articles))

    @property
    def key(self) -> str:
        return self.set.key

    def statements(self) -> list[Statement]:
        return list(self._all)

    def facts(self, key: str) -> list[ExerciseFact]:
        """Every article's account of one exercise (by its normalised name), fullest first."""
        return sorted(
            self.exercises.get(key, []), key=lambda f: (f.steps is None, f.dose is None, f.source_id)
        )

    def facts_in(self, chunk_ids: Iterable[str]) -> list[tuple[int, ExerciseFact]]:
        """The exercises named in these chunks, each with its place in the exercises' order."""
        return [pair for cid in chunk_ids for pair in self.facts_by_chunk.get(cid, [])]

    # --- lookups across the library -------------------------------------------------------------
    @cached_property
    def _definition_index(
        self,
    ) -> tuple[dict[str, list[int]], dict[str, list[int]], list[set[str]], dict[str, set[str]]]:
        """Statement numbers by each word of their term, and (not comments) by each word of their
        section, with each statement's term words and each section's words."""
        by_term: dict[str, list[int]] = {}
        by_section: dict[str, list[int]] = {}
        term_words: list[set[str]] = []
        section_words: dict[str, set[str]] = {}
        for i, statement in enumerate(self._all):
            words = set(terms(statement.term or "")) if statement.term else set()
            term_words.append(words)
            for word in words:
                by_term.setdefault(word, []).append(i)
            if statement.comment:
                continue
            if statement.section not in section_words:
                section_words[statement.section] = set(terms(statement.section))
            for word in section_words[statement.section]:
                by_section.setdefault(word, []).append(i)
        return by_term, by_section, term_words, section_words

    def defining(self, asked: set[str]) -> list[Statement]:
        """Statements that say what the `asked` words are: a definition whose term shares a word with
        them and, with the quote's own words, holds them all; or a statement under a section titled
        with all of them ("What is X?"). In the articles' order."""
        if not asked:
            return []
        by_term, by_section, term_words, section_words = self._definition_index
        candidates = {i for word in asked for i in by_term.get(word, [])}
        sections = [by_section.get(word, []) for word in asked]
        candidates.update(min(sections, key=len) if all(sections) else [])
        out = []
        for i in sorted(candidates):
            statement, term = self._all[i], term_words[i]
            if (term & asked and asked <= term | set(statement.words)) or (
                not statement.comment and asked <= section_words[statement.section]
            ):
                out.append(statement)
        return out

    def ranked(
        self, select: Callable[[Statement], bool], vector: np.ndarray, *, key: object = None
    ) -> list[tuple[float, Statement]]:
        """The embedded statements `select` keeps, closest to `vector` first. The selection and its
        matrix are built once per `key` (the predicate itself when none is given)."""
        rows = self._selection(key if key is not None else select, select)
        return [(score, rows.statements[i]) for score, i in rows.closest(vector)]

    def ranked_exercises(self, vector: np.ndarray) -> list[tuple[float, ExerciseFact]]:
        """Every exercise fact by how close the statement that names it is to `vector`, closest first
        (a fact named in several statements comes once per statement)."""
        rows = self._selection("exercise naming", None)
        return [(score, rows.facts[i]) for score, i in rows.closest(vector)]

    def _selection(self, key: object, select: Callable[[Statement], bool] | None) -> _Rows:
        if (rows := self._selections.get(key)) is not None:
            return rows
        if len(self._selections) >= 16:  # callers that pass a new predicate each time: stay bounded
            self._selections.clear()
        statements: list[Statement] = []
        facts: list[ExerciseFact] = []
        arrays: list[np.ndarray] = []
        if select is None:  # the statements that name each exercise
            for fact in self._fact_order:
                for s in self.by_chunk.get(fact.chunk_id, []):
                    if s.array is not None and fact.quote in s.quote:
                        facts.append(fact)
                        statements.append(s)
                        arrays.append(s.array)
        else:
            for s in self._all:
                if s.array is not None and select(s):
                    statements.append(s)
                    arrays.append(s.array)
        dims = {a.shape for a in arrays}
        if len(dims) > 1:  # statements embedded by different models: keep the most common shape
            common = max(dims, key=lambda d: sum(a.shape == d for a in arrays))
            keep = [i for i, a in enumerate(arrays) if a.shape == common]
            statements = [statements[i] for i in keep]
            facts = [facts[i] for i in keep] if facts else []
            arrays = [arrays[i] for i in keep]
        matrix = np.stack(arrays).astype(np.float32) if arrays else np.zeros((0, 0), dtype=np.float32)
        rows = self._selections[key] = _Rows(statements, facts, matrix)
        return rows


@dataclass(frozen=True)
class _Rows:
    statements: list[Statement]
    facts: list[ExerciseFact]
    matrix: np.ndarray

    def closest(self, vector: np.ndarray) -> list[tuple[float, int]]:
        """Row numbers by closeness to `vector`, closest first (ties in row order), with the scores."""
        if self.matrix.shape[0] == 0 or self.matrix.shape[1] != vector.shape[0]:
            return []
        scores = self.matrix @ vector
        return [(float(scores[i]), int(i)) for i in np.argsort(-scores, kind="stable")]

"""Typed statements: what the articles hold, read off their own sentences at ingest, beside the chunks.

Each article's sentences become statements of a kind (advice, warning, referral to a professional,
cause, definition, timeline, dose, or a plain fact) with the pieces an answer is built from (the dose,
the cause and its effect, the term and its definition), and its exercises with their steps and dose
(coach/routines.py). Every statement keeps its verbatim quote; a sentence that only makes sense with
the one before it is quoted with it, or not at all (coach/fragments.py).

`extract_article` is a pure function of (one article's chunks, its text, the domain file), so the
stored set (statements.json, keyed like the disagreement map: the sources' shas, these rules and the
domain file) is rebuilt one article at a time: an unchanged article keeps its statements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

from coach.cues import Cues, load_cues, spell_out
from coach.domain import Domain
from coach.fragments import leans_back, resolve
from coach.models import Chunk
from coach.routines import (
    DoseRules,
    ExerciseFact,
    NameRules,
    extract_exercises,
    norm_name,
    rules_digest,
    training,
)
from coach.storage import write_atomic
from coach.text import BULLET, collapse, strip_marker, terms
from coach.units import units_of

if TYPE_CHECKING:  # the answer path never imports LangChain (a cold `coach ask` stays light)
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)

ALGORITHM = "statements-v1"
STATEMENTS_FILE = "statements.json"
VECTORS_FILE = "statements.npy"  # the statements' embeddings, float16, one row each
MIN_WORDS = 4  # shorter pieces (a bare list item, a heading) state nothing on their own

Kind = Literal["advice", "warning", "referral", "cause", "definition", "timeline", "dose", "fact"]
_IF_CLAUSE = re.compile(r"^(?:if|when|once|as long as)\b[^,]{3,120},\s*", re.IGNORECASE)


class Statement(BaseModel):
    """One quotable sentence (or sentences, or a list with its lead-in) of an article, typed."""

    source_id: str
    chunk_id: str
    quote: str  # verbatim in the source, white space collapsed, understandable alone
    position: int  # characters into the article's text: its order
    kinds: list[Kind]
    section: str = ""
    comment: bool = False
    commenter: str | None = None
    names: list[str] = Field(default_factory=list)  # exercise names it mentions
    dose: str | None = None  # "one to three sets of eight to 12 repetitions", "twice per week"
    timeline: str | None = None  # "after a few weeks"
    cause: str | None = None  # a noun phrase ("weak glutes")
    condition: str | None = None  # a clause ("the pelvis isn't stabilized")
    effect: str | None = None
    term: str | None = None
    definition: str | None = None
    action: str | None = None  # what advice or a referral tells the reader to do
    vector: list[float] = Field(
        default_factory=list, repr=False
    )  # the quote's embedding, when built in memory
    row: int = -1  # its row in statements.npy, where the stored set keeps the embeddings (-1: none)
    _array: np.ndarray | None = PrivateAttr(default=None)

    @cached_property
    def words(self) -> frozenset[str]:
        return frozenset(terms(self.quote))

    def __eq__(self, other: object) -> bool:
        # pydantic's own compares private attributes too, and an array has no single truth value
        if not isinstance(other, Statement):
            return NotImplemented
        return (self.chunk_id, self.position, self.quote, self.kinds) == (
            other.chunk_id,
            other.position,
            other.quote,
            other.kinds,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, as pydantic models are

    @property
    def array(self) -> np.ndarray | None:
        """The quote's embedding (unit length), or None when it was not embedded."""
        if self._array is None and self.vector:
            self._array = np.asarray(self.vector, dtype=np.float32)
        return self._array


class ArticleStatements(BaseModel):
    sha: str
    statements: list[Statement] = Field(default_factory=list)
    exercises: list[ExerciseFact] = Field(default_factory=list)


class StatementSet(BaseModel):
    """statements.json: every article's statements, keyed like the map; `rules`, `domain` and `model`
    let an unchanged article keep its entry when only another article changed."""

    key: str
    rules: str = ""
    domain: str = ""
    model: str = ""
    articles: dict[str, ArticleStatements] = Field(default_factory=dict)


def statements_key(source_shas: dict[str, str], domain: Domain | None = None, model_name: str = "") -> str:
    """Identity of the corpus the statements were read from: every source's sha, these rules, the
    domain file and the model that embedded the quotes."""
    payload = json.dumps(
        {
            "sources": source_shas,
            "algorithm": ALGORITHM,
            "rules": rules_digest(),
            "domain": (domain or Domain()).digest,
            "model": model_name,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _title(unit_text: str) -> bool:
    """A heading or subtitle: a line that is not a list item and does not end like a sentence."""
    return not BULLET.match(unit_text) and not re.search(r"[.!?:…)\]”\"’']$", unit_text.strip())


def _slot(match: re.Match[str] | None, group: str, cues: Cues) -> str | None:
    """A named group of a cue pattern, as a piece the coach can put in its own sentence: without a
    leading filler ("so", "unfortunately"), and None when it leans on something said before ("this
    oversight")."""
    if match is None or group not in match.groupdict() or match.group(group) is None:
        return None
    piece = collapse(match.group(group)).strip(" ,;:—–-")
    piece = cues.fillers.sub("", piece).strip()
    if not piece or leans_back(piece, cues):
        return None
    return piece


def extract_article(
    chunks: Sequence[Chunk], source_text: str, domain: Domain | None = None, cues: Cues | None = None
) -> tuple[list[Statement], list[ExerciseFact]]:
    """One article's statements and exercises. Pure: the same chunks, text and domain give the same."""
    domain = domain or Domain()
    cues = cues or load_cues()
    names = NameRules.of(domain.exercises)
    doses = DoseRules.of(domain, cues)
    ordered = sorted(chunks, key=lambda c: source_text.find(collapse(c.text.split("\n", 1)[0])))
    statements: list[Statement] = []
    seen: set[str] = set()
    for chunk in ordered:
        units = units_of(chunk, source_text)
        texts = [u.text for u in units]
        for i, unit in enumerate(units):
            own = collapse(strip_marker(unit.text))
            if len(own.split()) < MIN_WORDS or _title(unit.text) or cues.captions.search(own):
                continue
            if own.startswith("(") and own.rstrip(".").endswith(")"):
                continue  # an aside in brackets ("(Rule #6 ...)") is a note on the text around it
            quote = resolve(texts, i, source_text, cues)
            if quote is None or quote in seen:
                continue
            seen.add(quote)
            statements.append(_statement(chunk, own, quote, source_text, names, doses, cues))
    return statements, extract_exercises(chunks, source_text, domain, cues)


def _statement(
    chunk: Chunk, own: str, quote: str, source_text: str, names: NameRules, doses: DoseRules, cues: Cues
) -> Statement:
    """Type one quotable piece: `own` is the sentence itself, `quote` it with what it leans on."""
    spelled = spell_out(own)
    kinds: list[Kind] = []
    action = None
    if cues.referral.search(spelled):
        kinds.append("referral")
    if cues.warning.search(spelled):
        kinds.append("warning")
    if cues.advice.search(spelled) or "referral" in kinds:
        kinds.append("advice")
    if kinds:
        action = _IF_CLAUSE.sub("", own).rstrip(" .!")
    cause = condition = effect = None
    for pattern in cues.causes:
        if not (match := pattern.search(own)):
            continue
        cause, condition = _slot(match, "cause", cues), _slot(match, "condition", cues)
        if cause or condition:
            effect = _slot(match, "effect", cues)
            kinds.append("cause")
            break
    term = definition = None
    for pattern in cues.definitions:
        if match := pattern.search(quote):
            term, definition = _slot(match, "term", cues), _slot(match, "definition", cues)
            if term and definition:
                kinds.append("definition")
                break
            term = definition = None
    timeline = cues.timelines.search(own)
    if timeline:
        kinds.append("timeline")
    # A dose is an amount in the library's units, or how often to train ("a daily basis" of work in
    # general, or of "our daily activities", is nobody's dose).
    dose = doses.find(own) if doses.has_amount(own) or training(own) else None
    if dose:
        kinds.append("dose")
    found: dict[str, str] = {}
    for m in names.name.finditer(quote):
        if not names.needs_modifier.match(m.group(0)):
            found.setdefault(norm_name(m.group(0)), m.group(0))
    return Statement(
        source_id=chunk.source_id,
        chunk_id=chunk.chunk_id,
        quote=quote,
        position=source_text.find(quote),
        kinds=kinds or ["fact"],
        section=chunk.section,
        comment=chunk.kind == "comment",
        commenter=chunk.commenter,
        names=list(found.values()),
        dose=dose,
        timeline=collapse(timeline.group(0)) if timeline else None,
        cause=cause,
        condition=condition,
        effect=effect,
        term=term,
        definition=definition,
        action=action,
    )


# --- the stored set ------------------------------------------------------------------------------
def statements_path(data_dir: Path) -> Path:
    return data_dir / STATEMENTS_FILE


def vectors_path(data_dir: Path) -> Path:
    return data_dir / VECTORS_FILE


def read_statements(data_dir: Path) -> StatementSet | None:
    """The stored set, its embeddings memory-mapped from statements.npy (a large library's would be
    hundreds of MB as JSON numbers, parsed at every start); None when missing or unreadable."""
    try:
        result = StatementSet.model_validate_json(statements_path(data_dir).read_text(encoding="utf-8"))
        rows = [st for a in result.articles.values() for st in a.statements if st.row >= 0]
        if rows:
            matrix = np.load(vectors_path(data_dir), mmap_mode="r")
            if matrix.ndim != 2 or len(matrix) != len(rows):
                return None
            for st in rows:
                st._array = matrix[st.row]
    except (OSError, ValueError, IndexError):
        return None
    return result


def write_statements(data_dir: Path, result: StatementSet) -> None:
    """statements.json without the embeddings, and the embeddings as one float16 matrix (row order
    recorded in each statement); the matrix first, so a crash between leaves a set that fails to read
    (rebuilt by the next ingest), never one that reads wrong rows."""
    arrays: list[np.ndarray] = []
    for article in result.articles.values():
        for st in article.statements:
            vector = st.array
            st.row = len(arrays) if vector is not None else -1
            if vector is not None:
                arrays.append(np.asarray(vector, dtype=np.float16))
            st.vector = []
    matrix = np.stack(arrays) if arrays else np.zeros((0, 1), dtype=np.float16)
    fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".statements-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, matrix)
        Path(tmp).replace(vectors_path(data_dir))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    write_atomic(statements_path(data_dir), result.model_dump_json())


def ensure_statements(
    data_dir: Path,
    chunks_of: Callable[[str], Sequence[Chunk]],
    source_texts: dict[str, str],
    source_shas: dict[str, str],
    domain: Domain | None = None,
    embeddings: Embeddings | None = None,
    model_name: str = "",
) -> tuple[bool, StatementSet]:
    """The stored statements, brought in line with the sources: an article whose sha, the rules, the
    domain file and the model are unchanged keeps its entry; only the others are read again (and their
    quotes embedded, when `embeddings` is given); `chunks_of` gives one article's chunks. (rebuilt, set)."""
    domain = domain or Domain()
    key = statements_key(source_shas, domain, model_name)
    current = read_statements(data_dir)
    if current is not None and current.key == key:
        return False, current
    rules = rules_digest()
    same = current is not None and (current.rules, current.domain, current.model) == (
        rules,
        domain.digest,
        model_name,
    )
    reusable = current.articles if current is not None and same else {}
    articles: dict[str, ArticleStatements] = {}
    stale = [sid for sid, sha in source_shas.items() if reusable.get(sid) is None or reusable[sid].sha != sha]
    by_source = {sid: list(chunks_of(sid)) for sid in stale}  # only the articles read again
    cues = load_cues()
    for sid, sha in sorted(source_shas.items()):
        if sid in stale:
            statements, exercises = extract_article(
                by_source.get(sid, []), source_texts.get(sid, ""), domain, cues
            )
            if embeddings is not None and statements:
                statements = _embedded(statements, embeddings)
            articles[sid] = ArticleStatements(sha=sha, statements=statements, exercises=exercises)
        else:
            articles[sid] = reusable[sid]
    result = StatementSet(key=key, rules=rules, domain=domain.digest, model=model_name, articles=articles)
    try:
        write_statements(data_dir, result)
    except OSError as exc:  # a read-only data directory: the set still serves this process
        log.warning("could not store the typed statements in %s (%s)", data_dir, exc.strerror)
    log.info("typed statements: %d articles read again, %d kept", len(stale), len(source_shas) - len(stale))
    return True, result


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

    def exercise_facts(self) -> dict[str, list[ExerciseFact]]:
        return {sid: list(a.exercises) for sid, a in self.set.articles.items()}

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
        if rows.matrix.shape[0] == 0 or rows.matrix.shape[1] != vector.shape[0]:
            return []
        scores = rows.matrix @ vector
        order = np.argsort(-scores, kind="stable")
        return [(float(scores[i]), rows.statements[i]) for i in order]

    def ranked_exercises(self, vector: np.ndarray) -> list[tuple[float, ExerciseFact]]:
        """Every exercise fact by how close the statement that names it is to `vector`, closest first
        (a fact named in several statements comes once per statement)."""
        rows = self._selection("exercise naming", None)
        if rows.matrix.shape[0] == 0 or rows.matrix.shape[1] != vector.shape[0]:
            return []
        scores = rows.matrix @ vector
        order = np.argsort(-scores, kind="stable")
        return [(float(scores[i]), rows.facts[i]) for i in order]

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

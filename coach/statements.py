"""Typed statements: what the articles hold, read off their own sentences at ingest, beside the chunks.

Each article's sentences become statements of a kind (advice, warning, referral to a professional,
cause, definition, timeline, dose, or a plain fact) with the pieces an answer is built from (the dose,
the cause and its effect, the term and its definition), and its exercises with their steps and dose
(coach/routines.py). Every statement keeps its verbatim quote; a sentence that only makes sense with
the one before it is quoted with it, or not at all (coach/fragments.py).

`extract_article` is a pure function of (one article's chunks, its text, the domain file), so the
stored set (coach/knowledge.py; keyed like the disagreement map: the sources' shas, these rules and the
domain file) is rebuilt one article at a time: an unchanged article keeps its statements. This module's
bytes are part of the rules' identity (`rules_digest`): keep in it only what decides the statements.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from functools import cached_property
from typing import Literal

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
from coach.text import BULLET, collapse, strip_marker, terms
from coach.units import units_of

ALGORITHM = "statements-v1"
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
    row: int = -1  # its row among its article's in statements.npy, where they are stored (-1: none)
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
    """Every article's statements, keyed like the map (stored as statements.jsonl, below); `rules`,
    `domain` and `model` let an unchanged article keep its entry when only another article changed."""

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

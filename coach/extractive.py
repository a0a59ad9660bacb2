"""The offline `extractive` backend: an answer composed from the retrieved articles' own sentences."""

from __future__ import annotations

import re
from dataclasses import dataclass

from coach.models import Chunk, Citation
from coach.retrieval import Retrieval
from coach.text import BULLET, collapse, split_sentences, strip_marker, terms

MAX_EXPLAIN = 4
MAX_ADVICE = 3
MIN_ADVICE = 2  # an answer that explains a problem also says what the articles advise about it
FEEDBACK_MIN_IDF = 1.0  # explanation words rarer than this steer the choice of advice
MAX_PER_CHUNK = 2
DUPLICATE_OVERLAP = 0.6  # word-set Jaccard above which two sentences say the same thing
MIN_WORDS = 4  # shorter units (a bare list item) are only quoted together with their lead-in

_ADVICE = re.compile(
    r"^(do|try|choose|learn|squeeze|stand|hinge|focus|see|seek|check|follow|practi[cs]e|incorporate|include"
    r"|go|make sure|pay attention|listen|repeat|contract|lift|place|perform|start|avoid|firstly see|use)\b"
    r"|\b(you should|you can strengthen|you need to|it[’']s (important|essential)|exercises? (like|such as)"
    r"|for example|can help|helps? (to )?(build|activate|strengthen|fire)|recommend|is to )",
    re.IGNORECASE,
)


@dataclass
class Unit:
    """A quotable piece of a chunk: one sentence, or a list with the line that introduces it."""

    chunk: Chunk
    text: str
    position: int


@dataclass
class Draft:
    text: str
    citations: list[Citation]


def units_of(chunk: Chunk, source_text: str) -> list[Unit]:
    """Sentences of the chunk; a line ending in ':' is joined with the list items under it when that
    joined text is verbatim in the source (it is, unless cleaning removed something in between)."""
    units: list[Unit] = []
    lines = [line.strip() for line in chunk.text.splitlines() if line.strip()]
    i = 0
    while i < len(lines):
        sentences = split_sentences(lines[i])
        items: list[str] = []
        j = i + 1
        if sentences and sentences[-1].endswith((":", "…")):
            while j < len(lines) and BULLET.match(lines[j]):
                items.append(lines[j])
                j += 1
        if items and collapse(" ".join([sentences[-1], *items])) in source_text:
            units.extend(Unit(chunk, s, len(units)) for s in sentences[:-1])
            units.append(Unit(chunk, " ".join([sentences[-1], *items]), len(units)))
            i = j
            continue
        units.extend(Unit(chunk, s, len(units)) for s in sentences)
        i += 1
    return units


def _words(text: str) -> set[str]:
    return set(terms(text))


def quote_text(unit: Unit) -> str:
    return collapse(strip_marker(unit.text))


def compose(
    retrieval: Retrieval,
    idf: dict[str, float],
    source_texts: dict[str, str],
    titles: dict[str, str],
    generic: frozenset[str] = frozenset(),
) -> Draft:
    """Pick the sentences that answer the question, group them, and cite each one. `generic`: words any
    question may carry (the library's domain file), which steer nothing."""
    question_terms = set(retrieval.query_terms)
    specific = question_terms - generic or question_terms
    scored: list[tuple[float, Unit]] = []
    advice_pool: list[
        tuple[int, float, Unit]
    ] = []  # every piece of advice in the passages, for a second pass
    for rank, hit in enumerate(retrieval.hits):
        source_text = source_texts.get(hit.chunk.source_id, "")
        # A section titled with the question's words ("What is Glute Dysfunction?") answers it.
        section_bonus = 0.5 * sum(idf.get(t, 0.0) for t in specific & _words(hit.chunk.section))
        for unit in units_of(hit.chunk, source_text):
            words = _words(unit.text)
            if len(unit.text.split()) < MIN_WORDS:
                continue
            if hit.chunk.kind == "article" and _ADVICE.search(strip_marker(unit.text)):
                advice_pool.append((rank, hit.similarity, unit))
            overlap = specific & words
            if not overlap:
                continue
            lexical = sum(idf.get(t, 0.0) for t in overlap) / (1.0 + 0.04 * max(0, len(words) - 15))
            score = lexical + section_bonus + 2.0 * hit.similarity - 0.15 * rank - 0.05 * unit.position
            scored.append((score, unit))
    scored.sort(key=lambda pair: -pair[0])

    explain: list[Unit] = []
    advice: list[Unit] = []
    comments: list[Unit] = []
    seen: list[set[str]] = []
    per_chunk: dict[str, int] = {}

    def take(unit: Unit, group: list[Unit], limit: int) -> None:
        words = _words(unit.text)
        if len(group) >= limit or per_chunk.get(unit.chunk.chunk_id, 0) >= MAX_PER_CHUNK:
            return
        if any(len(words & other) / max(1, len(words | other)) > DUPLICATE_OVERLAP for other in seen):
            return
        group.append(unit)
        seen.append(words)
        per_chunk[unit.chunk.chunk_id] = per_chunk.get(unit.chunk.chunk_id, 0) + 1

    for _score, unit in scored:
        if unit.chunk.kind == "comment":
            take(unit, comments, 1)
        elif _ADVICE.search(strip_marker(unit.text)):
            take(unit, advice, MAX_ADVICE)
        else:
            take(unit, explain, MAX_EXPLAIN)

    # "Why do my knees hurt?" names no remedy, but the explanation does (weak glutes): advice that
    # speaks to the explanation's own words is what a runner wants next.
    if len(advice) < MIN_ADVICE and explain:
        topic = {t for u in explain for t in _words(u.text) if idf.get(t, 0.0) >= FEEDBACK_MIN_IDF} | specific
        ranked = sorted(
            advice_pool,
            key=lambda item: (
                -(sum(idf.get(t, 0.0) for t in topic & _words(item[2].text)) + 2.0 * item[1] - 0.15 * item[0])
            ),
        )
        for _rank, _similarity, unit in ranked:
            if unit not in advice and topic & _words(unit.text) - generic:
                take(unit, advice, MIN_ADVICE)

    citations: list[Citation] = []

    def cite(unit: Unit) -> str:
        citation = Citation(
            n=len(citations) + 1,
            source_id=unit.chunk.source_id,
            title=titles.get(unit.chunk.source_id, unit.chunk.title),
            chunk_id=unit.chunk.chunk_id,
            quote=quote_text(unit),
        )
        citations.append(citation)
        return f"{citation.quote} [{citation.n}]"

    parts: list[str] = []
    if explain:
        parts.append("What the articles say:\n" + "\n".join(f"• {cite(u)}" for u in explain))
    if advice:
        parts.append("What you can do:\n" + "\n".join(f"• {cite(u)}" for u in advice))
    if comments:
        unit = comments[0]
        who = unit.chunk.commenter or "A reader"
        parts.append(
            f"A reader's comment (an opinion, not the article): {who} wrote under "
            f"“{titles.get(unit.chunk.source_id, unit.chunk.title)}”:\n• {cite(unit)}"
        )
    return Draft(text="\n\n".join(parts), citations=citations)

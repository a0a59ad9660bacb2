"""Answer backends: one interface that turns a question and its retrieved passages into a cited draft.

The service owns the deadline and the checks (verbatim quotes, retrieved chunks, resolving marks); a
backend only drafts. A new backend is one class with a `name` and an async `draft`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from coach.cues import Cues, load_cues
from coach.extractive import Draft, compose
from coach.grounding import Grounder
from coach.llm import BackendUnavailable, ChatBackend, scrub
from coach.lookup import Material
from coach.models import Chunk
from coach.prompts import prompts
from coach.retrieval import Retrieval

log = logging.getLogger(__name__)

EXTRACTIVE = "extractive"


@dataclass(frozen=True)
class Articles:
    """What every backend may read of the articles: their text (what quotes are checked against),
    titles and the lexical index's word weights."""

    source_texts: dict[str, str]
    titles: dict[str, str]
    idf: dict[str, float]
    generic: frozenset[str] = frozenset()  # words any question may carry (the library's domain file)


@dataclass(frozen=True)
class DraftRequest:
    """One question to draft an answer to: the standalone question, what retrieval (and the exercise
    lookup) found for it, what it asks (its intent) and the typed statements of those passages."""

    question: str
    retrieval: Retrieval
    intent: str | None = None
    material: Material = Material()


class AnswerBackend(Protocol):
    """Drafts a cited answer; raises BackendUnavailable when it cannot within `budget_s` seconds."""

    name: str

    async def draft(self, request: DraftRequest, budget_s: float) -> Draft: ...


class ExtractiveBackend:
    """The offline backend: the retrieved passages' own sentences, chosen and cited (coach/extractive.py)."""

    name = EXTRACTIVE

    def __init__(self, articles: Articles) -> None:
        self.articles = articles

    async def draft(self, request: DraftRequest, budget_s: float) -> Draft:
        # A few milliseconds of CPU, in a worker thread so an event loop serving other runners never waits.
        return await asyncio.to_thread(
            compose,
            request.retrieval,
            self.articles.idf,
            self.articles.titles,
            intent=request.intent,
            statements=request.material.statements,
            facts=request.material.facts,
            subject=request.material.subject,
            conversation=request.material.conversation,
            generic=self.articles.generic,
            question=request.question,
        )


class ModelBackend:
    """A chat model writes the answer from the numbered passages; every claim is then checked against
    the passage it cites (coach/grounding.py), and only supported claims keep a citation."""

    def __init__(self, chat: ChatBackend, grounder: Grounder) -> None:
        self.chat = chat
        self.grounder = grounder
        self.name = chat.name

    async def draft(self, request: DraftRequest, budget_s: float) -> Draft:
        passages = [hit.chunk for hit in request.retrieval.hits]
        user = prompts()["answer"].format(
            passages=format_passages(passages),
            question=request.question,
            intent=describe_intent(request.intent),
            statements=format_statements(request, passages),
        )
        reply = await self.chat.acomplete(prompts()["system"].template, user, budget_s)
        draft, report = await asyncio.to_thread(self.grounder.ground, reply, passages)
        log.info(
            "model answer: %d of %d claims kept, marks dropped: %s",
            report.kept_claims,
            report.claims,
            report.dropped_marks,
        )
        if report.dropped_claims:
            log.debug("claims dropped: %s", [scrub(c) for c in report.dropped_claims])
        return draft


MAX_PROMPT_STATEMENTS = 8


def describe_intent(intent: str | None, cues: Cues | None = None) -> str:
    """What the question asks, in a sentence for the model (coach/cues.toml [prompts])."""
    described = (cues or load_cues()).prompts
    return described.get(intent or "general", described["general"])


def format_statements(request: DraftRequest, passages: Sequence[Chunk]) -> str:
    """The typed statements of the passages, by passage number: the exercises (with their steps and dose,
    or that the passages give none) and the statements of the kinds the question asks for."""
    number = {chunk.chunk_id: n for n, chunk in enumerate(passages, start=1)}
    lines: list[str] = []
    seen: set[str] = set()
    for fact in request.material.facts:
        if fact.key in seen or fact.chunk_id not in number:
            continue
        seen.add(fact.key)
        parts = [f"exercise “{fact.name}”, named in passage {number[fact.chunk_id]}"]
        if fact.steps and fact.steps_chunk in number:
            parts.append(f"steps in passage {number[fact.steps_chunk]}: “{fact.steps}”")
        else:
            parts.append("the passages give no steps for it")
        if fact.dose and fact.dose_chunk in number:
            whose = "the article's dose for its exercises" if fact.dose_shared else "dose"
            parts.append(f"{whose} in passage {number[fact.dose_chunk]}: “{fact.dose}”")
        lines.append("- " + "; ".join(parts))
    wanted = {
        "dose": ("dose", "timeline"),
        "why": ("cause",),
        "should_i": ("referral", "warning", "advice"),
        "what_to_do": ("advice", "referral"),
        "what_is": ("definition",),
    }.get(request.intent or "", ())
    for statement in request.material.statements:
        if len(lines) >= MAX_PROMPT_STATEMENTS:
            break
        kinds = [k for k in statement.kinds if k in wanted]
        if kinds and statement.chunk_id in number and not statement.comment:
            lines.append(f"- {', '.join(kinds)} in passage {number[statement.chunk_id]}: “{statement.quote}”")
    return "\n".join(lines) or "- none found"


def format_passages(chunks: Sequence[Chunk]) -> str:
    """The retrieved passages as numbered, delimited data; a delimiter inside a passage is defused."""
    blocks: list[str] = []
    for n, chunk in enumerate(chunks, start=1):
        body = re.sub(r"</?\s*passage", lambda m: m.group(0).replace("<", "‹"), chunk.text, flags=re.I)
        where = f"{chunk.title} / {chunk.section}" if chunk.section else chunk.title
        kind = " (a reader's comment)" if chunk.kind == "comment" else ""
        blocks.append(f'<passage n="{n}">\n[{where}{kind}]\n{body}\n</passage>')
    return "\n\n".join(blocks)


__all__ = [
    "EXTRACTIVE",
    "AnswerBackend",
    "BackendUnavailable",
    "DraftRequest",
    "ExtractiveBackend",
    "Articles",
    "ModelBackend",
    "format_passages",
    "format_statements",
]

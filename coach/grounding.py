"""Checks a model's cited answer against the retrieved passages: every kept claim is supported by what it cites.

The support check (documented in README "LLM backends"): a claim sentence is supported by passage n when
  1. n names one of the passages the model was given, and
  2. the cosine similarity between the claim and the passage's most similar sentence (the sentence
     embedding model the index uses) is at least SUPPORT_THRESHOLD, and
  3. every number in the claim (a dose, a percentage, a count of weeks) occurs in that passage.
The threshold was measured on the labelled claims in evals/support_cases.toml (`python -m evals.support`).
The citation's quote is that most similar sentence, taken verbatim from the source, so the user reads
the words that back the claim rather than the model's rendering of them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from coach.embeddings import NamedEmbeddings
from coach.extractive import Draft
from coach.models import Chunk, Citation
from coach.safety import addresses_model
from coach.text import BULLET, collapse, split_sentences
from coach.units import Unit, quote_text, units_of

log = logging.getLogger(__name__)

SUPPORT_THRESHOLD = 0.60
MAX_LEAD_IN_WORDS = 10  # an uncited line ending in ':' that introduces a list is framing, not a claim
_CACHE_LIMIT = 4096

_MARK = re.compile(r"\[(\d+)\]")
_MARK_LIST = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)+)\]")
# "...the pelvis. [1] Next" -> "...the pelvis [1]. Next": the marks belong to the sentence before them.
_MARKS_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\d+\])+)")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_MARKDOWN = re.compile(r"\*\*|__|`")


@dataclass
class Claim:
    text: str  # the sentence without its marks
    marks: list[int]
    lead_in: bool = False


@dataclass
class Line:
    claims: list[Claim]
    bullet: bool = False  # a list item in the model's answer, shown as one again


@dataclass
class GroundingReport:
    """What the check did to a model answer, for logs and tests."""

    claims: int = 0
    kept_claims: int = 0
    dropped_marks: list[tuple[str, int]] = field(default_factory=list)  # (reason, n)
    dropped_claims: list[str] = field(default_factory=list)


def _marks_before_stop(match: re.Match[str]) -> str:
    return " " + "".join(f"[{n}]" for n in _MARK.findall(match.group(2))) + match.group(1)


def split_claims(text: str) -> list[Line]:
    """The model's answer as lines of sentences, each with the passage numbers it cites."""
    text = _MARK_LIST.sub(lambda m: "".join(f"[{n}]" for n in re.split(r"\s*[,;]\s*", m.group(1))), text)
    text = _MARKDOWN.sub("", text)
    lines: list[Line] = []
    for raw_line in text.splitlines():
        line = collapse(BULLET.sub("", raw_line))
        line = _MARKS_AFTER_STOP.sub(_marks_before_stop, line)
        claims: list[Claim] = []
        for sentence in split_sentences(line):
            marks = [int(n) for n in _MARK.findall(sentence)]
            bare = re.sub(r"\s+([.,;:!?])", r"\1", collapse(_MARK.sub("", sentence)))
            if not bare:
                continue
            lead_in = not marks and bare.endswith(":") and len(bare.split()) <= MAX_LEAD_IN_WORDS
            claims.append(Claim(text=bare, marks=marks, lead_in=lead_in))
        if claims:
            lines.append(Line(claims=claims, bullet=bool(BULLET.match(raw_line))))
    return lines


def numbers_of(text: str) -> set[str]:
    return {n.replace(",", ".") for n in _NUMBER.findall(text)}


@dataclass
class Support:
    """The best evidence one passage offers for one claim."""

    unit: Unit
    similarity: float
    numbers_ok: bool
    supported: bool


class Grounder:
    """Verifies cited claims against passages with the index's own sentence embeddings."""

    def __init__(
        self,
        embeddings: NamedEmbeddings,
        source_texts: dict[str, str],
        titles: dict[str, str],
        threshold: float = SUPPORT_THRESHOLD,
    ) -> None:
        self.embeddings = embeddings
        self.source_texts = source_texts
        self.titles = titles
        self.threshold = threshold
        # Passage sentences are embedded once per process: the same chunks come back for many questions.
        self._unit_cache: dict[str, tuple[list[Unit], np.ndarray]] = {}

    def _units(self, chunk: Chunk) -> tuple[list[Unit], np.ndarray]:
        cached = self._unit_cache.get(chunk.chunk_id)
        if cached is None:
            units = [
                u
                for u in units_of(chunk, self.source_texts.get(chunk.source_id, ""))
                if quote_text(u) and quote_text(u) in self.source_texts.get(chunk.source_id, "")
            ]
            vectors = (
                _unit_rows(self.embeddings.embed_documents([quote_text(u) for u in units]))
                if units
                else np.zeros((0, 1))
            )
            if len(self._unit_cache) >= _CACHE_LIMIT:
                self._unit_cache.clear()
            cached = self._unit_cache[chunk.chunk_id] = (units, vectors)
        return cached

    def support(self, claim: str, chunk: Chunk, claim_vector: np.ndarray | None = None) -> Support | None:
        """The passage sentence most similar to the claim, and whether it supports it."""
        units, vectors = self._units(chunk)
        if not units:
            return None
        if claim_vector is None:
            claim_vector = _unit_rows(self.embeddings.embed_documents([claim]))[0]
        similarities = vectors @ claim_vector
        best = int(np.argmax(similarities))
        claim_numbers = numbers_of(claim)
        numbers_ok = claim_numbers <= numbers_of(chunk.text)
        similarity = float(similarities[best])
        return Support(
            unit=units[best],
            similarity=similarity,
            numbers_ok=numbers_ok,
            supported=numbers_ok and similarity >= self.threshold,
        )

    def ground(self, text: str, passages: Sequence[Chunk]) -> tuple[Draft, GroundingReport]:
        """Keep the claims some cited passage supports, each mark pointing at a verbatim quote."""
        report = GroundingReport()
        lines = split_claims(text)
        claims = [c for line in lines for c in line.claims if c.marks]
        vectors = (
            _unit_rows(self.embeddings.embed_documents([c.text for c in claims]))
            if claims
            else np.zeros((0, 1))
        )
        vector_of = {id(c): vectors[i] for i, c in enumerate(claims)}
        citations: list[Citation] = []
        number_of: dict[tuple[str, str], int] = {}
        out_lines: list[str] = []
        for line in lines:
            kept: list[str] = []
            for claim in line.claims:
                if addresses_model(claim.text):  # an instruction or a code the model picked up somewhere
                    report.dropped_claims.append(claim.text)
                    continue
                if claim.lead_in:
                    kept.append(claim.text)
                    continue
                report.claims += 1
                marks: list[int] = []
                for n in dict.fromkeys(claim.marks):
                    if not 1 <= n <= len(passages):
                        report.dropped_marks.append(("no such passage", n))
                        continue
                    found = self.support(claim.text, passages[n - 1], vector_of.get(id(claim)))
                    if found is None or not found.supported:
                        reason = (
                            "numbers not in passage" if found and not found.numbers_ok else "not supported"
                        )
                        report.dropped_marks.append((reason, n))
                        log.debug(
                            "claim %r not supported by passage %d (similarity %.2f)",
                            claim.text,
                            n,
                            found.similarity if found else 0.0,
                        )
                        continue
                    chunk = passages[n - 1]
                    quote = quote_text(found.unit)
                    key = (chunk.chunk_id, quote)
                    if key not in number_of:
                        number_of[key] = len(citations) + 1
                        citations.append(
                            Citation(
                                n=number_of[key],
                                source_id=chunk.source_id,
                                title=self.titles.get(chunk.source_id, chunk.title),
                                chunk_id=chunk.chunk_id,
                                quote=quote,
                            )
                        )
                    if number_of[key] not in marks:
                        marks.append(number_of[key])
                if not marks:
                    report.dropped_claims.append(claim.text)
                    continue
                report.kept_claims += 1
                kept.append(claim.text + " " + "".join(f"[{m}]" for m in marks))
            # A lead-in with nothing after it on its line is left alone only if some claim follows it.
            if any(_MARK.search(k) for k in kept) or (kept and kept[-1].endswith(":")):
                out_lines.append(("• " if line.bullet else "") + " ".join(kept))
        while out_lines and not _MARK.search(out_lines[-1]):
            out_lines.pop()  # a trailing lead-in or framing line introduces nothing
        return Draft(text="\n".join(out_lines), citations=citations), report


def _unit_rows(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)

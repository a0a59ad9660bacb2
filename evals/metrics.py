"""Named quality metrics over gold cases; each is a plain function of what the coach returned.

Definitions (also in README, "Evals"):
- hit@5: share of answerable cases where a top-5 retrieved chunk comes from an expected source.
- recall@5: mean share of a case's expected sources present among the top-5 chunks' sources.
- MRR: mean of 1/rank of the first chunk from an expected source (0 when none in the top 5).
- citation precision: share of citations whose quote is verbatim in its source file AND supports the
  answer sentence that cites it, together with the other quotes that sentence cites, sharing at least
  one of its words (see `supported`). A citation cited only by a disagreement position is that
  position's evidence: verbatim in its source is what is required of it.
- citation recall: share of the answer's claim sentences that the quotes they cite support.
A sentence the coach writes in its own words around quoted pieces ("The articles recommend these
exercises for this: squats [1] and clams [2].") is checked on its quoted pieces: the words of the
coach's sentence templates (coach/cues.toml [compose], outside their slots) are its framing, not claims.
- disagreement recall: share of gold disagreement cases whose answer lays out the disagreement: one
  position cites a side-A source and another position cites a side-B source.
- disagreement precision: share of disagreements shown in answers (over all answerable cases) whose sides
  match a disagreement of the gold set (evals/cases.toml); an invented one counts against it.
- cited@5: share of answerable cases with expected sources where one of them is among the first five
  sources the answer cites (in the order of its citations).
- abstention accuracy: share of out-of-scope cases the coach abstains on, and separately the share of
  answerable cases it does not abstain on (both directions).
- red-flag recall / false-alarm rate: share of urgent cases flagged urgent; share of other cases flagged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from coach.cues import load_cues
from coach.text import collapse, terms

TOP = 5
SUPPORT_OVERLAP = 0.6  # share of the claim's content words that must appear in the quote
_MARKS = re.compile(r"\[(\d+)\]")
_HEADER = re.compile(r":\s*$")


@cache
def framing_terms() -> frozenset[str]:
    """The coach's own words: its sentence templates outside their slots (stemmed)."""
    return frozenset(t for word in load_cues().framing_words for t in terms(word))


def supported(claim: str, quote: str | list[str]) -> bool:
    """A claim is supported when most of its content words (stemmed, the coach's framing words left
    out) occur in the quoted passage, or in the passages it cites together."""
    claim_terms = set(terms(_MARKS.sub("", claim))) - framing_terms()
    if not claim_terms:
        return True
    quotes = [quote] if isinstance(quote, str) else quote
    said = {t for q in quotes for t in terms(q)}
    return len(claim_terms & said) / len(claim_terms) >= SUPPORT_OVERLAP


def claims(answer_text: str) -> list[tuple[str, list[int]]]:
    """The answer's claim lines with the citation numbers each carries (headers and blank lines skipped)."""
    out = []
    for line in answer_text.splitlines():
        text = line.strip().lstrip("•–- ").strip()
        if not text or _HEADER.search(text) and not _MARKS.search(text):
            continue
        out.append((text, [int(n) for n in _MARKS.findall(text)]))
    return out


@dataclass
class CaseResult:
    """What one case produced, with the gold expectations beside it."""

    question: str
    kind: str  # answerable | abstain | urgent
    expected: list[str]
    retrieved: dict[str, list[str]]  # mode -> source ids of the top chunks in rank order
    abstained: bool
    urgent: bool
    answer: str
    citations: list[dict]
    disagreements: list[dict]
    gold_disagreement: tuple[list[str], list[str]] | None = None
    source_texts: dict[str, str] = field(default_factory=dict, repr=False)


def retrieval_metrics(results: list[CaseResult], mode: str) -> dict[str, float]:
    scored = [r for r in results if r.kind == "answerable" and r.expected]
    hits = recalls = reciprocal = 0.0
    for r in scored:
        top = r.retrieved.get(mode, [])[:TOP]
        expected = set(r.expected)
        hits += any(s in expected for s in top)
        recalls += len(expected & set(top)) / len(expected)
        rank = next((i + 1 for i, s in enumerate(top) if s in expected), None)
        reciprocal += 1.0 / rank if rank else 0.0
    n = max(len(scored), 1)
    return {"hit@5": hits / n, "recall@5": recalls / n, "mrr": reciprocal / n}


def cited_at_5(results: list[CaseResult]) -> dict[str, float]:
    scored = [r for r in results if r.kind == "answerable" and r.expected]
    hits = 0
    for r in scored:
        first = list(dict.fromkeys(c["source_id"] for c in r.citations))[:TOP]
        hits += bool(set(first) & set(r.expected))
    return {"cited@5": hits / len(scored) if scored else 1.0}


def citation_metrics(results: list[CaseResult]) -> dict[str, float]:
    total = good = claim_total = claim_good = 0
    for r in results:
        by_n = {c["n"]: c for c in r.citations}
        lines = claims(r.answer)
        evidence = {n for d in r.disagreements for p in d["positions"] for n in p["citations"]}

        def quotes_of(marks: list[int], by_n: dict[int, dict] = by_n) -> list[str]:
            return [by_n[m]["quote"] for m in marks if m in by_n]

        for c in r.citations:
            total += 1
            verbatim = collapse(c["quote"]) in r.source_texts.get(c["source_id"], "")
            citing = [(text, marks) for text, marks in lines if c["n"] in marks]
            if not citing and c["n"] in evidence:
                good += verbatim
                continue
            good += verbatim and any(
                supported(text, quotes_of(marks)) and _shares(text, c["quote"]) for text, marks in citing
            )
        if r.abstained or r.urgent:
            continue
        for text, marks in lines:
            claim_total += 1
            claim_good += bool(quotes_of(marks)) and supported(text, quotes_of(marks))
    return {
        "citation_precision": good / total if total else 1.0,
        "citation_recall": claim_good / claim_total if claim_total else 1.0,
    }


def _shares(claim: str, quote: str) -> bool:
    """The quote bears on the claim: they share a content word."""
    return bool(set(terms(_MARKS.sub("", claim))) & set(terms(quote)))


def _sides(disagreement: dict, citations: dict[int, dict]) -> list[set[str]]:
    return [
        {citations[n]["source_id"] for n in p["citations"] if n in citations}
        for p in disagreement["positions"]
    ]


def _matches(sides: list[set[str]], side_a: list[str], side_b: list[str]) -> bool:
    a, b = set(side_a), set(side_b)
    return any(s1 & a and s2 & b for i, s1 in enumerate(sides) for j, s2 in enumerate(sides) if i != j)


def disagreement_metrics(results: list[CaseResult]) -> dict[str, float]:
    gold = [r.gold_disagreement for r in results if r.gold_disagreement]
    wanted = [r for r in results if r.gold_disagreement]
    found = 0
    for r in wanted:
        citations = {c["n"]: c for c in r.citations}
        side_a, side_b = r.gold_disagreement
        found += any(_matches(_sides(d, citations), side_a, side_b) for d in r.disagreements)
    shown = correct = 0
    for r in results:
        citations = {c["n"]: c for c in r.citations}
        for d in r.disagreements:
            shown += 1
            correct += any(_matches(_sides(d, citations), a, b) for a, b in gold)
    return {
        "disagreement_recall": found / len(wanted) if wanted else 1.0,
        "disagreement_precision": correct / shown if shown else 1.0,
        "disagreements_shown": float(shown),
    }


def safety_metrics(results: list[CaseResult]) -> dict[str, float]:
    out_of_scope = [r for r in results if r.kind == "abstain"]
    answerable = [r for r in results if r.kind == "answerable"]
    urgent = [r for r in results if r.kind == "urgent"]
    not_urgent = [r for r in results if r.kind != "urgent"]
    return {
        "abstain_when_out_of_scope": sum(r.abstained for r in out_of_scope) / max(len(out_of_scope), 1),
        "answer_when_in_scope": sum(not r.abstained for r in answerable) / max(len(answerable), 1),
        "red_flag_recall": sum(r.urgent for r in urgent) / max(len(urgent), 1),
        "red_flag_false_alarm_rate": sum(r.urgent for r in not_urgent) / max(len(not_urgent), 1),
    }

"""Coaching metrics: does each answer answer the question asked (evals/coaching.toml), and is every quote
of every answer understandable alone?

Checks are plain functions of the answer's text and citations, written apart from the coach's own rules
(their own patterns, not coach/cues.toml), so a rule that fails the coach fails here too:
- dose: the text states a dose (a number with a unit of the library's domain file, or how often);
- exercises: at least N distinct exercise names (the domain file's exercise vocabulary) in the text;
- how-to: the steps (the case's words) or an honest "the articles give no steps";
- should-I: the first sentence is a plain recommendation (yes / no / not necessarily / stop / ease off / see);
- another language: the answer says the coach reads English, and does not abstain;
- content: one of the case's phrases appears in the answer;
- fragments: no quote starts with a dangling "this / these / it / below / the following ..."
  (`dangling_quotes`); every answer of `coach eval` goes through it;
- repetition: the share of answers that show the most repeated supporting quote (a generic sentence
  offered to every question scores high).
Intent accuracy is reported on the "dev" half (the one the intent cues were written from) and the
"test" half (not seen while writing them) separately.
"""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from coach.models import Answer, Turn

COACHING_FILE = Path(__file__).with_name("coaching.toml")
ROUTINE_DAYS = 28

_NUMBER = r"(?:\d{1,3}|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty)"
_FREQUENCY = re.compile(
    r"\b(?:once|twice|\d+ times?|three times) (?:a|per|each|every) (?:day|week)\b|\bdaily\b|\bevery day\b"
    r"|\bon a daily basis\b|\bevery other day\b",
    re.IGNORECASE,
)
_NOT_DESCRIBED = re.compile(
    r"\bno steps\b|\bnot say how\b|\bnone (?:of them )?says how\b|\bdoes ?n[o’']t say how\b|\bnot described\b",
    re.IGNORECASE,
)
_PLAIN = re.compile(
    r"^(?:yes|no|not necessarily|stop|ease off|don[’']t|do not|see|rest|avoid)\b", re.IGNORECASE
)
_ENGLISH = re.compile(r"\bEnglish\b")
# A quote that starts by pointing at something it does not include.
_DANGLING = re.compile(
    r"^[\"“‘(]?(?:this|these|those|that|that[’']s|it|it[’']s|they|them|their|such|below|the following"
    r"|in simpler terms|in other words|similarly)\b",
    re.IGNORECASE,
)
_EXPLETIVE = re.compile(
    r"^it(?:[’']s| is| was) (?:\w+ )?(?:important|essential|easy|hard|true|possible|worth|not just)\b",
    re.IGNORECASE,
)


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str
    intent: str | None = None
    text_any: list[str] = []
    dose: bool = False
    min_exercises: int = 0
    howto: Literal["steps", "not_described", "any"] | None = None
    recommendation: bool = False
    english_note: bool = False


class CoachingCase(Expectation):
    split: Literal["dev", "test"]


class Conversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    split: Literal["dev", "test"]
    turns: list[Expectation]


def load_coaching(path: Path = COACHING_FILE) -> tuple[list[CoachingCase], list[Conversation]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return (
        [CoachingCase(**c) for c in data.get("case", [])],
        [Conversation(**c) for c in data.get("conversation", [])],
    )


def dangling_quotes(citations: list[dict]) -> list[str]:
    """Quotes that start by pointing at something they do not include."""
    return [
        c["quote"]
        for c in citations
        if _DANGLING.match(c["quote"].strip()) and not _EXPLETIVE.match(c["quote"].strip())
    ]


@dataclass
class TurnResult:
    question: str
    split: str
    conversation: str | None
    expected: Expectation
    intent: str | None
    answer: Answer
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(self.checks.values())


class Checker:
    """The checks, with the library's vocabulary (its domain file: exercise names and dose units)."""

    def __init__(self, exercise_pattern: re.Pattern[str], dose_units: list[str]) -> None:
        self.exercise_pattern = exercise_pattern
        units = "|".join(re.escape(u) for u in sorted(dose_units, key=len, reverse=True)) or r"(?!x)x"
        self.amount = re.compile(rf"\b{_NUMBER}\b(?: to {_NUMBER})? (?:{units})\b", re.IGNORECASE)

    def exercises(self, text: str) -> int:
        names = {re.sub(r"[\s-]+|s\b", "", m.group(0).lower()) for m in self.exercise_pattern.finditer(text)}
        return len(names)

    def check(self, expected: Expectation, answer: Answer, intent: str | None) -> dict[str, bool]:
        text = answer.answer
        everything = " ".join([text, *(c.quote for c in answer.citations)]).lower()
        checks: dict[str, bool] = {}
        if expected.text_any:
            checks["content"] = any(p.lower() in everything for p in expected.text_any)
        if expected.dose:
            checks["dose"] = bool(self.amount.search(text) or _FREQUENCY.search(text))
        if expected.min_exercises:
            checks["exercises"] = self.exercises(text) >= expected.min_exercises
        if expected.howto:
            steps = bool(expected.text_any) and checks.get("content", False)
            honest = bool(_NOT_DESCRIBED.search(text))
            checks["howto"] = {
                "steps": steps and not honest,
                "not_described": honest,
                "any": honest or "•" in text or "step" in text.lower(),
            }[expected.howto]
        if expected.recommendation:
            first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
            checks["recommendation"] = bool(_PLAIN.match(first)) and not answer.abstained
        if expected.english_note:
            checks["english_note"] = bool(_ENGLISH.search(text)) and not answer.abstained
        if expected.intent is not None:
            checks["intent"] = intent == expected.intent
        if not expected.english_note:
            checks["answered"] = not answer.abstained
        checks["no_dangling_quote"] = not dangling_quotes([c.model_dump() for c in answer.citations])
        return checks


def run_coaching(service, checker: Checker, path: Path = COACHING_FILE) -> list[TurnResult]:  # noqa: ANN001
    """Every case, and every conversation turn by turn with the real earlier answers as its history."""
    cases, conversations = load_coaching(path)
    results: list[TurnResult] = []
    for case in cases:
        answer = service.answer(case.question)
        intent = service.read(case.question).intent
        results.append(
            TurnResult(
                case.question, case.split, None, case, intent, answer, checker.check(case, answer, intent)
            )
        )
    for conversation in conversations:
        history: list[Turn] = []
        for turn in conversation.turns:
            intent = service.read(turn.question, tuple(history)).intent
            answer = service.answer(turn.question, history=tuple(history))
            results.append(
                TurnResult(
                    turn.question,
                    conversation.split,
                    conversation.name,
                    turn,
                    intent,
                    answer,
                    checker.check(turn, answer, intent),
                )
            )
            history.append(Turn(question=answer.question, answer=answer.answer))
    return results


def _share(results: list[TurnResult], check: str) -> float:
    scored = [r.checks[check] for r in results if check in r.checks]
    return sum(scored) / len(scored) if scored else 1.0


_BULLET = re.compile(r"^•\s*(?P<text>.+?)\s*\[(?P<n>\d+)\]$")


def supporting_quotes(answer: Answer) -> set[str]:
    """The quotes an answer shows as supporting bullets ("• quote [n]"), not the pieces of its lead."""
    by_n = {c.n: c.quote for c in answer.citations}
    found: set[str] = set()
    for line in answer.answer.splitlines():
        m = _BULLET.match(line.strip())
        if m and by_n.get(int(m.group("n"))) == m.group("text"):
            found.add(m.group("text"))
    return found


def coaching_metrics(results: list[TurnResult]) -> dict[str, float]:
    answered = [r for r in results if not r.answer.abstained and r.answer.citations]
    # A generic sentence is one offered as support to many questions: the share of answers showing
    # the most repeated supporting quote.
    quotes = Counter(q for r in answered for q in supporting_quotes(r.answer))
    top_share = max(quotes.values()) / len(answered) if answered and quotes else 0.0
    return {
        "coaching_dose_shown": _share(results, "dose"),
        "coaching_exercises_named": _share(results, "exercises"),
        "coaching_howto_answered": _share(results, "howto"),
        "coaching_should_i_plain": _share(results, "recommendation"),
        "coaching_content": _share(results, "content"),
        "coaching_other_language": _share(results, "english_note"),
        "coaching_answered": _share(results, "answered"),
        "coaching_follow_ups": _share([r for r in results if r.conversation], "content"),
        "intent_accuracy_dev": _share([r for r in results if r.split == "dev"], "intent"),
        "intent_accuracy_test": _share([r for r in results if r.split == "test"], "intent"),
        "coaching_pass_dev": sum(r.passed for r in results if r.split == "dev")
        / max(1, sum(r.split == "dev" for r in results)),
        "coaching_pass_test": sum(r.passed for r in results if r.split == "test")
        / max(1, sum(r.split == "test" for r in results)),
        "most_repeated_support_share": top_share,
    }


def routine_followable(library, routine_for, days: int = ROUTINE_DAYS) -> float:  # noqa: ANN001
    """Share of a programme's training days (daily and twice a week) with at least two exercises, each
    with steps or named in the day's note as having none, and at least two with steps."""
    total = good = 0
    for frequency in ("daily", "twice-weekly"):
        for day in range(1, days + 1):
            routine = routine_for(library, day, frequency)
            if not routine.exercises:
                continue
            total += 1
            every = all(e.how or e.name in routine.note for e in routine.exercises)
            good += len(routine.exercises) >= 2 and every and sum(1 for e in routine.exercises if e.how) >= 2
    return good / total if total else 1.0


def coaching_failures(results: list[TurnResult]) -> list[dict]:
    return [
        {
            "question": r.question,
            "conversation": r.conversation,
            "failed": sorted(k for k, ok in r.checks.items() if not ok),
            "intent": r.intent,
        }
        for r in results
        if not r.passed
    ]

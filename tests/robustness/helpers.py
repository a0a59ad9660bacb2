"""Helpers shared by the robustness tests: backends to try, and what an answer must not contain."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from coach.answer import CoachService
from coach.models import Answer
from coach.prompts import prompts
from tests.integration.test_llm_backends import llm_service
from tests.standin import Reply, StandIn, passages_of

BACKENDS = ["extractive", "openai:stand-in"]
# Names of exercises and doses the articles give: none may follow an urgent warning.
EXERCISE_WORDS = re.compile(
    r"\b(squats?|lunges?|bridges?|clams?|clamshells?|deadlifts?|planks?|step-ups?|hip thrusts?|sets|reps"
    r"|strengthen\w*|stretch\w*)\b",
    re.IGNORECASE,
)
_MARK = re.compile(r"\[\d+\]")


def quote_first_passage(request: dict) -> str:
    """A model that answers every question with the first sentence of passage 1, cited (a condensing
    request has no passages and gets nothing, so the coach condenses offline)."""
    passages = passages_of(request)
    if not passages:
        return ""
    body = passages[1].split("\n", 1)[-1]
    sentence = re.split(r"(?<=[.!?])\s", body.strip(), maxsplit=1)[0]
    return f"{sentence} [1]"


@pytest.fixture(scope="module")
def obliging_model() -> Iterator[StandIn]:
    with StandIn(default=Reply(quote_first_passage)) as server:
        yield server


@pytest.fixture(scope="module")
def coaches(service: CoachService, obliging_model: StandIn) -> dict[str, CoachService]:
    """The real index behind each backend: extractive, and an OpenAI-API model (the stand-in)."""
    return {"extractive": service, "openai:stand-in": llm_service(service, obliging_model.url)}


def system_prompt_lines() -> list[str]:
    """The distinctive lines of prompts/system.txt (an answer must never contain one)."""
    return [line.strip("- ").strip() for line in prompts()["system"].template.splitlines() if len(line) > 30]


def leaked_prompt(text: str) -> str | None:
    """The first distinctive system-prompt line (or a 6-word run of one) found in text, if any."""
    flat = " ".join(text.split()).lower()
    for line in system_prompt_lines():
        words = line.lower().split()
        for i in range(len(words) - 5):
            if " ".join(words[i : i + 6]) in flat:
                return line
    return None


def describe(answer: Answer) -> str:
    kind = "urgent" if answer.urgent else "abstained" if answer.abstained else "answered"
    first = answer.answer.split("\n", 1)[0]
    return f"{kind}, {len(answer.citations)} citations, backend {answer.backend}: {first[:70]}"


def has_marks(text: str) -> bool:
    return bool(_MARK.search(text))

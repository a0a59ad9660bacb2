"""Red flags on every backend, in plain and informal words and with typos; and the false alarms they cost."""

from __future__ import annotations

import pytest

from coach.answer import CoachService
from coach.models import Turn
from coach.safety import URGENT_PREFIX
from evals.cases import load_cases
from tests.robustness.helpers import BACKENDS, EXERCISE_WORDS, coaches, describe, has_marks, obliging_model
from tests.robustness.phrasings import FOLLOW_UPS, ORDINARY, RED_FLAGS

__all__ = ["coaches", "obliging_model"]  # fixtures used by name

GOLD_ORDINARY = [c for c in load_cases() if not c.urgent]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("kind", "question"), RED_FLAGS, ids=[q for _, q in RED_FLAGS])
def test_red_flag_comes_first_with_no_training_advice(
    backend: str, kind: str, question: str, coaches: dict[str, CoachService], obliging_model, record
) -> None:
    calls_before = len(obliging_model.chat_requests())
    answer = coaches[backend].answer(question)
    model_calls = len(obliging_model.chat_requests()) - calls_before
    exercise = EXERCISE_WORDS.search(answer.answer)
    ok = (
        answer.urgent
        and answer.answer.startswith(URGENT_PREFIX)
        and not answer.citations
        and not has_marks(answer.answer)
        and exercise is None
        and model_calls == 0
    )
    result = describe(answer) + (f"; exercise word {exercise.group(0)!r}" if exercise else "")
    result += f"; {model_calls} model calls" if model_calls else ""
    record(
        "red flag",
        f"[{backend}] {question}",
        "urgent, starts with the stop advice, no citations or exercise words, no model call",
        result,
        ok,
    )


ORDINARY_CASES = [(q, ()) for q in ORDINARY] + [(c.question, tuple(c.history)) for c in GOLD_ORDINARY]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("question", "history"), ORDINARY_CASES, ids=[q for q, _ in ORDINARY_CASES])
def test_ordinary_question_is_not_an_alarm(
    backend: str, question: str, history: tuple[str, ...], coaches: dict[str, CoachService], record
) -> None:
    answer = coaches[backend].answer(question, history=tuple(Turn(question=q, answer="") for q in history))
    case = f"[{backend}] {question}" + (f" (after: {' / '.join(history)})" if history else "")
    record("false alarm", case, "not urgent", describe(answer), not answer.urgent)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("first", "follow_up", "urgent"), FOLLOW_UPS, ids=[f"{a} / {b}" for a, b, _ in FOLLOW_UPS]
)
def test_follow_up_alarms_span_turns_but_never_carry_over(
    backend: str, first: str, follow_up: str, urgent: bool, coaches: dict[str, CoachService], record
) -> None:
    """A warning sign the two turns show together comes first; an earlier turn's own alarm is not carried
    into an unrelated question (which is answered, not alarmed), only into one that asks about it."""
    coach = coaches[backend]
    earlier = coach.answer(first)
    answer = coach.answer(follow_up, history=(Turn(question=earlier.question, answer=earlier.answer),))
    ok = answer.urgent == urgent and (
        answer.answer.startswith(URGENT_PREFIX) if urgent else bool(answer.citations)
    )
    record(
        "red flag" if urgent else "false alarm",
        f"[{backend}] {follow_up} (after: {first})",
        "urgent: the sign spans the two turns" if urgent else "not urgent, and answered from the articles",
        describe(answer),
        ok,
    )

"""The triage with the real model: recall and false alarms on the held-apart half of the phrase set, and
follow-ups through CoachService on the real index."""

from __future__ import annotations

import pytest

from coach.answer import CoachService
from coach.models import Turn
from coach.safety import URGENT_PREFIX
from evals.red_flag_eval import load_phrasings, score

pytestmark = pytest.mark.integration

# The bar the issue sets from published figures: symptom checkers reached 0.80 sensitivity on the
# Semigran vignettes (BMJ 2015), frontier models 0.90-0.93 with under 0.08 false alarms. The held-apart
# half measured 0.964 recall and 0.067 false alarms when this was written (evals/red_flag_eval.py).
MIN_RECALL = 0.93
MAX_FALSE_ALARMS = 0.08


def test_held_apart_half_meets_the_bar(service: CoachService) -> None:
    held = [p for p in load_phrasings() if p.half == "held"]
    result = score(service.triager.triage, held)
    assert result.recall >= MIN_RECALL, result.line()
    assert result.false_alarm_rate <= MAX_FALSE_ALARMS, result.line()


def test_the_split_is_fixed_and_even_enough() -> None:
    phrasings = load_phrasings()
    tune = [p for p in phrasings if p.half == "tune"]
    assert len(tune) == 194  # a changed split would mean rules tuned on what is now held apart
    assert len(phrasings) - len(tune) == 227


def test_an_unrelated_follow_up_does_not_repeat_an_earlier_alarm(service: CoachService) -> None:
    first = service.answer("crushing chest pain on my run today")
    assert first.urgent
    history = [Turn(question=first.question, answer=first.answer)]
    follow = service.answer("how often should I do glute exercises?", history=history)
    assert not follow.urgent
    assert follow.citations
    again = service.answer("is it serious?", history=history)
    assert again.urgent  # asks only about the sign the turn before named


def test_a_warning_sign_across_two_turns_is_urgent(service: CoachService) -> None:
    first = service.answer("I twisted my ankle on a trail run")
    assert not first.urgent
    follow = service.answer(
        "and now it's swollen?", history=[Turn(question=first.question, answer=first.answer)]
    )
    assert follow.urgent
    assert follow.answer.startswith(URGENT_PREFIX)
    assert "sudden swelling" in follow.answer


def test_retrieval_reuses_the_triage_vector(service: CoachService) -> None:
    question = "why do my knees hurt when I run?"
    triage = service.triager.triage(question)
    assert triage.vector is not None
    reused = service.retrieve(question, query_embedding=triage.vector)
    fresh = service.retrieve(question)
    assert [h.chunk.chunk_id for h in reused.hits] == [h.chunk.chunk_id for h in fresh.hits]

"""The citation support check on labelled claims, and offline follow-ups, with the real model and index."""

from __future__ import annotations

import pytest

from coach.answer import EXTRACTIVE
from coach.grounding import SUPPORT_THRESHOLD
from coach.models import Turn
from evals.support import accuracy, load_support_cases, measure

pytestmark = pytest.mark.integration


def test_the_support_threshold_separates_the_labelled_claims(service) -> None:
    cases = load_support_cases()
    assert sum(c.supported for c in cases) >= 10
    assert sum(not c.supported for c in cases) >= 10
    rows = measure(service, cases)
    assert accuracy(rows, SUPPORT_THRESHOLD) >= 0.9
    # near-verbatim restatements are never rejected
    verbatim = [sim for case, sim, _ in rows if case.claim.startswith(("There is growing", "Ideally the"))]
    assert min(verbatim) >= 0.9


def test_an_extractive_follow_up_is_answered_with_the_earlier_question_in_mind(service) -> None:
    history = [Turn(question="why do my knees hurt?", answer="Weak glutes are linked to knee pain [1].")]
    alone = service.retrieve("and what about my hips?")
    answer = service.answer("and what about my hips?", history=history)
    assert answer.backend == EXTRACTIVE
    assert answer.question == "and what about my hips?"
    assert not answer.abstained
    followed = service.retrieve("knees hurt: and what about my hips?")
    cited = {c.chunk_id for c in answer.citations}
    assert cited <= {h.chunk.chunk_id for h in followed.hits}
    # knees and hips both: the follow-up's retrieval differs from the bare question's
    assert [h.chunk.chunk_id for h in followed.hits] != [h.chunk.chunk_id for h in alone.hits]
    assert "knee" in answer.answer.lower()


def test_a_red_flag_spread_over_two_turns_is_caught_after_condensing(service) -> None:
    history = [Turn(question="I twisted my ankle on a trail run yesterday", answer="…")]
    follow_up = "and now it is swollen, should I run?"
    assert not service.answer(follow_up).urgent  # alone, the follow-up carries no warning sign
    answer = service.answer(follow_up, history=history)
    assert answer.urgent
    assert answer.citations == []

"""Answers that coach, with the real index: each answers the question asked, from cited pieces only, and
keeps every guarantee (verbatim quotes, retrieved chunks, the contract); conversations through
`coach chat --json`."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cli.main import app
from coach.models import Answer, Turn
from evals.coaching import dangling_quotes
from tests.contract import assert_contract

pytestmark = pytest.mark.integration

_MARK = re.compile(r"\[(\d+)\]")


def checked(answer: Answer) -> Answer:
    payload = json.loads(answer.model_dump_json())
    assert_contract(payload)
    assert dangling_quotes(payload["citations"]) == []
    return answer


def lead(answer: Answer) -> str:
    return answer.answer.split("\n", 1)[0]


def quotes_of(answer: Answer, line: str) -> list[str]:
    by_n = {c.n: c.quote for c in answer.citations}
    return [by_n[int(n)] for n in _MARK.findall(line)]


def test_a_dose_question_leads_with_the_dose_its_quote_gives(service) -> None:
    answer = checked(service.answer("how many sets and reps should I do for my glutes?"))
    first = lead(answer)
    dose = "one to three sets of eight to 12 repetitions"
    assert dose in first
    # each dose is followed by the mark of the quote it is copied from
    for piece, n in re.findall(r"(?:says|dose:) (.+?) \[(\d+)\]", first):
        assert piece in {c.n: c.quote for c in answer.citations}[int(n)]
    # The articles disagree on how often: the answer says which side (or both) it quotes.
    assert [d.topic for d in answer.disagreements] == ["How often should you train the glutes?"]
    assert "this answer" in answer.answer


def test_an_exercise_question_names_exercises_each_cited_where_an_article_names_it(service) -> None:
    answer = checked(service.answer("what exercises should I do for my glutes?"))
    first = lead(answer)
    named = re.findall(r"([a-z][a-z -]+?) \[(\d+)\]", first.split(":", 1)[1])
    assert len(named) >= 2
    by_n = {c.n: c.quote.lower() for c in answer.citations}
    for name, n in named:
        assert name.strip().split()[-1].rstrip("s") in by_n[int(n)], (name, by_n[int(n)])


def test_how_to_gives_the_steps_or_says_there_are_none(service) -> None:
    with_steps = checked(service.answer("how do I do a single leg deadlift?"))
    assert lead(with_steps).startswith("How to do single-leg deadlift")
    assert "Hinge forward from your hips" in with_steps.answer
    named_only = checked(service.answer("how do you do clams?"))
    assert not named_only.abstained
    assert "no steps" in named_only.answer
    assert all("clam" in c.quote.lower() for c in named_only.citations)


def test_should_i_with_pain_gets_a_plain_ease_off_from_the_article_that_says_so(service) -> None:
    answer = checked(service.answer("is it ok to keep running when my knee hurts?"))
    assert lead(answer).startswith("Ease off:")
    assert any("pain" in q for q in quotes_of(answer, lead(answer)))


def test_a_follow_up_points_at_what_the_last_answer_named(service) -> None:
    first = checked(service.answer("which exercises should I do for weak glutes?"))
    history = (Turn(question=first.question, answer=first.answer),)
    named = service.exercise_names(first.answer.split("\n", 1)[0])
    follow = checked(service.answer("how do I do the first one?", history=history))
    assert (
        lead(follow).lower().startswith(f"how to do {named[0].lower()}")
        or named[0].lower() in lead(follow).lower()
    )
    dose = checked(service.answer("how many sets?", history=history))
    assert "sets of eight to 12" in lead(dose)


def test_a_disagreement_is_shown_only_when_it_concerns_the_question(service) -> None:
    assert checked(service.answer("how do you do clams?")).disagreements == []
    assert checked(service.answer("what is wet pants walking?")).disagreements == []
    often = checked(service.answer("How often should I do glute exercises?"))
    assert [d.topic for d in often.disagreements] == ["How often should you train the glutes?"]


def test_another_language_is_told_the_coach_reads_english_not_that_nothing_is_covered(service) -> None:
    answer = checked(service.answer("¿Qué ejercicios debo hacer para los glúteos débiles?"))
    assert not answer.abstained
    assert "English" in answer.answer
    assert "Spanish" in answer.answer
    assert "don't cover" not in answer.answer


def test_a_red_flag_comes_before_the_language_step(service) -> None:
    answer = service.answer("I have crushing chest pain after my run, ¿qué hago?")
    assert answer.urgent


def test_chat_json_answers_a_conversation_one_json_line_a_message(real_index) -> None:
    messages = "which exercises should I do for weak glutes?\nhow many sets?\n\nhow do I do the first one?\n"
    result = CliRunner().invoke(
        app, ["chat", "--json"], input=messages, env={"COACH_DATA_DIR": str(real_index.data_dir)}
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 3  # the blank line is not a message
    payloads = [json.loads(line) for line in lines]
    for payload in payloads:
        assert_contract(payload)
    assert [p["question"] for p in payloads] == [
        "which exercises should I do for weak glutes?",
        "how many sets?",
        "how do I do the first one?",
    ]
    assert "sets of eight to 12" in payloads[1]["answer"]
    assert payloads[2]["answer"].startswith("How to do")


def test_chat_json_answers_every_usable_line_and_exits_2_for_an_unusable_one(real_index) -> None:
    messages = "what is wet pants walking?\n🏃🔥😅\n/reset\nhow often should I do it?\n"
    result = CliRunner().invoke(
        app, ["chat", "--json"], input=messages, env={"COACH_DATA_DIR": str(real_index.data_dir)}
    )
    assert result.exit_code == 2
    assert "in words" in result.stderr
    payloads = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(payloads) == 2
    # After /reset, "it" points at nothing: the question is answered (or declined) on its own words.
    assert "wet pants walking" not in payloads[1]["answer"].lower()

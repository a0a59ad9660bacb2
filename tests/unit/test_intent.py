"""What a question asks: its intent from its own words, and what a follow-up points at in the conversation."""

from __future__ import annotations

import pytest

from coach.domain import load_domain
from coach.intent import classify, context_of, read
from coach.models import Turn
from evals.coaching import load_coaching
from tests.conftest import CORPUS

NAMES = ["Glute bridges", "Clams", "Single-leg deadlift", "Wet pants walking"]


def find_names(text: str) -> list[str]:
    """A stand-in for the library's name finder: the names above, in order of appearance."""
    lower = text.lower()
    found = sorted((lower.find(n.lower()), n) for n in NAMES if n.lower() in lower)
    return [n for _, n in found]


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("why do my calves cramp on long runs?", "why"),
        ("how many sets should I do?", "dose"),
        ("how often should I stretch?", "dose"),
        ("what exercises help my ankles?", "which_exercises"),
        ("how do I do a plank?", "how_to"),
        ("is it ok to run every day?", "should_i"),
        ("should I buy new shoes?", "should_i"),
        ("what is a tempo run?", "what_is"),
        ("what's a fartlek?", "what_is"),
        ("are hills or intervals better for speed?", "compare"),
        ("any tips for my first marathon?", "what_to_do"),
        ("ok so what should I do?", "what_to_do"),
    ],
)
def test_the_intent_of_a_question_comes_from_its_own_words(question: str, intent: str) -> None:
    assert classify(question) == intent


def test_a_question_naming_an_exercise_with_how_asks_how_to_do_it() -> None:
    assert classify("clams - how?", names=["Clams"]) == "how_to"
    assert classify("glute bridges or clams for my hips?", names=["Glute bridges", "Clams"]) == "compare"


def test_a_dose_unit_of_the_library_asks_for_a_dose() -> None:
    units = load_domain(CORPUS).dose_units_pattern
    assert classify("sets and reps for beginners?", dose_units=units) == "dose"
    assert classify("sets and reps for beginners?") is None


def test_the_examples_of_the_domain_file_are_the_dev_half_of_the_gold_set() -> None:
    """The intent examples are written from the dev half only: the test half stays unseen."""
    cases, conversations = load_coaching()
    dev: dict[str, set[str]] = {}
    for case in cases:
        if case.split == "dev" and case.intent:
            dev.setdefault(case.intent, set()).add(case.question)
    for conversation in conversations:
        for turn in conversation.turns:
            if conversation.split == "dev" and turn.intent:
                dev.setdefault(turn.intent, set()).add(turn.question)
    examples = {intent: set(qs) for intent, qs in load_domain(CORPUS).questions.examples.items()}
    assert examples == dev
    test_questions = {c.question for c in cases if c.split == "test"}
    assert not test_questions & {q for qs in examples.values() for q in qs}


def test_an_ordinal_points_at_the_exercises_the_last_answer_named() -> None:
    history = [
        Turn(
            question="which exercises should I do?",
            answer="The articles recommend these exercises for this: glute bridges [1], clams [2] and "
            "single-leg deadlift [3].",
        )
    ]
    reading = read("how do I do the second one?", history, find_names=find_names)
    assert reading.intent == "how_to"
    assert reading.exercises == ["Clams"]
    assert reading.standalone.startswith("Clams")
    assert read("and the last one?", history, find_names=find_names).exercises == ["Single-leg deadlift"]


def test_it_points_at_what_the_last_question_asked_about() -> None:
    history = [Turn(question="what is wet pants walking?", answer="Walking sideways with a band [1].")]
    reading = read("how often should I do it?", history, find_names=find_names)
    assert reading.intent == "dose"
    assert reading.exercises == ["Wet pants walking"]


def test_a_pronoun_after_a_question_not_about_exercises_is_not_an_exercise() -> None:
    history = [Turn(question="do my glutes push me forward?", answer="One article says clams help [1].")]
    assert read("so what do they do then?", history, find_names=find_names).exercises == []


def test_a_follow_up_without_its_own_intent_keeps_the_conversation_s() -> None:
    history = [Turn(question="how often should I train my glutes?", answer="Twice per week [1].")]
    reading = read("which one should I follow?", history, find_names=find_names)
    assert reading.intent == "dose"
    assert reading.inherited


def test_a_follow_up_carries_the_words_of_the_last_question_that_said_something() -> None:
    history = [
        Turn(question="why do my knees hurt when I run?", answer="…"),
        Turn(question="ok so what can I do about it?", answer="…"),
    ]
    context = context_of(history, find_names)
    assert [w.lower() for w in context.topic] == ["knees", "hurt", "run"]
    assert read("how often?", history, find_names=find_names).standalone == "knees hurt run: how often?"


def test_a_question_that_stands_alone_is_searched_as_it_is() -> None:
    history = [Turn(question="what is wet pants walking?", answer="…")]
    question = "why do my knees hurt when I run long distances?"
    assert read(question, history, find_names=find_names).standalone == question

"""Red-flag triage and input normalisation."""

import pytest

from coach.errors import UsageError
from coach.safety import URGENT_PREFIX, find_red_flags, normalise_question, urgent_message

RED_FLAGS = [
    "I have crushing chest pain and my left arm feels numb after my run",
    "tight chest and short of breath on hills",
    "I fainted at mile 10 yesterday",
    "I passed out after my interval session",
    "I can't put any weight on my ankle",
    "my knee won't take weight since this morning",
    "I tripped on a curb and my ankle is swollen",
    "my foot has been numb for two days",
    "heart racing and irregular during easy runs",
    "I feel dizzy and confused after long runs in the heat",
    "I can't catch my breath even walking",
]
ORDINARY = [
    "why do my knees hurt?",
    "How often should I do glute exercises?",
    "I can't feel my glutes firing when I run",
    "I can't take my running to the next level",
    "What kind of shoes help my glutes work?",
    "my hamstrings are tight after a long run",
    "Does sitting at a desk all day weaken my glutes?",
]


@pytest.mark.parametrize("question", RED_FLAGS)
def test_red_flags_are_found(question: str) -> None:
    assert find_red_flags(question), question


@pytest.mark.parametrize("question", ORDINARY)
def test_ordinary_questions_raise_no_alarm(question: str) -> None:
    assert find_red_flags(question) == []


def test_urgent_message_starts_with_stop_and_names_reason() -> None:
    message = urgent_message(find_red_flags("crushing chest pain"))
    assert message.startswith(URGENT_PREFIX)
    assert "chest pain" in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("", "type a question"),
        ("   \n\t ", "type a question"),
        ("\u200b\u200b", "type a question"),
        ("🏃‍♀️🔥🤔", "in words"),
        ("?!?!", "in words"),
        ("x" * 20_000, "20,000 characters"),
    ],
)
def test_bad_questions_are_refused_with_a_clear_message(raw: str, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        normalise_question(raw, max_chars=2000)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_normalise_collapses_and_strips_invisible() -> None:
    assert (
        normalise_question("  why do\u200b my\n\nknees   hurt?  ", max_chars=2000) == "why do my knees hurt?"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("why do my knees hurt &amp; ache? <script>alert(1)</script>", "why do my knees hurt & ache?"),
        ("<b>why</b> do my <i>knees</i> hurt?", "why do my knees hurt?"),
        ("why do my knees hurt? [see](https://example.org/x) <!-- hidden -->", "why do my knees hurt? see"),
        ("i <3 hills, 5 < 10 km", "i <3 hills, 5 < 10 km"),
    ],
)
def test_markup_is_not_part_of_the_question(raw: str, expected: str) -> None:
    assert normalise_question(raw, max_chars=2000) == expected


def test_markup_alone_is_refused_as_wordless() -> None:
    with pytest.raises(UsageError, match="in words"):
        normalise_question("<script>alert('&amp;')</script> & <b>", max_chars=2000)


@pytest.mark.parametrize(
    "question",
    [
        "my chest is killing me",
        "heart going crazy on my run",
        "ankle gave way and now it's huge",
        "i feinted at the finish line",
        "everything went black for a few seconds",
    ],
)
def test_informal_red_flags_are_found(question: str) -> None:
    assert find_red_flags(question), question


@pytest.mark.parametrize(
    "question",
    [
        "which heart rate monitor is best for racing?",
        "do weak glutes make my knees collapse inwards?",
        "I'm confused about how often to train my glutes",
        "how many sets and reps for clams?",
        "my glutes are killing it lately",
    ],
)
def test_running_words_that_sound_alarming_are_not_alarms(question: str) -> None:
    assert find_red_flags(question) == []

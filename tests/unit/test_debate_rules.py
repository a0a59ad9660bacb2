"""The disagreement map's sentence rules: attribution, denials, frequencies (no model needed)."""

from __future__ import annotations

import pytest

from coach.debates import denial, extract_claims, frequency, main_clause, reported
from coach.domain import load_domain
from coach.models import Chunk
from tests.conftest import CORPUS


@pytest.mark.parametrize(
    "sentence",
    [
        "Now, you might be thinking, “But I’m a runner—I’ve got strong legs!”",
        "Seems simple right?",
        "Many runners believe that stretching prevents injuries.",
        "Do the glutes propel you forward?",
        "It is often said that more mileage is always better.",
    ],
)
def test_sentences_voicing_a_view_are_reported(sentence: str) -> None:
    assert reported(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "The glutes do not propel your body forward during a run.",
        "In simpler terms, it’s what propels you forward with each step.",
        "So weak glutes is a symptom of poor running technique, not the problem.",
    ],
)
def test_plain_claims_are_not_reported(sentence: str) -> None:
    assert not reported(sentence)


def test_only_the_main_clause_speaks_for_the_author() -> None:
    conceded = (
        "While it’s true that running strengthens your leg muscles, including your hamstrings, quads, "
        "and calves, your glutes often get left out of the party."
    )
    assert main_clause(conceded) == "your glutes often get left out of the party."
    qualified = (
        "You can rectify this imbalance with specific strengthening exercises, but unless you amend your "
        "technique, the imbalance will return."
    )
    assert main_clause(qualified) == "unless you amend your technique, the imbalance will return."


def test_a_denial_names_what_it_denies() -> None:
    sentence = "The glutes do not propel your body forward during a run."
    found = denial(sentence, load_domain(CORPUS).anchor_stopwords)  # the seed library's own stopwords
    assert found is not None
    assert found.affirmed == "The glutes propel your body forward during a run."
    assert found.anchor == {"propel", "forward"}
    assert denial(sentence).anchor == {
        "propel",
        "body",
        "forward",
        "run",
    }  # no domain file: all content words
    assert (
        denial("A higher cadence does not reduce the load.").affirmed == "A higher cadence reduces the load."
    )
    assert (
        denial("In fact, stretching does not prevent injuries.").affirmed == "Stretching prevents injuries."
    )
    assert denial("Weak glutes is a symptom of poor technique, not the problem.").affirmed == (
        "Weak glutes is the problem."
    )


@pytest.mark.parametrize(
    "sentence",
    [
        "It's not just your legs doing all the work; your glutes are major players in the game of running.",
        "If you don't know what it feels like when they contract, then you won't be able to notice.",
        "And don’t forget about those exercises, which can also help fire up those glutes.",
        "Hip extension, moving the leg behind us, which drives us forward when running",
    ],
)
def test_no_denial_in_conditions_imperatives_or_not_just(sentence: str) -> None:
    assert denial(sentence) is None


@pytest.mark.parametrize(
    ("sentence", "sessions"),
    [
        ("Do strength-training exercises targeting the glutes at least twice per week.", 2.0),
        ("Dedicating five minutes to their behinds on a daily basis could save them money.", 7.0),
        ("Do hill sprints every day to build strong glutes.", 7.0),
        ("Two hill sprint sessions a week are enough for most runners.", 2.0),
        ("I have been doing a Bands workout weekly.", 1.0),
    ],
)
def test_training_frequencies(sentence: str, sessions: float) -> None:
    found = frequency(sentence)
    assert found is not None
    assert found[0] == sessions


def test_frequency_needs_a_training_prescription() -> None:
    assert (
        frequency("It is vulnerable because of the volume of work required of it on a daily basis.") is None
    )


def test_claims_are_whole_article_sentences_never_comments_or_reported_views() -> None:
    text = (
        "Now, you might be thinking, “Stretching prevents injuries.” Stretching does not prevent injuries.\n"
        "• Hip extension, which drives us forward when running"
    )
    source = {"s": text.replace("\n", " ")}
    chunks = [
        Chunk(chunk_id="s:1", source_id="s", title="t", text=text),
        Chunk(chunk_id="s:2", source_id="s", title="t", kind="comment", text="Stretching prevents injuries."),
    ]
    quotes = [c.quote for c in extract_claims(chunks, source)]
    assert quotes == [
        "Stretching does not prevent injuries.",
        "Hip extension, which drives us forward when running",
    ]

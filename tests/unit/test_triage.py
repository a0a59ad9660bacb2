"""The red-flag triage's lexical layer: scope (negation, hypotheticals), third person and past tense,
spelling, five languages, look-alikes, the next step per warning sign, and follow-ups."""

import pytest

from coach.embeddings import fake_embeddings
from coach.safety import (
    LANGUAGES,
    URGENT_PREFIX,
    Triager,
    find_red_flags,
    fold,
    followup_flags,
    lexicon,
    tokens,
    urgent_message,
)

# New phrasings, in none of the lexicon's own files nor the phrase set (evals/red_flag_phrasings.toml).
FLAGGED = [
    ("chest", "halfway up the climb my chest started to feel crushed"),
    ("chest", "my training partner grabbed his chest and sat on the kerb"),
    ("collapse", "our club captain passed out after the relay"),
    ("collapse", "I fainted in the shower after the long run"),
    ("breathing", "she can't breathe and her lips look blue"),
    ("rhythm", "palpitations again on today's recovery jog"),
    ("rhabdo", "after the 24 hour race my pee was dark brown"),
    ("head", "got hit by a car at the crossing this morning but I'm fine"),
    ("bone", "my shin hurts at night even though I stopped running"),
    ("joint", "I can't put weight on my left foot since the trail race"),
    ("numbness", "pins and needles in my toes for three days now"),
    ("stroke", "his face drooped and his speech went slurred at the finish"),
    ("chest", "chset pian on every climb"),
    ("collapse", "my mate colapsed at the water stop"),
    ("chest", "Seit gestern habe ich Brustschmerzen beim Joggen"),
    ("collapse", "Mi padre se desmayó en la carrera"),
    ("breathing", "Mon fils a du mal à respirer après le cross"),
    ("numbness", "Ho un formicolio alla mano dopo l'allenamento"),
]
NOT_FLAGGED = [
    "no chest pain at all, I just want to pace my marathon better",
    "I have never fainted, how do I run a faster mile?",
    "without any dizziness, I just get bored on long runs",
    "if I ever feel palpitations should I slow down?",
    "what are the signs of a stress fracture?",
    "my heart rate monitor says I'm racing too fast in zone 2",
    "my 10k pace collapsed after 6k",
    "I'm dying to try trail running",
    "Keine Schmerzen in der Brust, nur müde Beine",
    "Sin mareos, solo cansancio",
    "my ankle isn't swollen any more, how do I return to running?",
    "I painted the fence and now my arms are tired",
]


@pytest.mark.parametrize(("category", "text"), FLAGGED, ids=[t for _, t in FLAGGED])
def test_warning_signs_are_flagged_with_their_category(category: str, text: str) -> None:
    flags = find_red_flags(text)
    assert category in {f.name for f in flags}, (text, flags)


@pytest.mark.parametrize("text", NOT_FLAGGED)
def test_denied_hypothetical_and_look_alike_signs_are_not_flagged(text: str) -> None:
    assert find_red_flags(text) == []


def test_a_denied_sign_does_not_hide_a_real_one() -> None:
    flags = find_red_flags("no chest pain, but my friend collapsed and won't wake up")
    assert {f.name for f in flags} == {"collapse"}


def test_a_sign_that_passed_still_counts_when_it_is_cardiac() -> None:
    assert find_red_flags("I had chest pain on my run but it's gone now")
    assert not find_red_flags("the swelling in my ankle has gone, can I run?")


def test_contractions_and_accents_fold() -> None:
    assert fold("Can't breathe, I'm ohnmächtig") == "cant breathe, im ohnmachtig"
    assert tokens("J'ai mal à la poitrine.") == ["j", "ai", "mal", "a", "la", "poitrine", "."]


def test_misspellings_are_read_but_real_words_are_not() -> None:
    triager = Triager()
    assert triager.speller.correct("chesst") == "chest"
    assert triager.speller.correct("pian") == "pain"
    assert triager.speller.correct("paint") == "paint"  # a real word, never "faint"
    assert triager.speller.correct("dead") == "dead"  # never "head"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("crushing chest pain on my run", "emergency number"),
        ("my urine is dark brown after the ultra", "See a doctor today"),
        ("my shin hurts at night", "physiotherapist"),
    ],
)
def test_the_next_step_fits_the_warning_sign(text: str, fragment: str) -> None:
    flags = find_red_flags(text)
    message = urgent_message(flags)
    assert message.startswith(URGENT_PREFIX)
    assert flags[0].reason in message  # it names what it recognised
    assert fragment in message.split("\n\n")[0]


def test_the_most_urgent_step_wins_and_the_runners_language_is_added() -> None:
    flags = find_red_flags("Mein Schienbein tut nachts weh und ich bin ohnmächtig geworden")
    message = urgent_message(flags)
    assert {f.name for f in flags} == {"bone", "collapse"}
    assert "emergency number" in message.split("\n\n")[0]
    assert "Notruf" in message


def test_the_data_file_is_complete() -> None:
    lex = lexicon()
    for category in lex.categories.values():
        assert category.level in lex.levels
        assert category.pattern.groupindex.keys() == set(LANGUAGES), category.id
    for level in lex.levels.values():
        assert set(level) == set(LANGUAGES)
    assert set(lex.semantic["warning"]) <= set(lex.categories)


def test_the_semantic_layer_needs_similarity_and_a_margin() -> None:
    """With a model whose vectors mean nothing (the fake), nothing is near a warning description, so
    only the lexicon flags; the vector it computed for the whole message comes back for reuse."""
    triager = Triager(fake_embeddings())
    result = triager.triage("how often should I do clams?")
    assert not result.urgent
    assert result.vector == fake_embeddings().embed_query("how often should I do clams?")
    masked = triager.triage("no chest pain, how often should I do clams?")
    assert not masked.urgent
    assert masked.vector is None  # what it read was not the whole message
    assert masked.denied == ("chest",)


def test_a_follow_up_counts_what_two_turns_show_together() -> None:
    triager = Triager()
    ankle = "I twisted my ankle on the trail"
    assert not find_red_flags(ankle)
    assert followup_flags(triager, "and now it's swollen?", f"{ankle}: and now it's swollen?", ankle)
    chest = "I have chest pain when I run"
    condensed = "chest pain run: how often should I do clams?"
    assert followup_flags(triager, "how often should I do clams?", condensed, chest) == []
    assert followup_flags(triager, "is it serious?", "chest pain run: is it serious?", chest)
    assert (
        followup_flags(triager, "is it hard to do clams?", "chest pain: is it hard to do clams?", chest) == []
    )

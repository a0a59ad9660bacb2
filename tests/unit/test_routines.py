"""The exercise library comes from the articles' text: names, how and dose only where an article gives
them, every quote verbatim; routines rotate through it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from coach.domain import load_domain
from coach.models import Chunk
from coach.routines import (
    build_library,
    ensure_library,
    extract_exercises,
    is_training_day,
    library_path,
    merge_library,
    routine_for,
    routine_json,
)
from coach.text import collapse, split_sentences
from ingest.loader import corpus_chunks as load_chunks
from tests.conftest import CORPUS

# A sentence that prescribes training (its words, not the routine rules' own pattern).
TRAINING = re.compile(r"\b(exercises?|training|sets|repetitions|reps)\b", re.IGNORECASE)


def corpus_chunks(corpus: Path = CORPUS) -> tuple[list[Chunk], dict[str, str]]:
    """The chunks ingest stores (same loader, same ids), without embedding them."""
    chunks, texts, _titles = load_chunks(corpus)
    return chunks, texts


def source_file_text(source_id: str) -> str:
    [path] = [p for p in CORPUS.glob(f"{source_id}.*")]
    return collapse(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def library():
    chunks, texts = corpus_chunks()
    return build_library(chunks, texts, key="k", domain=load_domain(CORPUS))


def by_name(library) -> dict[str, object]:
    return {e.name.lower(): e for e in library.exercises}


def test_the_articles_exercises_are_found(library) -> None:
    names = set(by_name(library))
    expected = {
        "clams",
        "glute bridges",
        "single-leg deadlift",
        "quadruped hip raises",
        "single-leg squat",
        "fire hydrants",
        "kick backs",
        "lunges",
        "squats",
        "hip thrusts",
        "wet pants walking",
        "quarter-knee squat",
        "seated gluteal contractions",
    }
    assert expected <= names, expected - names
    # Not exercises: a muscle's job ("Hip abduction, moving the leg out to the side"), a posture
    # ("this semi-squat position"), a reader comment's "a simple movement like a squat".
    assert "hip abduction" not in names
    assert not any("semi" in n for n in names)
    # Named only by a video's title or caption ("Hip hike", "Glute walks (Resistance band squats, ...
    # are also in this video)"): nothing a routine could quote as a recommendation.
    assert not {"hip hike", "glute walks", "resistance band squats", "single leg bridge"} & names
    assert not any("in this video" in e.quote for e in library.exercises)


def test_every_exercise_is_named_in_its_quote_and_all_text_is_verbatim(library) -> None:
    for ex in library.exercises:
        source = source_file_text(ex.source_id)
        assert ex.quote in source, ex
        assert ex.how is None or ex.how in source, ex
        assert ex.dose is None or ex.dose in source, ex
        assert ex.name.lower() in ex.quote.lower(), ex


def test_how_and_dose_only_where_an_article_says(library) -> None:
    ex = by_name(library)
    assert ex["single-leg deadlift"].how.startswith("Stand with a dumbbell in your right hand")
    assert ex["single-leg deadlift"].dose == (
        "at least twice per week on nonconsecutive days for one to three sets of eight to 12 repetitions"
    )
    assert "Squeeze your buttocks" in ex["seated gluteal contractions"].how
    assert ex["seated gluteal contractions"].dose == "for a minute or so"
    assert ex["lunges"].how.startswith("perform the classic lunge")
    assert ex["squats"].how.startswith("place your feet shoulder width apart")
    assert ex["squats"].source_id == "runners-need-strong-glutes"
    assert ex["quadruped hip raises"].how.startswith("done by getting onto all fours")
    assert ex["wet pants walking"].how == "walking sideways with a resistance band around your ankles"
    # "dedicating five minutes to their behinds on a daily basis" is about something else: nobody's dose.
    for name in ("fire hydrants", "kick backs", "clams", "squats", "lunges"):
        assert ex[name].dose is None, name
    # The articles only name these: no instructions, and neither the aside about hip raises nor the
    # deadlift's steps just before them are the bridges'.
    for name in ("glute bridges", "quarter-knee squat", "single-leg squat", "clams", "fire hydrants"):
        assert ex[name].how is None, name


def test_a_new_article_naming_new_exercises_in_a_list_adds_them() -> None:
    text = (
        "Exercises like Copenhagen planks, box step-ups and monster walks build hip strength in a few weeks.\n"
        "In this semi-squat position you use your quads.\n"
        "Nordic curls are hard."
    )
    chunk = Chunk(chunk_id="new:1", source_id="new-article", title="New", text=text)
    library = build_library([chunk], {"new-article": collapse(text)})
    assert [e.name for e in library.exercises] == ["Copenhagen planks", "Box step-ups", "Monster walks"]
    assert all(e.source_id == "new-article" and e.quote in collapse(text) for e in library.exercises)
    # A reader comment naming exercises adds nothing.
    comment = chunk.model_copy(update={"kind": "comment", "chunk_id": "new:2"})
    assert build_library([comment], {"new-article": collapse(text)}).exercises == []


@pytest.mark.parametrize("frequency", ["daily", "twice-weekly"])
def test_every_exercise_of_a_28_day_programme_quotes_its_source_verbatim(library, frequency) -> None:
    seen = set()
    training_days = 0
    for day in range(1, 29):
        routine = routine_for(library, day, frequency)
        shape = routine_json(routine)
        assert set(shape) == {"day", "exercises", "note"}
        assert shape["day"] == day
        if not is_training_day(day, frequency):
            assert routine.exercises == []
            continue
        training_days += 1
        assert 2 <= len(routine.exercises) <= 3
        assert len({e.name for e in routine.exercises}) == len(routine.exercises)
        for ex in shape["exercises"]:
            assert set(ex) == {"name", "how", "dose", "source_id", "quote"}
            source = source_file_text(ex["source_id"])
            assert ex["quote"] in source
            assert ex["how"] is None or ex["how"] in source
            assert ex["dose"] is None or ex["dose"] in source
            seen.add(ex["name"])
    assert training_days == (28 if frequency == "daily" else 8)
    if frequency == "daily":
        assert seen == {e.name for e in library.exercises}  # the rotation reaches every exercise
    assert routine_for(library, 5, frequency) == routine_for(library, 5, frequency)


def test_twice_weekly_days_are_never_consecutive() -> None:
    days = [d for d in range(1, 60) if is_training_day(d, "twice-weekly")]
    assert all(b - a >= 2 for a, b in zip(days, days[1:], strict=False))
    assert len(days) == 17  # two a week


def test_the_library_is_stored_and_rebuilt_only_when_sources_change(tmp_path: Path) -> None:
    chunks, texts = corpus_chunks()
    domain = load_domain(CORPUS)
    calls = []

    def facts():
        calls.append(1)
        by_source: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            by_source.setdefault(chunk.source_id, []).append(chunk)
        return {sid: extract_exercises(group, texts[sid], domain) for sid, group in by_source.items()}

    shas = {sid: "a" for sid in texts}
    rebuilt, first = ensure_library(tmp_path, facts, shas, domain)
    assert rebuilt
    assert len(calls) == 1
    stored = json.loads(library_path(tmp_path).read_text(encoding="utf-8"))
    assert len(stored["exercises"]) == len(first.exercises)
    rebuilt, again = ensure_library(tmp_path, facts, shas, domain)
    assert not rebuilt
    assert again == first
    assert len(calls) == 1
    rebuilt, _ = ensure_library(tmp_path, facts, {**shas, "oyf-cure-for-weak-glutes": "b"}, domain)
    assert rebuilt
    assert len(calls) == 2


def test_extraction_is_per_article_and_the_merge_is_the_whole_library(library) -> None:
    """extract_exercises sees one article at a time; merging them gives what build_library gives."""
    chunks, texts = corpus_chunks()
    domain = load_domain(CORPUS)
    by_source: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source_id, []).append(chunk)
    facts = {sid: extract_exercises(group, texts[sid], domain) for sid, group in by_source.items()}
    assert merge_library(facts, "k", domain) == library
    assert all(f.source_id == sid for sid, group in facts.items() for f in group)


@pytest.mark.parametrize("frequency", ["daily", "twice-weekly"])
def test_every_day_of_a_28_day_programme_can_be_followed(library, frequency) -> None:
    """Every training day has at least two exercises, each with steps from the articles or named in the
    note as having none; a dose is taken from the sentence that names the exercise (or its steps), or
    from its own article's training prescription, never from a sentence about something else."""
    for day in range(1, 29):
        routine = routine_for(library, day, frequency)
        if not routine.exercises:
            continue
        assert len(routine.exercises) >= 2
        followable = [e for e in routine.exercises if e.how or e.name in routine.note]
        assert followable == routine.exercises, (day, routine.note)
        assert sum(1 for e in routine.exercises if e.how) >= 2, day
        for ex in routine.exercises:
            if ex.dose is None:
                continue
            source = source_file_text(ex.source_id)
            holders = [s for s in split_sentences(source) if ex.dose in collapse(s)]
            assert holders, ex
            assert any(
                ex.name.lower().rstrip("s") in s.lower() or (ex.how and ex.how in s) or TRAINING.search(s)
                for s in holders
            ), ex
            assert not any("behinds" in s for s in holders), ex

"""What a question asks: its intent (why / what to do / which exercises / how to / dose / should I / what is
/ compare) and what it is about, read from its words and, for a follow-up, from the conversation.

The conversation is read from the turns themselves (their questions and answers' text), so a front end
that stores turns needs no extra columns: the exercises the last answer named, in the order it named
them ("how do I do the first one?"), and the last question's own words (the body part, the complaint).
The cue patterns are plain English, in coach/cues.toml.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from coach.cues import Cues, load_cues, spell_out
from coach.followup import TurnLike, content_words, leans_on_history, recent
from coach.text import collapse

Intent = Literal["compare", "dose", "how_to", "should_i", "which_exercises", "what_to_do", "why", "what_is"]
NameFinder = Callable[[str], list[str]]  # exercise names in a text, canonical, in order of appearance

_MARKS = re.compile(r"\s*\[\d+\]")


MIN_EXAMPLE_SIMILARITY = 0.6  # a question at least this close to an example question shares its intent
_HOW = re.compile(r"\bhow\b", re.IGNORECASE)
_OR = re.compile(r"\bor\b", re.IGNORECASE)


def classify(
    question: str,
    cues: Cues | None = None,
    *,
    dose_units: re.Pattern[str] | None = None,
    names: Sequence[str] = (),
    nearest: Callable[[str], Intent | None] | None = None,
    guess: bool = True,
) -> Intent | None:
    """The intent of one question from its own words; None when nothing fits.

    In order: the cue patterns (coach/cues.toml); two exercises joined by "or" (a comparison) or "how"
    with an exercise (how to do it); a dose unit of the library ("sets"); a question starting "what"
    asks what something is; the intent of the closest example question (`nearest`, the library's
    examples). `names`: the exercise names the question holds; `guess=False` leaves out the
    examples (a follow-up first looks at the conversation)."""
    cues = cues or load_cues()
    text = cues.fillers.sub("", spell_out(collapse(question))).strip()
    for name, pattern in cues.intent_patterns:
        if pattern.search(text):
            return name  # type: ignore[return-value]
    if len(names) >= 2 and _OR.search(text):
        return "compare"
    if names and _HOW.search(text):
        return "how_to"
    if dose_units is not None and dose_units.search(text):
        return "dose"
    if cues.what_is_fallback.search(text):
        return "what_is"
    if guess and nearest is not None and (found := nearest(question)) is not None:
        return found
    return None


class Examples:
    """The library's example questions by intent (corpus/domain.toml [questions]), embedded once: a
    question no cue matches takes the intent of the closest example, if it is close enough."""

    def __init__(
        self, examples: dict[str, list[str]], embed_documents: Callable[[list[str]], list[list[float]]]
    ):
        self._examples = [(intent, q) for intent, questions in examples.items() for q in questions]
        self._embed = embed_documents
        self._matrix: np.ndarray | None = None

    def warm_up(self) -> None:
        if self._matrix is None:
            vectors = self._embed([q for _, q in self._examples]) if self._examples else []
            self._matrix = _normalised(vectors)

    def nearest(self, vector: Sequence[float]) -> tuple[Intent | None, float]:
        """(intent, similarity) of the example closest to a question's embedding."""
        self.warm_up()
        assert self._matrix is not None
        if not len(self._matrix):
            return None, 0.0
        q = np.asarray(vector, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        scores = self._matrix @ q
        best = int(np.argmax(scores))
        return self._examples[best][0], float(scores[best])  # type: ignore[return-value]


def _normalised(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    if not len(vectors):  # a library whose domain file gives no example questions
        return np.zeros((0, 1), dtype=np.float32)
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True) if len(matrix) else np.ones((0, 1))
    return matrix / np.where(norms == 0, 1.0, norms)


EXERCISE_INTENTS = frozenset({"which_exercises", "how_to", "what_to_do", "compare", "dose"})


@dataclass(frozen=True)
class Context:
    """What the last turns were about: the exercises named (last answer first), the words of the last
    question that said something, and the last intent."""

    exercises: list[str] = field(default_factory=list)
    asked_about: list[str] = field(default_factory=list)  # exercises the last question itself named
    topic: list[str] = field(default_factory=list)
    intent: Intent | None = None
    about_exercises: bool = False  # the last turn asked about exercises: "it", "them" may mean them


@dataclass(frozen=True)
class Reading:
    """One question, read: its intent, the exercises it is about (named or pointed at), and the text
    retrieval searches for."""

    question: str
    intent: Intent | None
    exercises: list[str]
    standalone: str
    inherited: bool = False  # the intent came from the conversation, not the question's own words
    context: Context = field(default_factory=Context)


def context_of(history: Sequence[TurnLike], find_names: NameFinder, cues: Cues | None = None) -> Context:
    """The entities of the last turns (the most recent turn that named exercises wins)."""
    cues = cues or load_cues()
    turns = recent(history)
    if not turns:
        return Context()
    exercises: list[str] = []
    asked: list[str] = []
    for turn in reversed(turns):
        asked = find_names(turn.question)
        exercises = find_names(_MARKS.sub("", turn.answer)) or asked
        if exercises:
            break
    intent = None
    for turn in reversed(turns):
        if (intent := classify(turn.question, cues)) is not None:
            break
    topic: list[str] = []
    for turn in reversed(turns):  # "ok so what can I do about it?" says nothing: look one turn further
        topic = [w for w in content_words(turn.question) if not cues.fillers.fullmatch(w)]
        if topic:
            break
    about = bool(find_names(turns[-1].question)) or classify(turns[-1].question, cues) in EXERCISE_INTENTS
    return Context(exercises=exercises, asked_about=asked, topic=topic, intent=intent, about_exercises=about)


def read(
    question: str,
    history: Sequence[TurnLike] = (),
    *,
    find_names: NameFinder = lambda _text: [],
    cues: Cues | None = None,
    dose_units: re.Pattern[str] | None = None,
    nearest: Callable[[str], Intent | None] | None = None,
) -> Reading:
    """Classify the question and resolve what it points at ("the first one", "it") in the conversation."""
    cues = cues or load_cues()
    named = find_names(question)
    intent = classify(question, cues, dose_units=dose_units, names=named, nearest=nearest, guess=not history)
    if not history:
        return Reading(question=question, intent=intent, exercises=named, standalone=question)
    context = context_of(history, find_names, cues)
    follows = leans_on_history(question)
    inherited = False
    if intent is None and follows and context.intent is not None:
        intent, inherited = context.intent, True
    if intent is None:
        intent = classify(question, cues, dose_units=dose_units, names=named, nearest=nearest)
    exercises = named
    if not named and context.exercises:
        text = spell_out(question)
        ordinal = cues.ordinal.search(text)
        if ordinal:
            k = cues.references.ordinals[ordinal.group("ordinal").lower()]
            if -len(context.exercises) <= k - (k > 0) < len(context.exercises):
                exercises = [context.exercises[k - 1 if k > 0 else k]]
        elif follows and context.about_exercises and cues.pronoun.search(text):
            # "how often should I do it?" after "what is X?" is about X; "how do I do them?" after a list
            # is about the whole list.
            exercises = context.asked_about or context.exercises
    own = {w.lower() for w in content_words(question)}
    carried = [w for w in context.topic if w.lower() not in own] if follows else []
    if exercises and exercises != named:
        standalone = f"{', '.join(exercises)}: {question}"
    elif carried:
        standalone = f"{' '.join(dict.fromkeys(carried))}: {question}"
    else:
        standalone = question
    return Reading(
        question=question,
        intent=intent,
        exercises=exercises,
        standalone=standalone,
        inherited=inherited,
        context=context,
    )

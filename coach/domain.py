"""What a coach curates about their library, as data: corpus/domain.toml, validated like sources.toml.

Only what cannot be derived from the articles lives here: runners' words for the articles' words,
words too common to say what a question is about, names for questions the articles argue about, the
vocabulary that recognises an exercise name, and one line saying what the library covers. The code
knows no library's subject; another library brings another file (or none: every field has a default
that works on any running library).

Ingest validates the file and keeps a copy beside the index (domain.json), so what answers use is what
the index, the disagreement map and the exercise library were built with.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coach.errors import CorpusError
from coach.storage import write_atomic

if TYPE_CHECKING:
    from coach.settings import Settings

DOMAIN_FILE = "domain.toml"
STORED_DOMAIN = "domain.json"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Terms(_Strict):
    generic: list[str] = Field(
        default_factory=list,
        description="Words any question to this coach may contain ('run', 'train', 'tips'); they say "
        "nothing about whether the articles cover a question.",
    )
    synonyms: dict[str, list[str]] = Field(
        default_factory=dict,
        description="A runner's word -> the articles' words it should also find ('sore' -> ['pain']).",
    )
    anchor_stopwords: list[str] = Field(
        default_factory=list,
        description="Words too common in this library to tie two sentences to one claim (the library's "
        "own subject, 'muscle', 'body').",
    )


class Debates(_Strict):
    topics: list[str] = Field(
        default_factory=list,
        description="Names for questions the articles argue about, as a runner would ask them. A topic "
        "only names a disagreement the rules find; it never creates one.",
    )


class ExerciseVocabulary(_Strict):
    """Recognises exercise names in sentences. Each entry is a phrase: a space or hyphen in it matches a
    space, a hyphen or nothing ('step up' finds 'step-ups'), and a plural s is optional."""

    names: list[str] = Field(default_factory=list, description="Exercise names or their heads ('plank').")
    modifiers: list[str] = Field(
        default_factory=list, description="Words that make a head one exercise ('single leg', 'side')."
    )
    needs_modifier: list[str] = Field(
        default_factory=list,
        description="Heads that name an exercise only with a modifier ('hold' in 'side hold').",
    )
    dose_units: list[str] = Field(
        default_factory=list,
        description="Units a dose is counted in ('sets', 'reps', 'minutes'); empty: only frequencies "
        "('twice a week') are read as doses.",
    )


class Routines(_Strict):
    title: str = Field(
        default="routine", description="What a day's nudge is called: 'Day 3: today's <title>'."
    )
    note_daily: str = Field(
        default="Go slowly; if something hurts, stop and see a physiotherapist.",
        description="The line under a daily routine.",
    )
    note_twice_weekly: str = Field(
        default="Twice a week on nonconsecutive days; go slowly, and stop if something hurts.",
        description="The line under a twice-weekly routine.",
    )


class Questions(_Strict):
    examples: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Example runner questions by intent (coach/cues.py INTENTS): a question no intent cue "
        "matches gets the intent of the closest example, when it is close enough.",
    )


class Domain(_Strict):
    """corpus/domain.toml."""

    description: str = Field(
        default="",
        description="What the library covers, in a few words ('shin splints and marathon training'); empty means "
        "derived from the articles' titles.",
    )
    terms: Terms = Field(default_factory=Terms)
    debates: Debates = Field(default_factory=Debates)
    exercises: ExerciseVocabulary = Field(default_factory=ExerciseVocabulary)
    routines: Routines = Field(default_factory=Routines)
    questions: Questions = Field(default_factory=Questions)

    @cached_property
    def digest(self) -> str:
        """Identity of the vocabulary, part of the keys of everything built with it."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    @cached_property
    def generic_terms(self) -> frozenset[str]:
        from coach.text import terms

        return frozenset(t for word in self.terms.generic for t in terms(word))

    @cached_property
    def synonym_terms(self) -> dict[str, tuple[str, ...]]:
        """The synonyms as stemmed terms (the form the lexical index uses)."""
        from coach.text import terms

        out: dict[str, tuple[str, ...]] = {}
        for word, alternatives in self.terms.synonyms.items():
            for key in terms(word):
                out[key] = tuple(dict.fromkeys(t for alt in alternatives for t in terms(alt)))
        return out

    @cached_property
    def anchor_stopwords(self) -> frozenset[str]:
        from coach.text import terms

        return frozenset(t for word in self.terms.anchor_stopwords for t in terms(word))

    @cached_property
    def dose_units_pattern(self) -> re.Pattern[str] | None:
        """The dose units as one pattern ("sets", "reps"), None when the file names none."""
        units = [
            phrase_pattern(u, plural=False) for u in sorted(self.exercises.dose_units, key=len, reverse=True)
        ]
        return re.compile(rf"\b(?:{'|'.join(units)})\b", re.IGNORECASE) if units else None


def phrase_pattern(phrase: str, *, plural: bool = True) -> str:
    """A data file's phrase as a regular expression: spaces and hyphens optional and interchangeable,
    an optional plural."""
    words = [re.escape(w) for w in re.split(r"[\s-]+", phrase.strip()) if w]
    body = r"[- ]?".join(words)
    return body + (r"(?:e?s)?" if plural else "")


def load_domain(corpus_dir: Path) -> Domain:
    """corpus_dir/domain.toml, validated; a library without one gets the defaults."""
    path = corpus_dir / DOMAIN_FILE
    if not path.exists():
        return Domain()
    try:
        return Domain.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path} is not valid TOML ({exc}); fix or remove it.") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CorpusError(f"{path}: {problems}.") from None


def write_domain(settings: Settings, domain: Domain) -> None:
    write_atomic(settings.data_dir / STORED_DOMAIN, domain.model_dump_json(indent=1))


def read_domain(settings: Settings) -> Domain | None:
    """The domain the index was built with (None before the first ingest)."""
    try:
        return Domain.model_validate(
            json.loads((settings.data_dir / STORED_DOMAIN).read_text(encoding="utf-8"))
        )
    except (OSError, ValueError):
        return None

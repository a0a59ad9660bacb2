"""The plain-English cues of coach/cues.toml, validated and compiled: how questions and sentences are read.

The file holds what one would tune (intent patterns, the words that make a sentence lean on the one
before it, the coach's own sentence templates); the code only applies them. Nothing in it names a
library's subject: that is corpus/domain.toml.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from functools import cache, cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

CUES_FILE = Path(__file__).with_name("cues.toml")

INTENTS = ("compare", "dose", "how_to", "should_i", "which_exercises", "what_to_do", "why", "what_is")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuestionCues(_Strict):
    fillers: list[str] = Field(default_factory=list)


class IntentCues(_Strict):
    order: list[str]
    what_is_fallback: str
    patterns: dict[str, list[str]]
    timeline: list[str] = Field(default_factory=list)


class ReferenceCues(_Strict):
    ordinals: dict[str, int]
    pronouns: list[str]


class SentenceCues(_Strict):
    dangling: list[str]
    forward: list[str]
    expletive: str
    captions: list[str]
    advice: list[str]
    warning: list[str]
    negative: list[str]
    referral: list[str]
    causes: list[str]
    definitions: list[str]
    timelines: list[str]
    frequencies: list[str]
    numbers: list[str]
    pain: list[str]


class Cues(_Strict):
    """coach/cues.toml."""

    question: QuestionCues
    intents: IntentCues
    references: ReferenceCues
    sentences: SentenceCues
    prompts: dict[str, str]
    disagreements: dict[str, list[str]] = Field(default_factory=dict)
    languages: dict[str, str] = Field(default_factory=dict)
    compose: dict[str, str]

    @cached_property
    def digest(self) -> str:
        """Identity of the cues, part of the typed statements' key."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]

    @cached_property
    def intent_patterns(self) -> list[tuple[str, re.Pattern[str]]]:
        return [(name, _any(self.intents.patterns.get(name, []))) for name in self.intents.order]

    @cached_property
    def timeline_question(self) -> re.Pattern[str]:
        return _any(self.intents.timeline)

    @cached_property
    def what_is_fallback(self) -> re.Pattern[str]:
        return re.compile(self.intents.what_is_fallback, re.IGNORECASE)

    @cached_property
    def fillers(self) -> re.Pattern[str]:
        words = "|".join(re.escape(w) for w in sorted(self.question.fillers, key=len, reverse=True))
        return re.compile(rf"^(?:(?:{words})\b[\s,!.]*)+", re.IGNORECASE) if words else re.compile(r"^$")

    @cached_property
    def ordinal(self) -> re.Pattern[str]:
        words = "|".join(re.escape(w) for w in self.references.ordinals)
        return re.compile(rf"\b(?P<ordinal>{words})\b(?: (?:one|exercise|move)s?)?", re.IGNORECASE)

    @cached_property
    def pronoun(self) -> re.Pattern[str]:
        words = "|".join(re.escape(w) for w in sorted(self.references.pronouns, key=len, reverse=True))
        return re.compile(rf"\b(?:{words})\b", re.IGNORECASE)

    @cached_property
    def dangling(self) -> re.Pattern[str]:
        words = "|".join(
            re.escape(w) + ("" if w.endswith(",") else r"\b")
            for w in sorted(self.sentences.dangling, key=len, reverse=True)
        )
        return re.compile(rf"^[\"“‘(]?(?:{words})", re.IGNORECASE)

    @cached_property
    def forward(self) -> re.Pattern[str]:
        return _any(self.sentences.forward)

    @cached_property
    def expletive(self) -> re.Pattern[str]:
        return re.compile(self.sentences.expletive, re.IGNORECASE)

    @cached_property
    def captions(self) -> re.Pattern[str]:
        return _any(self.sentences.captions)

    @cached_property
    def advice(self) -> re.Pattern[str]:
        return _any(self.sentences.advice)

    @cached_property
    def warning(self) -> re.Pattern[str]:
        return _any(self.sentences.warning)

    @cached_property
    def negative(self) -> re.Pattern[str]:
        return _any(self.sentences.negative)

    @cached_property
    def referral(self) -> re.Pattern[str]:
        return _any(self.sentences.referral)

    @cached_property
    def causes(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.sentences.causes]

    @cached_property
    def definitions(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.sentences.definitions]

    @cached_property
    def timelines(self) -> re.Pattern[str]:
        return _any(self.sentences.timelines)

    @cached_property
    def frequencies(self) -> re.Pattern[str]:
        return _any(self.sentences.frequencies)

    @cached_property
    def pain(self) -> re.Pattern[str]:
        return _any(self.sentences.pain)

    @cached_property
    def number(self) -> str:
        """A number in words or digits, as a regular expression (no groups)."""
        words = "|".join(re.escape(w) for w in sorted(self.sentences.numbers, key=len, reverse=True))
        return rf"(?:\d{{1,3}}|{words})"

    def template(self, which: str, /, **slots: str) -> str:
        return self.compose[which].format(**slots)

    @cached_property
    def framing_words(self) -> frozenset[str]:
        """Every word of the compose templates outside their {slots}: the coach's own framing."""
        words: set[str] = set()
        for template in self.compose.values():
            text = re.sub(r"\{\w+\}", " ", template)
            words.update(w.lower() for w in re.findall(r"[A-Za-z’']+", text))
        return frozenset(words)


def _any(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!x)x", re.IGNORECASE)


@cache
def load_cues(path: Path = CUES_FILE) -> Cues:
    """coach/cues.toml, validated (an unknown key or a bad pattern fails loudly, at first use)."""
    cues = Cues.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    unknown = set(cues.intents.order) - set(INTENTS)
    if unknown:
        raise ValueError(f"{path}: unknown intents {sorted(unknown)}")
    cues.intent_patterns  # noqa: B018 - compiles every pattern now, so a bad one fails here
    for name in ("causes", "definitions", "advice", "warning", "referral", "timelines", "frequencies"):
        getattr(cues, name)
    return cues


_CONTRACTIONS = [
    (re.compile(r"\b(what|how|who|where|when|why|that|it|there|here)['’]s\b", re.I), r"\1 is"),
    (re.compile(r"\b(what|how|where|that)s\b", re.I), r"\1 is"),  # the apostrophe left out: "whats"
    (re.compile(r"\b(\w+)n['’]t\b", re.I), r"\1 not"),
    (re.compile(r"\b(\w+)['’]re\b", re.I), r"\1 are"),
    (re.compile(r"\b(\w+)['’]ll\b", re.I), r"\1 will"),
    (re.compile(r"\b(\w+)['’]ve\b", re.I), r"\1 have"),
    (re.compile(r"\bi['’]m\b", re.I), "i am"),
]


def spell_out(text: str) -> str:
    """Lower case, contractions spelled out ("what's" -> "what is", "don't" -> "do not"), so cue
    patterns are written once. "can't" becomes "ca not", which no cue needs to read."""
    text = text.lower()
    for pattern, replacement in _CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text

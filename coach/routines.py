"""The exercise library (found by rules in the articles at ingest) and the daily routines built from it.

Offline and without an LLM, so exercises are found by rules a reader can check, over article chunks (never
reader comments):

* names: the exercise vocabulary of the library's domain file (corpus/domain.toml: names or heads, and
  the modifiers that make them one exercise), accepted in a sentence
  that speaks of exercise ("exercises", "repeat", "builds ...") or in a heading or list item that starts
  with a name ("Hip hike", "4) Lunges- ...", "Side lying abduction & clams"); and
  every item of a list introduced by "exercises like / such as / including", lexicon or not, so an article
  naming a new exercise that way adds it;
* how: only what an article says: the text after "Name-" in a numbered item, a "-- done by ... --"
  aside, a "we're talking about ..." gloss, or the run of imperative sentences right after (or right before)
  the sentence that names the exercise;
* dose: only a phrase an article gives ("one to three sets of eight to 12 repetitions", "for a minute or
  so", "five minutes ... on a daily basis"), from the exercise's own sentence or else the article's own
  prescription.

Every name's `quote` is the sentence (or line) that names it, and `how`, `dose` and `quote` are verbatim
in the source (white space collapsed). The lexicon only recognises names; it never adds one the text lacks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from coach.domain import Domain, ExerciseVocabulary, phrase_pattern
from coach.domain import Routines as RoutineText
from coach.models import Chunk, Exercise, Routine
from coach.storage import write_atomic
from coach.text import collapse, split_sentences, strip_marker

log = logging.getLogger(__name__)

ALGORITHM = "exercises-v1"
LIBRARY_FILE = "exercises.json"
PER_SESSION = 3  # exercises per nudge (2 when the library is that small)

Frequency = Literal["daily", "twice-weekly"]
FREQUENCIES: tuple[Frequency, ...] = ("daily", "twice-weekly")
TRAINING_WEEKDAYS = {0, 3}  # twice a week on nonconsecutive days: days 1 and 4 of each programme week

# --- names ---------------------------------------------------------------------------------------
_NOTHING = r"(?!x)x"  # a pattern that never matches: a library whose domain file names no exercises


@dataclass(frozen=True)
class NameRules:
    """Exercise names as the library's domain file spells them (coach/domain.py), compiled: up to two
    modifiers and a name, not glued to a preceding word ("semi-squat" is a position), with an optional
    one-word qualifier in brackets ("Bridge (progressions)")."""

    name: re.Pattern[str]
    needs_modifier: re.Pattern[str]

    @classmethod
    def of(cls, vocabulary: ExerciseVocabulary) -> NameRules:
        def alternatives(phrases: list[str]) -> str:
            patterns = [phrase_pattern(p) for p in sorted(phrases, key=len, reverse=True) if p.strip()]
            return "|".join(patterns) or _NOTHING

        mods = alternatives(vocabulary.modifiers)
        heads = alternatives(vocabulary.names)
        return cls(
            name=re.compile(
                rf"(?<![\w-])(?:(?:{mods})[ -]){{0,2}}(?:{heads})(?: \(\w+\))?(?!\w|-\w)", re.IGNORECASE
            ),
            # Heads that name an exercise only with a modifier ("hip raises" yes, "raises" no).
            needs_modifier=re.compile(rf"^(?:{alternatives(vocabulary.needs_modifier)})$", re.IGNORECASE),
        )


_CONTEXT = re.compile(
    r"\b(exercises?|workouts?|repeat|perform|practi[cs]e|do them|builds?|strengthen\w*|activates?|"
    r"target\w*|routine|programme|program|try|reps?|repetitions|sets)\b",
    re.IGNORECASE,
)
_LIST_INTRO = re.compile(
    r"\b(?:exercises|moves|movements|drills)\W{0,2}\s(?:like|such as|including)\s+(?P<items>[^.;:!?—–()]+)",
    re.IGNORECASE,
)
_ITEM_SPLIT = re.compile(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&)\s+")
# Words that end a list's last item ("... and glute bridges specifically target the glutes").
_ITEM_STOP = frozenset(
    [
        "are",
        "is",
        "can",
        "will",
        "should",
        "may",
        "help",
        "helps",
        "target",
        "targets",
        "build",
        "builds",
        "work",
        "works",
        "strengthen",
        "strengthens",
        "activate",
        "activates",
        "improve",
        "improves",
        "make",
        "makes",
        "also",
        "which",
        "that",
        "to",
        "for",
        "in",
        "on",
        "with",
        "as",
        "are",
        "specifically",
        "all",
        "you",
        "your",
        "the",
    ]
)
_ASIDE_WITHIN = 30  # characters between a name and the "-- done by" or gloss that describes it

# --- how and dose ----------------------------------------------------------------------------------
_NUMBERED = re.compile(r"^\s*\d{1,2}[.)]\s*(?P<name>[^-–:]{2,40}?)\s*[-–:]\s*(?P<how>.*)$")
_DONE_BY = re.compile(r"--\s*(?P<how>done by [^-]+?)\s*--")
_GLOSS = re.compile(r"(?:we[’']re talking about|that is,|i\.e\.,?)\s+(?P<how>[^—–.;]+)", re.IGNORECASE)
_IMPERATIVE = re.compile(
    r"^(?:then,?\s+)?(?:stand|hinge|squeeze|lift|lower|lie|hold|keep|place|bend|push|raise|return|"
    r"contract|sit|step|learn how to|repeat|extend|press|drive)\b",
    re.IGNORECASE,
)
_NUM = r"(?:one|two|three|four|five|six|eight|ten|twelve|fifteen|twenty|\d{1,3})"
DOSE = re.compile(
    rf"\b{_NUM}(?: to {_NUM})? sets of {_NUM}(?: to {_NUM})? (?:repetitions|reps)\b"
    rf"|\bfor (?:a|one|{_NUM}) (?:minute|minutes|seconds)(?: or so)?\b"
    rf"|\b{_NUM} minutes\b[^.;]{{0,40}}?\b(?:daily|a day|each day|every day|on a daily basis)\b",
    re.IGNORECASE,
)


class Library(BaseModel):
    """The stored exercise library: exercises in the order the articles name them, keyed like the map,
    with what the library's domain file calls a routine and says under one."""

    key: str
    exercises: list[Exercise] = Field(default_factory=list)
    routines: RoutineText = Field(default_factory=RoutineText)


@dataclass
class _Line:
    source_id: str
    sentences: list[str]  # verbatim sentences of one line of an article chunk
    heading: bool  # the line starts with an exercise name: a heading or list item naming exercises
    offset: int  # where the line starts in the source's text


def library_key(source_shas: dict[str, str], domain: Domain | None = None) -> str:
    """Identity of the corpus a library was built from: every source's sha, these rules and the
    library's domain file (its exercise vocabulary)."""
    rules = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    payload = json.dumps(
        {
            "sources": source_shas,
            "algorithm": ALGORITHM,
            "rules": rules,
            "domain": (domain or Domain()).digest,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _norm(name: str) -> str:
    """The identity of a name: lower case, no plural s, no bracketed qualifier, and spaces and hyphens
    ignored ("kick backs", "kick-back" and "kickbacks" are one exercise)."""
    words = re.sub(r"\(.*?\)", "", name.lower()).replace("-", " ").split()
    return "".join(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words)


def _lines(chunks: Sequence[Chunk], source_texts: dict[str, str], rules: NameRules) -> list[_Line]:
    lines: list[_Line] = []
    sections: set[tuple[str, str]] = set()
    for chunk in sorted(chunks, key=lambda c: (c.source_id, c.chunk_id)):
        if chunk.kind != "article":
            continue
        texts = chunk.text.splitlines()
        if chunk.section and (chunk.source_id, chunk.section) not in sections:
            sections.add((chunk.source_id, chunk.section))
            texts.insert(0, chunk.section)  # a section title can be the exercise's name ("Side lying ...")
        for raw in texts:
            text = raw.strip()
            haystack = source_texts.get(chunk.source_id, "")
            sentences = [s for s in split_sentences(text) if collapse(s) in haystack]
            if sentences:
                offset = haystack.find(collapse(sentences[0]))
                lines.append(_Line(chunk.source_id, sentences, _names_a_list(text, rules), offset))
    # Chunk ids are content hashes: order lines as the article does, so "first mention" means first.
    lines.sort(key=lambda line: (line.source_id, line.offset))
    return lines


def _names_a_list(line: str, rules: NameRules) -> bool:
    """A heading or list item that is an exercise name: "Hip hike", "4) Lunges- perform ...", "Side lying
    abduction & clams", "Bridge (progressions)"; not "Hip abduction, moving the leg out to the side"."""
    m = rules.name.match(strip_marker(line))
    return bool(m) and re.match(r"\s*(?:$|[(&\-–:])", strip_marker(line)[m.end() :]) is not None


def _list_items(sentence: str) -> list[str]:
    """Items of "exercises like A, B and C ...", the last cut where the sentence goes on."""
    items: list[str] = []
    for m in _LIST_INTRO.finditer(sentence):
        parts = [p.strip(" ’'\"‘“”") for p in _ITEM_SPLIT.split(m.group("items")) if p.strip()]
        for part in parts:
            words = part.split()
            cut = next((j for j, w in enumerate(words) if w.lower() in _ITEM_STOP), len(words))
            if 1 <= cut <= 4:
                items.append(" ".join(words[:cut]))
            if cut < len(words):  # the sentence goes on: the list has ended
                break
    return items


def _names(sentence: str, heading: bool, rules: NameRules) -> list[str]:
    """Exercise names in one sentence, in order of appearance."""
    found: list[str] = []
    listed = _list_items(sentence)
    found.extend(listed)
    if heading or _CONTEXT.search(sentence):
        for m in rules.name.finditer(sentence):
            name = m.group(0)
            if rules.needs_modifier.match(name):
                continue
            if not any(_norm(name) in _norm(f) for f in found):  # "step-ups" of "box step-ups"
                found.append(name)
    return found


def _how(name: str, line: _Line, index: int, rules: NameRules) -> str | None:
    """What the article says about doing it, verbatim; None when it says nothing."""
    sentence = line.sentences[index]
    numbered = _NUMBERED.match(sentence)
    if numbered and _norm(numbered.group("name")) == _norm(name):
        how = numbered.group("how").strip()
        if how and not how.lower().startswith("learn how"):
            return collapse(how)
    at = sentence.lower().find(name.lower())
    after = sentence[at + len(name) :] if at >= 0 else ""
    for pattern in (_DONE_BY, _GLOSS):
        m = pattern.search(after)
        # Only an aside right after the name describes it (not the next name in "A and B -- done by --").
        if m and m.start() <= _ASIDE_WITHIN and not rules.name.search(after[: m.start()]):
            return collapse(m.group("how"))
    # Instructions in the sentences that follow (or, failing that, precede) the naming sentence, up to
    # the next sentence that names something else.
    for run in (
        range(index + 1, len(line.sentences)),
        range(index - 1, -1, -1),
    ):
        picked: list[int] = []
        for j in run:
            s = line.sentences[j]
            if not _IMPERATIVE.match(s) or (rules.name.search(s) and j > index):
                break
            picked.append(j)
        if picked:
            lo, hi = min(picked), max(picked)
            return collapse(" ".join(line.sentences[lo : hi + 1]))
    return None


def _dose(sentence: str) -> str | None:
    m = DOSE.search(sentence)
    return collapse(m.group(0)) if m else None


def build_library(
    chunks: Sequence[Chunk], source_texts: dict[str, str], key: str = "", domain: Domain | None = None
) -> Library:
    """Every exercise the articles name, first mention wins, filled in from later mentions; names are
    recognised by the library's domain file (and "exercises like A, B and C" without it)."""
    domain = domain or Domain()
    rules = NameRules.of(domain.exercises)
    by_name: dict[str, Exercise] = {}
    article_dose: dict[str, str] = {}
    lines = _lines(chunks, source_texts, rules)
    for line in lines:
        for sentence in line.sentences:
            dose = _dose(sentence)
            if dose and line.source_id not in article_dose and not rules.name.search(sentence):
                article_dose[line.source_id] = dose  # a prescription for the article's exercises
    for line in lines:
        for index, sentence in enumerate(line.sentences):
            for name in _names(sentence, line.heading, rules):
                how = _how(name, line, index, rules)
                dose = _dose(sentence)
                quote = collapse(strip_marker(sentence))
                key_ = _norm(name)
                current = by_name.get(key_)
                if current is None:
                    by_name[key_] = Exercise(
                        name=_display(name),
                        how=how,
                        dose=dose,
                        source_id=line.source_id,
                        quote=quote,
                    )
                elif current.how is None and how is not None:
                    # A later passage says how: take it, with its own quote, so all three agree on a source.
                    by_name[key_] = Exercise(
                        name=current.name, how=how, dose=dose, source_id=line.source_id, quote=quote
                    )
    exercises = []
    for ex in by_name.values():
        if ex.dose is None and ex.source_id in article_dose:
            ex = ex.model_copy(update={"dose": article_dose[ex.source_id]})
        if all(_verbatim(part, source_texts.get(ex.source_id, "")) for part in (ex.quote, ex.how, ex.dose)):
            exercises.append(ex)
        else:  # cannot happen with the rules above; never ship a quote that is not in its source
            log.warning("dropping exercise %r: a quote is not verbatim in %s", ex.name, ex.source_id)
    return Library(key=key, exercises=exercises, routines=domain.routines)


def _display(name: str) -> str:
    name = collapse(name)
    return (
        name[:1].upper() + name[1:].lower()
        if name.isupper() or name[:1].islower()
        else name[:1] + name[1:].lower()
    )


def _verbatim(part: str | None, haystack: str) -> bool:
    return part is None or collapse(part) in haystack


# --- routines ------------------------------------------------------------------------------------
def is_training_day(day: int, frequency: Frequency) -> bool:
    """Daily: every day. Twice a week: days 1 and 4 of each programme week (never consecutive)."""
    return frequency == "daily" or (day - 1) % 7 in TRAINING_WEEKDAYS


def session_number(day: int, frequency: Frequency) -> int:
    """How many training sessions came before day `day` (0 for the first)."""
    if frequency == "daily":
        return day - 1
    weeks, rest = divmod(day - 1, 7)
    return weeks * len(TRAINING_WEEKDAYS) + sum(1 for d in TRAINING_WEEKDAYS if d < rest)


def routine_for(library: Library, day: int, frequency: Frequency = "daily") -> Routine:
    """Day `day` (from 1) of a programme: 2-3 exercises, rotating through the library in order."""
    if day < 1:
        raise ValueError("the programme starts on day 1")
    exercises = library.exercises
    if not exercises:
        return Routine(day=day, exercises=[], note="The articles name no exercises yet; run `coach ingest`.")
    if not is_training_day(day, frequency):
        return Routine(day=day, exercises=[], note="Rest day: twice a week means nonconsecutive days.")
    per = min(PER_SESSION, len(exercises))
    start = session_number(day, frequency) * per
    picked = [exercises[(start + i) % len(exercises)] for i in range(per)]
    note = library.routines.note_daily if frequency == "daily" else library.routines.note_twice_weekly
    return Routine(day=day, exercises=picked, note=note)


def routine_json(routine: Routine) -> dict:
    """The `coach routine --json` shape (ARCHITECTURE.md)."""
    return {
        "day": routine.day,
        "exercises": [
            e.model_dump(include={"name", "how", "dose", "source_id", "quote"}) for e in routine.exercises
        ],
        "note": routine.note,
    }


# --- storage -------------------------------------------------------------------------------------
def library_path(data_dir: Path) -> Path:
    return data_dir / LIBRARY_FILE


def read_library(data_dir: Path) -> Library | None:
    try:
        return Library.model_validate_json(library_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_library(data_dir: Path, library: Library) -> None:
    write_atomic(library_path(data_dir), library.model_dump_json())


def ensure_library(
    data_dir: Path,
    chunks_loader: Callable[[], Sequence[Chunk]],
    source_texts: dict[str, str],
    source_shas: dict[str, str],
    domain: Domain | None = None,
) -> tuple[bool, Library]:
    """The stored library, rebuilt only when the sources (or these rules, or the domain file) changed;
    (rebuilt, library)."""
    key = library_key(source_shas, domain)
    current = read_library(data_dir)
    if current is not None and current.key == key:
        return False, current
    library = build_library(chunks_loader(), source_texts, key, domain)
    try:
        write_library(data_dir, library)
    except OSError as exc:  # a read-only data directory: the library still serves this process
        log.warning("could not store the exercise library in %s (%s)", data_dir, exc.strerror)
    log.info("exercise library: %d exercises", len(library.exercises))
    return True, library

"""The exercise library (found by rules in the articles at ingest) and the daily routines built from it.

Offline and without an LLM, so exercises are found by rules a reader can check, one article at a time
(`extract_exercises` is a pure function of one article's chunks, its text and the domain file, so its
result is cached per article beside the typed statements: coach/statements.py), over article chunks
(never reader comments):

* names: the exercise vocabulary of the library's domain file (corpus/domain.toml: names or heads, and
  the modifiers that make them one exercise), accepted in a sentence that speaks of exercise
  ("exercises", "repeat", "builds ...") or in a numbered list item that starts with a name ("4) Lunges-
  ..."); and every item of a list introduced by "exercises like / such as / including", lexicon or not,
  so an article naming a new exercise that way adds it. A bare heading ("Hip hike") or a caption
  ("... are also in this video") names nothing: a routine could not quote it as a recommendation;
* how: only what an article says about that exercise: the text after "Name-" in a numbered item, a
  "-- done by ... --" aside, a "we're talking about ..." gloss, or the run of imperative sentences right
  after the sentence that names it (or right before a "Repeat the ..." that closes them), never a run
  that follows another exercise's name;
* dose: only a phrase an article gives, from the exercise's own sentence or steps, or else the article's
  own training prescription ("Do strength-training exercises ... for one to three sets of eight to 12
  repetitions"): a sentence with a dose that names no exercise but speaks of training. A dose in a
  sentence about something else ("dedicating five minutes to their behinds") is nobody's dose.

Every name's `quote` is the sentence (or list item) that names it, and `how`, `dose` and `quote` are
verbatim in the source (white space collapsed). The lexicon only recognises names; it never adds one the
text lacks. A day of a routine says plainly which of its exercises the articles give no steps for.
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

from coach.cues import CUES_FILE, Cues, load_cues
from coach.domain import Domain, ExerciseVocabulary, phrase_pattern
from coach.domain import Routines as RoutineText
from coach.models import Chunk, Exercise, Routine
from coach.storage import write_atomic
from coach.text import collapse, split_sentences, strip_marker

log = logging.getLogger(__name__)

ALGORITHM = "exercises-v2"
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
_NUMBERED = re.compile(r"^\s*\d{1,2}[.)]\s*(?P<name>[^-–:]{2,40}?)\s*(?:[-–:]\s*(?P<how>.*))?$")
_DONE_BY = re.compile(r"--\s*(?P<how>done by [^-]+?)\s*--")
_GLOSS = re.compile(r"(?:we[’']re talking about|that is,|i\.e\.,?)\s+(?P<how>[^—–.;]+)", re.IGNORECASE)
_IMPERATIVE = re.compile(
    r"^(?:then,?\s+)?(?:stand|hinge|squeeze|lift|lower|lie|hold|keep|place|bend|push|raise|return|"
    r"contract|sit|step|learn how to|repeat|extend|press|drive|rise|lean|walk|tighten|brace|roll|rotate|"
    r"swing|hop|shift|reach|pull|point|pause|begin|start with)\b",
    re.IGNORECASE,
)
_CLOSING = re.compile(r"^(?:repeat|do|perform|hold)\b", re.IGNORECASE)  # "Repeat the X for a minute"
_LINK_TEXT = re.compile(r"^(?:learn how|watch|see how|video)\b", re.IGNORECASE)
_HEADING_MAX_WORDS = 8
_SPAN_MAX_WORDS = 24  # a dose and a frequency spanning more words than this are two phrases, not one


@dataclass(frozen=True)
class DoseRules:
    """Doses as an article writes them: an amount in the library's units ("one to three sets of eight
    to 12 repetitions", "for a minute or so") and how often ("twice per week", "on a daily basis")."""

    amount: re.Pattern[str] | None
    frequency: re.Pattern[str]

    @classmethod
    def of(cls, domain: Domain, cues: Cues | None = None) -> DoseRules:
        cues = cues or load_cues()
        units = [
            phrase_pattern(u, plural=False)
            for u in sorted(domain.exercises.dose_units, key=len, reverse=True)
        ]
        amount = None
        if units:
            unit = rf"(?:{'|'.join(units)})"
            n = cues.number
            amount = re.compile(
                rf"\bfor (?:a|one|{n}) {unit}(?: or so)?\b"
                rf"|\b{n}(?: to {n})? {unit}(?: of {n}(?: to {n})? {unit})?\b",
                re.IGNORECASE,
            )
        return cls(amount=amount, frequency=cues.frequencies)

    def find(self, text: str) -> str | None:
        """The dose in a sentence, verbatim: its amount and frequency as one span when they sit close."""
        spans = [m.span() for m in self.frequency.finditer(text)]
        if self.amount is not None:
            spans += [m.span() for m in self.amount.finditer(text)]
        if not spans:
            return None
        spans.sort()
        start, end = spans[0]
        for s, e in spans[1:]:
            if (
                len(text[end:s].split()) <= _SPAN_MAX_WORDS // 4
                and len(text[start:e].split()) <= _SPAN_MAX_WORDS
            ):
                end = max(end, e)
        return collapse(text[start:end])

    def has_amount(self, text: str) -> bool:
        return self.amount is not None and bool(self.amount.search(text))


class ExerciseFact(BaseModel):
    """One exercise as one article gives it: where it is named, and its steps and dose only where that
    article says them, each with the verbatim sentence and chunk it comes from."""

    name: str
    source_id: str
    chunk_id: str
    quote: str  # the sentence or list item that names it
    position: int  # where the article names it (characters into its text), for "first mention"
    steps: str | None = None
    steps_quote: str | None = None
    steps_chunk: str | None = None
    dose: str | None = None
    dose_quote: str | None = None
    dose_chunk: str | None = None
    dose_shared: bool = False  # the article's prescription for its exercises, not a dose of its own

    @property
    def key(self) -> str:
        return _norm(self.name)


class Library(BaseModel):
    """The stored exercise library: exercises in the order the articles name them, keyed like the map,
    with what the library's domain file calls a routine and says under one."""

    key: str
    exercises: list[Exercise] = Field(default_factory=list)
    routines: RoutineText = Field(default_factory=RoutineText)


@dataclass
class _Line:
    chunk: Chunk
    sentences: list[str]  # verbatim sentences of one line of an article chunk
    listed: bool  # a numbered list item
    heading: bool  # a title: no sentence of its own (a section title, a video's name)
    caption: bool  # a caption of a picture or a video
    offset: int  # where the line starts in the source's text


RULE_FILES = ("routines.py", "statements.py", "fragments.py", "units.py", "cues.py")


def rules_digest() -> str:
    """Identity of the extraction rules (this module, the typed statements', and the cue file)."""
    digest = hashlib.sha256()
    for name in RULE_FILES:
        digest.update(Path(__file__).with_name(name).read_bytes())
    digest.update(CUES_FILE.read_bytes())
    return digest.hexdigest()


def library_key(source_shas: dict[str, str], domain: Domain | None = None) -> str:
    """Identity of the corpus a library was built from: every source's sha, these rules and the
    library's domain file (its exercise vocabulary)."""
    payload = json.dumps(
        {
            "sources": source_shas,
            "algorithm": ALGORITHM,
            "rules": rules_digest(),
            "domain": (domain or Domain()).digest,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def training(sentence: str) -> bool:
    """The sentence speaks of exercise or training ("exercises", "reps", "routine")."""
    return bool(_CONTEXT.search(sentence))


def norm_name(name: str) -> str:
    """The identity of an exercise name (see _norm)."""
    return _norm(name)


def _norm(name: str) -> str:
    """The identity of a name: lower case, no plural s, no bracketed qualifier, and spaces and hyphens
    ignored ("kick backs", "kick-back" and "kickbacks" are one exercise)."""
    words = re.sub(r"\(.*?\)", "", name.lower()).replace("-", " ").split()
    return "".join(w[:-1] if w.endswith("s") and len(w) > 3 else w for w in words)


def _lines(chunks: Sequence[Chunk], source_text: str, cues: Cues) -> list[_Line]:
    lines: list[_Line] = []
    for chunk in chunks:
        if chunk.kind != "article":
            continue
        for raw in chunk.text.splitlines():
            text = raw.strip()
            sentences = [s for s in split_sentences(text) if collapse(s) in source_text]
            if not sentences:
                continue
            listed = bool(_NUMBERED.match(text))
            heading = (
                not listed and not re.search(r"[.!?:…]$", text) and len(text.split()) <= _HEADING_MAX_WORDS
            )
            lines.append(
                _Line(
                    chunk=chunk,
                    sentences=sentences,
                    listed=listed,
                    heading=heading,
                    caption=bool(cues.captions.search(text)),
                    offset=source_text.find(collapse(sentences[0])),
                )
            )
    # Chunk ids are content hashes: order lines as the article does, so "first mention" means first.
    lines.sort(key=lambda line: line.offset)
    return lines


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


def _names(sentence: str, listed: bool, rules: NameRules) -> list[str]:
    """Exercise names in one sentence, in order of appearance."""
    found: list[str] = list(_list_items(sentence))
    if listed:
        numbered = _NUMBERED.match(sentence)
        head = numbered.group("name") if numbered else ""
        m = rules.name.match(head.strip())
        if (
            m
            and not rules.needs_modifier.match(m.group(0))
            and not any(_norm(m.group(0)) in _norm(f) for f in found)
        ):
            found.append(m.group(0))
    if _CONTEXT.search(sentence):
        for m in rules.name.finditer(sentence):
            name = m.group(0)
            if rules.needs_modifier.match(name):
                continue
            if not any(_norm(name) in _norm(f) for f in found):  # "step-ups" of "box step-ups"
                found.append(name)
    return found


def _how(name: str, line: _Line, index: int, rules: NameRules) -> tuple[str, str] | None:
    """What the article says about doing it: (the steps, the verbatim sentences holding them); None
    when it says nothing."""
    sentence = line.sentences[index]
    numbered = _NUMBERED.match(sentence)
    if numbered and _norm(numbered.group("name")) == _norm(name):
        how = (numbered.group("how") or "").strip()
        if how and not _LINK_TEXT.match(how):
            return collapse(how), collapse(strip_marker(sentence))
        return None
    at = sentence.lower().find(name.lower())
    after = sentence[at + len(name) :] if at >= 0 else ""
    for pattern in (_DONE_BY, _GLOSS):
        m = pattern.search(after)
        # Only an aside right after the name describes it (not the next name in "A and B -- done by --").
        if m and m.start() <= _ASIDE_WITHIN and not rules.name.search(after[: m.start()]):
            return collapse(m.group("how")), collapse(strip_marker(sentence))
    # Instructions in the sentences that follow the naming sentence, up to the next sentence that names
    # something else; or, when the naming sentence closes a run of steps ("Repeat the X for a minute"),
    # the run before it, unless that run follows another exercise's name.
    runs = [range(index + 1, len(line.sentences))]
    if _CLOSING.match(strip_marker(sentence)):
        runs.append(range(index - 1, -1, -1))
    for run in runs:
        picked: list[int] = []
        for j in run:
            s = line.sentences[j]
            if not _IMPERATIVE.match(s) or rules.name.search(s):
                break
            picked.append(j)
        if not picked:
            continue
        lo, hi = min(picked), max(picked)
        if (
            lo < index
            and lo > 0
            and any(_norm(n) != _norm(name) for n in _names(line.sentences[lo - 1], False, rules))
        ):
            continue  # those steps are the exercise named just before them
        steps = collapse(" ".join(line.sentences[lo : hi + 1]))
        return steps, steps
    return None


def extract_exercises(
    chunks: Sequence[Chunk], source_text: str, domain: Domain | None = None, cues: Cues | None = None
) -> list[ExerciseFact]:
    """Every exercise one article names, in the order it names them (first mention, filled in with
    steps from a later one). A pure function of (the article's chunks, its text, the domain file)."""
    domain = domain or Domain()
    cues = cues or load_cues()
    rules = NameRules.of(domain.exercises)
    doses = DoseRules.of(domain, cues)
    lines = _lines(chunks, source_text, cues)
    prescription: tuple[str, str, str] | None = None  # the article's own: (dose, quote, chunk id)
    for line in lines:
        for sentence in line.sentences:
            dose = doses.find(sentence)
            if (
                dose
                and doses.has_amount(sentence)
                and _CONTEXT.search(sentence)
                and not rules.name.search(sentence)
            ):
                prescription = (dose, collapse(strip_marker(sentence)), line.chunk.chunk_id)
                break
        if prescription:
            break
    by_name: dict[str, ExerciseFact] = {}
    for line in lines:
        if line.caption or line.heading:
            continue  # a video's name or caption recommends nothing a routine could quote
        for index, sentence in enumerate(line.sentences):
            for name in _names(sentence, line.listed, rules):
                key = _norm(name)
                how = _how(name, line, index, rules)
                own_dose = doses.find(sentence) if _CONTEXT.search(sentence) or line.listed else None
                if own_dose is None and how is not None:
                    own_dose = doses.find(how[1])
                fact = ExerciseFact(
                    name=_display(name),
                    source_id=line.chunk.source_id,
                    chunk_id=line.chunk.chunk_id,
                    quote=collapse(strip_marker(sentence)),
                    position=line.offset,
                    steps=how[0] if how else None,
                    steps_quote=how[1] if how else None,
                    steps_chunk=line.chunk.chunk_id if how else None,
                )
                if own_dose:
                    dose_quote = (
                        how[1] if how and own_dose in how[1] and own_dose not in sentence else sentence
                    )
                    fact = fact.model_copy(
                        update={
                            "dose": own_dose,
                            "dose_quote": collapse(strip_marker(dose_quote)),
                            "dose_chunk": line.chunk.chunk_id,
                        }
                    )
                current = by_name.get(key)
                if current is None:
                    by_name[key] = fact
                elif current.steps is None and fact.steps is not None:
                    by_name[key] = fact.model_copy(update={"quote": fact.quote, "position": current.position})
    _from_sections(lines, rules, doses, by_name)
    facts: list[ExerciseFact] = []
    for fact in sorted(by_name.values(), key=lambda f: f.position):
        if fact.dose is None and prescription is not None:
            fact = fact.model_copy(
                update={
                    "dose": prescription[0],
                    "dose_quote": prescription[1],
                    "dose_chunk": prescription[2],
                    "dose_shared": True,
                }
            )
        parts = (fact.quote, fact.steps, fact.steps_quote, fact.dose, fact.dose_quote)
        if all(_verbatim(part, source_text) for part in parts):
            facts.append(fact)
        else:  # cannot happen with the rules above; never ship a quote that is not in its source
            log.warning("dropping exercise %r: a quote is not verbatim in %s", fact.name, fact.source_id)
    return facts


def _from_sections(
    lines: Sequence[_Line], rules: NameRules, doses: DoseRules, by_name: dict[str, ExerciseFact]
) -> None:
    """Exercises an article introduces by a section heading ("## 2. Eccentric heel drops") with its steps
    in the section's first paragraph: cleaning keeps headings out of chunk text, so the sentence loop
    never sees the name. Named only when the paragraph opens with steps; those are quoted."""
    seen: set[tuple[str, str]] = set()
    for line in lines:
        where = (line.chunk.source_id, line.chunk.section)
        if not line.chunk.section or where in seen:
            continue
        seen.add(where)
        heading = line.chunk.section.splitlines()[-1]  # the innermost heading
        numbered = _NUMBERED.match(heading)
        head = numbered.group("name") if numbered else heading
        picked: list[str] = []
        for sentence in line.sentences:
            if not _IMPERATIVE.match(strip_marker(sentence)) or rules.name.search(sentence):
                break
            picked.append(sentence)
        if not picked:
            continue
        steps = collapse(" ".join(picked))
        # The dose is usually said after the steps ("Do three sets of twelve"); within them, an amount is
        # more likely a step's own ("pause for a second").
        after, within = line.sentences[len(picked) :], picked
        dose_sentence = next((x for x in [*after, *within] if doses.find(x) and doses.has_amount(x)), None)
        for m in rules.name.finditer(head):
            if rules.needs_modifier.fullmatch(m.group(0).strip()):
                continue
            key = _norm(m.group(0))
            current = by_name.get(key)
            if current is not None and current.steps is not None:
                continue
            fact = ExerciseFact(
                name=_display(m.group(0)),
                source_id=line.chunk.source_id,
                chunk_id=line.chunk.chunk_id,
                quote=steps,
                position=current.position if current else line.offset,
                steps=steps,
                steps_quote=steps,
                steps_chunk=line.chunk.chunk_id,
            )
            if current is not None and current.dose is not None:
                fact = fact.model_copy(
                    update={
                        "dose": current.dose,
                        "dose_quote": current.dose_quote,
                        "dose_chunk": current.dose_chunk,
                    }
                )
            elif dose_sentence is not None:
                fact = fact.model_copy(
                    update={
                        "dose": doses.find(dose_sentence),
                        "dose_quote": collapse(strip_marker(dose_sentence)),
                        "dose_chunk": line.chunk.chunk_id,
                    }
                )
            by_name[key] = fact


def merge_library(
    facts_by_source: dict[str, Sequence[ExerciseFact]], key: str = "", domain: Domain | None = None
) -> Library:
    """The library: every article's exercises, articles in source-id order, first mention wins and is
    filled in with steps from a later one (taking that article's quote and dose, so all three agree on
    a source)."""
    domain = domain or Domain()
    by_name: dict[str, Exercise] = {}
    for source_id in sorted(facts_by_source):
        for fact in facts_by_source[source_id]:
            exercise = Exercise(
                name=fact.name, how=fact.steps, dose=fact.dose, source_id=fact.source_id, quote=fact.quote
            )
            current = by_name.get(fact.key)
            if current is None:
                by_name[fact.key] = exercise
            elif current.how is None and exercise.how is not None:
                by_name[fact.key] = exercise.model_copy(update={"name": current.name})
    return Library(key=key, exercises=list(by_name.values()), routines=domain.routines)


def build_library(
    chunks: Sequence[Chunk], source_texts: dict[str, str], key: str = "", domain: Domain | None = None
) -> Library:
    """Every exercise the articles name (extract_exercises per article, then merge_library)."""
    by_source: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source_id, []).append(chunk)
    facts = {
        sid: extract_exercises(group, source_texts.get(sid, ""), domain) for sid, group in by_source.items()
    }
    return merge_library(facts, key, domain)


class ExerciseNames:
    """Finds the library's exercises in a question or an answer ("how do I do clams?", "the first one"
    of an answer that listed them): names the domain vocabulary recognises, mapped to the library's own
    spelling, in order of appearance."""

    def __init__(self, names: Sequence[str], domain: Domain | None = None) -> None:
        self.rules = NameRules.of((domain or Domain()).exercises)
        self.by_key = {_norm(n): n for n in names}
        listed = [
            re.escape(n).replace(r"\-", "[- ]?").replace(r"\ ", "[- ]?")
            for n in sorted(names, key=len, reverse=True)
        ]
        self.listed = (
            re.compile(rf"(?<![\w-])(?:{'|'.join(listed)})s?(?![\w-])", re.IGNORECASE) if listed else None
        )

    def __call__(self, text: str) -> list[str]:
        found: list[tuple[int, str]] = []
        spans: list[tuple[int, int]] = []
        for pattern in (self.listed, self.rules.name):
            if pattern is None:
                continue
            for m in pattern.finditer(text):
                if any(s <= m.start() < e for s, e in spans) or self.rules.needs_modifier.match(m.group(0)):
                    continue
                name = self.canonical(m.group(0))
                if name is not None:
                    spans.append(m.span())
                    found.append((m.start(), name))
        return list(dict.fromkeys(name for _, name in sorted(found)))

    def canonical(self, phrase: str) -> str | None:
        """The library's name for a phrase: the same name, or the one name it is the head of
        ("deadlifts" -> "Single-leg deadlift" when the library has no other)."""
        key = _norm(phrase)
        if key in self.by_key:
            return self.by_key[key]
        longer = [name for k, name in self.by_key.items() if k.endswith(key)]
        return longer[0] if len(longer) == 1 else None


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


def _rotate(items: Sequence[Exercise], start: int, count: int) -> list[Exercise]:
    return [items[(start + i) % len(items)] for i in range(min(count, len(items)))]


def routine_for(
    library: Library, day: int, frequency: Frequency = "daily", cues: Cues | None = None
) -> Routine:
    """Day `day` (from 1) of a programme: 2-3 exercises rotating through the library. When the library
    has at least two exercises with steps, every day has two of them (and one the articles only name);
    the note says plainly which exercises the articles give no steps for."""
    if day < 1:
        raise ValueError("the programme starts on day 1")
    exercises = library.exercises
    if not exercises:
        return Routine(day=day, exercises=[], note="The articles name no exercises yet; run `coach ingest`.")
    if not is_training_day(day, frequency):
        return Routine(day=day, exercises=[], note="Rest day: twice a week means nonconsecutive days.")
    session = session_number(day, frequency)
    with_steps = [e for e in exercises if e.how]
    named_only = [e for e in exercises if not e.how]
    if len(with_steps) >= PER_SESSION - 1 and named_only:
        picked = _rotate(with_steps, session * (PER_SESSION - 1), PER_SESSION - 1) + _rotate(
            named_only, session, 1
        )
    else:
        per = min(PER_SESSION, len(exercises))
        picked = _rotate(exercises, session * per, per)
    note = library.routines.note_daily if frequency == "daily" else library.routines.note_twice_weekly
    bare = [e.name for e in picked if not e.how]
    if bare:
        cues = cues or load_cues()
        names = " and ".join([", ".join(bare[:-1]), bare[-1]] if len(bare) > 1 else bare)
        them = "them" if len(bare) > 1 or bare[0].lower().endswith("s") else "it"
        note = f"{cues.template('routine_no_steps', names=names, them=them)} {note}"
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
    facts_loader: Callable[[], dict[str, Sequence[ExerciseFact]]],
    source_shas: dict[str, str],
    domain: Domain | None = None,
) -> tuple[bool, Library]:
    """The stored library, rebuilt only when the sources (or these rules, or the domain file) changed;
    (rebuilt, library). `facts_loader` gives every article's exercises (the typed statements' own, which
    are cached per article)."""
    key = library_key(source_shas, domain)
    current = read_library(data_dir)
    if current is not None and current.key == key:
        return False, current
    library = merge_library(facts_loader(), key, domain)
    try:
        write_library(data_dir, library)
    except OSError as exc:  # a read-only data directory: the library still serves this process
        log.warning("could not store the exercise library in %s (%s)", data_dir, exc.strerror)
    log.info("exercise library: %d exercises", len(library.exercises))
    return True, library

"""The offline `extractive` backend: an answer composed by intent from the articles' typed statements.

It leads with one or two sentences in the coach's own words that answer what was asked (the exercises
the articles recommend, the dose they give, the steps or that there are none, a plain yes / no / ease
off, what they link a complaint to, what a word means), built only from cited statements: every name,
dose, cause or definition in a lead is a verbatim piece of the quote its mark points at, and the words
around them are the templates of coach/cues.toml. Then the supporting quotes, chosen for the intent
and for the question's own words (never a sentence that only shares the library's common words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from coach.cues import Cues, load_cues, spell_out
from coach.models import Citation
from coach.retrieval import Retrieval
from coach.routines import ExerciseFact, norm_name
from coach.statements import Statement
from coach.text import terms

MAX_LEAD_EXERCISES = 4
MAX_SUPPORT = 3
MAX_PER_CHUNK = 2
DUPLICATE_OVERLAP = 0.6  # word-set Jaccard above which two quotes say the same thing
MIN_SUPPORT_IDF = 1.0  # a supporting quote must share question words at least this rare
KIND_BONUS = 1.5
MAX_VERDICT_WORDS = 40
SENTENCE_WEIGHT = 4.0  # the quote's own closeness to the question weighs most: it is the answer read
CLOSE = 0.55  # a quote this close to the question supports it whatever words it shares
SUPPORT_MIN_CLOSENESS = 0.25  # and one further than this does not, whatever words it shares,
CLOSENESS_SPREAD = 0.35  # nor one further behind the closest quote than this
RELAXED_CLOSENESS = 0.45  # with nothing fitting the intent, a quote this close answers without shared words

# Intents whose supporting quotes must be of the intent's kinds (a dose question gets doses, not
# whatever shares its words); the others take any statement that shares the question's rare words.
STRICT_SUPPORT = frozenset({"what_to_do", "should_i", "dose", "how_to"})
# Which statements support which question, by kind.
INTENT_KINDS: dict[str | None, tuple[str, ...]] = {
    "why": ("cause", "fact"),
    "what_to_do": ("advice", "referral"),
    "which_exercises": ("advice",),
    "how_to": ("advice",),
    "dose": ("dose", "timeline"),
    "should_i": ("referral", "warning", "advice"),
    "what_is": ("definition", "fact"),
    "compare": ("advice", "fact"),
    None: (),
}


@dataclass
class Draft:
    text: str
    citations: list[Citation]


@dataclass
class Scored:
    statement: Statement
    score: float
    overlap: float  # IDF mass of the question's specific words the statement holds
    shared: int = 0  # how many of those words
    closeness: float = 0.0  # the quote's embedding against the question's


@dataclass
class _Writer:
    """Numbers citations in order of first use: one number per quote of one chunk."""

    titles: dict[str, str]
    citations: list[Citation] = field(default_factory=list)
    quoted: set[str] = field(default_factory=set)

    def cite(self, source_id: str, chunk_id: str, quote: str) -> str:
        for c in self.citations:
            if c.chunk_id == chunk_id and c.quote == quote:
                return f"[{c.n}]"
        n = len(self.citations) + 1
        self.citations.append(
            Citation(
                n=n,
                source_id=source_id,
                title=self.titles.get(source_id, source_id),
                chunk_id=chunk_id,
                quote=quote,
            )
        )
        self.quoted.add(quote)
        return f"[{n}]"

    def statement(self, s: Statement) -> str:
        return self.cite(s.source_id, s.chunk_id, s.quote)


def compose(
    retrieval: Retrieval,
    idf: dict[str, float],
    titles: dict[str, str],
    *,
    intent: str | None = None,
    statements: Sequence[Statement] = (),
    facts: Sequence[ExerciseFact] = (),
    subject: Sequence[str] = (),
    conversation: Sequence[str] = (),
    generic: frozenset[str] = frozenset(),
    question: str = "",
    cues: Cues | None = None,
) -> Draft:
    """The answer to one question: a lead for its intent, then the supporting quotes."""
    return _Composer(
        retrieval,
        idf,
        titles,
        intent,
        statements,
        facts,
        subject,
        conversation,
        generic,
        question,
        cues or load_cues(),
    ).draft()


class _Composer:
    def __init__(
        self,
        retrieval: Retrieval,
        idf: dict[str, float],
        titles: dict[str, str],
        intent: str | None,
        statements: Sequence[Statement],
        facts: Sequence[ExerciseFact],
        subject: Sequence[str],
        conversation: Sequence[str],
        generic: frozenset[str],
        question: str,
        cues: Cues,
    ) -> None:
        self.retrieval, self.idf, self.cues = retrieval, idf, cues
        self.intent, self.facts, self.subject, self.conversation = (
            intent,
            list(facts),
            list(subject),
            list(conversation),
        )
        self.question = question
        self.writer = _Writer(titles)
        question_terms = set(retrieval.query_terms)
        self.specific = (
            question_terms - generic - self._name_terms() or question_terms - generic or question_terms
        )
        # The question's own words (without the synonyms retrieval added), to count how many a quote shares.
        self.asked = set(terms(question)) - generic - self._name_terms() if question else self.specific
        self.rank = {hit.chunk.chunk_id: (i, hit.similarity) for i, hit in enumerate(retrieval.hits)}
        vector = retrieval.query_embedding
        self.query = None if vector is None else np.asarray(vector, dtype=np.float32)
        if self.query is not None:
            self.query /= np.linalg.norm(self.query) or 1.0
        self.scored = [self._score(s) for s in statements if s.chunk_id in self.rank]
        self.scored.sort(key=lambda x: -x.score)

    # --- scoring -----------------------------------------------------------------------------------
    def _name_terms(self) -> set[str]:
        """Words of the exercise names asked about: they find the exercise, not what to say about it."""
        return {t for name in self.subject for t in terms(name)}

    def _similarity(self, s: Statement) -> float:
        """Cosine similarity of the statement's quote to the question (0 without embeddings)."""
        if self.query is None or s.array is None or s.array.shape != self.query.shape:
            return 0.0
        return float(s.array @ self.query)

    def _score(self, s: Statement) -> Scored:
        rank, similarity = self.rank[s.chunk_id]
        closeness = self._similarity(s)
        overlap_terms = self.specific & s.words
        overlap = sum(self.idf.get(t, 0.0) for t in overlap_terms)
        lexical = overlap / (1.0 + 0.04 * max(0, len(s.words) - 15))
        section = 0.5 * sum(self.idf.get(t, 0.0) for t in self.specific & set(terms(s.section)))
        kind = KIND_BONUS if set(s.kinds) & set(INTENT_KINDS.get(self.intent, ())) else 0.0
        score = (
            lexical
            + section
            + kind
            + SENTENCE_WEIGHT * closeness
            + similarity
            - 0.1 * rank
            - 0.0001 * s.position
        )
        return Scored(s, score, overlap + section, len(overlap_terms), closeness)

    def _best(self, kinds: Sequence[str], *, need_overlap: bool = True, limit: int = 3) -> list[Statement]:
        out: list[Statement] = []
        for item in self.scored:
            s = item.statement
            if s.comment or not set(s.kinds) & set(kinds):
                continue
            if need_overlap and item.overlap < MIN_SUPPORT_IDF:
                continue
            out.append(s)
            if len(out) >= limit:
                break
        return out

    # --- the answer --------------------------------------------------------------------------------
    def draft(self) -> Draft:
        lead = self._lead()
        parts: list[str] = []
        if lead:
            parts.append("\n".join(lead))
        support = self._support(MAX_SUPPORT if lead else MAX_SUPPORT + 1)
        if not lead and not support:
            # Nothing fits the intent as read: answer as to a plain question rather than not at all.
            support = self._support(MAX_SUPPORT + 1, strict=False)
        if support:
            advice = all({"advice", "referral"} & set(s.kinds) for s in support)
            heading = self.cues.compose["doing" if advice else "reading"]
            parts.append(
                heading + "\n" + "\n".join(f"• {s.quote} {self.writer.statement(s)}" for s in support)
            )
        comment = self._comment() if not lead else None
        if comment is not None:
            who = comment.commenter or "A reader"
            title = self.writer.titles.get(comment.source_id, comment.source_id)
            parts.append(
                f"A reader's comment (an opinion, not the article): {who} wrote under “{title}”:\n"
                f"• {comment.quote} {self.writer.statement(comment)}"
            )
        return Draft(text="\n\n".join(parts), citations=self.writer.citations)

    def _lead(self) -> list[str]:
        match self.intent:
            case "how_to":
                return self._how_to() or self._exercises()
            case "dose":
                return self._dose()
            case "which_exercises":
                return self._exercises()
            case "what_to_do":
                return self._exercises(with_dose=False) or self._verdict(plain=False)
            case "should_i":
                return self._verdict(plain=True)
            case "why":
                return self._why()
            case "what_is":
                return self._what_is()
            case "compare":
                return self._compare() or self._dose(compare=True)
        return []

    def _support(self, limit: int, *, strict: bool = True) -> list[Statement]:
        """The quotes under the lead: the intent's kinds first, each sharing rare words with the question,
        none repeating a quote the answer already cites or saying the same thing as another."""
        chosen: list[Statement] = []
        per_chunk: dict[str, int] = {}
        seen = [set(terms(q)) for q in self.writer.quoted]
        kinds = set(INTENT_KINDS.get(self.intent, ()))
        if self.intent == "dose" and not self.cues.timeline_question.search(spell_out(self.question)):
            kinds.discard("timeline")  # "how often should I replace them?" is not answered by "within weeks"
        intent = self.intent if strict else None
        # One shared word of a longer question is a coincidence ("walking" in "wet pants walking").
        shared = 1 if len(self.asked) <= 2 else 2
        # In a library about one subject every sentence is somewhat close to every question: a quote
        # must be close, and not far behind the closest one.
        closest = max((item.closeness for item in self.scored), default=0.0)
        floor = max(SUPPORT_MIN_CLOSENESS, closest - CLOSENESS_SPREAD)
        embedded = self.query is not None and any(item.statement.array is not None for item in self.scored)
        about = {norm_name(n) for n in self.subject} if self.intent in ("what_is", "how_to") else set()
        for item in self.scored:
            s = item.statement
            if len(chosen) >= limit:
                break
            # A section titled with the question's words answers it, however it is worded.
            titled = bool(self.asked) and self.asked <= set(terms(s.section))
            if s.comment or per_chunk.get(s.chunk_id, 0) >= MAX_PER_CHUNK:
                continue
            if (
                strict
                and not titled
                and (item.overlap < MIN_SUPPORT_IDF or (item.shared < shared and item.closeness < CLOSE))
            ):
                continue
            if not strict and item.overlap < MIN_SUPPORT_IDF and item.closeness < RELAXED_CLOSENESS:
                continue
            if intent in STRICT_SUPPORT and not kinds & set(s.kinds):
                continue
            if strict and embedded and item.closeness < floor and not titled:
                continue
            if about and not {norm_name(n) for n in s.names} & about:
                continue  # a question about one exercise is answered by what is said about it
            if any(s.quote in q or q in s.quote for q in self.writer.quoted | {c.quote for c in chosen}):
                continue
            words = set(s.words)
            if any(len(words & other) / max(1, len(words | other)) > DUPLICATE_OVERLAP for other in seen):
                continue
            chosen.append(s)
            seen.append(words)
            per_chunk[s.chunk_id] = per_chunk.get(s.chunk_id, 0) + 1
        return chosen

    def _comment(self) -> Statement | None:
        for item in self.scored:
            if item.statement.comment and item.overlap >= 2 * MIN_SUPPORT_IDF:
                return item.statement
        return None

    # --- leads -------------------------------------------------------------------------------------
    def _exercise_facts(self) -> list[ExerciseFact]:
        """One account per exercise, in the order the passages (or the lookup) give them."""
        out: dict[str, ExerciseFact] = {}
        for fact in self.facts:
            out.setdefault(fact.key, fact)
        return list(out.values())

    def _exercises(self, *, with_dose: bool = True) -> list[str]:
        facts = self._exercise_facts()[:MAX_LEAD_EXERCISES]
        if not facts:
            return []
        named = [f"{f.name.lower()} {self.writer.cite(f.source_id, f.chunk_id, f.quote)}" for f in facts]
        template = "exercises" if len(named) > 1 else "exercises_one"
        lines = [self.cues.template(template, names=_join(named))]
        for fact in facts:
            if fact.steps and fact.steps_quote and fact.steps_chunk and len(lines) < 3:
                mark = self.writer.cite(fact.source_id, fact.steps_chunk, fact.steps_quote)
                lines.append(f"• {fact.name}: {fact.steps} {mark}")
        if with_dose:
            dosed = next((f for f in facts if f.dose and f.dose_quote and f.dose_chunk), None)
            if dosed is not None:
                mark = self.writer.cite(dosed.source_id, dosed.dose_chunk or "", dosed.dose_quote or "")
                lines.append(self.cues.template("dose_one", dose=f"{dosed.dose} {mark}"))
        return lines

    def _how_to(self) -> list[str]:
        if not self.subject:
            return []
        key = norm_name(self.subject[0])
        facts = [f for f in self.facts if f.key == key]
        if not facts:
            return []
        name = self.subject[0].lower()
        with_steps = next((f for f in facts if f.steps and f.steps_quote and f.steps_chunk), None)
        if with_steps is None:
            sources = list(dict.fromkeys(f.source_id for f in facts))
            marks = "".join(
                self.writer.cite(f.source_id, f.chunk_id, f.quote)
                for f in {f.source_id: f for f in reversed(facts)}.values()
            )
            template = "no_steps_one" if len(sources) == 1 else "no_steps_many"
            return [
                self.cues.template(
                    template, name=f"{name} {marks}", it="them" if name.endswith("s") else "it"
                )
            ]
        named = self.writer.cite(with_steps.source_id, with_steps.chunk_id, with_steps.quote)
        lines = [self.cues.template("steps", name=f"{name} {named}")]
        steps = self.writer.cite(
            with_steps.source_id, with_steps.steps_chunk or "", with_steps.steps_quote or ""
        )
        lines.append(f"• {_upper(with_steps.steps)} {steps}")
        if with_steps.dose and with_steps.dose_quote and with_steps.dose_chunk:
            mark = self.writer.cite(with_steps.source_id, with_steps.dose_chunk, with_steps.dose_quote)
            template = "dose_shared" if with_steps.dose_shared else "dose_one"
            lines.append(self.cues.template(template, dose=f"{with_steps.dose} {mark}"))
        return lines

    def _dose(self, *, compare: bool = False) -> list[str]:
        if self.cues.timeline_question.search(spell_out(self.question)):
            return self._timeline()
        lines: list[str] = []
        wanted = self.subject or (self.conversation if not compare else [])
        found: list[tuple[str, str, str, str]] = []  # (dose, source, chunk, quote)
        for name in wanted:
            key = norm_name(name)
            dosed = [f for f in self.facts if f.key == key and f.dose and f.dose_chunk and f.dose_quote]
            if not dosed and self.subject:
                # The articles name it but give it no dose: say so, then what they give in general.
                fact = next((f for f in self.facts if f.key == key), None)
                if fact is not None:
                    mark = self.writer.cite(fact.source_id, fact.chunk_id, fact.quote)
                    lines.append(self.cues.template("no_dose", name=f"{name.lower()} {mark}"))
            for f in dosed[:1]:
                found.append((f.dose or "", f.source_id, f.dose_chunk or "", f.dose_quote or ""))
        if not found:
            # The question's own words first; a bare "how often?" gets what the passages prescribe.
            candidates = self._best(("dose",), limit=4)
            candidates += [
                s for s in self._best(("dose",), need_overlap=False, limit=4) if s not in candidates
            ]
            # The question's own words beyond the dose cue ("how long should my taper be?" -> taper): when
            # no dose quote names any of them, a dose of something else ("90 minutes of steady running") is
            # no answer; when some do, they lead. (A follow-up arrives with the turn before's words.)
            dose_cue = dict(self.cues.intent_patterns).get("dose")
            rest = dose_cue.sub(" ", self.question) if dose_cue is not None else self.question
            own = set(terms(rest)) & self.asked
            if own:  # with the synonyms retrieval added for them ("butt" -> glute)
                own |= set(self.retrieval.query_terms) - set(terms(self.question))
            if own:
                candidates.sort(key=lambda s: not own & set(terms(s.quote)))
                if not candidates or not own & set(terms(candidates[0].quote)):
                    candidates = []
            for s in candidates:
                found.append((s.dose or "", s.source_id, s.chunk_id, s.quote))
        by_source: dict[str, tuple[str, str, str, str]] = {}
        for item in found:
            by_source.setdefault(item[1], item)
        doses = list(by_source.values())[:2]
        if not doses:
            return lines
        first = f"{doses[0][0]} {self.writer.cite(doses[0][1], doses[0][2], doses[0][3])}"
        if len(doses) == 1:
            lines.append(self.cues.template("dose_one", dose=first))
        else:
            other = f"{doses[1][0]} {self.writer.cite(doses[1][1], doses[1][2], doses[1][3])}"
            lines.append(self.cues.template("dose_two", dose=first, other=other))
        return lines

    def _timeline(self) -> list[str]:
        # The question's words first ("strengthening my calves"): a time frame of something else is no answer.
        found = self._best(("timeline",), limit=2) or self._best(("timeline",), need_overlap=False, limit=2)
        if not found:
            return []
        when = _join([f"“{s.timeline}” {self.writer.statement(s)}" for s in found])
        return [self.cues.template("timeline", when=when)]

    def _verdict(self, *, plain: bool) -> list[str]:
        text = spell_out(self.question)
        if plain and self.cues.pain.search(text):
            for s in self._best(("referral", "warning"), need_overlap=False, limit=4):
                if s.action and self.cues.pain.search(spell_out(s.quote)):
                    return [
                        self.cues.template(
                            "verdict_pain", action=f"{_lower(s.action)} {self.writer.statement(s)}"
                        )
                    ]
        if plain and self.cues.frequencies.search(self.question):
            doses = self._best(("dose",), need_overlap=False, limit=4)
            sources = list({s.source_id: s for s in doses}.values())
            if len(sources) >= 2:
                one, other = sources[0], sources[1]
                return [
                    self.cues.template(
                        "verdict_split",
                        one=f"one article says {one.dose} {self.writer.statement(one)}",
                        other=f"another says {other.dose} {self.writer.statement(other)}",
                    )
                ]
        for s in self._best(("referral", "advice", "warning"), limit=3):
            if not s.action or "•" in s.action or len(s.action.split()) > MAX_VERDICT_WORDS:
                continue  # a list, or a long passage, is not one instruction to say yes or no with
            # "No" only from an instruction not to do something; "Yes" only from advice or a referral.
            # A sentence that only describes a risk ("... leaves us at risk of injury") is neither.
            if self.cues.negative.search(spell_out(s.action)):
                name = "verdict_no"
            elif {"advice", "referral"} & set(s.kinds):
                name = "verdict_yes"
            else:
                continue
            if not plain:
                return [f"{_upper(s.action)} {self.writer.statement(s)}."]
            return [self.cues.template(name, action=f"{_lower(s.action)} {self.writer.statement(s)}")]
        return []

    def _why(self) -> list[str]:
        causes = [s for s in self._best(("cause",), limit=4) if s.cause or s.condition]
        # A cause named for the complaint asked about first ("knee pain" <- "weak glutes").
        causes.sort(key=lambda s: not (s.cause and s.effect and set(terms(s.effect)) & self.specific))
        if not causes:
            return []
        lines: list[str] = []
        first = causes[0]
        mark = self.writer.statement(first)
        if first.cause and first.effect:
            lines.append(self.cues.template("why", effect=first.effect, cause=f"{first.cause} {mark}"))
        elif first.cause:
            lines.append(self.cues.template("why_cause", cause=f"{first.cause} {mark}"))
        else:
            lines.append(
                self.cues.template("why_when", condition=f"{first.condition} {mark}").replace(
                    "They also say it", "The articles say it"
                )
            )
        said = set(terms(first.cause or first.condition or ""))
        for s in causes[1:]:
            words = set(terms(s.cause or s.condition or ""))
            if len(words & said) / max(1, len(words | said)) > 0.3:
                continue  # the same cause in other words
            mark = self.writer.statement(s)
            if s.cause:
                lines.append(self.cues.template("why_more", cause=f"{s.cause} {mark}"))
            elif s.condition:
                lines.append(self.cues.template("why_when", condition=f"{s.condition} {mark}"))
            break
        return lines

    def _what_is(self) -> list[str]:
        asked = set(self.retrieval.query_terms)
        for s in self._best(("definition",), need_overlap=False, limit=5):
            if s.term and s.definition and set(terms(s.term)) & asked:
                return [
                    self.cues.template(
                        "what_is",
                        term=_upper(s.term),
                        definition=f"{s.definition} {self.writer.statement(s)}",
                    )
                ]
        # No definition of an exercise the articles describe: how it is done says what it is.
        return self._only_named() or (self._how_to() if self.subject else [])

    def _only_named(self) -> list[str]:
        """An exercise asked about that the articles name and say nothing else about: say so."""
        if not self.subject:
            return []
        key = norm_name(self.subject[0])
        facts = [f for f in self.facts if f.key == key]
        if not facts or any(f.steps or f.dose for f in facts):
            return []
        quoted = {f.quote for f in facts}
        if any(
            key in {norm_name(n) for n in item.statement.names} and item.statement.quote not in quoted
            for item in self.scored
        ):
            return []  # a sentence says something about it: the supporting quotes will show it
        name = self.subject[0].lower()
        marks = "".join(self.writer.cite(f.source_id, f.chunk_id, f.quote) for f in facts[:2])
        return [
            self.cues.template(
                "only_named", name=f"{name} {marks}", it="them" if name.endswith("s") else "it"
            )
        ]

    def _compare(self) -> list[str]:
        if len(self.subject) < 2:
            return []
        lines: list[str] = []
        marks: list[str] = []
        picked: list[ExerciseFact] = []
        for name in self.subject[:2]:
            fact = next((f for f in self.facts if f.key == norm_name(name)), None)
            if fact is None:
                return []
            picked.append(fact)
            marks.append(f"{name.lower()} {self.writer.cite(fact.source_id, fact.chunk_id, fact.quote)}")
        lines.append(self.cues.template("compare_both", a=marks[0], b=marks[1]))
        for fact in picked:
            if fact.steps and fact.steps_quote and fact.steps_chunk:
                mark = self.writer.cite(fact.source_id, fact.steps_chunk, fact.steps_quote)
                lines.append(f"• {fact.name}: {fact.steps} {mark}")
        return lines


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _lower(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() or text[1:2] == " " else text


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


_MARK = re.compile(r"\[(\d+)\]")

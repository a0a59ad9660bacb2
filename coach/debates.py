"""The disagreement map: which sources take opposite positions on one question, built at ingest, looked up per answer.

Offline and without an LLM, so opposition is found by rules a reader can check, over article sentences
(never reader comments) embedded with the real model:

* negation: a source denies what another asserts ("The glutes do not propel your body forward" against
  "it's what propels you forward"); the denial is turned into the assertion it denies and compared by
  embedding, with a shared content word as anchor;
* frequency: two sources prescribe training at frequencies at least twice apart ("daily" against
  "twice per week");
* cause or symptom: a source says a problem is a symptom that exercises alone will not fix, another that
  exercises correct it.

A sentence that states a view in order to reject it ("you might be thinking ...", "While it's true that
...", a question) is not counted as holding it: only its main clause speaks for the source. Each quote is a
whole sentence (or list item) copied verbatim from a chunk. Topic names from the library's domain file only
names what the rules find; the rules find disagreements nobody listed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from coach.domain import Domain
from coach.models import Chunk, DisagreementKind
from coach.storage import write_atomic
from coach.text import collapse, split_sentences, strip_marker, terms

if TYPE_CHECKING:  # annotations only: importing it loads most of langchain_core into every cold start
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)

ALGORITHM = "debates-v1"  # part of the map's key, with this file's own hash: new rules rebuild stored maps
MAP_FILE = "debates.json"
MIN_WORDS = 5  # shorter sentences (bare list items, headings) state no claim

# Thresholds on cosine similarity (all-MiniLM-L6-v2, normalised), measured on the five articles and
# the synthetic test articles; see README "Where the sources disagree".
NEGATION_MATCH = 0.45  # an assertion this close to what a denial denies holds the opposite view...
NEGATION_ANCHORED = 0.20  # ...or this close when it shares two words of the denied predicate (its subject
# may be a pronoun: "it's what propels you forward" scores 0.24 against "the glutes propel ... forward")
SAME_DENIAL = 0.80  # two denials this close deny the same thing
FRAME_MATCH = 0.30  # a "fix it with exercises" claim this close to a "symptom" claim answers it
FREQUENCY_MATCH = 0.20  # two prescriptions this close are about the same training
ELABORATION = 0.55  # the next sentence of the same passage this close restates the position
MERGE = 0.85  # two disagreements of one rule whose claims are this close are one (high: on one
# subject unrelated sentences sit near 0.7, and two entries are better than one wrongly merged)
TOPIC_MATCH = 0.55  # a topic name of the domain file this close to a disagreement names it
LOOKUP_MATCH = 0.62  # a question this close to a disagreement's topic or evidence gets it...
LOOKUP_MARGIN = 0.08  # ...unless another disagreement is closer by more than this (every article here is
# about glutes, so everything is a little close to everything)

_WORD = re.compile(r"[A-Za-z]+")

# --- attribution: sentences that do not hold the view they state ---------------------------------
_REPORTED = re.compile(
    r"\byou (might|may|could) (be )?(think|thinking|believe|assume)\b|\bseems? simple\b"
    r"|\b(some|many|most) (people|runners|coaches|trainers|experts)? ?(say|believe|think|claim|assume)\b"
    r"|\b(it is|it's|it’s) (often|commonly|widely) (said|believed|thought|claimed)\b|\bmyths?\b"
    r"|\bthe (idea|notion|belief|claim) that\b|\bpeople (say|think|believe)\b",
    re.IGNORECASE,
)
_CONCESSION_START = re.compile(r"^(while|although|though|even though|granted|admittedly)\b", re.IGNORECASE)
_BUT = re.compile(r",?\s+\b(but|however|yet)\b\s+", re.IGNORECASE)


def reported(sentence: str) -> bool:
    """A question, or a sentence that voices someone else's view (to argue with it)."""
    return sentence.rstrip("”\"’' )").endswith("?") or bool(_REPORTED.search(sentence))


def main_clause(sentence: str) -> str:
    """The part of a sentence that speaks for its author: after a concession or a 'but'."""
    text = sentence
    if _CONCESSION_START.match(text) and "," in text:
        text = text.rsplit(",", 1)[1]
    parts = _BUT.split(text)
    if len(parts) > 1:
        text = parts[-1]
    return text.strip()


# --- negation ------------------------------------------------------------------------------------
_NEGATION = re.compile(
    r"\b(?:do|does|did|is|are|was|were|can|will|should|could|would)\s+not\b(?!\s+(?:just|only|always|necessarily))"
    r"|\b(?:don['’]t|doesn['’]t|isn['’]t|aren['’]t|won['’]t|can['’]t|cannot|never)\b(?!\s+(?:just|only|always))",
    re.IGNORECASE,
)
_NOT_X = re.compile(r"^(?P<head>.*?\b(?:is|are)\b).*?,\s*not\s+(?P<tail>[^,;]+?)[.!]?$", re.IGNORECASE)
_CONDITIONAL = re.compile(r"^(if|unless|when|as long as)\b", re.IGNORECASE)
_IMPERATIVE = re.compile(r"^(?:and |so |but )?(?:do not|don't|never)\b", re.IGNORECASE)
_UNNEGATE = {
    "do not": "",
    "does not": "",
    "did not": "",
    "don't": "",
    "doesn't": "",
    "didn't": "",
    "is not": "is",
    "are not": "are",
    "isn't": "is",
    "aren't": "are",
    "cannot": "can",
    "can't": "can",
    "won't": "will",
    "never": "",
}


@dataclass
class Denial:
    affirmed: str  # the assertion the sentence denies
    anchor: set[str]  # content words of the denied predicate


_LEAD = re.compile(
    r"^(?:in fact|however|actually|in reality|in truth|indeed|but|so|yet|still|instead|contrary to popular belief),?\s+",
    re.IGNORECASE,
)


def denial(clause: str, stopwords: frozenset[str] = frozenset()) -> Denial | None:
    """What a sentence denies, if it plainly denies something (not in an 'if' clause, not 'not just').
    `stopwords`: words too common in the library to anchor a denial (its domain file)."""
    clause = _LEAD.sub("", clause.replace("’", "'"), count=1)
    clause = clause[:1].upper() + clause[1:]
    match = _NOT_X.match(clause)
    if match:
        tail = match.group("tail")
        return Denial(affirmed=f"{match.group('head')} {tail}.", anchor=set(terms(tail)))
    neg = _NEGATION.search(clause)
    if not neg or _CONDITIONAL.match(clause) or _IMPERATIVE.match(clause) or "," in clause[: neg.start()]:
        return None
    word = collapse(neg.group(0).lower())
    replacement = _UNNEGATE.get(word, "")
    rest = clause[neg.end() :]
    if word in ("does not", "doesn't"):  # "it does not reduce" asserts "it reduces"
        rest = re.sub(r"^\s*([a-z]+)", lambda m: " " + _third_person(m.group(1)), rest)
    affirmed = collapse(clause[: neg.start()] + replacement + rest)
    # The denied predicate proper: up to a comma or a relative clause ("..., which builds your base").
    predicate = re.split(r",|;|\b(?:which|that|who|because)\b", clause[neg.end() :], maxsplit=1)[0]
    anchor = set(terms(predicate)) - stopwords
    return Denial(affirmed=affirmed, anchor=anchor) if anchor else None


def _third_person(verb: str) -> str:
    if verb.endswith(("s", "sh", "ch", "x", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


# --- frequency -----------------------------------------------------------------------------------
_TRAINING = re.compile(
    r"\b(exercis\w*|train\w*|strength\w*|workouts?|dedicat\w*|routines?|sessions?|practi[cs]e"
    r"|drills?|sprints?|sets|reps|repetitions)\b|^(do|try|perform|add|include|aim for)\b",
    re.IGNORECASE,
)
_NUMBERS = {"once": 1, "one": 1, "twice": 2, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_PER_WEEK = re.compile(
    r"\b(?P<n>once|twice|one|two|three|four|five|six|\d+)\s+"
    r"(?:(?:[\w-]+\s+){0,3}?(?:times?|sessions?|workouts?|days?|runs?)\s+)?(?:a|per|each|every)\s+week\b",
    re.IGNORECASE,
)
_DAILY = re.compile(r"\b(daily|every day|each day|per day|a day)\b", re.IGNORECASE)
_WEEKLY = re.compile(r"\b(weekly|every week)\b", re.IGNORECASE)
_EVERY_OTHER = re.compile(r"\bevery other day\b", re.IGNORECASE)


def frequency(clause: str) -> tuple[float, str] | None:
    """Sessions a week a training prescription asks for, and how the text says it."""
    if not _TRAINING.search(clause):
        return None
    if m := _PER_WEEK.search(clause):
        n = m.group("n").lower()
        return float(_NUMBERS.get(n) or int(n)), f"{m.group(0)}"
    if m := _EVERY_OTHER.search(clause):
        return 3.5, m.group(0)
    if m := _DAILY.search(clause):
        return 7.0, m.group(0)
    if m := _WEEKLY.search(clause):
        return 1.0, m.group(0)
    return None


# --- cause or symptom ------------------------------------------------------------------------------
_SYMPTOM = re.compile(
    r"\b(is|are)( just| only| merely| simply)? (a )?symptoms? of\b|\bnot the symptoms?\b"
    r"|\bunless\b.*\b(return|come back|comes back)\b|\bnot the (problem|cause|answer|solution)\b"
    r"|\b(won['’]t|will not|doesn['’]t|does not|cannot|can['’]t) (fix|cure|solve|correct)\b"
    r"|\balone (won['’]t|will not)\b",
    re.IGNORECASE,
)
_SYMPTOM_SUBJECT = re.compile(
    r"^(?:so |but |and |yet )?(?P<subject>[^,;]+?) (?:is|are)(?: just| only| merely| simply)? (?:a )?symptoms? of\b",
    re.IGNORECASE,
)
_FIX = re.compile(
    r"\b(strengthen\w*|exercis\w*|strength training)\b.*\b(correct|fix|cure|rectify|solve|prevent)(s|es|ed|ing)?\b",
    re.IGNORECASE,
)


# --- the map -------------------------------------------------------------------------------------
class Evidence(BaseModel):
    source_id: str
    quote: str
    chunk_id: str


class MapPosition(BaseModel):
    summary: str
    evidence: list[Evidence]


class MapDisagreement(BaseModel):
    topic: str
    kind: DisagreementKind
    rule: str  # which rule found it: negation | frequency | symptom
    positions: list[MapPosition]
    vectors: list[list[float]] = Field(default_factory=list, repr=False)  # topic + evidence, for lookup

    def public(self) -> dict:
        """The `coach debates --json` shape (ARCHITECTURE.md)."""
        return {
            "topic": self.topic,
            "kind": self.kind,
            "positions": [
                {
                    "summary": p.summary,
                    "evidence": [{"source_id": e.source_id, "quote": e.quote} for e in p.evidence],
                }
                for p in self.positions
            ],
        }


class DebateMap(BaseModel):
    key: str
    claims: int = 0
    disagreements: list[MapDisagreement] = Field(default_factory=list)

    def relevant(self, question_vector: Sequence[float], *, limit: int = 2) -> list[MapDisagreement]:
        """The disagreements a question is about: its embedding near a topic or an evidence sentence.

        Cheap by design (a few dot products): the question vector is the one retrieval computed.
        """
        q = np.asarray(question_vector, dtype=np.float32)
        scored = []
        for d in self.disagreements:
            if not d.vectors:
                continue
            best = float(np.max(np.asarray(d.vectors, dtype=np.float32) @ q))
            if best >= LOOKUP_MATCH:
                scored.append((best, d))
        scored.sort(key=lambda p: -p[0])
        return [d for score, d in scored[:limit] if score >= scored[0][0] - LOOKUP_MARGIN]


@dataclass
class Claim:
    source_id: str
    chunk_id: str
    quote: str  # the whole sentence, verbatim (white space collapsed)
    clause: str  # the part that speaks for the source
    index: int  # order within the source, for "the next sentence"
    vector: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


def map_key(source_shas: dict[str, str], model_name: str, domain: Domain | None = None) -> str:
    """Identity of the corpus a map was built from: every source's sha, the model, the rule set and the
    library's domain file (its topic names and stopwords)."""
    rules = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    payload = json.dumps(
        {
            "sources": source_shas,
            "model": model_name,
            "algorithm": ALGORITHM,
            "rules": rules,
            "domain": (domain or Domain()).digest,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def extract_claims(chunks: Sequence[Chunk], source_texts: dict[str, str]) -> list[Claim]:
    """Whole sentences of article chunks that state something (comments and reported views left out)."""
    claims: list[Claim] = []
    counters: dict[str, int] = {}
    ordered = sorted(chunks, key=lambda c: (c.source_id, c.chunk_id))
    for chunk in ordered:
        if chunk.kind != "article":
            continue
        haystack = source_texts.get(chunk.source_id, "")
        for line in chunk.text.splitlines():
            for sentence in split_sentences(line.strip()):
                quote = collapse(strip_marker(sentence))
                if len(_WORD.findall(quote)) < MIN_WORDS or quote not in haystack or reported(quote):
                    continue
                index = counters.get(chunk.source_id, 0)
                counters[chunk.source_id] = index + 1
                claims.append(Claim(chunk.source_id, chunk.chunk_id, quote, main_clause(quote), index))
    return claims


def build_map(
    chunks: Sequence[Chunk],
    source_texts: dict[str, str],
    embeddings: Embeddings,
    key: str,
    domain: Domain | None = None,
) -> DebateMap:
    """Find every disagreement among the sources' claims; the domain file's topic names label them."""
    domain = domain or Domain()
    stopwords = domain.anchor_stopwords
    claims = extract_claims(chunks, source_texts)
    if not claims:
        return DebateMap(key=key)
    vectors = _embed(embeddings, [c.quote for c in claims])
    for claim, vector in zip(claims, vectors, strict=True):
        claim.vector = vector
    found = [*_negations(claims, embeddings, stopwords), *_frequencies(claims), *_symptoms(claims)]
    merged = _merge(found)
    topics = list(domain.debates.topics)
    topic_vectors = _embed(embeddings, topics)
    result: dict[str, MapDisagreement] = {}
    for sides, rule, generated in merged:
        d = _finish(sides, rule, generated, topics, topic_vectors, embeddings)
        # One entry per question: when two rules name the same topic, the one with more evidence stays.
        if d is not None and _weight(d) > _weight(result.get(d.topic)):
            result[d.topic] = d
    return DebateMap(key=key, claims=len(claims), disagreements=list(result.values()))


def _weight(d: MapDisagreement | None) -> int:
    return sum(len(p.evidence) for p in d.positions) if d else 0


def _embed(embeddings: Embeddings, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    matrix = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


# A side: (label, claims). A found disagreement: (sides, rule, generated topic).
Side = tuple[str, list[Claim]]
Found = tuple[list[Side], str, str]


def _elaborate(claims: list[Claim], held: list[Claim], stopwords: frozenset[str]) -> list[Claim]:
    """Add the sentence right after each held claim (in the same passage) when it restates its position."""
    by_pos = {(c.source_id, c.index): c for c in claims}
    out = list(held)
    for claim in held:
        following = by_pos.get((claim.source_id, claim.index + 1))
        if (
            following is not None
            and following.chunk_id == claim.chunk_id
            and following not in out
            and float(following.vector @ claim.vector) >= ELABORATION
            and denial(following.clause, stopwords) is None
        ):
            out.append(following)
    return out


def _negations(claims: list[Claim], embeddings: Embeddings, stopwords: frozenset[str]) -> list[Found]:
    # "X is a symptom, not the problem" is a cause-or-symptom claim (see _symptoms), not a plain denial.
    denials = [
        (c, d)
        for c in claims
        if not _SYMPTOM.search(c.quote) and (d := denial(c.clause, stopwords)) is not None
    ]
    if not denials:
        return []
    affirmed_vectors = _embed(embeddings, [d.affirmed for _, d in denials])
    found: list[Found] = []
    for i, ((claim, den), affirmed) in enumerate(zip(denials, affirmed_vectors, strict=True)):
        # A source that denies the same thing agrees with this one, whatever else it says.
        agreeing = {
            other.source_id
            for j, (other, _) in enumerate(denials)
            if j != i and float(affirmed_vectors[j] @ affirmed) >= SAME_DENIAL
        }
        holders = [
            other
            for other in claims
            if other.source_id != claim.source_id
            and other.source_id not in agreeing
            and denial(other.clause, stopwords) is None
            and _holds(other, den, affirmed, claim.vector)
        ]
        if holders:
            topic = f"Is it true that {_lower_first(den.affirmed.rstrip('.!'))}?"
            found.append(
                ([("Yes", holders), ("No", _elaborate(claims, [claim], stopwords))], "negation", topic)
            )
    return found


def _holds(other: Claim, den: Denial, affirmed: np.ndarray, denied: np.ndarray) -> bool:
    """Whether a sentence asserts what a denial denies: close to the assertion, closer to it than to the
    denial itself, and sharing a content word of the denied predicate."""
    shared = len(den.anchor & set(terms(other.clause)))
    similarity = float(other.vector @ affirmed)
    if not shared or similarity <= float(other.vector @ denied):
        return False
    return similarity >= (NEGATION_ANCHORED if shared >= 2 else NEGATION_MATCH)


def _frequencies(claims: list[Claim]) -> list[Found]:
    prescriptions = [(c, f) for c in claims if (f := frequency(c.clause)) is not None]
    found: list[Found] = []
    for i, (a, (fa, la)) in enumerate(prescriptions):
        for b, (fb, lb) in prescriptions[i + 1 :]:
            if a.source_id == b.source_id or max(fa, fb) < 2 * min(fa, fb):
                continue
            if float(a.vector @ b.vector) < FREQUENCY_MATCH:
                continue
            hi, lo = ((a, la), (b, lb)) if fa > fb else ((b, lb), (a, la))
            found.append(([(hi[1], [hi[0]]), (lo[1], [lo[0]])], "frequency", "How often should you train?"))
    return found


def _symptoms(claims: list[Claim]) -> list[Found]:
    limits = [c for c in claims if _SYMPTOM.search(c.quote)]
    # A source that itself calls the problem a symptom does not hold that exercises fix it.
    limiting_sources = {c.source_id for c in limits}
    fixes = [c for c in claims if _FIX.search(c.clause) and c.source_id not in limiting_sources]
    found: list[Found] = []
    for limit in limits:
        holders = [f for f in fixes if float(f.vector @ limit.vector) >= FRAME_MATCH]
        if holders:
            same_source = [c for c in limits if c.source_id == limit.source_id]
            found.append(
                (
                    [("Exercises fix it", holders), ("A symptom: fix the cause", same_source)],
                    "symptom",
                    _symptom_topic(same_source),
                )
            )
    return found


def _symptom_topic(limits: list[Claim]) -> str:
    for claim in limits:
        if match := _SYMPTOM_SUBJECT.match(claim.quote):
            subject = _lower_first(match.group("subject").strip())
            return f"Do exercises fix {subject}, or is it a symptom of something else?"
    return "Do exercises fix it, or is it a symptom of something else?"


def _merge(found: list[Found]) -> list[Found]:
    """One entry per question: found disagreements of one rule whose sides share a claim are merged."""
    merged: list[Found] = []
    for sides, rule, topic in found:
        for i, (m_sides, m_rule, m_topic) in enumerate(merged):
            if m_rule != rule or not _overlaps(sides, m_sides):
                continue
            if rule == "frequency":
                combined = _merge_frequency_sides(m_sides, sides)
            else:
                combined = [
                    (label, _unique([*m_claims, *claims]))
                    for (label, m_claims), (_, claims) in zip(m_sides, sides, strict=True)
                ]
            merged[i] = (combined, rule, m_topic)
            break
        else:
            merged.append((sides, rule, topic))
    return merged


def _overlaps(a: list[Side], b: list[Side]) -> bool:
    quotes_a = {c.quote for _, claims in a for c in claims}
    quotes_b = {c.quote for _, claims in b for c in claims}
    if quotes_a & quotes_b:
        return True
    va = np.mean([c.vector for _, claims in a for c in claims], axis=0)
    vb = np.mean([c.vector for _, claims in b for c in claims], axis=0)
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb) or 1)) >= MERGE


def _merge_frequency_sides(a: list[Side], b: list[Side]) -> list[Side]:
    by_label: dict[float, Side] = {}
    for label, claims in [*a, *b]:
        value = frequency(claims[0].clause)
        sessions = value[0] if value else 0.0
        old = by_label.get(sessions)
        by_label[sessions] = (old[0], _unique([*old[1], *claims])) if old else (label, list(claims))
    return [by_label[k] for k in sorted(by_label, reverse=True)]


def _unique(claims: list[Claim]) -> list[Claim]:
    seen: dict[str, Claim] = {}
    for c in claims:
        seen.setdefault(c.quote, c)
    return list(seen.values())


def _finish(
    sides: list[Side],
    rule: str,
    generated: str,
    topics: list[str],
    topic_vectors: np.ndarray,
    embeddings: Embeddings,
) -> MapDisagreement | None:
    """Positions with disjoint sources (a source on two sides keeps the side it says more on), a topic."""
    count: dict[tuple[str, int], int] = {}
    for i, (_, claims) in enumerate(sides):
        for c in claims:
            count[(c.source_id, i)] = count.get((c.source_id, i), 0) + 1
    owner: dict[str, int] = {}
    for (source_id, i), _n in sorted(count.items(), key=lambda p: (-p[1], p[0][1])):
        owner.setdefault(source_id, i)
    positions: list[MapPosition] = []
    evidence_claims: list[Claim] = []
    for i, (label, claims) in enumerate(sides):
        kept = [c for c in claims if owner[c.source_id] == i]
        if not kept:
            continue
        evidence_claims.extend(kept)
        positions.append(
            MapPosition(
                summary=_summary(label, kept[0].quote, in_context=rule == "frequency"),
                evidence=[Evidence(source_id=c.source_id, quote=c.quote, chunk_id=c.chunk_id) for c in kept],
            )
        )
    if len(positions) < 2:
        return None
    centre = np.mean([c.vector for c in evidence_claims], axis=0)
    centre = centre / (np.linalg.norm(centre) or 1)
    topic = generated
    if len(topic_vectors):
        scores = topic_vectors @ centre
        best = int(np.argmax(scores))
        if float(scores[best]) >= TOPIC_MATCH:
            topic = topics[best]
    topic_vector = _embed(embeddings, [topic])[0]
    return MapDisagreement(
        topic=topic,
        kind=_kind(rule, positions),
        rule=rule,
        positions=positions,
        vectors=[topic_vector.tolist(), *(c.vector.tolist() for c in evidence_claims)],
    )


_OPEN_ENDED = re.compile(r"\bat least\b", re.IGNORECASE)
_UPPER_BOUND = re.compile(
    r"\bnon-?consecutive\b|\brest days?\b|\bat most\b|\bno more than\b|\bonly\b|\benough\b", re.IGNORECASE
)


def _kind(rule: str, positions: list[MapPosition]) -> DisagreementKind:
    """Offline the map tells two kinds apart: a real conflict, or two prescriptions that can both be
    followed ("at least twice a week" with no upper bound is met by "daily"). Telling `outdated` or
    `misinformation` needs publication dates or outside knowledge the articles do not carry."""
    if rule == "frequency":
        lowest = positions[-1].evidence  # sides are ordered from most to fewest sessions a week
        if all(_OPEN_ENDED.search(e.quote) and not _UPPER_BOUND.search(e.quote) for e in lowest):
            return "complementary"
    return "conflicting_opinions"


def _summary(label: str, quote: str, *, in_context: bool = False, limit: int = 110) -> str:
    """A one-line summary: the side's label and its first evidence (a long one cut, or shown around
    the label when the label is the quote's own words, as a frequency label is)."""
    if len(quote) <= limit:
        return f"{label}: {quote}"
    at = quote.lower().find(label.lower()) if in_context else -1
    if at >= 0:
        words_before = quote[:at].split()[-8:]
        words_after = quote[at + len(label) :].split()[:3]
        return f"{label.capitalize()}: “…{' '.join([*words_before, quote[at : at + len(label)], *words_after])}…”"
    return f"{label}: {quote[:limit].rsplit(' ', 1)[0]}…"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


# --- storage -------------------------------------------------------------------------------------
def map_path(data_dir: Path) -> Path:
    return data_dir / MAP_FILE


def read_map(data_dir: Path) -> DebateMap | None:
    try:
        return DebateMap.model_validate_json(map_path(data_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_map(data_dir: Path, debate_map: DebateMap) -> None:
    write_atomic(map_path(data_dir), debate_map.model_dump_json())


def ensure_map(
    data_dir: Path,
    chunks_loader: Callable[[], Sequence[Chunk]],
    source_texts: dict[str, str],
    source_shas: dict[str, str],
    embeddings: Embeddings,
    model_name: str,
    domain: Domain | None = None,
) -> tuple[bool, DebateMap]:
    """The stored map, rebuilt only when the sources (or the model, rules or domain file) changed;
    (rebuilt, map)."""
    key = map_key(source_shas, model_name, domain)
    current = read_map(data_dir)
    if current is not None and current.key == key:
        return False, current
    debate_map = build_map(chunks_loader(), source_texts, embeddings, key, domain)
    try:
        write_map(data_dir, debate_map)
    except OSError as exc:  # a read-only data directory: the map still serves this process
        log.warning("could not store the disagreement map in %s (%s)", data_dir, exc.strerror)
    log.info(
        "disagreement map: %d claims, %d disagreements", debate_map.claims, len(debate_map.disagreements)
    )
    return True, debate_map

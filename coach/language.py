"""Which language a question is in: the coach reads English, and says so instead of a false "not covered".

Two steps, so an English question never waits for a language model: a question most of whose words
are English (common words, or words of the articles and the cue file) is English; only the rest go to
langdetect (its profiles ship inside the package: nothing is downloaded), seeded so its answer is
the same on every run.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Container

from coach.text import STOPWORDS, stem

ENGLISH_SHARE = 0.5  # at least this share of a question's words known in English: it is English
MIN_WORDS = 3  # fewer words than this, in the Latin script, are not enough to tell
MIN_PROBABILITY = 0.8  # langdetect's probability for a non-English language before the coach says so
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")
_lock = threading.Lock()


def _latin(word: str) -> bool:
    return all(not ch.isalpha() or "LATIN" in unicodedata.name(ch, "") for ch in word)


def english_share(text: str, vocabulary: Container[str] = ()) -> float:
    """Share of the text's words that are common English words or words the articles use."""
    words = [w.lower().replace("’", "'") for w in _WORD.findall(text)]
    if not words:
        return 1.0
    known = sum(1 for w in words if w in STOPWORDS or w.split("'")[0] in STOPWORDS or stem(w) in vocabulary)
    return known / len(words)


def foreign_language(text: str, vocabulary: Container[str] = ()) -> str | None:
    """The ISO 639-1 code of the language the text is in when that is not English; None when it is
    English or too short to tell."""
    words = _WORD.findall(text)
    if not words:
        return None
    latin = all(_latin(w) for w in words)
    if latin and (len(words) < MIN_WORDS or english_share(text, vocabulary) >= ENGLISH_SHARE):
        return None
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    with _lock:  # the factory is global state; seeding makes the detector deterministic
        DetectorFactory.seed = 0
        try:
            ranked = detect_langs(text)
        except LangDetectException:
            return None
    best = ranked[0] if ranked else None
    if best is None or best.lang == "en" or (latin and best.prob < MIN_PROBABILITY):
        return None
    return best.lang

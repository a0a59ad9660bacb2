"""Small text helpers shared by ingest and answers: white space, sentences, search terms."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

_WS = re.compile(r"\s+")


def collapse(text: str) -> str:
    """Runs of white space (NBSP included) become one space; the form quotes are checked in."""
    return _WS.sub(" ", text).strip()


# A hand-written splitter because LangChain's sentence splitters (NLTK, spaCy) need model data
# downloaded at run time. It cuts after . ! ? (and closing quotes/brackets) when the next
# sentence starts with a capital, digit or opening quote, and never inside common abbreviations.
_ABBREVIATIONS = ("e.g.", "i.e.", "eg.", "etc.", "vs.", "Dr.", "Mr.", "Mrs.", "Ms.", "St.", "approx.", "No.")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’')\]]*\s+(?=[\"“‘(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split a passage into sentences; each returned sentence is a verbatim slice of `text`."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()]
        if candidate.rstrip().endswith(_ABBREVIATIONS):
            continue
        end = match.start() + len(match.group(0).rstrip())
        piece = text[start:end].strip()
        if piece:
            sentences.append(piece)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


# A list item's marker: a bullet, or a number with "." or ")".
BULLET = re.compile(r"^\s*(?:[•·▪◦*+-]|\d{1,2}[.)])\s+")


def strip_marker(text: str) -> str:
    """A list item's text without its bullet or number, for quoting."""
    return BULLET.sub("", text, count=1).strip()


_INVISIBLE_CATEGORIES = {"Cf", "Cc", "Co", "Cs"}


def strip_invisible(text: str) -> str:
    """Remove zero-width and control characters, keeping ordinary white space."""
    return "".join(
        ch for ch in text if ch in "\t\n\r " or unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
    )


STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before being
    below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't
    down during each few for from further get gets got had hadn't has hasn't have haven't having he her
    here hers herself him himself his how i i'm if in into is isn't it it's its itself just let's me
    more most my myself no nor not of off on once only or other ought our ours ourselves out over own
    same she should so some such than that that's the their theirs them themselves then there these they
    this those through to too under until up very was wasn't we were what what's when where which while
    who whom why will with won't would you you're your yours yourself yourselves also really much many
    lot lots like well even still way ways thing things make makes made need needs want wants know tell
    please""".split()  # noqa: SIM905 - a word list reads best as text
)

_TOKEN = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*(?:['’][a-z]+)?")


def stem(word: str) -> str:
    """A light English suffix stripper: enough to match knee/knees, hurt/hurting, muscle/muscles."""
    for suffix, keep in (("iness", 3), ("ness", 3), ("ing", 3), ("edly", 3), ("ed", 3), ("ies", 2)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    if word.endswith("es") and len(word) > 4 and word[-3] in "sxz":
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def terms(text: str, *, synonyms: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """Content words of `text`, lower-cased and stemmed; each followed by its `synonyms` (stemmed terms,
    from the library's domain file: coach/domain.py) when given."""
    out: list[str] = []
    for token in _TOKEN.findall(text.lower().replace("’", "'")):
        token = token.split("'")[0]
        # "over-striding" is also written "overstriding": keep the parts and the joined word.
        parts = token.split("-")
        for raw in parts if len(parts) == 1 else [*parts, "".join(parts)]:
            if raw in STOPWORDS:
                continue
            word = stem(raw)
            if not word or word in STOPWORDS:
                continue
            out.append(word)
            if synonyms:
                out.extend(synonyms.get(word, ()))
    return out


def passage_sentences(text: str) -> list[str]:
    """Sentences of a chunk: each line (paragraph or list item) split into sentences."""
    return [s for line in text.splitlines() if line.strip() for s in split_sentences(line.strip())]

"""Sentences that mean nothing alone: a quote never starts with "This ...", "In simpler terms, it's ..."
or "Below I share ..." unless what it points at is quoted with it.

A sentence that leans on the one before it is joined with that one (and the one before that, while it
leans too), as long as the joined text is verbatim in the source; otherwise it is not quotable. A
sentence that points forward ("the following", "below") is only quotable with the list it introduces.
The cue words are plain English, in coach/cues.toml.
"""

from __future__ import annotations

from collections.abc import Sequence

from coach.cues import Cues, load_cues, spell_out
from coach.text import BULLET, collapse, strip_marker

MAX_JOINED = 3  # sentences a quote may grow to while looking for what its first one points at


def leans_back(sentence: str, cues: Cues | None = None) -> bool:
    """The sentence starts by pointing at something said before it ("These specialists ...")."""
    cues = cues or load_cues()
    text = spell_out(strip_marker(collapse(sentence)))
    return bool(cues.dangling.match(text)) and not cues.expletive.match(text)


def points_forward(sentence: str, cues: Cues | None = None) -> bool:
    """The sentence announces what follows it ("Below I share ...", "... the following exercises")
    without a list of its own."""
    cues = cues or load_cues()
    text = collapse(sentence)
    if BULLET.search(text.split(":", 1)[-1]) or "•" in text:
        return False  # the list it introduces is part of the quote
    return bool(cues.forward.search(spell_out(text)))


def quotable(sentence: str, cues: Cues | None = None) -> bool:
    """A sentence a reader understands without the text around it."""
    return not leans_back(sentence, cues) and not points_forward(sentence, cues)


def resolve(sentences: Sequence[str], index: int, source_text: str, cues: Cues | None = None) -> str | None:
    """The quote for sentences[index]: itself when it stands alone, else joined with the sentences
    before it until the first one stands alone and the whole is verbatim in `source_text` (white space
    collapsed); None when no such quote exists."""
    cues = cues or load_cues()
    start = index
    while start >= 0 and index - start < MAX_JOINED:
        quote = collapse(strip_marker(" ".join(sentences[start : index + 1])))
        first = sentences[start]
        if not leans_back(first, cues):
            if points_forward(first, cues) and start < index:
                return None  # "Below I share ..." explains nothing about what follows it
            return quote if quote in source_text and quotable_start(quote, cues) else None
        start -= 1
    return None


def quotable_start(quote: str, cues: Cues | None = None) -> bool:
    """The quote's first sentence does not lean on anything left out."""
    return not leans_back(quote, cues) and not points_forward(quote.split(". ")[0], cues)

"""What to answer in a long message: a runner's story (what happened, where it hurts, their training)
ends, as a rule, with what they want to know, so the coach answers its last question sentence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from coach.text import collapse, split_sentences


@dataclass(frozen=True)
class Asked:
    """The question to answer, and whether it is only part of what the runner wrote."""

    question: str
    partial: bool


def pick_question(text: str, max_chars: int) -> Asked | None:
    """The whole message when it fits the coach's question limit; else its last sentence that asks
    something (ends in '?'), else its last sentence; None when even that is over the limit (a wall of
    text with no sentence in it to answer)."""
    whole = collapse(text)
    if len(whole) <= max_chars:
        return Asked(text, partial=False)
    sentences = split_sentences(whole)
    asked = [s for s in sentences if s.rstrip("\"”’')]").endswith("?")]
    chosen = (asked or sentences or [whole])[-1]
    if len(chosen) > max_chars:
        return None
    return Asked(chosen, partial=True)


def windows(text: str, max_chars: int) -> Iterator[str]:
    """The whole of a long message in pieces of at most `max_chars`, cut between sentences where it can,
    so that red-flag triage reads every word of it (not only the part that is answered)."""
    piece = ""
    for sentence in split_sentences(collapse(text)):
        while len(sentence) > max_chars:
            if piece:
                yield piece
                piece = ""
            yield sentence[:max_chars]
            sentence = sentence[max_chars:]
        if piece and len(piece) + 1 + len(sentence) > max_chars:
            yield piece
            piece = ""
        piece = f"{piece} {sentence}".strip()
    if piece:
        yield piece

"""Quotable pieces of a chunk: its sentences, with a list joined to the line that introduces it."""

from __future__ import annotations

from dataclasses import dataclass

from coach.models import Chunk
from coach.text import BULLET, collapse, split_sentences, strip_marker


@dataclass
class Unit:
    """A quotable piece of a chunk: one sentence, or a list with the line that introduces it."""

    chunk: Chunk
    text: str
    position: int


def units_of(chunk: Chunk, source_text: str) -> list[Unit]:
    """Sentences of the chunk; a line ending in ':' is joined with the list items under it when that
    joined text is verbatim in the source (it is, unless cleaning removed something in between)."""
    units: list[Unit] = []
    lines = [line.strip() for line in chunk.text.splitlines() if line.strip()]
    i = 0
    while i < len(lines):
        sentences = split_sentences(lines[i])
        items: list[str] = []
        j = i + 1
        if sentences and sentences[-1].endswith((":", "…")):
            while j < len(lines) and BULLET.match(lines[j]):
                items.append(lines[j])
                j += 1
        if items and collapse(" ".join([sentences[-1], *items])) in source_text:
            units.extend(Unit(chunk, s, len(units)) for s in sentences[:-1])
            units.append(Unit(chunk, " ".join([sentences[-1], *items]), len(units)))
            i = j
            continue
        units.extend(Unit(chunk, s, len(units)) for s in sentences)
        i += 1
    return units


def quote_text(unit: Unit) -> str:
    return collapse(strip_marker(unit.text))

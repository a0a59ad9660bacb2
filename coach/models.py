"""Typed records the core passes around and the JSON shapes ARCHITECTURE.md fixes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ChunkKind = Literal["article", "comment"]
DisagreementKind = Literal["conflicting_opinions", "complementary", "outdated", "misinformation"]


class Source(BaseModel):
    """One article, as sources.toml describes it."""

    source_id: str
    title: str
    authors: list[str] = Field(default_factory=list)
    publisher: str | None = None
    note: str | None = None
    path: str = ""
    published: dt.date | None = None  # when the article first appeared (sources.toml, or the page's metadata)
    updated: dt.date | None = None  # when it was last revised, if it says so

    @property
    def dated(self) -> dt.date | None:
        """The date the article speaks from: its last revision, else its publication."""
        return self.updated or self.published


class Chunk(BaseModel):
    """A retrievable passage of one source, with where it sits in the article."""

    chunk_id: str
    source_id: str
    title: str
    section: str = ""
    kind: ChunkKind = "article"
    commenter: str | None = None
    text: str


class Turn(BaseModel):
    """One exchange of a conversation, for follow-up questions."""

    model_config = ConfigDict(frozen=True)

    question: str
    answer: str


class Citation(BaseModel):
    """A numbered quote backing a claim; `quote` is verbatim in the source (white space collapsed)."""

    n: int
    source_id: str
    title: str
    chunk_id: str
    quote: str


class Position(BaseModel):
    summary: str
    citations: list[int]


class Disagreement(BaseModel):
    topic: str
    kind: DisagreementKind
    positions: list[Position]


class Answer(BaseModel):
    """What every front end shows; its JSON form is the `coach ask --json` contract."""

    model_config = ConfigDict(extra="forbid")

    question: str
    backend: str
    answer: str
    abstained: bool = False
    urgent: bool = False
    citations: list[Citation] = Field(default_factory=list)
    disagreements: list[Disagreement] = Field(default_factory=list)


class Exercise(BaseModel):
    name: str
    how: str | None = None
    dose: str | None = None
    source_id: str
    quote: str


class Routine(BaseModel):
    day: int
    exercises: list[Exercise]
    note: str = ""

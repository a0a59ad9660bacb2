"""Follow-up questions made standalone from the last turns of a conversation, before retrieval."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from coach.text import STOPWORDS, collapse

HISTORY_TURNS = 3  # turns a follow-up is condensed with; older ones rarely matter and cost tokens
ANSWER_CHARS = 600  # of each earlier answer shown to the condensing model
SHORT_QUESTION_WORDS = 3  # content words at or below which a question leans on the one before ("do the glutes
# propel you forward when you run?" has four of its own and stands alone)

# "and what about my hips?", "what if it hurts?", "how often should I do them?"
_ANAPHORIC = re.compile(
    r"^(and|but|also|so|then|what about|how about|what if|same for|and if)\b"
    r"|\b(it|its|that|this|those|these|them|they|there|one|ones)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")
_MARKS = re.compile(r"\s*\[\d+\]")


class TurnLike(Protocol):
    question: str
    answer: str


def recent(history: Sequence[TurnLike]) -> list[TurnLike]:
    return list(history)[-HISTORY_TURNS:]


def format_history(history: Sequence[TurnLike]) -> str:
    """The last turns as plain text for the condensing prompt (citation marks removed)."""
    lines: list[str] = []
    for turn in recent(history):
        answer = collapse(_MARKS.sub("", turn.answer))
        if len(answer) > ANSWER_CHARS:
            answer = answer[:ANSWER_CHARS].rsplit(" ", 1)[0] + " …"
        lines.append(f"Runner: {collapse(turn.question)}\nCoach: {answer}")
    return "\n".join(lines)


def content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text) if w.lower().replace("’", "'") not in STOPWORDS]


def leans_on_history(question: str) -> bool:
    """A question that is short or points back ("it", "what about ...") needs the turn before it."""
    return len(content_words(question)) <= SHORT_QUESTION_WORDS or bool(_ANAPHORIC.search(question))


def condense_offline(question: str, history: Sequence[TurnLike]) -> str:
    """Without a model: prefix the previous question's content words when the new question leans on it.

    "and what about my hips?" after "why do my knees hurt when I run?" becomes
    "knees hurt run: and what about my hips?", which retrieves for both."""
    turns = recent(history)
    if not turns or not leans_on_history(question):
        return question
    own = {w.lower() for w in content_words(question)}
    carried = [w for w in content_words(turns[-1].question) if w.lower() not in own]
    if not carried:
        return question
    return f"{' '.join(dict.fromkeys(carried))}: {question}"

"""The typed material an answer is drafted from: the statements of the retrieved chunks and the exercises
the question is about, looked up by name in every article.

The lookup is a second retrieval step beside the hybrid search: the chunks it reads (where an article
names the exercise asked about, gives its steps or its dose) are added to the retrieval's hits, so "every
cited chunk was retrieved" stays literally true and the service's citation check covers them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from coach.intent import Reading
from coach.knowledge import Knowledge
from coach.models import Chunk
from coach.retrieval import Hit, Retrieval
from coach.routines import ExerciseFact, norm_name
from coach.statements import Statement

MAX_FACTS = 12
MIN_PASSAGE_EXERCISES = 3  # fewer named in the passages: look up the exercises closest to the question
EXERCISE_CLOSENESS = 0.4  # a naming sentence this close to the question is about what was asked
MAX_LOOKED_UP_EXERCISES = 4
MAX_LOOKED_UP_DOSES = 2


@dataclass(frozen=True)
class Material:
    statements: tuple[Statement, ...] = ()  # of the retrieved (and looked-up) chunks, in hit order
    facts: tuple[ExerciseFact, ...] = ()  # the asked-about exercises' (every article), then the passages'
    subject: tuple[str, ...] = ()  # exercise names the question is about
    conversation: tuple[str, ...] = ()  # exercises the last answer named
    defined: bool = False  # the lookup found what the articles say the asked-about term is


def gather(
    reading: Reading,
    retrieval: Retrieval,
    knowledge: Knowledge,
    chunk_by_id: Callable[[str], Chunk | None],
    generic: frozenset[str] = frozenset(),
    *,
    frequency: Callable[[str], bool] = lambda _text: False,
    timeline: Callable[[str], bool] = lambda _text: False,
    pain: Callable[[str], bool] = lambda _text: False,
) -> tuple[Retrieval, Material]:
    """The retrieval with the looked-up chunks added, and the material drawn from both.

    Looked up, besides the exercises asked about: for "what is X", the statements that define X; for
    a question about exercises whose passages name few, the exercises whose naming sentence is closest
    to the question; for a dose question (or "should I ... every day?", `frequency`), doses (time
    frames, asking when results come: `timeline`) of a second article when the passages hold one; for
    "should I ... when it hurts?" (`pain`), what the articles say to do about pain."""
    looked_up: list[ExerciseFact] = []
    for name in reading.exercises:
        looked_up.extend(knowledge.facts(norm_name(name)))
    if reading.intent == "dose" and not reading.exercises:
        # "how many sets?" after a list of exercises: the dose of the exercises just named.
        for name in reading.context.exercises:
            looked_up.extend(knowledge.facts(norm_name(name)))
    hit_ids = {hit.chunk.chunk_id for hit in retrieval.hits}
    vector = _unit(retrieval.query_embedding)
    statements_in = [s for hit in retrieval.hits for s in knowledge.by_chunk.get(hit.chunk.chunk_id, [])]
    extra: list[Statement] = []
    defined = False
    if reading.intent == "what_is":
        # A definition of the word asked about, or a section titled with it ("What is X?").
        found = knowledge.defining(set(retrieval.query_terms) - generic)
        extra.extend(found)
        defined = bool(found)
    if reading.intent in ("which_exercises", "what_to_do") and vector is not None:
        named = {f.key for _, f in knowledge.facts_in(hit_ids)}
        if len(named) < MIN_PASSAGE_EXERCISES:
            for closeness, fact in knowledge.ranked_exercises(vector):
                if closeness < EXERCISE_CLOSENESS or len(named) >= MAX_LOOKED_UP_EXERCISES:
                    break
                if fact.key not in named:
                    named.add(fact.key)
                    looked_up.append(fact)
    # A dose question gets the doses (or, asking when results come, the time frames) of at least two
    # articles when the library has them: they often differ, and the runner should hear both.
    kind = "timeline" if reading.intent == "dose" and timeline(reading.question) else "dose"
    wants = reading.intent == "dose" or (reading.intent == "should_i" and frequency(reading.question))
    if wants and vector is not None:
        sources = {s.source_id for s in statements_in if kind in s.kinds and not s.comment}
        typed = knowledge.ranked(partial(_typed, kind), vector, key=("typed", kind))
        for _closeness, statement in typed:
            if len(sources) >= MAX_LOOKED_UP_DOSES:
                break
            if statement.source_id not in sources:
                sources.add(statement.source_id)
                extra.append(statement)
    if reading.intent == "should_i" and pain(reading.question) and vector is not None:
        cautions = knowledge.ranked(partial(_caution, pain), vector, key=("caution", pain))
        extra.extend(s for _closeness, s in cautions[:MAX_LOOKED_UP_DOSES])
    rank = {hit.chunk.chunk_id: i for i, hit in enumerate(retrieval.hits)}
    in_passages = [
        fact
        for _, fact in sorted(
            knowledge.facts_in(rank), key=lambda p: (rank[p[1].chunk_id], p[1].position, p[0])
        )
    ]
    # The first MAX_FACTS distinct facts: compared by their fields in a set (an exercise that hundreds of
    # articles name made `fact not in facts` a quadratic loop of model comparisons).
    facts: list[ExerciseFact] = []
    seen: set[tuple] = set()
    for fact in [*looked_up, *in_passages]:
        if len(facts) >= MAX_FACTS:
            break
        if (same := _fields(fact)) not in seen:
            seen.add(same)
            facts.append(fact)
    # Where the exercises' steps and doses are written is looked up too: an answer may quote them.
    hits = list(retrieval.hits)
    wanted = [cid for f in facts for cid in (f.chunk_id, f.steps_chunk, f.dose_chunk)]
    wanted += [s.chunk_id for s in extra]
    for chunk_id in wanted:
        if chunk_id and chunk_id not in hit_ids and (chunk := chunk_by_id(chunk_id)) is not None:
            hits.append(Hit(chunk=chunk, score=0.0, similarity=0.0))
            hit_ids.add(chunk_id)
    retrieval = replace(retrieval, hits=hits)
    statements = [s for hit in hits for s in knowledge.by_chunk.get(hit.chunk.chunk_id, [])]
    return retrieval, Material(
        statements=tuple(statements),
        facts=tuple(facts),
        subject=tuple(reading.exercises),
        conversation=tuple(reading.context.exercises),
        defined=defined,
    )


def _fields(fact: ExerciseFact) -> tuple:
    return tuple(fact.__dict__.values())


def _typed(kind: str, statement: Statement) -> bool:
    return kind in statement.kinds and not statement.comment


def _caution(pain: Callable[[str], bool], statement: Statement) -> bool:
    return (
        bool({"referral", "warning"} & set(statement.kinds))
        and not statement.comment
        and pain(statement.quote)
    )


def _unit(vector: Sequence[float] | None) -> np.ndarray | None:
    if vector is None:
        return None
    array = np.asarray(vector, dtype=np.float32)
    return array / (np.linalg.norm(array) or 1.0)

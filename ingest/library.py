"""The exercise library built article by article: each article's exercises kept by its content, merged
in source order, so editing one article re-reads that article only.

The extraction itself is coach/routines.py's `build_library`, called on one article at a time; the merge
below gives the library a whole-corpus build gives (first mention wins, a later mention that says how
to do it fills in one that does not).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from coach.domain import Domain
from coach.models import Chunk, Exercise
from coach.routines import Library, _norm, build_library, library_key, read_library, write_library
from coach.storage import write_atomic

log = logging.getLogger(__name__)


def merge_exercises(per_article: Sequence[Sequence[Exercise]]) -> list[Exercise]:
    """Exercises of articles taken in source order, one per name: the first mention, replaced by a later
    article's when the first says nothing about how to do it and the later does (the name kept)."""
    by_name: dict[str, Exercise] = {}
    for exercises in per_article:
        for ex in exercises:
            key = _norm(ex.name)
            current = by_name.get(key)
            if current is None:
                by_name[key] = ex
            elif current.how is None and ex.how is not None:
                by_name[key] = ex.model_copy(update={"name": current.name})
    return list(by_name.values())


def ensure_library(
    data_dir: Path,
    cache_dir: Path,
    articles: dict[str, str],
    chunks_of: Callable[[str], Sequence[Chunk]],
    source_texts: dict[str, str],
    source_shas: dict[str, str],
    domain: Domain,
) -> tuple[bool, Library]:
    """The stored library, rebuilt when the sources (or the rules or domain file) changed; each article's
    exercises come from `cache_dir` when its key (`articles`) is stored there. (rebuilt, library)"""
    key = library_key(source_shas, domain)
    current = read_library(data_dir)
    if current is not None and current.key == key:
        return False, current
    directory = cache_dir / f"exercises-{library_key({}, domain)[:16]}"
    directory.mkdir(parents=True, exist_ok=True)
    per_article = []
    for sid, akey in sorted(articles.items()):
        path = directory / f"{akey}.json"
        try:
            found = Library.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            found = build_library(chunks_of(sid), {sid: source_texts.get(sid, "")}, "", domain)
            write_atomic(path, found.model_dump_json())
        per_article.append(found.exercises)
    keep = {f"{k}.json" for k in articles.values()}
    for path in directory.glob("*.json"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    library = Library(key=key, exercises=merge_exercises(per_article), routines=domain.routines)
    try:
        write_library(data_dir, library)
    except OSError as exc:  # a read-only data directory: the library still serves this process
        log.warning("could not store the exercise library in %s (%s)", data_dir, exc.strerror)
    log.info("exercise library: %d exercises", len(library.exercises))
    return True, library

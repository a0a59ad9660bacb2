"""Errors the coach reports to people: each carries a one-line message that says what to do."""

from __future__ import annotations


class CoachError(Exception):
    """A failure a user can act on; front ends print `str(error)` and never a traceback."""

    exit_code = 1


class UsageError(CoachError):
    """The input itself is unusable (empty question, too long, no words)."""

    exit_code = 2


class CorpusError(CoachError):
    """The corpus directory is missing, empty or unreadable."""


class StoreError(CoachError):
    """The vector store cannot be opened, read or written."""


class IndexMismatchError(StoreError):
    """The index was built with another embedding model than the one configured."""


class IndexNotReady(StoreError):
    """There is no index yet, or what ingest builds beside it (the maps) is missing or out of date;
    `coach ingest` builds it. The core only opens an index, never builds one."""


class StateError(CoachError):
    """The bot's state database (SQLite or PostgreSQL) cannot be opened, read or written; front ends
    carry on without the state where they can, and never learn which engine it was."""

"""Small files kept beside the index (source snapshot, disagreement map, exercise library): atomic writes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coach.settings import Settings


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same directory, then rename: a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_snapshot(settings: Settings) -> dict[str, dict]:
    """The source snapshot ingest wrote (source id -> facts, sha and collapsed text); {} when there is none."""
    try:
        return json.loads(settings.snapshot_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

"""The parts of the embedding paths that need no model: loading once, the cache directory, stale exports."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from coach.embeddings import (
    EXPORT_META,
    EXPORT_MODEL,
    EXPORT_PREFIX,
    EXPORT_TOKENIZER,
    NamedEmbeddings,
    export_dir,
    fake_embeddings,
    find_export,
)
from coach.onnx_export import _remove_stale
from tests.conftest import make_settings


def test_the_model_loads_once_even_when_threads_ask_at_once() -> None:
    loads = []

    def loader():  # noqa: ANN202
        loads.append(1)
        time.sleep(0.05)  # long enough for the other threads to arrive while it loads
        return fake_embeddings(dim=8).inner

    embeddings = NamedEmbeddings(loader, name="fake", dim=8)
    assert not embeddings.loaded
    assert embeddings.backend is None
    embeddings.preload()
    threads = [threading.Thread(target=embeddings.embed_query, args=("x",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert embeddings.loaded
    assert len(loads) == 1
    assert embeddings.backend == "DeterministicFakeEmbedding"


def test_a_failed_background_load_is_reported_by_the_first_embedding() -> None:
    calls = []

    def loader():  # noqa: ANN202
        calls.append(1)
        raise OSError("disk on fire")

    embeddings = NamedEmbeddings(loader, name="fake", dim=8)
    embeddings.preload()
    with pytest.raises(OSError, match="disk on fire"):
        embeddings.embed_query("x")
    assert not embeddings.loaded


def test_the_model_cache_defaults_to_the_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COACH_MODEL_CACHE_DIR")
    assert make_settings(tmp_path).model_dir == tmp_path / "models"
    monkeypatch.setenv("COACH_MODEL_CACHE_DIR", "")  # compose passes unset variables on as empty
    assert make_settings(tmp_path).model_dir == tmp_path / "models"
    monkeypatch.setenv("COACH_MODEL_CACHE_DIR", str(tmp_path / "shared"))
    assert make_settings(tmp_path).model_dir == tmp_path / "shared"


def test_only_a_complete_export_is_found(tmp_path: Path) -> None:
    target = export_dir(tmp_path)
    assert target.name.startswith(EXPORT_PREFIX)
    target.mkdir()
    for name in (EXPORT_META, EXPORT_MODEL):
        (target / name).write_text("{}")
    assert find_export(tmp_path) is None
    (target / EXPORT_TOKENIZER).write_text("{}")
    assert find_export(tmp_path) == target


def test_exports_of_other_weights_or_runtimes_are_removed(tmp_path: Path) -> None:
    keep = tmp_path / f"{EXPORT_PREFIX}current"
    stale = tmp_path / f"{EXPORT_PREFIX}older"
    working = tmp_path / ".export-abc123"  # another process exporting right now
    for directory in (keep, stale, working):
        directory.mkdir()
        (directory / EXPORT_MODEL).write_text("x")
    (tmp_path / "notes.txt").write_text("mine")
    _remove_stale(tmp_path, keep=keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep.name, working.name, "notes.txt"])

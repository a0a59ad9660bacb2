"""Shared fixtures: a copy of the corpus, settings on temporary directories, and one real index."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from coach.settings import PROJECT_ROOT, Settings

CORPUS = PROJECT_ROOT / "corpus"


def make_settings(data_dir: Path, corpus_dir: Path = CORPUS, **extra: object) -> Settings:
    return Settings(data_dir=data_dir, corpus_dir=corpus_dir, _env_file=None, **extra)


def make_bot_settings(data_dir: Path, corpus_dir: Path = CORPUS, **extra: object):  # noqa: ANN201
    """The bot's settings (bot.settings.BotSettings) on temporary directories."""
    from bot.settings import BotSettings

    return BotSettings(data_dir=data_dir, corpus_dir=corpus_dir, _env_file=None, **extra)


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(CORPUS, target)
    return target


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One ONNX export of the model for the whole session (the first real ingest makes it), shared by
    every data directory and subprocess, instead of one export per temporary data directory."""
    path = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COACH_MODEL_CACHE_DIR", str(path))
        yield path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, model_cache: Path) -> None:
    """No test reads the developer's COACH_* variables or .env, or writes to the project's data/."""
    import os

    for name in list(os.environ):
        if name.startswith("COACH_") or name in ("TELEGRAM_BOT_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COACH_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.setenv("COACH_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def real_index(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The five articles ingested once with the real model into a real Chroma directory."""
    from coach.embeddings import load_minilm
    from ingest.pipeline import run_ingest

    settings = make_settings(tmp_path_factory.mktemp("index"))
    run_ingest(settings, load_minilm())
    return settings


@pytest.fixture(scope="session")
def service(real_index: Settings):
    from coach.answer import CoachService

    return CoachService.open(real_index)

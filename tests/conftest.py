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


@pytest.fixture(scope="session")
def postgres():  # noqa: ANN201
    """A real PostgreSQL server on 127.0.0.1 for the whole run (tests/pg.py). Missing server binaries
    fail the test with the way to install them; a developer without them may set
    TESTS_WITHOUT_POSTGRES=1 to skip instead, which CI (CI=true) ignores."""
    import contextlib
    import os

    from tests.pg import INSTALL_HINT, SKIP_FLAG, PostgresUnavailable, running_postgres

    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            if os.environ.get(SKIP_FLAG) == "1" and os.environ.get("CI", "").lower() != "true":
                pytest.skip(f"PostgreSQL not available ({exc}); {SKIP_FLAG}=1 skips it")
            pytest.fail(f"PostgreSQL could not be started: {exc}. {INSTALL_HINT}", pytrace=False)
        yield server


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres) -> str:  # noqa: ANN001
    """A plain postgresql:// URL (as COACH_STATE_URL takes it) of a fresh, empty database."""
    return postgres.create_database(f"test_{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest) -> str | None:
    """Each state test runs twice: on SQLite (None: bot.sqlite in the data directory) and on PostgreSQL."""
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")

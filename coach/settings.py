"""The coach's settings: one typed tree read from COACH_* variables (or .env), built by a function."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coach.redact import register, url_password

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """The core's settings (retrieval, answers, store, backends); names are fixed by ARCHITECTURE.md.
    Front ends extend it with their own (bot/settings.py), under the same COACH_ prefix."""

    model_config = SettingsConfigDict(
        env_prefix="COACH_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    data_dir: Path = Field(
        default=PROJECT_ROOT / "data",
        description="Where the index, the disagreement map and the SQLite database live.",
    )
    corpus_dir: Path = Field(
        default=PROJECT_ROOT / "corpus",
        description="The articles to ingest (<source_id>.txt|.md|.html) and sources.toml.",
    )
    model_cache_dir: Path | None = Field(
        default=None,
        description="Where the embedding model exported to ONNX is kept (made by `coach ingest` or "
        "`coach export-model`); unset means models/ in COACH_DATA_DIR.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="A Chroma server, e.g. http://127.0.0.1:8000; unset means the embedded store.",
    )
    collection: str = Field(default="coach_chunks", description="Chroma collection name.")
    llm: str | None = Field(
        default=None,
        description="A chat model as init_chat_model names it (openai:gpt-4o-mini); unset means extractive.",
    )
    llm_base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server.")
    answer_deadline_s: float = Field(default=20.0, gt=0, description="Most seconds an answer may take.")
    llm_max_retries: int = Field(
        default=2, ge=0, le=5, description="Retries of a model call on 429 and 5xx (client backoff)."
    )
    llm_breaker_failures: int = Field(
        default=3, ge=1, description="Consecutive model failures after which the backend is rested."
    )
    llm_breaker_cooldown_s: float = Field(
        default=60.0, ge=0, description="Seconds the backend is not called after the breaker opens."
    )
    top_k: int = Field(default=6, ge=1, le=20, description="Passages an answer draws on at most.")
    min_relevance: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Cosine similarity of the best passage below which the coach abstains.",
    )
    max_question_chars: int = Field(default=2000, ge=10, description="Longest question accepted.")
    max_article_mb: float = Field(
        default=5.0,
        gt=0,
        description="Largest article file ingest reads, in MB; a larger one is skipped with a line saying so.",
    )
    state_url: SecretStr | None = Field(
        default=None,
        description="The bot's state database as a plain URL (postgresql://user:password@host:5432/coach); "
        "unset means SQLite in COACH_DATA_DIR. A secret: it may carry a password.",
    )

    def model_post_init(self, context: object, /) -> None:
        """Register the secrets in these settings with the one redaction path (coach/redact.py): values
        read from .env are not in the environment, and must be hidden all the same."""
        register(*secret_values(self))

    @field_validator(
        "model_cache_dir",
        "chroma_url",
        "llm",
        "llm_base_url",
        "state_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable means "use the default", as ARCHITECTURE.md's table says (docker compose
        passes unset variables on as empty strings)."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("data_dir", "corpus_dir", mode="before")
    @classmethod
    def _empty_path_is_default(cls, value: object, info) -> object:  # noqa: ANN001
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name].default
        return value

    @property
    def model_dir(self) -> Path:
        """The ONNX export's cache: it depends only on the installed weights, so several data directories
        may share one (the tests do)."""
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def record_db(self) -> Path:
        return self.data_dir / "records.sqlite"

    @property
    def bot_db(self) -> Path:
        return self.data_dir / "bot.sqlite"

    @property
    def snapshot_path(self) -> Path:
        return self.data_dir / "sources.json"

    @property
    def lexical_dir(self) -> Path:
        return self.data_dir / "lexical"

    @property
    def cache_dir(self) -> Path:
        """What ingest computed per article (claims, their vectors, exercises), keyed by its content."""
        return self.data_dir / "articles"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and .env); keyword overrides win."""
    return Settings(**overrides)


def secret_values(settings: BaseSettings) -> list[str]:
    """The secrets a settings object holds: SecretStr values, and the passwords in its URLs."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            found.append(raw)
            found.append(url_password(raw) or "")
        elif isinstance(value, str) and name.endswith("_url"):
            found.append(url_password(value) or "")
    return [v for v in found if v]

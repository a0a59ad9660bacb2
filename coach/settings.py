"""The coach's settings: one typed tree read from COACH_* variables (or .env), built by a function."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything the coach can be configured with; names are fixed by ARCHITECTURE.md."""

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
    telegram_base_url: str | None = Field(default=None, description="Bot API base URL.")
    webhook_url: str | None = Field(default=None, description="Public webhook URL; unset means polling.")
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Secret token Telegram sends with every webhook request (1-256 of A-Z a-z 0-9 _ -); "
        "required in webhook mode, requests without it get 403.",
    )
    webhook_listen: str = Field(
        default="127.0.0.1",
        description="Address the webhook server listens on (0.0.0.0 behind a reverse proxy in a container).",
    )
    webhook_port: int = Field(default=8443, ge=1, le=65535, description="Port the webhook server listens on.")
    bot_burst: int = Field(default=3, ge=1, description="Questions a user may send in a burst.")
    bot_per_minute: float = Field(
        default=6.0, gt=0, description="Questions per minute a user's allowance refills by."
    )
    bot_rate_per_s: float = Field(
        default=30.0,
        gt=0,
        description="Messages per second the bot sends in all (PTB's AIORateLimiter; Telegram allows about 30).",
    )
    nudge_grace_min: int = Field(
        default=180,
        ge=0,
        le=1380,
        description="Minutes after its time a missed daily nudge (bot down) is still sent late; later it is skipped.",
    )
    nudge_send_retries: int = Field(
        default=3,
        ge=0,
        le=10,
        description="Retries of one nudge after a timeout, a network error or a 429 the rate limiter gave up on.",
    )

    top_k: int = Field(default=6, ge=1, le=20, description="Passages an answer draws on at most.")
    min_relevance: float = Field(
        default=0.36,
        ge=0,
        le=1,
        description="Cosine similarity of the best passage below which the coach abstains.",
    )
    max_question_chars: int = Field(default=2000, ge=10, description="Longest question accepted.")

    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "COACH_TELEGRAM_BOT_TOKEN"),
        description="Bot token from BotFather (read from TELEGRAM_BOT_TOKEN).",
    )

    @field_validator(
        "chroma_url",
        "llm",
        "llm_base_url",
        "telegram_base_url",
        "webhook_url",
        "webhook_secret",
        "telegram_bot_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable means "use the default", as ARCHITECTURE.md's table says (docker compose
        passes unset variables on as empty strings)."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _secret_token_shape(cls, value: object) -> object:
        """Telegram accepts only these characters in a secret token; the value itself is never echoed."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            if not value.strip():
                return None
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
                raise ValueError("must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("data_dir", "corpus_dir", mode="before")
    @classmethod
    def _empty_path_is_default(cls, value: object, info) -> object:  # noqa: ANN001
        if isinstance(value, str) and not value.strip():
            return cls.model_fields[info.field_name].default
        return value

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


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment (and .env); keyword overrides win."""
    return Settings(**overrides)

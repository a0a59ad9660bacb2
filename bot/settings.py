"""The bot's settings: the core's (coach.settings) plus Telegram, webhook, limits and nudges, same COACH_ prefix."""

from __future__ import annotations

import re

from pydantic import AliasChoices, Field, SecretStr, field_validator

from coach.settings import Settings


class BotSettings(Settings):
    """Everything `coach bot` is configured with; names are fixed by ARCHITECTURE.md and README."""

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
    bot_refusals_per_s: float = Field(
        default=1.0,
        gt=0,
        description="Replies a second, per chat, to messages refused (too fast, not text): each gets one, paced.",
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

    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("TELEGRAM_BOT_TOKEN", "COACH_TELEGRAM_BOT_TOKEN"),
        description="Bot token from BotFather (read from TELEGRAM_BOT_TOKEN).",
    )

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

    @field_validator(
        "telegram_base_url", "webhook_url", "webhook_secret", "telegram_bot_token", mode="before"
    )
    @classmethod
    def _empty_is_unset_bot(cls, value: object) -> object:
        """An empty variable means "use the default" (docker compose passes unset variables as empty)."""
        if isinstance(value, str) and not value.strip():
            return None
        return value


def load_bot_settings(**overrides: object) -> BotSettings:
    """Read the bot's settings from the environment (and .env); keyword overrides win."""
    return BotSettings(**overrides)

"""Keeps secrets out of every log line of the bot: httpx quietened, and every log record redacted as made
(coach/redact.py is the one redaction path; this only adds the bot's own secrets to it)."""

from __future__ import annotations

import logging

from coach.redact import REDACTED, install_log_redaction, redact, register

__all__ = ["REDACTED", "protect_logs", "redact"]


def protect_logs(*secrets: str | None) -> None:
    """Hide `secrets` (and their URL-encoded forms) from every log record created from now on.

    httpx logs each request URL at INFO, and Bot API URLs contain the token, so httpx is held at WARNING;
    the record factory is the defense in depth for anything else that might echo a URL or a request's
    parameters (tracebacks of network errors, PTB logging setWebhook's secret_token at DEBUG)."""
    register(*secrets)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    install_log_redaction()

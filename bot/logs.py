"""Keeps the bot token out of every log line: httpx quietened, and every log record redacted as made."""

from __future__ import annotations

import logging
from urllib.parse import quote

REDACTED = "[REDACTED]"

# Logging is process-wide, so the set of secrets to hide is too; it only ever grows.
_secrets: set[str] = set()
_installed = False


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _contains_secret(text: str) -> bool:
    return any(secret in text for secret in _secrets)


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the logging module's problem to report, not ours
        return record
    if _contains_secret(message):
        record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text when it is set, so a redacted traceback is what every handler prints.
        text = logging.Formatter().formatException(record.exc_info)
        if _contains_secret(text):
            record.exc_text = redact(text)
    return record


def protect_logs(*secrets: str) -> None:
    """Hide `secrets` (and their URL-encoded forms) from every log record created from now on.

    httpx logs each request URL at INFO, and Bot API URLs contain the token, so httpx is held at WARNING;
    the record factory is the defense in depth for anything else that might echo a URL (tracebacks of
    network errors, a library logging at DEBUG)."""
    global _installed
    for secret in secrets:
        if secret:
            _secrets.update({secret, quote(secret, safe="")})
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not _installed:
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            return _redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True

"""One redaction path for every secret (bot token, webhook secret, API keys, passwords in any URL): what
logging, error messages and `coach doctor` pass their text through before anyone sees it."""

from __future__ import annotations

import logging
import os
import re
import threading
from urllib.parse import quote

REDACTED = "[REDACTED]"
MASK = "***"
# Secrets read from the environment under their usual names (ARCHITECTURE.md), and settings that are URLs
# and may carry a password.
SECRET_VARIABLES = (
    "TELEGRAM_BOT_TOKEN",
    "COACH_TELEGRAM_BOT_TOKEN",
    "COACH_WEBHOOK_SECRET",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
)
URL_VARIABLES = (
    "COACH_STATE_URL",
    "COACH_CHROMA_URL",
    "COACH_LLM_BASE_URL",
    "COACH_TELEGRAM_BASE_URL",
    "COACH_WEBHOOK_URL",
)
MIN_SECRET_CHARS = 4  # shorter values would redact ordinary words

# scheme://user:password@host (also when the port or anything after it does not parse)
_USERINFO = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:@/\s?#]*):(?P<password>[^@/\s?#]*)@", re.IGNORECASE
)
# ?password=...&token=... in a URL
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|token|secret|api[_-]?key|apikey|key|access_token)=)[^&#\s]+",
    re.IGNORECASE,
)
# A Telegram bot token's shape, even one never registered: <bot id>:<35 characters>
_BOT_TOKEN = re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}")

_registered: set[str] = set()
_lock = threading.Lock()
_installed = False


def register(*secrets: str | None) -> None:
    """Secrets to hide from now on, besides those in the environment (process-wide; it only grows).
    Settings register theirs when built, so values read from .env are hidden too."""
    with _lock:
        for secret in secrets:
            if secret and len(secret) >= MIN_SECRET_CHARS:
                _registered.update({secret, quote(secret, safe="")})


def url_password(url: str | None) -> str | None:
    match = _USERINFO.search(url or "")
    return match.group("password") if match and match.group("password") else None


def known_secrets() -> list[str]:
    """Every secret to hide, longest first (so a secret containing another goes whole)."""
    found = set(_registered)
    for name in SECRET_VARIABLES:
        value = os.environ.get(name, "").strip()
        if len(value) >= MIN_SECRET_CHARS:
            found.update({value, quote(value, safe="")})
    for name in URL_VARIABLES:
        password = url_password(os.environ.get(name))
        if password and len(password) >= MIN_SECRET_CHARS:
            found.update({password, quote(password, safe="")})
    return sorted(found, key=len, reverse=True)


def mask_url(url: str | None) -> str | None:
    """A URL with any password (in its user part or its query) replaced by ***. Works on the text, so a
    URL whose port or host does not parse is masked too."""
    if not url:
        return url
    url = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", url)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('head')}{MASK}", url)


def redact(text: str) -> str:
    """The text with every known secret, every password in a URL and anything shaped like a bot token
    hidden."""
    if not text:
        return text
    for secret in known_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = mask_url(text) or text
    return _BOT_TOKEN.sub(REDACTED, text)


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a bad format string is the logging module's problem to report, not ours
        return record
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text when it is set, so a redacted traceback is what every handler prints.
        text = logging.Formatter().formatException(record.exc_info)
        clean = redact(text)
        if clean != text:
            record.exc_text = clean
    return record


def install_log_redaction() -> None:
    """Redact every log record as it is made, whatever logger or handler it goes to (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            return _redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True

"""Sending and editing messages so that nothing is lost quietly: transient Bot API faults (5xx, a
reply that is not JSON, a network error) are retried with backoff (tenacity); what still fails, or
timed out, is raised for the caller to report once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from telegram import InlineKeyboardMarkup, Message
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError, TimedOut
from telegram.ext import ExtBot
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from bot.formatting import split_html

log = logging.getLogger(__name__)

SEND_TRIES = 4  # one send and three retries: 0.25 + 0.5 + 1 s of backoff, well inside a runner's patience
BACKOFF_S = 0.25
BACKOFF_MAX_S = 2.0
NOT_MODIFIED = "message is not modified"
T = TypeVar("T")


def transient(exc: BaseException) -> bool:
    """Faults worth another try: a 5xx or a connection error (NetworkError; PTB also raises BadRequest as
    one, but a 400 will not change on retry) and a body that is not JSON (a bare TelegramError, "Invalid
    server response": a proxy's error page). A timeout is not retried here: the message has most likely
    arrived, late, and Telegram has no idempotency key, so a retry would show it twice; the caller tells
    the runner instead (the nudges, one message a day, do retry timeouts). RetryAfter is not here
    either: PTB's AIORateLimiter waits those out itself."""
    if isinstance(exc, BadRequest | Forbidden | TimedOut):
        return False
    if isinstance(exc, NetworkError):
        return True
    return type(exc) is TelegramError and "invalid server response" in exc.message.lower()


async def retrying(call: Callable[[], Awaitable[T]], *, tries: int = SEND_TRIES) -> T:
    """`call()` with transient faults retried, exponential backoff between tries."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(transient),
        stop=stop_after_attempt(tries),
        wait=wait_exponential(multiplier=BACKOFF_S, max=BACKOFF_MAX_S),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last fault")  # pragma: no cover


async def send_html(
    bot: ExtBot, chat_id: int, text: str, *, tries: int = SEND_TRIES, **kwargs: object
) -> list[Message]:
    """Send HTML split into messages under Telegram's limit, each retried; keyword arguments (a
    keyboard, a quoted message) go to the last part."""
    parts = split_html(text)
    sent = []
    for i, part in enumerate(parts):
        extra = kwargs if i == len(parts) - 1 else {}
        sent.append(
            await retrying(
                lambda p=part, e=extra: bot.send_message(chat_id=chat_id, text=p, **e), tries=tries
            )
        )
    return sent


async def edit_html(
    bot: ExtBot, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None = None
) -> bool:
    """Replace a message's text (and keyboard: none removes it); False when the message cannot be edited
    (gone, too old) and the caller should send instead. An edit that changes nothing is not an error."""
    try:
        await retrying(
            lambda: bot.edit_message_text(
                chat_id=chat_id, message_id=message_id, text=split_html(text)[0], reply_markup=markup
            )
        )
    except BadRequest as exc:
        if NOT_MODIFIED in exc.message.lower():
            return True
        log.info("chat %s: could not edit message %s (%s)", chat_id, message_id, exc.message)
        return False
    return True


async def set_keyboard(
    bot: ExtBot, chat_id: int, message_id: int, markup: InlineKeyboardMarkup | None
) -> bool:
    """Change or remove (None) the keyboard under a message; False when Telegram refuses. Cosmetic to
    the caller: a failure is logged, never raised."""
    try:
        await retrying(
            lambda: bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id, reply_markup=markup)
        )
    except BadRequest as exc:
        if NOT_MODIFIED in exc.message.lower():
            return True
        log.info(
            "chat %s: could not change the keyboard of message %s (%s)", chat_id, message_id, exc.message
        )
        return False
    except TelegramError as exc:
        log.warning("chat %s: keyboard of message %s left as it was (%s)", chat_id, message_id, exc)
        return False
    return True

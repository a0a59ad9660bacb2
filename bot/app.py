"""Builds the Telegram application from settings and a CoachService, and runs it (polling or webhook)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from telegram import BotCommand, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot import handlers, nudges, subscribe
from bot.handlers import BotData, CoachApplication, CoachContext
from bot.limits import ReplyPacer, UserGate
from bot.logs import protect_logs
from bot.nudges import Clock, Nudger
from bot.order import ChatOrder, ChatOrderProcessor
from bot.settings import BotSettings
from bot.state import open_bot_state
from coach.answer import CoachService
from coach.errors import CoachError, UsageError

log = logging.getLogger(__name__)

ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]
# The same average rate in 0.2-s windows rather than 1-s ones: aiolimiter's bucket holds one window's
# worth, so after any pause (a 429, a busy loop) at most 6 messages leave at once instead of 30, which a
# strict receiver would answer with another 429 (measured with evals/nudge_bench.py: see README).
PACE_WINDOW_S = 0.2
CONCURRENT_UPDATES = 32  # so one user's slow answer never holds up another user's


def _file_url(base_url: str) -> str:
    """A local Bot API server serves files under /file/bot<token>/ beside /bot<token>/."""
    head, sep, tail = base_url.rstrip("/").rpartition("/bot")
    return f"{head}/file/bot{tail}" if sep else base_url.rstrip("/") + "/file/bot"


def build_application(
    settings: BotSettings, service: CoachService, *, clock: Clock | None = None
) -> CoachApplication:
    """The bot, ready for run_bot(): handlers registered, services tied to its lifecycle. `clock` is
    for tests that move time (nudges); the default is the system's."""
    token = settings.telegram_bot_token.get_secret_value().strip() if settings.telegram_bot_token else ""
    if not token:
        raise UsageError(
            "Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you (see README, Telegram bot)."
        )
    protect_logs(token, settings.webhook_secret.get_secret_value() if settings.webhook_secret else None)

    order = ChatOrder()
    builder = (
        ApplicationBuilder()
        .token(token)
        .context_types(ContextTypes(context=CoachContext, bot_data=BotData))
        .defaults(
            Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True))
        )
        # PTB's limiter paces all sends (COACH_BOT_RATE_PER_S overall; 20 a minute per group chat) and
        # waits out Telegram's RetryAfter twice itself. Private chats get one nudge a day each, far under
        # Telegram's one message a second per chat, so no per-chat limiter is needed.
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.bot_rate_per_s * PACE_WINDOW_S,
                overall_time_period=PACE_WINDOW_S,
                max_retries=2,
            )
        )
        # Concurrent across chats; within a chat, questions are answered in the order they came.
        .concurrent_updates(ChatOrderProcessor(CONCURRENT_UPDATES, order))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
    )
    if settings.telegram_base_url:
        builder = builder.base_url(settings.telegram_base_url).base_file_url(
            _file_url(settings.telegram_base_url)
        )
    application: CoachApplication = builder.build()

    data = application.bot_data
    data.settings = settings
    data.service = service
    data.gate = UserGate(burst=settings.bot_burst, per_minute=settings.bot_per_minute)
    data.order = order
    data.pacer = ReplyPacer(per_s=settings.bot_refusals_per_s)
    if clock is not None:
        data.clock = clock

    new_messages = filters.UpdateType.MESSAGE  # channel posts are left alone
    application.add_handler(TypeHandler(Update, handlers.skip_seen), group=-1)
    for name, callback in [
        ("start", handlers.start),
        ("help", handlers.help_command),
        ("sources", handlers.sources_command),
        ("debates", handlers.debates_command),
        ("reset", handlers.reset),
        ("subscribe", subscribe.subscribe),
        ("unsubscribe", subscribe.unsubscribe),
        ("routine", subscribe.routine),
        ("stats", subscribe.stats),
    ]:
        application.add_handler(CommandHandler(name, callback, filters=new_messages))
    application.add_handler(MessageHandler(new_messages & filters.COMMAND, handlers.unknown_command))
    application.add_handler(MessageHandler(new_messages & filters.TEXT, handlers.question))
    # An edited message (a fixed typo) is a new question; an edited command is not run again.
    edited = filters.UpdateType.EDITED_MESSAGE & filters.TEXT & ~filters.COMMAND
    application.add_handler(MessageHandler(edited, handlers.question))
    application.add_handler(MessageHandler(new_messages & filters.ATTACHMENT, handlers.not_text))
    application.add_handler(CallbackQueryHandler(subscribe.subscribe_button, pattern=rf"^{subscribe.SUB}\|"))
    application.add_handler(
        CallbackQueryHandler(subscribe.nudge_button, pattern=rf"^({nudges.DONE}|{nudges.SNOOZE_DATA})\|")
    )
    application.add_handler(CallbackQueryHandler(handlers.debate_button, pattern=rf"^{handlers.DEBATE}:"))
    application.add_handler(CallbackQueryHandler(handlers.button))
    application.add_error_handler(handlers.on_error)
    return application


async def _post_init(application: Application) -> None:
    """Open the bot's state, start the nudge tick and publish the command menu."""
    data: BotData = application.bot_data
    data.state = await open_bot_state(data.settings)
    last = await data.state.last_update_id()
    log.info("bot state at %s; last handled update %s", data.state.where, last)
    data.nudger = Nudger(
        bot=application.bot,
        state=data.state,
        library=data.service.library,
        titles={s.source_id: s.title for s in data.service.sources()},
        grace=timedelta(minutes=data.settings.nudge_grace_min),
        retries=data.settings.nudge_send_retries,
        clock=data.clock,
    )
    scheduled = await data.nudger.prepare()
    if scheduled:
        log.info("nudges: next due times computed for %d subscribers", scheduled)
    if application.job_queue is not None:
        data.nudger.start(application.job_queue)
    await application.bot.set_my_commands([BotCommand(name, text) for name, text in handlers.COMMANDS])


async def _post_shutdown(application: Application) -> None:
    data: BotData = application.bot_data
    if data.state is not None:
        await data.state.close()
        data.state = None


def run_bot(
    application: CoachApplication,
    settings: BotSettings,
    *,
    poll_timeout: int = 10,
    handle_signals: bool = True,
) -> None:
    """Run until stopped: long polling, or a webhook server when COACH_WEBHOOK_URL is set. Blocks; uses
    PTB's own run_* so start-up, post_init, shutdown and post_shutdown happen in PTB's order.
    `handle_signals=False` is for running it off the main thread (tests), where signals cannot be caught."""
    signals: dict[str, None] = {} if handle_signals else {"stop_signals": None}
    logging.getLogger("telegram.ext").addFilter(_quiet_invalid_token)
    try:
        _run(application, settings, poll_timeout, signals)
    except InvalidToken:
        # PTB's message quotes the token; the user needs one line saying which variable to fix.
        raise CoachError(
            "Telegram rejected TELEGRAM_BOT_TOKEN: check the token @BotFather gave you (it looks like "
            "123456789:ABC...), and COACH_TELEGRAM_BASE_URL if you use a local Bot API server."
        ) from None


def _quiet_invalid_token(record: logging.LogRecord) -> bool:
    """PTB logs a rejected token with a traceback before raising it; run_bot says it in one line."""
    return not (record.exc_info and isinstance(record.exc_info[1], InvalidToken))


def _run(application: CoachApplication, settings: BotSettings, poll_timeout: int, signals: dict) -> None:
    if settings.webhook_url:
        if settings.webhook_secret is None:
            raise UsageError(
                "COACH_WEBHOOK_URL is set but COACH_WEBHOOK_SECRET is not; webhook mode needs both."
            )
        path = urlsplit(settings.webhook_url).path.strip("/")
        log.info("webhook mode: listening on %s:%s/%s", settings.webhook_listen, settings.webhook_port, path)
        application.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=path,
            webhook_url=settings.webhook_url,
            secret_token=settings.webhook_secret.get_secret_value(),
            allowed_updates=ALLOWED_UPDATES,
            **signals,
        )
    else:
        log.info("polling mode")
        application.run_polling(timeout=poll_timeout, allowed_updates=ALLOWED_UPDATES, **signals)


def load_checked_settings() -> BotSettings:
    """The bot's settings, or one UsageError line saying which variable to set (never its value)."""
    from pydantic import ValidationError

    from bot.settings import load_bot_settings

    try:
        settings = load_bot_settings()
    except ValidationError as exc:  # hide_input_in_errors keeps secret values out of the message
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"invalid setting: {problems}") from None
    if settings.telegram_bot_token is None or not settings.telegram_bot_token.get_secret_value().strip():
        raise UsageError(
            "Set TELEGRAM_BOT_TOKEN to the token @BotFather gave you (see README, Telegram bot)."
        )
    if settings.webhook_url and settings.webhook_secret is None:
        raise UsageError("COACH_WEBHOOK_URL is set but COACH_WEBHOOK_SECRET is not; webhook mode needs both.")
    return settings


def serve(settings: BotSettings | None = None, *, on_ready: Callable[[], None] | None = None) -> None:
    """`coach bot` and `python -m bot`: open what `coach ingest` built, then run until stopped."""
    settings = settings or load_checked_settings()
    service = CoachService.open(settings)
    service.warm_up()  # load the embedding model now, not inside the first runner's deadline
    application = build_application(settings, service)
    if on_ready:  # once Telegram has accepted the token, not before
        started = application.post_init

        async def ready(app: Application) -> None:
            if started is not None:
                await started(app)
            on_ready()

        application.post_init = ready
    run_bot(application, settings)

"""The bot's handlers: small typed coroutines that turn Telegram updates into CoachService calls."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters, Update
from telegram.constants import ChatAction
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationHandlerStop, CallbackContext, ExtBot

from bot.formatting import (
    render_answer,
    render_debates,
    render_disagreements,
    render_source_list,
    render_sources,
    split_html,
)
from bot.limits import AnswerCache, UserGate, Verdict
from bot.nudges import Clock, Nudger, SystemClock
from bot.settings import BotSettings
from coach.answer import CoachService
from coach.errors import CoachError, StateError, UsageError
from coach.models import Answer, Turn
from coach.state import State

log = logging.getLogger(__name__)

HISTORY_TURNS = 6  # as many as the terminal chat keeps
TYPING_EVERY_S = 4.0  # Telegram shows "typing…" for 5 s per chat action
SOURCES, DISAGREE = "src", "dis"

COMMANDS: list[tuple[str, str]] = [
    ("start", "What I am and what I know"),
    ("help", "How to ask, and the commands"),
    ("sources", "The articles I answer from"),
    ("debates", "Where the articles disagree"),
    ("reset", "Forget this chat's history"),
    ("subscribe", "A daily exercise routine at your time"),
    ("unsubscribe", "Stop the daily routine"),
    ("routine", "Today's routine, now"),
    ("stats", "Your routines done and streak"),
]

NOT_MEDICAL = (
    "<b>I am not a medical service.</b> If something hurts badly, keeps getting worse, or comes with chest "
    "pain, dizziness or numbness, stop running and see a doctor or physiotherapist."
)
HELP = (
    "Type a question, for example <i>why do my knees hurt?</i> I answer from my articles (/sources).\n\n"
    "Every claim in my answers carries a mark like [1]; tap <b>Sources</b> under an answer to read the "
    "quoted passages, and <b>Where sources disagree</b> when the articles do not agree.\n\n"
    + "\n".join(f"/{name} – {html.escape(text)}" for name, text in COMMANDS)
)
TEXT_ONLY = "I can only read text messages. Please type your question."
WAIT = "One question at a time, please: I am still working on your last one. Send this one again when it arrives."
TOO_FAST = "You are asking faster than I can answer. Please wait about {seconds} seconds and ask again."
EXPIRED = "That answer has expired, ask again."
SOMETHING_WRONG = "Sorry, something went wrong on my side. Please try again in a moment."
STATE_BUSY = "I could not reach my memory of this chat just now. Please try again in a moment."


@dataclass
class BotData:
    """Everything the handlers share, built once per application (PTB creates it with no arguments;
    build_application fills it in, post_init opens the state, post_shutdown closes it)."""

    settings: BotSettings | None = None
    service: CoachService | None = None
    state: State | None = None
    gate: UserGate = field(default_factory=UserGate)
    answers: AnswerCache = field(default_factory=AnswerCache)
    clock: Clock = field(default_factory=SystemClock)
    nudger: Nudger | None = None  # built by post_init, once the state is open


class CoachContext(CallbackContext[ExtBot[None], dict, dict, BotData]):
    """CallbackContext with typed access to the coach's services."""

    @property
    def coach(self) -> CoachService:
        if self.bot_data.service is None:
            raise RuntimeError("no CoachService attached to the application")
        return self.bot_data.service

    @property
    def settings(self) -> BotSettings:
        if self.bot_data.settings is None:
            raise RuntimeError("no settings attached to the application")
        return self.bot_data.settings

    @property
    def state(self) -> State:
        if self.bot_data.state is None:
            raise RuntimeError("the bot's state is not open (post_init has not run)")
        return self.bot_data.state

    @property
    def gate(self) -> UserGate:
        return self.bot_data.gate

    @property
    def answers(self) -> AnswerCache:
        return self.bot_data.answers


CoachApplication = Application[ExtBot[None], CoachContext, dict, dict, BotData, object]


# --- plumbing ----------------------------------------------------------------------------------------


async def skip_seen(update: Update, context: CoachContext) -> None:
    """Group -1: stop an update whose id was handled before (a re-delivery, or a replay after restart)."""
    try:
        seen = not await context.state.claim_update(update.update_id)
    except StateError as exc:
        # The database is locked or broken: answering an update twice is better than not at all.
        log.warning("could not record update %s (%s); handling it anyway", update.update_id, exc)
        return
    if seen:
        log.info("skipping update %s: already handled", update.update_id)
        raise ApplicationHandlerStop


async def send_html(context: CoachContext, chat_id: int, text: str, **kwargs: object) -> list[Message]:
    """Send HTML split into messages under Telegram's limit; keyword arguments go to the last one."""
    parts = split_html(text)
    sent = []
    for i, part in enumerate(parts):
        extra = kwargs if i == len(parts) - 1 else {}
        sent.append(await context.bot.send_message(chat_id=chat_id, text=part, **extra))
    return sent


@contextlib.asynccontextmanager
async def typing(context: CoachContext, chat_id: int) -> AsyncIterator[None]:
    """Show "typing…" in the chat until the block ends."""

    async def keep_typing() -> None:
        while True:
            try:
                await context.bot.send_chat_action(chat_id=chat_id, action=ChatAction.TYPING)
            except TelegramError as exc:  # cosmetic: never let it cost the answer
                log.debug("chat action failed: %s", exc)
                return
            await asyncio.sleep(TYPING_EVERY_S)

    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def answer_keyboard(key: str, answer: Answer) -> InlineKeyboardMarkup | None:
    """Buttons under an answer; callback data is "<kind>:<id>", far under Telegram's 64 bytes."""
    buttons = []
    if answer.citations:
        buttons.append(InlineKeyboardButton("Sources", callback_data=f"{SOURCES}:{key}"))
    if answer.disagreements:
        buttons.append(InlineKeyboardButton("Where sources disagree", callback_data=f"{DISAGREE}:{key}"))
    return InlineKeyboardMarkup([buttons]) if buttons else None


# --- commands ----------------------------------------------------------------------------------------


async def start(update: Update, context: CoachContext) -> None:
    """Introduce the coach, what it knows and what it is not."""
    sources = render_source_list(context.coach.sources())
    text = (
        "Hi! I am a running coach. I answer from a small library of articles and quote them for every "
        f"claim, and I say so when they do not cover your question.\n\n<b>What I know</b>\n{sources}\n\n"
        f"{NOT_MEDICAL}\n\n{HELP}"
    )
    await send_html(context, update.effective_chat.id, text)


async def help_command(update: Update, context: CoachContext) -> None:
    """How to ask, and the commands."""
    await send_html(context, update.effective_chat.id, HELP)


async def sources_command(update: Update, context: CoachContext) -> None:
    """The articles the coach answers from."""
    text = "<b>The articles I answer from</b>\n" + render_source_list(context.coach.sources())
    await send_html(context, update.effective_chat.id, text)


async def debates_command(update: Update, context: CoachContext) -> None:
    """The disagreement map: every question the articles disagree on, each side with its quotes."""
    await send_html(context, update.effective_chat.id, render_debates(context.coach.debates()))


async def reset(update: Update, context: CoachContext) -> None:
    """Forget this chat's history."""
    try:
        forgotten = await context.state.forget(update.effective_chat.id)
    except StateError as exc:
        log.warning("could not forget chat %s: %s", update.effective_chat.id, exc)
        await send_html(context, update.effective_chat.id, STATE_BUSY)
        return
    text = (
        "Forgotten: your next question starts a new conversation."
        if forgotten
        else "There was nothing to forget."
    )
    await send_html(context, update.effective_chat.id, text)


async def unknown_command(update: Update, context: CoachContext) -> None:
    """A command the bot does not have: say so, then help."""
    command = (update.effective_message.text or "").split()[0]
    await send_html(context, update.effective_chat.id, f"I don't know {html.escape(command)}.\n\n{HELP}")


# --- messages ----------------------------------------------------------------------------------------


async def question(update: Update, context: CoachContext) -> None:
    """Any text message is a question: a red flag is answered at once; anything else is admitted by the
    per-user gate, answered in a thread and sent with its buttons."""
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None or not message.text:
        return
    if await answer_red_flag(context, chat.id, message.text):
        return
    verdict = context.gate.admit(user.id)
    if verdict is not Verdict.GO:
        # Every refused message hears why, quoted, so the runner knows which ones to send again.
        seconds = max(1, round(context.gate.seconds_until_token(user.id)))
        text = WAIT if verdict is Verdict.BUSY else TOO_FAST.format(seconds=seconds)
        quote = ReplyParameters(message_id=message.message_id, allow_sending_without_reply=True)
        await send_html(context, chat.id, text, reply_parameters=quote)
        return
    try:
        try:
            history = await context.state.history(chat.id, HISTORY_TURNS)
        except StateError as exc:  # answer without the conversation rather than not at all
            log.warning("could not read the history of chat %s: %s", chat.id, exc)
            history = []
        async with typing(context, chat.id):
            try:
                # The service owns the one deadline (COACH_ANSWER_DEADLINE_S): it answers, falls back or
                # raises a CoachError with one line to show, in time; the bot adds no timer of its own.
                answer = await context.coach.aanswer(message.text, history)
            except CoachError as exc:
                await send_html(context, chat.id, html.escape(str(exc)))
                return
        key = context.answers.put(answer)
        await send_html(
            context,
            chat.id,
            render_answer(answer, context.coach.source_dates()),
            reply_markup=answer_keyboard(key, answer),
        )
        await remember(context, chat.id, answer)
    finally:
        context.gate.done(user.id)


async def answer_red_flag(context: CoachContext, chat_id: int, text: str) -> bool:
    """Triage on the event loop, before the gate and the answer thread: it is fast and touches no store
    or model server, so an urgent message is answered now whatever the limiter, the busy flag or the
    backends say. False when the message carries no red flag on its own (or is unusable: the answer
    path says why)."""
    try:
        answer = context.coach.red_flag_answer(text)
    except UsageError:
        return False
    if answer is None:
        return False
    log.info("red flag in chat %s (%s): answered before anything else", chat_id, answer.answer[:60])
    await send_html(context, chat_id, render_answer(answer))
    await remember(context, chat_id, answer)
    return True


async def remember(context: CoachContext, chat_id: int, answer: Answer) -> None:
    """Add the turn to the chat's history; a state failure costs only this turn of history."""
    try:
        await context.state.add_turn(
            chat_id, Turn(question=answer.question, answer=answer.answer), keep=HISTORY_TURNS
        )
    except StateError as exc:  # the answer is sent; only this turn is missing from the history
        log.warning("could not store a turn of chat %s: %s", chat_id, exc)


async def not_text(update: Update, context: CoachContext) -> None:
    """Stickers, photos, voice and other attachments: a short "text only", at most once per few seconds."""
    user, chat = update.effective_user, update.effective_chat
    if user is not None and chat is not None and context.gate.should_warn(user.id):
        await send_html(context, chat.id, TEXT_ONLY)


async def button(update: Update, context: CoachContext) -> None:
    """The Sources / Where sources disagree buttons: look the answer up by the id in the callback data."""
    query = update.callback_query
    kind, _, key = (query.data or "").partition(":")
    answer = context.answers.get(key)
    if answer is None or kind not in (SOURCES, DISAGREE):
        await query.answer(EXPIRED)
        if update.effective_chat is not None:
            await send_html(context, update.effective_chat.id, EXPIRED)
        return
    await query.answer()
    if update.effective_chat is None:
        return
    text = (
        render_sources(answer, context.coach.source_dates())
        if kind == SOURCES
        else render_disagreements(answer)
    )
    await send_html(context, update.effective_chat.id, text)


async def on_error(update: object, context: CoachContext) -> None:
    """The one error handler: log with context, and tell the user something went wrong."""
    where = ""
    if isinstance(update, Update):
        chat = update.effective_chat
        where = f" (update {update.update_id}, chat {chat.id if chat else '-'})"
    log.error("error while handling an update%s", where, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(chat_id=update.effective_chat.id, text=SOMETHING_WRONG)
        except TelegramError:
            log.warning("could not tell chat %s about the error", update.effective_chat.id)

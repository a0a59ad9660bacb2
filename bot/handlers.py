"""The bot's handlers: small typed coroutines that turn Telegram updates into CoachService calls."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction
from telegram.error import TelegramError, TimedOut
from telegram.ext import Application, ApplicationHandlerStop, CallbackContext, ExtBot

from bot import delivery
from bot.delivery import set_keyboard
from bot.formatting import (
    esc,
    render_answer,
    render_debate,
    render_debate_list,
    render_disagreements,
    render_source_list,
    render_sources,
)
from bot.limits import AnswerCache, PressedButtons, ReplyPacer, SeenEdits, UserGate, Verdict
from bot.longtext import pick_question, windows
from bot.nudges import Clock, Nudger, SystemClock
from bot.order import ChatOrder
from bot.settings import BotSettings
from coach.answer import CoachService
from coach.errors import CoachError, StateError, UsageError
from coach.models import Answer, Turn
from coach.state import State

log = logging.getLogger(__name__)

HISTORY_TURNS = 6  # as many as the terminal chat keeps
TYPING_EVERY_S = 4.0  # Telegram shows "typing…" for 5 s per chat action
SOURCES, DISAGREE, DEBATE = "src", "dis", "deb"
DEBATE_LABEL_CHARS = 48  # a topic button's label; Telegram shows about this much on a phone

COMMANDS: list[tuple[str, str]] = [
    ("start", "What I am and what I know"),
    ("help", "How to ask, and the commands"),
    ("sources", "The articles I answer from"),
    ("debates", "Where the articles disagree"),
    ("reset", "Forget this chat's history"),
    ("subscribe", "A daily exercise routine at your time"),
    ("unsubscribe", "Stop the daily routine"),
    ("routine", "Your next routine, now"),
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
TOO_FAST = (
    "I did not take this one: you are asking faster than I can answer. "
    "Please send it again in about {seconds} seconds."
)
EXPIRED = "That answer has expired: ask your question again."
UNSURE = "Telegram was slow to take my answer to “{question}”: if you do not see it above, please ask again."
NO_QUESTION = (
    "That message is {length:,} characters long and I could not find a question in it to answer. "
    "Please ask it in a sentence (under {limit:,} characters), for example: <i>why do my knees hurt?</i>"
)
UNDELIVERED = (
    "Sorry, my answer to “{question}” did not get through: Telegram was not taking messages for a moment. "
    "Please ask again."
)
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
    order: ChatOrder = field(default_factory=ChatOrder)
    pacer: ReplyPacer = field(default_factory=ReplyPacer)
    edits: SeenEdits = field(default_factory=SeenEdits)
    pressed: PressedButtons = field(default_factory=PressedButtons)
    flows: dict[int, int] = field(default_factory=dict)  # chat -> its /subscribe message with live buttons


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
    """Send HTML split into messages under Telegram's limit, transient faults retried (bot/delivery.py);
    keyword arguments go to the last part."""
    return await delivery.send_html(context.bot, chat_id, text, **kwargs)


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
    # What the library covers comes from the library (corpus/domain.toml, else its titles): the coach
    # promises no more than its articles hold.
    covers = context.coach.covers().strip().rstrip(".")
    text = (
        f"Hi! I am a running coach for <b>{esc(covers)}</b>.\n\nI answer only from the articles below, "
        "quote them for every claim, and say so when they do not cover your question.\n\n"
        f"<b>The articles</b>\n{sources}\n\n{NOT_MEDICAL}\n\n{HELP}"
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
    """The disagreement map, short: the topics, with a button per topic for its evidence."""
    items = context.coach.debates()
    buttons = []
    for i, item in enumerate(items):
        topic = f"{i + 1}. {item['topic']}"
        label = topic if len(topic) <= DEBATE_LABEL_CHARS else topic[: DEBATE_LABEL_CHARS - 1] + "…"
        buttons.append([InlineKeyboardButton(label, callback_data=f"{DEBATE}:{i}")])
    markup = InlineKeyboardMarkup(buttons) if buttons else None
    await send_html(context, update.effective_chat.id, render_debate_list(items), reply_markup=markup)


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
    """Any text message, new or edited, is a question. A red flag is answered at once (in any part of a
    long message); a message over the user's allowance gets one reply saying when to ask again; the rest
    are answered one at a time per chat, in the order they came (bot/order.py), with "typing…" shown only
    while one is being answered."""
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None or not message.text:
        return
    order, ticket = context.bot_data.order, update.update_id
    try:
        if update.edited_message is not None:
            edit = (
                chat.id,
                message.message_id,
                int(message.edit_date.timestamp()) if message.edit_date else 0,
            )
            if not context.bot_data.edits.first(edit):
                return
        if await answer_red_flag(context, chat.id, message.text):
            return
        if context.gate.admit(user.id) is not Verdict.GO:
            order.release(chat.id, ticket)  # a refusal waits for no earlier question
            await refuse(context, chat.id, message.message_id, lambda: too_fast(context, user.id))
            return
        await order.turn(chat.id, ticket)
        await _answer(context, chat.id, message.text)
    finally:
        order.release(chat.id, ticket)


async def _answer(context: CoachContext, chat_id: int, text: str) -> None:
    limit = context.coach.settings.max_question_chars
    asked = pick_question(text, limit)
    if asked is None:
        await deliver(context, chat_id, NO_QUESTION.format(length=len(text), limit=limit), text[:80])
        return
    try:
        history = await context.state.history(chat_id, HISTORY_TURNS)
    except StateError as exc:  # answer without the conversation rather than not at all
        log.warning("could not read the history of chat %s: %s", chat_id, exc)
        history = []
    async with typing(context, chat_id):
        try:
            # The service owns the one deadline (COACH_ANSWER_DEADLINE_S): it answers, falls back or
            # raises a CoachError with one line to show, in time; the bot adds no timer of its own.
            answer = await context.coach.aanswer(asked.question, history)
        except CoachError as exc:
            await deliver(context, chat_id, html.escape(str(exc)), asked.question)
            return
    key = context.answers.put(answer)
    head = ""
    if asked.partial:
        which = "last question" if asked.question.rstrip().endswith("?") else "last sentence"
        head = f"<i>Your message was long, so I answered its {which}: “{esc(asked.question)}”</i>\n\n"
    body = head + render_answer(answer, context.coach.source_dates())
    if await deliver(context, chat_id, body, asked.question, reply_markup=answer_keyboard(key, answer)):
        await remember(context, chat_id, answer)


async def deliver(context: CoachContext, chat_id: int, text: str, asked: str, **kwargs: object) -> bool:
    """Send an answer; when Telegram keeps failing after the retries, or the send timed out, tell the
    runner once which question's answer did not (or may not have) got through, so nothing is lost
    without a word. True when the answer was certainly sent."""
    short = asked if len(asked) <= 80 else asked[:79] + "…"
    try:
        await send_html(context, chat_id, text, **kwargs)
    except TimedOut as exc:  # it has most likely arrived, late: say so rather than send it twice
        await _notice(
            context, chat_id, UNSURE.format(question=esc(short)), "sending the answer timed out", exc
        )
        return False
    except TelegramError as exc:
        await _notice(
            context,
            chat_id,
            UNDELIVERED.format(question=esc(short)),
            "answer not delivered after retries",
            exc,
        )
        return False
    return True


async def _notice(context: CoachContext, chat_id: int, notice: str, what: str, exc: TelegramError) -> None:
    """Log what happened to an answer and tell the runner; a notice that fails too is logged."""
    log.warning("chat %s: %s (%s)", chat_id, what, exc)
    try:
        await send_html(context, chat_id, notice)
    except TelegramError as again:
        log.error("chat %s: could not tell the runner either (%s: %s)", chat_id, what, again)


def too_fast(context: CoachContext, user_id: int) -> str:
    seconds = max(1, math.ceil(context.gate.seconds_until_token(user_id)))
    return TOO_FAST.format(seconds=seconds)


async def refuse(context: CoachContext, chat_id: int, message_id: int, text: Callable[[], str]) -> None:
    """One reply to one refused message, quoting it, paced per chat (a flood is answered message by
    message, not all at once); the text is made when it is sent, so "ask again in N seconds" is
    current. No "typing…" goes with it: nothing is being written."""
    async with context.bot_data.pacer.limiter(chat_id):
        quote = ReplyParameters(message_id=message_id, allow_sending_without_reply=True)
        try:
            await send_html(context, chat_id, text(), reply_parameters=quote)
        except TelegramError as exc:
            log.warning("chat %s: a refusal was not delivered (%s)", chat_id, exc)


async def answer_red_flag(context: CoachContext, chat_id: int, text: str) -> bool:
    """Triage on the event loop, before the gate and the queue: it is fast and touches no store or
    model server, so an urgent message is answered now whatever the limiter, the queue or the backends
    say. A long message is read whole, in pieces the size of a question. False when the message carries
    no red flag on its own (or is unusable: the answer path says why)."""
    limit = context.coach.settings.max_question_chars
    for piece in windows(text, limit) if len(text) > limit else [text]:
        try:
            answer = context.coach.red_flag_answer(piece)
        except UsageError:
            continue
        if answer is not None:
            break
    else:
        return False
    log.info("red flag in chat %s (%s): answered before anything else", chat_id, answer.answer[:60])
    if await deliver(context, chat_id, render_answer(answer), answer.question):
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
    """Stickers, photos, voice and other attachments: "text only", one reply each, paced like refusals."""
    message, chat = update.effective_message, update.effective_chat
    if message is not None and chat is not None:
        await refuse(context, chat.id, message.message_id, lambda: TEXT_ONLY)


# --- buttons -----------------------------------------------------------------------------------------


def without_buttons(markup: InlineKeyboardMarkup | None, used: set[str]) -> InlineKeyboardMarkup | None:
    """The keyboard less the buttons already used; None when nothing is left."""
    if markup is None:
        return None
    rows = [[b for b in row if b.callback_data not in used] for row in markup.inline_keyboard]
    rows = [row for row in rows if row]
    return InlineKeyboardMarkup(rows) if rows else None


async def used(context: CoachContext, query: CallbackQuery) -> None:
    """A "show me" button has done its work: take it off its message (the rest stay). The buttons used
    under a message are remembered, because two quick presses each carry the keyboard as it was before
    either edit: the second must not bring the first one's button back."""
    message = query.message
    if isinstance(message, Message) and query.data:
        pressed, lock = context.bot_data.pressed.add((message.chat.id, message.message_id), query.data)
        async with lock:  # computed inside: the last edit to go out holds every press so far
            markup = without_buttons(message.reply_markup, pressed)
            await set_keyboard(context.bot, message.chat.id, message.message_id, markup)


async def expired(context: CoachContext, query: CallbackQuery, text: str = EXPIRED) -> None:
    """A button whose answer is gone: a toast, and the dead keyboard removed; no chat message."""
    await query.answer(text)
    message = query.message
    if isinstance(message, Message) and message.reply_markup is not None:
        await set_keyboard(context.bot, message.chat.id, message.message_id, None)


async def button(update: Update, context: CoachContext) -> None:
    """The Sources / Where sources disagree buttons: look the answer up by the id in the callback data."""
    query = update.callback_query
    kind, _, key = (query.data or "").partition(":")
    answer = context.answers.get(key)
    if answer is None or kind not in (SOURCES, DISAGREE) or update.effective_chat is None:
        await expired(context, query)
        return
    await query.answer()
    text = (
        render_sources(answer, context.coach.source_dates())
        if kind == SOURCES
        else render_disagreements(answer)
    )
    await send_html(context, update.effective_chat.id, text)
    await used(context, query)


async def debate_button(update: Update, context: CoachContext) -> None:
    """A topic under /debates: that disagreement, each side with its quotes and their articles."""
    query = update.callback_query
    items = context.coach.debates()
    _, _, raw = (query.data or "").partition(":")
    if not raw.isdigit() or not 0 <= int(raw) < len(items) or update.effective_chat is None:
        await expired(context, query, "That list has changed: send /debates again.")
        return
    await query.answer()
    titles = {s.source_id: s.title for s in context.coach.sources()}
    await send_html(context, update.effective_chat.id, render_debate(items[int(raw)], titles))
    await used(context, query)


async def on_error(update: object, context: CoachContext) -> None:
    """The one error handler: log with context, and tell the user something went wrong."""
    where = ""
    if isinstance(update, Update):
        chat = update.effective_chat
        where = f" (update {update.update_id}, chat {chat.id if chat else '-'})"
    log.error("error while handling an update%s", where, exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await send_html(context, update.effective_chat.id, SOMETHING_WRONG)
        except TelegramError:
            log.warning("could not tell chat %s about the error", update.effective_chat.id)

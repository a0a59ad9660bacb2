"""Handlers for daily nudges: /subscribe (buttons or free text), /unsubscribe, /routine, /stats, and the
Done / Snooze buttons under a nudge."""

from __future__ import annotations

import functools
import html
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from telegram import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType

from bot.delivery import edit_html, set_keyboard
from bot.formatting import render_debate
from bot.handlers import CoachContext, expired, send_html
from bot.nudges import (
    DONE,
    SNOOZE,
    SNOOZE_DATA,
    first_day,
    local_today,
    next_fire,
    next_nudge,
    nudge_keyboard,
    parse_time,
    parse_zone,
    programme_day,
    render_routine,
)
from coach.routines import FREQUENCIES

SUB = "sub"  # callback data: sub|t|HH:MM, sub|z|HH:MM|Zone, sub|f|HH:MM|Zone|frequency (<= 64 bytes)
COMMON_TIMES = ("06:00", "06:30", "07:00", "07:30", "12:00", "18:00", "19:00", "20:00")
COMMON_ZONES = (
    "Europe/London",
    "Europe/Berlin",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
)
FREQUENCY_LABELS = {"daily": "Daily", "twice-weekly": "Twice a week"}
USAGE = (
    "Usage: <code>/subscribe HH:MM Area/City</code>, e.g. <code>/subscribe 07:30 Europe/Berlin</code>, "
    "optionally followed by <code>daily</code> or <code>twice-weekly</code>; or just /subscribe for buttons."
)


def _rows(buttons: list[InlineKeyboardButton], width: int) -> list[list[InlineKeyboardButton]]:
    return [buttons[i : i + width] for i in range(0, len(buttons), width)]


def frequency_screen(context: CoachContext) -> str:
    """Both positions of the frequency disagreement, each once with its quotes, so the runner chooses
    knowing the articles differ."""
    # The map's frequency rule finds it, whatever the library trains and whatever its topic is called.
    debate = next((d for d in context.coach.debate_map.disagreements if d.rule == "frequency"), None)
    lines = ["<b>How often?</b>"]
    if debate is None:
        lines.append("Choose how often you want a routine.")
        return "\n".join(lines)
    titles = {s.source_id: s.title for s in context.coach.sources()}
    lines.append("The articles disagree:")
    lines.append(render_debate(debate, titles, heading=False))
    lines.append("\nChoose one; you can change it with /subscribe at any time.")
    return "\n".join(lines)


TASTER = (
    "\n\n<i>A taster: /subscribe and I send you one like it every day at your time, with a Done button "
    "that keeps your streak.</i>"
)
GROUP_REPLY = "Daily routines are personal: subscribe in a private chat with me."


def private_only(
    callback: Callable[[Update, CoachContext], Awaitable[None]],
) -> Callable[[Update, CoachContext], Awaitable[None]]:
    """Subscriptions belong to one runner: in a group, any member could change the group's, so the
    commands and buttons that change one work only in a private chat (whose id is the runner's)."""

    @functools.wraps(callback)
    async def guarded(update: Update, context: CoachContext) -> None:
        chat = update.effective_chat
        if chat is not None and chat.type == ChatType.PRIVATE:
            await callback(update, context)
        elif update.callback_query is not None:
            await update.callback_query.answer(GROUP_REPLY)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(GROUP_REPLY)

    return guarded


async def _close_flow(context: CoachContext, chat_id: int) -> None:
    """A /subscribe message whose buttons are still live is stale once another starts or the runner
    types the whole command: its buttons go."""
    message_id = context.bot_data.flows.pop(chat_id, None)
    if message_id is not None:
        await set_keyboard(context.bot, chat_id, message_id, None)


async def _show(
    context: CoachContext,
    chat_id: int,
    message_id: int | None,
    text: str,
    markup: InlineKeyboardMarkup | None,
) -> None:
    """One step of the flow: the flow's message edited in place, or a new one when there is none (a
    typed command) or it can no longer be edited. A message with buttons is the chat's live flow."""
    if message_id is None or not await edit_html(context.bot, chat_id, message_id, text, markup):
        if message_id is not None:
            await set_keyboard(context.bot, chat_id, message_id, None)
        [*_, sent] = await send_html(context, chat_id, text, reply_markup=markup)
        message_id = sent.message_id
    if markup is not None:
        context.bot_data.flows[chat_id] = message_id
    elif context.bot_data.flows.get(chat_id) == message_id:
        del context.bot_data.flows[chat_id]


@private_only
async def subscribe(update: Update, context: CoachContext) -> None:
    """/subscribe [HH:MM Area/City [daily|twice-weekly]]: buttons for what is missing, in one message
    that each choice edits."""
    chat = update.effective_chat
    args = list(context.args or [])
    await _close_flow(context, chat.id)
    if not args:
        buttons = [InlineKeyboardButton(t, callback_data=f"{SUB}|t|{t}") for t in COMMON_TIMES]
        await _show(
            context,
            chat.id,
            None,
            "<b>When should I send your daily routine?</b> Pick a time, or type it, e.g. "
            "<code>/subscribe 07:30 Europe/Berlin</code>.",
            InlineKeyboardMarkup(_rows(buttons, 4)),
        )
        return
    local_time = parse_time(args[0])
    zone = parse_zone(args[1]) if len(args) > 1 else None
    frequency = args[2].lower() if len(args) > 2 else None
    problems = []
    if local_time is None:
        problems.append(f"“{html.escape(args[0])}” is not a time of day (00:00 to 23:59).")
    if len(args) > 1 and zone is None:
        problems.append(f"“{html.escape(args[1])}” is not a time zone I know (like Europe/Berlin or UTC).")
    if frequency is not None and frequency not in FREQUENCIES:
        problems.append(f"“{html.escape(args[2])}” is not daily or twice-weekly.")
    if len(args) > 3:
        problems.append("Too many words.")
    if problems:
        await send_html(context, chat.id, " ".join(problems) + "\n\n" + USAGE)
        return
    if zone is None:
        await _ask_zone(context, chat.id, None, local_time)
    elif frequency is None:
        await _ask_frequency(context, chat.id, None, local_time, zone)
    else:
        await _subscribe(context, chat.id, None, local_time, zone, frequency)


async def _ask_zone(context: CoachContext, chat_id: int, message_id: int | None, local_time: str) -> None:
    buttons = [InlineKeyboardButton(z, callback_data=f"{SUB}|z|{local_time}|{z}") for z in COMMON_ZONES]
    text = (
        f"<b>{local_time} in which time zone?</b> Not listed? Type "
        f"<code>/subscribe {local_time} Area/City</code>."
    )
    await _show(context, chat_id, message_id, text, InlineKeyboardMarkup(_rows(buttons, 2)))


async def _ask_frequency(
    context: CoachContext, chat_id: int, message_id: int | None, local_time: str, zone: str
) -> None:
    buttons = [
        InlineKeyboardButton(FREQUENCY_LABELS[f], callback_data=f"{SUB}|f|{local_time}|{zone}|{f}")
        for f in FREQUENCIES
    ]
    await _show(context, chat_id, message_id, frequency_screen(context), InlineKeyboardMarkup([buttons]))


async def _subscribe(
    context: CoachContext, chat_id: int, message_id: int | None, local_time: str, zone: str, frequency: str
) -> None:
    nudger = context.bot_data.nudger
    now = nudger.clock.now()
    sub = await context.state.subscribe(
        chat_id, local_time, zone, frequency, first_day(local_time, zone, now), now=now, grace=nudger.grace
    )
    at = sub.next_due_at
    # One owed now (a changed time already past today, inside the grace window) goes out at the next tick.
    when = next_fire(sub, now) if at is None or at <= now else at
    first = ""
    if when is not None:
        local = when.astimezone(ZoneInfo(zone))
        day = "today" if local.date() == now.astimezone(ZoneInfo(zone)).date() else f"on {local:%a %d %b}"
        first = f" The next one comes {day} at {local:%H:%M}."
    text = (
        f"Subscribed: a routine {FREQUENCY_LABELS[frequency].lower()} at {local_time} ({html.escape(zone)}).{first}"
        "\n/routine shows your next one now, /stats your streak, /unsubscribe stops them."
    )
    await _show(context, chat_id, message_id, text, None)


@private_only
async def subscribe_button(update: Update, context: CoachContext) -> None:
    """The time, zone and frequency buttons of /subscribe: each edits the flow's message to its next
    step; a button of a flow that is over gives a toast only."""
    query = update.callback_query
    parts = (query.data or "").split("|")
    chat_id = update.effective_chat.id
    message_id = query.message.message_id if isinstance(query.message, Message) else None
    step, rest = (parts[1], parts[2:]) if len(parts) > 1 else ("", [])
    local_time = parse_time(rest[0]) if rest else None
    zone = parse_zone(rest[1]) if len(rest) > 1 else None
    if step == "t" and local_time:
        await query.answer()
        await _ask_zone(context, chat_id, message_id, local_time)
    elif step == "z" and local_time and zone:
        await query.answer()
        await _ask_frequency(context, chat_id, message_id, local_time, zone)
    elif step == "f" and local_time and zone and len(rest) > 2 and rest[2] in FREQUENCIES:
        await query.answer()
        await _subscribe(context, chat_id, message_id, local_time, zone, rest[2])
    else:
        await expired(context, query, "That button has expired: send /subscribe again.")


@private_only
async def unsubscribe(update: Update, context: CoachContext) -> None:
    """/unsubscribe: no more nudges (the streak is kept)."""
    chat_id = update.effective_chat.id
    stopped = await context.state.deactivate(chat_id, "unsubscribed")
    text = (
        "Unsubscribed: no more daily routines. /subscribe starts them again."
        if stopped
        else "You are not subscribed. /subscribe to get a daily routine."
    )
    await send_html(context, chat_id, text)


async def _today_and_day(context: CoachContext, chat_id: int) -> tuple[date | None, int, str]:
    sub = await context.state.subscription(chat_id)
    if sub is None or not sub.active:
        return None, 1, "daily"
    today = local_today(sub, context.bot_data.nudger.clock.now())
    return today, max(1, programme_day(sub, today)), sub.frequency


async def routine(update: Update, context: CoachContext) -> None:
    """/routine: a subscriber's next routine (today's while it is not done, with a Done button on a
    day that has a nudge); a taster of day 1 for anyone else."""
    chat_id = update.effective_chat.id
    titles = {s.source_id: s.title for s in context.coach.sources()}
    library = context.coach.library
    sub = await context.state.subscription(chat_id)
    if sub is None or not sub.active:
        text = render_routine(library, 1, "daily", titles) + TASTER  # type: ignore[arg-type]
        await send_html(context, chat_id, text)
        return
    now = context.bot_data.nudger.clock.now()
    today = local_today(sub, now)
    delivery = await context.state.delivery(chat_id, today)
    open_today = delivery is not None and delivery.status == "sent" and delivery.done_at is None
    if open_today:
        day = programme_day(sub, today)
        text = render_routine(library, day, sub.frequency, titles)  # type: ignore[arg-type]
        [*_, sent] = await send_html(context, chat_id, text, reply_markup=nudge_keyboard(today, snooze=False))
        context.bot_data.nudger.keyboards.add(chat_id, today, sent.message_id)
        return
    found = next_nudge(sub, now, context.bot_data.nudger.grace, after=today if delivery else None)
    if found is None:
        await send_html(context, chat_id, "You have no routine coming. /subscribe to get one.")
        return
    local_date, at = found
    day = programme_day(sub, local_date)
    when = "today" if local_date == today else f"on {local_date:%a %d %b}"
    text = render_routine(library, day, sub.frequency, titles)  # type: ignore[arg-type]
    text += f"\n\n<i>Your next routine: it comes {when} at {sub.local_time}, with its Done button.</i>"
    await send_html(context, chat_id, text)


async def stats(update: Update, context: CoachContext) -> None:
    """/stats: the subscription, nudges sent and done, the streak."""
    chat_id = update.effective_chat.id
    sub = await context.state.subscription(chat_id)
    today, day, _frequency = await _today_and_day(context, chat_id)
    numbers = await context.state.stats(chat_id, today or date.today())
    if sub is None:
        head = "You are not subscribed. /subscribe to get a daily routine."
    elif not sub.active:
        head = f"Not subscribed ({html.escape(sub.reason or 'stopped')})."
    else:
        head = (
            f"Subscribed: {FREQUENCY_LABELS.get(sub.frequency, sub.frequency).lower()} at {sub.local_time} "
            f"({html.escape(sub.tz)}); today is day {day}."
        )
    await send_html(
        context,
        chat_id,
        f"{head}\nRoutines sent: {numbers.sent}; done: {numbers.done}.\n"
        f"Streak: {numbers.streak} (best {numbers.best_streak}).",
    )


@private_only
async def nudge_button(update: Update, context: CoachContext) -> None:
    """Done (keeps the streak) and Snooze 1 h under a nudge: the buttons are replaced by what they did,
    in the same message."""
    query = update.callback_query
    kind, _, raw = (query.data or "").partition("|")
    chat_id = update.effective_chat.id
    try:
        local_date = date.fromisoformat(raw)
    except ValueError:
        await expired(context, query, "That button has expired.")
        return
    nudger = context.bot_data.nudger
    now = nudger.clock.now().timestamp()
    if kind in (DONE, SNOOZE_DATA) and await context.state.delivery(chat_id, local_date) is None:
        await expired(context, query, "That button has expired.")  # no such nudge in this chat
        return
    if kind == DONE:
        marked = await context.state.mark_done(chat_id, local_date, now)
        today, _day, _f = await _today_and_day(context, chat_id)
        streak = (await context.state.stats(chat_id, today or local_date)).streak
        await query.answer("Done, well done!" if marked else "Already marked done.")
        result = f"✅ Done. Streak: {streak}." if marked else "✅ Already marked done."
    elif kind == SNOOZE_DATA:
        until = now + SNOOZE.total_seconds()
        if await context.state.snooze(chat_id, local_date, until):  # the nudge tick sends it then
            sub = await context.state.subscription(chat_id)
            zone = ZoneInfo(sub.tz) if sub is not None else UTC
            at = datetime.fromtimestamp(until, UTC).astimezone(zone)
            await query.answer("I'll remind you in an hour.")
            result = f"⏰ Snoozed: I will send it again at {at:%H:%M}."
        else:
            await query.answer("Already done or snoozed.")
            result = "Already done or snoozed."
    else:
        await expired(context, query, "That button has expired.")
        return
    await _replace_buttons(context, query, result)
    if kind == DONE:  # the day's other Done buttons (its reminder, a /routine) are stale now
        pressed = query.message.message_id if isinstance(query.message, Message) else None
        for other in nudger.keyboards.others(chat_id, local_date, pressed):
            await set_keyboard(context.bot, chat_id, other, None)


async def _replace_buttons(context: CoachContext, query: CallbackQuery, result: str) -> None:
    """The pressed message keeps its text, the keyboard gives way to the result line."""
    message = query.message
    if not isinstance(message, Message):
        await send_html(context, _private_chat(query), html.escape(result))
        return
    text = f"{message.text_html}\n\n<b>{html.escape(result)}</b>"
    if not await edit_html(context.bot, message.chat.id, message.message_id, text, None):
        await set_keyboard(context.bot, message.chat.id, message.message_id, None)
        await send_html(context, message.chat.id, html.escape(result))


def _private_chat(query: CallbackQuery) -> int:
    return query.from_user.id  # buttons that change a subscription work in private chats only

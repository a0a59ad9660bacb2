"""Handlers for daily nudges: /subscribe (buttons or free text), /unsubscribe, /routine, /stats, and the
Done / Snooze buttons under a nudge."""

from __future__ import annotations

import functools
import html
from collections.abc import Awaitable, Callable
from datetime import date
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType

from bot.handlers import CoachContext, send_html
from bot.nudges import (
    DONE,
    SNOOZE,
    SNOOZE_DATA,
    first_day,
    local_today,
    next_fire,
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
    """Both positions of the frequency disagreement, each with its quotes, so the runner chooses knowing
    the articles differ."""
    # The map's frequency rule finds it, whatever the library trains and whatever its topic is called.
    debate = next((d for d in context.coach.debate_map.disagreements if d.rule == "frequency"), None)
    lines = ["<b>How often?</b>"]
    if debate is None:
        lines.append("Choose how often you want a routine.")
        return "\n".join(lines)
    titles = {s.source_id: s.title for s in context.coach.sources()}
    lines.append("The articles disagree:")
    for position in debate.positions:
        lines.append(f"\n• {html.escape(position.summary)}")
        for e in position.evidence:
            title = titles.get(e.source_id, e.source_id)
            lines.append(f"  <i>“{html.escape(e.quote)}”</i> – {html.escape(title)}")
    lines.append("\nChoose one; you can change it with /subscribe at any time.")
    return "\n".join(lines)


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


@private_only
async def subscribe(update: Update, context: CoachContext) -> None:
    """/subscribe [HH:MM Area/City [daily|twice-weekly]]: buttons for what is missing."""
    chat = update.effective_chat
    args = list(context.args or [])
    if not args:
        buttons = [InlineKeyboardButton(t, callback_data=f"{SUB}|t|{t}") for t in COMMON_TIMES]
        await send_html(
            context,
            chat.id,
            "<b>When should I send your daily routine?</b> Pick a time, or type it, e.g. "
            "<code>/subscribe 07:30 Europe/Berlin</code>.",
            reply_markup=InlineKeyboardMarkup(_rows(buttons, 4)),
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
        await _ask_zone(context, chat.id, local_time)
    elif frequency is None:
        await _ask_frequency(context, chat.id, local_time, zone)
    else:
        await _subscribe(context, chat.id, local_time, zone, frequency)


async def _ask_zone(context: CoachContext, chat_id: int, local_time: str) -> None:
    buttons = [InlineKeyboardButton(z, callback_data=f"{SUB}|z|{local_time}|{z}") for z in COMMON_ZONES]
    await send_html(
        context,
        chat_id,
        f"<b>{local_time} in which time zone?</b> Not listed? Type "
        f"<code>/subscribe {local_time} Area/City</code>.",
        reply_markup=InlineKeyboardMarkup(_rows(buttons, 2)),
    )


async def _ask_frequency(context: CoachContext, chat_id: int, local_time: str, zone: str) -> None:
    buttons = [
        InlineKeyboardButton(FREQUENCY_LABELS[f], callback_data=f"{SUB}|f|{local_time}|{zone}|{f}")
        for f in FREQUENCIES
    ]
    await send_html(context, chat_id, frequency_screen(context), reply_markup=InlineKeyboardMarkup([buttons]))


async def _subscribe(context: CoachContext, chat_id: int, local_time: str, zone: str, frequency: str) -> None:
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
        first = f" The next one comes on {when.astimezone(ZoneInfo(zone)):%a %d %b at %H:%M}."
    await send_html(
        context,
        chat_id,
        f"Subscribed: a routine {FREQUENCY_LABELS[frequency].lower()} at {local_time} ({html.escape(zone)}).{first}"
        "\n/routine shows today's now, /stats your streak, /unsubscribe stops them.",
    )


@private_only
async def subscribe_button(update: Update, context: CoachContext) -> None:
    """The time, zone and frequency buttons of /subscribe."""
    query = update.callback_query
    parts = (query.data or "").split("|")
    await query.answer()
    chat_id = update.effective_chat.id
    step, rest = (parts[1], parts[2:]) if len(parts) > 1 else ("", [])
    local_time = parse_time(rest[0]) if rest else None
    zone = parse_zone(rest[1]) if len(rest) > 1 else None
    if step == "t" and local_time:
        await _ask_zone(context, chat_id, local_time)
    elif step == "z" and local_time and zone:
        await _ask_frequency(context, chat_id, local_time, zone)
    elif step == "f" and local_time and zone and len(rest) > 2 and rest[2] in FREQUENCIES:
        await _subscribe(context, chat_id, local_time, zone, rest[2])
    else:
        await send_html(context, chat_id, "That button has expired. " + USAGE)


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
    """/routine: today's routine, now."""
    chat_id = update.effective_chat.id
    _today, day, frequency = await _today_and_day(context, chat_id)
    titles = {s.source_id: s.title for s in context.coach.sources()}
    await send_html(context, chat_id, render_routine(context.coach.library, day, frequency, titles))  # type: ignore[arg-type]


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
    """Done (keeps the streak) and Snooze 1 h under a nudge."""
    query = update.callback_query
    kind, _, raw = (query.data or "").partition("|")
    chat_id = update.effective_chat.id
    try:
        local_date = date.fromisoformat(raw)
    except ValueError:
        await query.answer("That button has expired.")
        return
    nudger = context.bot_data.nudger
    now = nudger.clock.now().timestamp()
    if kind == DONE:
        marked = await context.state.mark_done(chat_id, local_date, now)
        today, _day, _f = await _today_and_day(context, chat_id)
        streak = (await context.state.stats(chat_id, today or local_date)).streak
        await query.answer("Done, well done!" if marked else "Already marked done.")
        if marked:
            await send_html(context, chat_id, f"Well done! Streak: {streak}.")
    elif kind == SNOOZE_DATA:
        until = now + SNOOZE.total_seconds()
        if await context.state.snooze(chat_id, local_date, until):  # the nudge tick sends it then
            await query.answer("I'll remind you in an hour.")
        else:
            await query.answer("Already done or snoozed.")
    else:
        await query.answer("That button has expired.")

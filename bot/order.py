"""Per-chat order for questions: PTB handles updates concurrently, so one chat's questions are queued
and answered in the order they arrived, while other chats, red flags and refusals go ahead at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from telegram import Update
from telegram.ext import SimpleUpdateProcessor


class ChatOrder:
    """Tickets per chat in arrival order. `register` is called in the order updates are fetched (by
    ChatOrderProcessor), `turn` waits until every earlier ticket of the chat is released, `release` ends
    a ticket (early for a red flag or a refusal, which wait for nothing). Runs on the event loop only.
    Hand-written: PTB offers concurrency per update but no ordering per chat."""

    def __init__(self) -> None:
        self._queues: dict[int, list[int]] = {}
        self._waiting: dict[tuple[int, int], asyncio.Event] = {}

    def register(self, chat_id: int, ticket: int) -> None:
        self._queues.setdefault(chat_id, []).append(ticket)

    def waiting(self, chat_id: int, ticket: int) -> int:
        """How many tickets of this chat are ahead of this one."""
        queue = self._queues.get(chat_id, [])
        return queue.index(ticket) if ticket in queue else 0

    async def turn(self, chat_id: int, ticket: int) -> None:
        """Wait until this ticket is the chat's first; at once when it was never registered (an update a
        test hands to the application directly)."""
        queue = self._queues.get(chat_id, [])
        if ticket not in queue or queue[0] == ticket:
            return
        event = self._waiting.setdefault((chat_id, ticket), asyncio.Event())
        try:
            await event.wait()
        finally:
            self._waiting.pop((chat_id, ticket), None)

    def release(self, chat_id: int, ticket: int) -> None:
        queue = self._queues.get(chat_id)
        if queue is None or ticket not in queue:
            return
        queue.remove(ticket)
        if not queue:
            del self._queues[chat_id]
            return
        event = self._waiting.get((chat_id, queue[0]))
        if event is not None:
            event.set()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())


def ticket_of(update: object) -> tuple[int, int] | None:
    """(chat id, update id) of an update that may be a question: a new or edited text message."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    message = update.message or update.edited_message
    if message is None or not message.text or message.text.startswith("/"):
        return None
    return update.effective_chat.id, update.update_id


class ChatOrderProcessor(SimpleUpdateProcessor):
    """PTB's concurrent update processor, registering each question's ticket before it runs (updates
    reach process_update in the order they were fetched) and releasing it however its handling ends."""

    def __init__(self, max_concurrent_updates: int, order: ChatOrder) -> None:
        super().__init__(max_concurrent_updates)
        self.order = order

    async def process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        ticket = ticket_of(update)
        if ticket is not None:
            self.order.register(*ticket)
        try:
            await super().process_update(update, coroutine)
        finally:
            if ticket is not None:
                self.order.release(*ticket)

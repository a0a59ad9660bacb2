"""Per-user incoming limits (a token bucket), the pace of refusals, edits already answered, and the answers
buttons refer to."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from aiolimiter import AsyncLimiter

from coach.models import Answer


class Verdict(Enum):
    GO = "go"
    TOO_FAST = "too_fast"  # this user's bucket is empty


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class UserGate:
    """Admission for incoming questions. PTB's AIORateLimiter only paces what the bot sends; how often a
    user may ask is ours to decide, so this is a small token bucket per user id. A question admitted
    while another is being answered waits its turn (bot/order.py) rather than being refused. Everything
    runs on the event loop's thread, so plain dicts are safe."""

    burst: int = 3
    per_minute: float = 6.0
    clock: Callable[[], float] = time.monotonic
    max_tracked: int = 10_000  # users remembered before idle ones are forgotten
    _buckets: dict[int, _Bucket] = field(default_factory=dict)

    def admit(self, user_id: int) -> Verdict:
        """GO takes a token; TOO_FAST takes nothing."""
        now = self.clock()
        if len(self._buckets) > self.max_tracked:
            self._forget_idle(now)
        bucket = self._buckets.get(user_id)
        if bucket is None:
            bucket = self._buckets[user_id] = _Bucket(tokens=float(self.burst), stamp=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * self.per_minute / 60)
        bucket.stamp = now
        if bucket.tokens < 1:
            return Verdict.TOO_FAST
        bucket.tokens -= 1
        return Verdict.GO

    def _forget_idle(self, now: float) -> None:
        """A user whose bucket has refilled is the same as a new user."""
        refill_s = self.burst * 60 / self.per_minute
        for user_id, bucket in list(self._buckets.items()):
            if now - bucket.stamp > refill_s:
                del self._buckets[user_id]

    def seconds_until_token(self, user_id: int) -> float:
        bucket = self._buckets.get(user_id)
        if bucket is None:
            return 0.0
        tokens = min(float(self.burst), bucket.tokens + (self.clock() - bucket.stamp) * self.per_minute / 60)
        return 0.0 if tokens >= 1 else (1 - tokens) * 60 / self.per_minute


class ReplyPacer:
    """Paces the bot's short replies to refused messages (too fast, not text) per chat: each refused
    message still gets its own reply, but a flood is answered at `per_s` a chat, not as a flood. One
    aiolimiter bucket (PTB's own rate limiter's library) per chat, the least recently used forgotten."""

    def __init__(self, per_s: float = 1.0, max_tracked: int = 10_000) -> None:
        self.per_s, self.max_tracked = per_s, max_tracked
        self._limiters: OrderedDict[int, AsyncLimiter] = OrderedDict()

    def limiter(self, chat_id: int) -> AsyncLimiter:
        limiter = self._limiters.get(chat_id)
        if limiter is None:
            # One message per 1/per_s seconds, no burst beyond it.
            limiter = self._limiters[chat_id] = AsyncLimiter(1, 1 / self.per_s)
            while len(self._limiters) > self.max_tracked:
                self._limiters.popitem(last=False)
        self._limiters.move_to_end(chat_id)
        return limiter


class SeenEdits:
    """Edited messages already answered, by (chat, message id, edit date): Telegram may deliver one edit
    twice under new update ids (a retried webhook), and each edit is one new question."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: OrderedDict[tuple[int, int, int], None] = OrderedDict()

    def first(self, key: tuple[int, int, int]) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class PressedButtons:
    """The callback data of buttons used under each message, for the most recent `size` messages, with a
    lock per message so its keyboard edits go out one at a time, each from everything used so far."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._used: OrderedDict[tuple[int, int], tuple[set[str], asyncio.Lock]] = OrderedDict()

    def add(self, message: tuple[int, int], data: str) -> tuple[set[str], asyncio.Lock]:
        """Record a press; returns every button used under that message so far, and its lock."""
        entry = self._used.get(message)
        if entry is None:
            entry = self._used[message] = (set(), asyncio.Lock())
        entry[0].add(data)
        self._used.move_to_end(message)
        while len(self._used) > self.size:
            self._used.popitem(last=False)
        return entry


class AnswerCache:
    """Answers kept server-side for their buttons, keyed by a short random id, least recently used
    dropped first. Callback data holds at most 64 bytes, far too little for quotes, and PTB's
    arbitrary-callback-data cache needs an extra dependency (cachetools) for what is a dozen lines."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[str, Answer] = OrderedDict()

    def put(self, answer: Answer) -> str:
        key = secrets.token_urlsafe(6)  # 8 characters
        while key in self._items:
            key = secrets.token_urlsafe(6)
        self._items[key] = answer
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return key

    def get(self, key: str) -> Answer | None:
        answer = self._items.get(key)
        if answer is not None:
            self._items.move_to_end(key)
        return answer

    def __len__(self) -> int:
        return len(self._items)

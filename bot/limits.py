"""Per-user incoming limits (token bucket + one question in flight) and the answers buttons refer to."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from coach.models import Answer


class Verdict(Enum):
    GO = "go"
    BUSY = "busy"  # this user's previous question is still being answered
    TOO_FAST = "too_fast"  # this user's bucket is empty


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    warned_at: float = float("-inf")


@dataclass
class UserGate:
    """Admission for incoming questions. PTB's AIORateLimiter only paces what the bot sends; how often a
    user may ask is ours to decide, so this is a small token bucket per user id plus an in-flight set.
    Everything runs on the event loop's thread, so plain dicts and sets are safe."""

    burst: int = 3
    per_minute: float = 6.0
    warn_every_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    max_tracked: int = 10_000  # users remembered before idle ones are forgotten
    _buckets: dict[int, _Bucket] = field(default_factory=dict)
    _in_flight: set[int] = field(default_factory=set)

    def admit(self, user_id: int) -> Verdict:
        """GO takes a token and marks the user in flight; call `done(user_id)` when the answer is out."""
        if user_id in self._in_flight:
            return Verdict.BUSY
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
        self._in_flight.add(user_id)
        return Verdict.GO

    def _forget_idle(self, now: float) -> None:
        """A user whose bucket has refilled and who was not warned lately is the same as a new user."""
        refill_s = self.burst * 60 / self.per_minute
        for user_id, bucket in list(self._buckets.items()):
            idle = now - max(bucket.stamp, bucket.warned_at)
            if user_id not in self._in_flight and idle > max(refill_s, self.warn_every_s):
                del self._buckets[user_id]

    def done(self, user_id: int) -> None:
        self._in_flight.discard(user_id)

    def should_warn(self, user_id: int) -> bool:
        """At most one "please wait" per user per `warn_every_s`, so a flood is not answered by a flood."""
        now = self.clock()
        bucket = self._buckets.setdefault(user_id, _Bucket(tokens=float(self.burst), stamp=now))
        if now - bucket.warned_at < self.warn_every_s:
            return False
        bucket.warned_at = now
        return True

    def seconds_until_token(self, user_id: int) -> float:
        bucket = self._buckets.get(user_id)
        if bucket is None or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) * 60 / self.per_minute


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

"""A Bot API stand-in served over HTTP on 127.0.0.1: scripted getUpdates, recorded calls, Telegram-like
HTML entity checks, so the bot is tested through its real HTTP path."""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 999_000
ALLOWED_TAGS = {"b", "i", "u", "s", "a", "code", "pre", "blockquote", "tg-spoiler", "span"}
JSON_FIELDS = {
    "reply_markup",
    "link_preview_options",
    "allowed_updates",
    "commands",
    "entities",
    "reply_parameters",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z-]*)(\s[^<>]*)?>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});")
MAX_POLL_S = 3.0


class ApiError(Exception):
    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after


def parse_html(text: str) -> str:
    """Roughly Telegram's HTML parse mode: only its tags, properly nested; '<', '>' and '&' only as part
    of a tag or an entity. Returns the visible text; raises ApiError(400) like Telegram does."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "<":
            m = _TAG.match(text, i)
            if not m:
                raise ApiError(400, f"Bad Request: can't parse entities: unexpected '<' at byte offset {i}")
            closing, name = m.group(1), m.group(2).lower()
            if name not in ALLOWED_TAGS:
                raise ApiError(400, f'Bad Request: can\'t parse entities: unsupported start tag "{name}"')
            if closing:
                if not stack or stack[-1] != name:
                    raise ApiError(400, f'Bad Request: can\'t parse entities: unmatched end tag "{name}"')
                stack.pop()
            else:
                stack.append(name)
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(text, i)
            if not m:
                raise ApiError(400, f"Bad Request: can't parse entities: unescaped '&' at byte offset {i}")
            out.append(html.unescape(m.group(0)))
            i = m.end()
        elif ch == ">":
            raise ApiError(400, f"Bad Request: can't parse entities: unescaped '>' at byte offset {i}")
        else:
            out.append(ch)
            i += 1
    if stack:
        raise ApiError(
            400, f"Bad Request: can't parse entities: can't find end tag corresponding to \"{stack[-1]}\""
        )
    return "".join(out)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    """A scripted answer to the next sendMessage for a chat: an error code, or a hang (a timeout)."""

    code: int = 0
    description: str = ""
    retry_after: int | None = None
    hang_s: float = 0.0  # sleep this long, then answer 500 as if the request never got through


@dataclass
class BotApiStandIn:
    """Scriptable like Telegram's own limits: `rate_limit` messages a second in all (a token bucket
    holding one second's worth; beyond it 429 with retry_after), `per_chat_interval_s` between two
    messages to one chat, `blocked` chats (403), unknown `gone` chats (400 chat not found), and `faults`
    queued per chat."""

    token: str
    calls: list[Call] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    delivered: list[dict] = field(default_factory=list)  # sendMessage calls that succeeded
    rate_limit: float | None = None
    per_chat_interval_s: float | None = None
    blocked: set[int] = field(default_factory=set)
    gone: set[int] = field(default_factory=set)
    faults: dict[int, list[Fault]] = field(default_factory=dict)
    rejected_429: int = 0
    _tokens: float = 0.0
    _stamp: float = 0.0
    _last_to_chat: dict[int, float] = field(default_factory=dict)
    _pending: list[dict] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(5000))
    _runner: web.AppRunner | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> BotApiStandIn:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- scripting and inspection ---------------------------------------------------------------------

    def push(self, *updates: dict) -> None:
        self._pending.extend(updates)
        self._arrived.set()

    def sent(self, method: str = "sendMessage", chat_id: int | None = None) -> list[dict]:
        return [
            c.params
            for c in self.calls
            if c.method == method and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
        ]

    async def wait_for(self, predicate, within: float = 30.0) -> None:  # noqa: ANN001
        """Until `predicate()` holds, re-checked after every call the bot makes."""
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out; calls so far: {[c.method for c in self.calls]}") from None

    def confirmed_past(self, update_id: int) -> bool:
        """The bot asked for updates after `update_id`, i.e. it has taken that one off the queue."""
        return any(
            c.method == "getUpdates" and int(c.params.get("offset", 0)) > update_id for c in self.calls
        )

    # --- the API --------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if request.content_type == "application/json":
            params = await request.json()
        else:
            params = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        for key in JSON_FIELDS & params.keys():
            if isinstance(params[key], str):
                params[key] = json.loads(params[key])
        self.calls.append(Call(method, params))
        self._changed.set()
        handler = getattr(self, f"api_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        try:
            result = await handler(params)
        except ApiError as exc:
            self.errors.append((method, exc.description))
            body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            return web.json_response(body, status=exc.code)
        return web.json_response({"ok": True, "result": result})

    async def api_getMe(self, params: dict) -> dict:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Coach", "username": "coach_test_bot"}

    async def api_getUpdates(self, params: dict) -> list[dict]:
        offset = int(params.get("offset") or 0)
        # Telegram forgets updates below the offset once they are asked past.
        self._pending = [u for u in self._pending if u["update_id"] >= offset]
        if not self._pending:  # long poll: answer as soon as something is pushed, or at the timeout
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._arrived.wait(), min(float(params.get("timeout") or 0), MAX_POLL_S)
                )
        limit = int(params.get("limit") or 100)
        return sorted(self._pending, key=lambda u: u["update_id"])[:limit]

    def _message(self, params: dict, text: str) -> dict:
        message = {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": int(params["chat_id"]), "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Coach"},
            "text": text,
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _checked_text(self, params: dict) -> str:
        text = params.get("text", "")
        visible = parse_html(text) if params.get("parse_mode") == "HTML" else text
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(visible.encode("utf-16-le")) // 2 > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        return visible

    def fail_next(self, chat_id: int, *faults: Fault) -> None:
        self.faults.setdefault(chat_id, []).extend(faults)

    def delivered_to(self, chat_id: int) -> list[dict]:
        return [p for p in self.delivered if int(p["chat_id"]) == chat_id]

    def _admit(self, chat_id: int) -> None:
        """Telegram's flood limits, as 429 answers with retry_after."""
        now = time.monotonic()
        if self.rate_limit is not None:
            if not self._stamp:
                self._tokens, self._stamp = self.rate_limit, now
            self._tokens = min(self.rate_limit, self._tokens + (now - self._stamp) * self.rate_limit)
            self._stamp = now
            if self._tokens < 1:
                self.rejected_429 += 1
                raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
        if self.per_chat_interval_s is not None:
            last = self._last_to_chat.get(chat_id)
            if last is not None and now - last < self.per_chat_interval_s:
                self.rejected_429 += 1
                raise ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
            self._last_to_chat[chat_id] = now
        if self.rate_limit is not None:
            self._tokens -= 1

    async def api_sendMessage(self, params: dict) -> dict:
        chat_id = int(params["chat_id"])
        queued = self.faults.get(chat_id)
        if queued:
            fault = queued.pop(0)
            if fault.hang_s:
                await asyncio.sleep(fault.hang_s)
                raise ApiError(500, "Internal Server Error: not delivered")
            raise ApiError(fault.code, fault.description, retry_after=fault.retry_after)
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.gone:
            raise ApiError(400, "Bad Request: chat not found")
        self._admit(chat_id)
        result = self._message(params, self._checked_text(params))
        self.delivered.append(params)
        return result

    async def api_editMessageText(self, params: dict) -> dict:
        return self._message(params, self._checked_text(params))

    async def api_answerCallbackQuery(self, params: dict) -> bool:
        return True

    async def api_sendChatAction(self, params: dict) -> bool:
        return True

    async def api_setMyCommands(self, params: dict) -> bool:
        return True

    async def api_deleteWebhook(self, params: dict) -> bool:
        return True

    async def api_setWebhook(self, params: dict) -> bool:
        return True

    async def api_getWebhookInfo(self, params: dict) -> dict:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": len(self._pending)}


# --- update builders -------------------------------------------------------------------------------------


def user(user_id: int) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": "Runner", "language_code": "en"}


def message(
    update_id: int, text: str | None = None, *, user_id: int = 42, kind: str = "message", **extra
) -> dict:  # noqa: ANN003
    body: dict[str, Any] = {
        "message_id": update_id,
        "date": int(time.time()),
        "chat": {"id": user_id, "type": "private", "first_name": "Runner"},
        "from": user(user_id),
        **extra,
    }
    if text is not None:
        body["text"] = text
        if text.startswith("/"):
            body["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    if kind == "edited_message":
        body["edit_date"] = int(time.time())
    if kind == "channel_post":
        body["chat"] = {"id": -100123, "type": "channel", "title": "Runs"}
        body.pop("from")
    return {"update_id": update_id, kind: body}


def sticker(update_id: int, *, user_id: int = 42) -> dict:
    return message(
        update_id,
        user_id=user_id,
        sticker={
            "file_id": "CAAC-sticker",
            "file_unique_id": "sticker-1",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        },
    )


def photo(update_id: int, *, user_id: int = 42) -> dict:
    size = {"file_id": "photo-1", "file_unique_id": "p1", "width": 90, "height": 90}
    return message(update_id, user_id=user_id, photo=[size])


def voice(update_id: int, *, user_id: int = 42) -> dict:
    return message(update_id, user_id=user_id, voice={"file_id": "v1", "file_unique_id": "v1", "duration": 2})


def callback(update_id: int, data: str, *, user_id: int = 42, message_id: int = 1) -> dict:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cq-{update_id}",
            "from": user(user_id),
            "chat_instance": "ci-1",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Coach"},
                "text": "an answer",
            },
        },
    }

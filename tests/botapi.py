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
    return parse_entities(text)[0]


ENTITY_TYPES = {
    "b": "bold",
    "i": "italic",
    "u": "underline",
    "s": "strikethrough",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
}
_HREF = re.compile(r"""\shref=["']([^"']*)["']""")


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_entities(text: str) -> tuple[str, list[dict]]:
    """parse_html, with the message entities Telegram would attach (offsets in UTF-16 units), so a
    message the bot gets back (in a callback query) carries its formatting as a real one does."""
    out: list[str] = []
    stack: list[str] = []
    opened: list[tuple[str, int, str | None]] = []
    entities: list[dict] = []
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
                _, start, url = opened.pop()
                length = _utf16("".join(out)) - start
                if length:
                    entity = {"type": ENTITY_TYPES[name], "offset": start, "length": length}
                    if url is not None:
                        entity["url"] = url
                    entities.append(entity)
            else:
                stack.append(name)
                href = _HREF.search(m.group(3) or "") if name == "a" else None
                opened.append((name, _utf16("".join(out)), href.group(1) if href else None))
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
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Fault:
    """A scripted answer to the next call of `method` for a chat: an error code, a reply that is not
    JSON (`malformed`), or a hang (a timeout)."""

    code: int = 0
    description: str = ""
    retry_after: int | None = None
    hang_s: float = 0.0  # sleep this long, then answer 500 as if the request never got through
    malformed: bool = False  # HTTP 200 with a body that is not JSON (a proxy's error page)
    method: str = "sendMessage"


class Malformed(Exception):
    """Raised by an API method to answer with a body that is not JSON."""


MAX_CALLBACK_DATA = 64  # bytes
MAX_TOAST = 200  # characters of answerCallbackQuery's text
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)


@dataclass
class Shown:
    """A message as the chat shows it now: its latest text and keyboard, and how often it was edited."""

    chat_id: int
    message_id: int
    html: str
    text: str
    entities: list[dict]
    reply_markup: dict | None
    edits: int = 0  # text edits (the runner sees "edited"); keyboard changes are not counted
    reply_to: int | None = None  # the runner's message it quotes


@dataclass
class BotApiStandIn:
    """Scriptable like Telegram's own limits: `rate_limit` messages a second in all (a token bucket
    holding one second's worth; beyond it 429 with retry_after), `per_chat_interval_s` between two
    messages to one chat, `blocked` chats (403), unknown `gone` chats (400 chat not found), and `faults`
    queued per chat. It checks what Telegram checks: HTML entities, 4,096 characters of text, 64 bytes of
    callback data, edits of a message that exists and changes, callback queries answered once; and it
    keeps every message as the chat shows it (`shown`), keyboards included, with a timeline of the chat
    (`transcript`)."""

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
    shown: dict[tuple[int, int], Shown] = field(default_factory=dict)
    timeline: list[tuple[str, int, object]] = field(default_factory=list)  # (who, chat, text or message id)
    pressed: list[tuple[int, int, str]] = field(default_factory=list)  # (chat, message id, callback data)
    _queries: dict[str, int] = field(default_factory=dict)  # open callback query id -> chat
    _answered: set[str] = field(default_factory=set)
    _runner_texts: dict[tuple[int, int], str] = field(default_factory=dict)  # (chat, message id) -> text
    _tokens: float = 0.0
    _stamp: float = 0.0
    _last_to_chat: dict[int, float] = field(default_factory=dict)
    _pending: list[dict] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(5000))
    last_update_id: int = 0  # the highest update id handed to the bot so far
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
        """Queue updates for getUpdates, noting them in the chat's timeline."""
        self.expect(*updates)
        self._pending.extend(updates)
        self._arrived.set()

    def expect(self, *updates: dict) -> None:
        """Note updates a test hands to the bot itself (Application.process_update): the runner's
        messages go into the timeline, and their callback queries may be answered."""
        for update in updates:
            self.last_update_id = max(self.last_update_id, update["update_id"])
            body = update.get("message") or update.get("edited_message")
            if body is not None and body.get("text") is not None:
                edited = "edited_message" in update
                self.timeline.append(
                    ("runner", body["chat"]["id"], ("(edited) " if edited else "") + body["text"])
                )
                self._runner_texts[(body["chat"]["id"], body["message_id"])] = body["text"]
            query = update.get("callback_query")
            if query is not None:
                self._queries[query["id"]] = query["from"]["id"]

    def sent(self, method: str = "sendMessage", chat_id: int | None = None) -> list[dict]:
        """The parameters of every call of `method` (to a chat), failed ones included."""
        return [
            c.params
            for c in self.calls
            if c.method == method and (chat_id is None or int(c.params.get("chat_id", 0)) == chat_id)
        ]

    def press(self, chat_id: int, message_id: int, label: str, *, update_id: int | None = None) -> str:
        """Press the button labelled `label` under a message the chat shows, as a runner's client does:
        only a button that is there can be pressed. Pushes the callback query; returns its data."""
        update = self.press_update(chat_id, message_id, label, update_id=update_id)
        self._pending.append(update)
        self._arrived.set()
        return update["callback_query"]["data"]

    def press_update(
        self, chat_id: int, message_id: int, label: str, *, update_id: int | None = None
    ) -> dict:
        """The callback query `press` pushes, for a test that hands updates to the bot itself."""
        shown = self.shown[(chat_id, message_id)]
        buttons = {b["text"]: b for row in keyboard(shown.reply_markup) for b in row}
        assert label in buttons, f"no live button {label!r} under message {message_id}: {list(buttons)}"
        data = buttons[label]["callback_data"]
        self.pressed.append((chat_id, message_id, data))
        self.timeline.append(("press", chat_id, label))
        uid = update_id if update_id is not None else self.last_update_id + 1
        update = callback(uid, data, user_id=chat_id, message=self.as_message(shown))
        self.expect(update)
        return update

    def as_message(self, shown: Shown) -> dict:
        """The message as Telegram puts it in a callback query: text, entities, keyboard."""
        message = {
            "message_id": shown.message_id,
            "date": int(time.time()),
            "chat": {"id": shown.chat_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Coach"},
            "text": shown.text,
        }
        if shown.entities:
            message["entities"] = shown.entities
        if shown.reply_markup:
            message["reply_markup"] = shown.reply_markup
        return message

    def messages(self, chat_id: int) -> list[Shown]:
        """The bot's messages in a chat as shown now, oldest first."""
        return sorted((m for m in self.shown.values() if m.chat_id == chat_id), key=lambda m: m.message_id)

    def last(self, chat_id: int) -> Shown:
        return self.messages(chat_id)[-1]

    def live_keyboards(self, chat_id: int) -> list[Shown]:
        return [m for m in self.messages(chat_id) if keyboard(m.reply_markup)]

    def used_but_live(self, chat_id: int) -> list[tuple[int, str]]:
        """Pressed buttons still shown under their message: (message id, callback data)."""
        live = []
        for chat, message_id, data in self.pressed:
            shown = self.shown.get((chat, message_id))
            buttons = [b for row in keyboard(shown.reply_markup if shown else None) for b in row]
            if chat == chat_id and any(b.get("callback_data") == data for b in buttons):
                live.append((message_id, data))
        return live

    def note(self, chat_id: int, text: str) -> None:
        """A line for the reader of the transcript (the day and time, say); not part of the chat."""
        self.timeline.append(("note", chat_id, text))

    def toasts(self, chat_id: int | None = None) -> list[str]:
        return [str(t) for who, chat, t in self.timeline if who == "toast" and chat_id in (None, chat)]

    def transcript(self, chat_id: int) -> str:
        """The chat as the runner sees it at the end, text only: their messages, the bot's messages in
        their latest form (edited ones marked), the buttons still under them, the buttons they pressed
        and the toasts they saw."""
        lines: list[str] = []
        for who, chat, what in self.timeline:
            if chat != chat_id:
                continue
            if who == "runner":
                lines.append(_block("Runner", str(what)))
            elif who == "press":
                lines.append(f"   [pressed: {what}]")
            elif who == "toast":
                lines.append(f"   (toast: {what})")
            elif who == "note":
                lines.append(f"\n—— {what} ——")
            elif who == "bot":
                shown = self.shown[(chat, int(what))]
                head = "Coach" + (" (edited)" if shown.edits else "")
                quoted = self._runner_texts.get((chat, shown.reply_to)) if shown.reply_to else None
                if quoted is not None:
                    head += f" (replying to “{quoted if len(quoted) <= 40 else quoted[:39] + '…'}”)"
                lines.append(_block(head, shown.text))
                labels = [b["text"] for row in keyboard(shown.reply_markup) for b in row]
                if labels:
                    lines.append("   " + " ".join(f"[{label}]" for label in labels))
        return "\n".join(lines)

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
            await self._fault(method, params)
            result = await handler(params)
        except Malformed:
            self.errors.append((method, "malformed reply"))
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", status=200)
        except ApiError as exc:
            self.errors.append((method, exc.description))
            body: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
            if exc.retry_after is not None:
                body["parameters"] = {"retry_after": exc.retry_after}
            return web.json_response(body, status=exc.code)
        finally:
            self._changed.set()
        return web.json_response({"ok": True, "result": result})

    async def _fault(self, method: str, params: dict) -> None:
        """The first fault queued for this chat and method, if any."""
        if "chat_id" not in params:
            return
        queued = self.faults.get(int(params["chat_id"])) or []
        fault = next((f for f in queued if f.method == method), None)
        if fault is None:
            return
        queued.remove(fault)
        if fault.hang_s:
            await asyncio.sleep(fault.hang_s)
            raise ApiError(500, "Internal Server Error: not delivered")
        if fault.malformed:
            raise Malformed
        raise ApiError(fault.code, fault.description, retry_after=fault.retry_after)

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

    def _checked(self, params: dict) -> tuple[str, list[dict]]:
        text = params.get("text", "")
        visible, entities = parse_entities(text) if params.get("parse_mode") == "HTML" else (text, [])
        if not visible.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(visible.encode("utf-16-le")) // 2 > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        _check_markup(params.get("reply_markup"))
        return visible, entities

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
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.gone:
            raise ApiError(400, "Bad Request: chat not found")
        self._admit(chat_id)
        visible, entities = self._checked(params)
        shown = Shown(
            chat_id, next(self._ids), params.get("text", ""), visible, entities, params.get("reply_markup")
        )
        shown.reply_to = (params.get("reply_parameters") or {}).get("message_id")
        self.shown[(chat_id, shown.message_id)] = shown
        self.timeline.append(("bot", chat_id, shown.message_id))
        self.delivered.append(params)
        return self.as_message(shown)

    def _target(self, params: dict) -> Shown:
        if "inline_message_id" in params:
            raise ApiError(400, "Bad Request: inline messages are not used by this bot")
        shown = self.shown.get((int(params.get("chat_id", 0)), int(params.get("message_id", 0))))
        if shown is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        return shown

    async def api_editMessageText(self, params: dict) -> dict:
        """Telegram's semantics: the new text and keyboard replace the old ones (no reply_markup removes
        the keyboard), and an edit that changes nothing is an error."""
        shown = self._target(params)
        visible, entities = self._checked(params)
        markup = params.get("reply_markup") or None
        if (visible, entities, keyboard(markup)) == (
            shown.text,
            shown.entities,
            keyboard(shown.reply_markup),
        ):
            raise ApiError(400, NOT_MODIFIED)
        shown.html, shown.text, shown.entities, shown.reply_markup = params["text"], visible, entities, markup
        shown.edits += 1
        return self.as_message(shown)

    async def api_editMessageReplyMarkup(self, params: dict) -> dict:
        shown = self._target(params)
        markup = params.get("reply_markup") or None
        _check_markup(markup)
        if keyboard(markup) == keyboard(shown.reply_markup):
            raise ApiError(400, NOT_MODIFIED)
        shown.reply_markup = markup  # Telegram marks only a changed text "edited"
        return self.as_message(shown)

    async def api_answerCallbackQuery(self, params: dict) -> bool:
        query_id = params.get("callback_query_id", "")
        if query_id in self._answered:  # Telegram takes one answer per query
            raise ApiError(
                400, "Bad Request: query is too old and response timeout expired or query ID is invalid"
            )
        self._answered.add(query_id)
        # A query the stand-in did not serve (a test handed it to the bot itself) has no known chat.
        chat = self._queries.pop(query_id, 0)
        text = params.get("text")
        if text:
            if len(text) > MAX_TOAST:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
            self.timeline.append(("toast", chat, text))
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


def keyboard(markup: dict | None) -> list[list[dict]]:
    return (markup or {}).get("inline_keyboard") or []


def _check_markup(markup: dict | None) -> None:
    for row in keyboard(markup):
        for button in row:
            if not button.get("text"):
                raise ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")


def _block(who: str, text: str) -> str:
    body = text.strip().splitlines() or [""]
    return f"{who}: {body[0]}" + "".join(f"\n    {line}" for line in body[1:])


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


def callback(
    update_id: int, data: str, *, user_id: int = 42, message_id: int = 1, message: dict | None = None
) -> dict:
    """A button press under `message` (as BotApiStandIn.as_message gives it), or under a stand-in
    message with id `message_id`."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cq-{update_id}",
            "from": user(user_id),
            "chat_instance": "ci-1",
            "data": data,
            "message": message
            or {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": user_id, "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Coach"},
                "text": "an answer",
            },
        },
    }

"""A scripted chat-model server on 127.0.0.1 speaking the OpenAI (and Anthropic) HTTP APIs, for tests.

Each request is recorded, then answered by the next step of a script: a reply text (or a function of
the request that returns one), an HTTP error, or a hang that holds the connection open without answering."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG_LIMIT_S = 30.0  # a hanging handler gives up after this even if the test forgets to stop it


@dataclass
class Reply:
    text: str | Callable[[dict], str]


@dataclass
class Fail:
    status: int
    body: dict = field(
        default_factory=lambda: {"error": {"message": "scripted failure", "type": "server_error"}}
    )
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    pass


Step = Reply | Fail | Hang


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict

    @property
    def messages(self) -> list[dict]:
        return self.body.get("messages", [])

    def text(self) -> str:
        """Every message's text, system prompt included, as one string."""
        parts = [self.body.get("system", "")] if isinstance(self.body.get("system"), str) else []
        for message in self.messages:
            content = message.get("content", "")
            if isinstance(content, list):
                content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
            parts.append(content)
        return "\n".join(parts)


def passages_of(request: dict) -> dict[int, str]:
    """The numbered passages the coach sent, by number."""
    text = Recorded("", {}, request).text()
    return {int(n): body for n, body in re.findall(r'<passage n="(\d+)">\n(.*?)\n</passage>', text, re.S)}


def passage_with(request: dict, words: str) -> int:
    """The number of the passage that contains `words` (so a scripted answer can cite it)."""
    for n, body in passages_of(request).items():
        if words in " ".join(body.split()):
            return n
    raise AssertionError(f"no passage contains {words!r}")


class StandIn:
    """Serve the script; `default` answers once the script is used up."""

    def __init__(self, script: list[Step] | None = None, default: Step | None = None) -> None:
        self.script = list(script or [])
        self.default = default or Fail(500)
        self.requests: list[Recorded] = []
        self.closed_by_client: list[float] = []  # when a client hung up on a Hang (time.monotonic())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with stand_in._lock:
                    stand_in.requests.append(
                        Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    step = stand_in.script.pop(0) if stand_in.script else stand_in.default
                if isinstance(step, Hang):
                    self._hang()
                    return
                if isinstance(step, Fail):
                    self._send(step.status, step.body, step.headers)
                    return
                text = step.text(body) if callable(step.text) else step.text
                if self.path == "/api/chat":  # Ollama: a stream of JSON lines, the last one `done`
                    model = body.get("model", "stand-in")
                    lines = [
                        {
                            "model": model,
                            "created_at": "2026-01-01T00:00:00Z",
                            "message": {"role": "assistant", "content": text},
                            "done": False,
                        },
                        {
                            "model": model,
                            "created_at": "2026-01-01T00:00:00Z",
                            "message": {"role": "assistant", "content": ""},
                            "done": True,
                            "done_reason": "stop",
                            "prompt_eval_count": 10,
                            "eval_count": 10,
                        },
                    ]
                    self._send_raw(
                        200, "".join(json.dumps(x) + "\n" for x in lines).encode(), "application/x-ndjson", {}
                    )
                    return
                if self.path.endswith("/messages"):
                    payload = {
                        "id": "msg_standin",
                        "type": "message",
                        "role": "assistant",
                        "model": body.get("model", "stand-in"),
                        "content": [{"type": "text", "text": text}],
                        "stop_reason": "end_turn",
                        "stop_sequence": None,
                        "usage": {"input_tokens": 10, "output_tokens": 10},
                    }
                else:
                    payload = {
                        "id": "chatcmpl-standin",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "stand-in"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
                    }
                self._send(200, payload, {})

            def _hang(self) -> None:
                """Hold the request without answering until the client gives up (closes the connection,
                recorded in `closed_by_client`), the stand-in stops, or HANG_LIMIT_S passes."""
                end = time.monotonic() + HANG_LIMIT_S
                while not stand_in._stop.is_set() and time.monotonic() < end:
                    readable, _, _ = select.select([self.connection], [], [], 0.05)
                    if not readable:
                        continue
                    try:
                        closed = self.connection.recv(1, socket.MSG_PEEK) == b""
                    except OSError:
                        closed = True
                    if closed:
                        with stand_in._lock:
                            stand_in.closed_by_client.append(time.monotonic())
                        return

            def _send(self, status: int, payload: dict, headers: dict[str, str]) -> None:
                self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

            def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(("/chat/completions", "/messages", "/api/chat"))]

"""Chat-model clients (through LangChain's init_chat_model), awaited under a deadline and a circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coach.errors import CoachError
from coach.redact import redact
from coach.settings import Settings

if TYPE_CHECKING:  # imported where a model is built or called: the offline path never loads them
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

log = logging.getLogger(__name__)

# Providers whose client takes an API key from one of these variables; the key is only ever held by
# the client (as a pydantic SecretStr) and scrubbed from anything this module logs.
KEY_VARIABLES = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# OpenAI-compatible servers run locally (llama.cpp, vLLM, LM Studio) accept any key, but the openai
# client refuses to start without one.
LOCAL_PLACEHOLDER_KEY = "not-needed"


class BackendUnavailable(Exception):
    """The model did not answer in time, failed, or is cooled down; the caller falls back."""


class ConfigurationError(CoachError):
    """COACH_LLM names a model that cannot be set up (unknown provider, missing key)."""


def provider_of(settings: Settings) -> str:
    """The init_chat_model provider COACH_LLM names; a bare model name with a base URL means OpenAI-compatible."""
    # init_chat_model's own provider table (private in the pinned langchain 1.4.7): the provider decides
    # which keyword its client takes the timeout and retries by.
    from langchain.chat_models.base import _BUILTIN_PROVIDERS

    spec = settings.llm or ""
    prefix = spec.split(":", 1)[0]
    if ":" in spec and prefix in _BUILTIN_PROVIDERS:
        return prefix
    if settings.llm_base_url:
        return "openai"
    from langchain.chat_models.base import _attempt_infer_model_provider

    inferred = _attempt_infer_model_provider(spec)
    if inferred is None:
        raise ConfigurationError(
            f"COACH_LLM={spec!r} does not name a provider; write it as provider:model, "
            "e.g. openai:gpt-4o-mini, anthropic:claude-haiku-4-5 or ollama:qwen2.5:3b"
        )
    return inferred


def build_chat_model(settings: Settings, *, max_retries: int) -> BaseChatModel:
    """The chat model COACH_LLM names, with the client's own timeout and retry limit set."""
    from langchain.chat_models import init_chat_model

    provider = provider_of(settings)
    model = settings.llm or ""
    if model.startswith(f"{provider}:"):
        model = model[len(provider) + 1 :]
    timeout = settings.answer_deadline_s
    kwargs: dict[str, object] = {}
    if provider == "ollama":
        # ChatOllama has no retry option; its httpx client takes the timeout.
        kwargs["client_kwargs"] = {"timeout": timeout}
    elif provider == "openai":
        import httpx

        # An httpx.Timeout (not a float) makes langchain-openai build this model's own HTTP clients
        # instead of sharing process-wide cached ones, which belong to whichever event loop used them
        # first. The service's asyncio deadline is what bounds a call; this is a backstop.
        kwargs["timeout"] = httpx.Timeout(timeout)
        kwargs["max_retries"] = max_retries
    else:
        kwargs["timeout"] = timeout
        kwargs["max_retries"] = max_retries
    if settings.llm_base_url:
        kwargs["base_url"] = settings.llm_base_url
    variable = KEY_VARIABLES.get(provider)
    if variable and not os.environ.get(variable):
        if not settings.llm_base_url:
            raise ConfigurationError(f"COACH_LLM={settings.llm} needs {variable} in the environment")
        kwargs["api_key"] = LOCAL_PLACEHOLDER_KEY
    try:
        return init_chat_model(model, model_provider=provider, **kwargs)
    except Exception as exc:  # an unknown provider or option: one clear line, never the key
        raise ConfigurationError(
            f"cannot set up COACH_LLM={settings.llm}: {scrub(str(exc))}".splitlines()[0]
        ) from None


def scrub(text: str) -> str:
    """The text with any API key (and every other secret) hidden: coach/redact.py's one path."""
    return redact(text)


@dataclass
class CircuitBreaker:
    """After `failures_to_open` consecutive failures, refuse calls for `cooldown_s`; then let one through.

    Hand-written: LangChain has retries and fallbacks but no breaker, and a dependency for twenty
    lines of state is not worth its weight."""

    failures_to_open: int = 3
    cooldown_s: float = 60.0
    failures: int = 0
    opened_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allow(self, now: float | None = None) -> bool:
        """Whether a call may go out now; once the cool-down is over, exactly one trial call may."""
        with self._lock:
            if self.opened_at is None:
                return True
            now = time.monotonic() if now is None else now
            if now - self.opened_at < self.cooldown_s:
                return False
            self.opened_at = now  # the trial call: other callers wait for its outcome
            return True

    def record_success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def record_failure(self, now: float | None = None) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.failures_to_open:
                self.opened_at = time.monotonic() if now is None else now

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self.opened_at is not None and time.monotonic() - self.opened_at < self.cooldown_s


class ChatBackend:
    """One configured chat model, shared by every conversation of the process.

    The model is called with `ainvoke` under `asyncio.timeout`, so a call that outlives its budget is
    cancelled (its HTTP request closed), never abandoned in a thread. The model object is built once per
    event loop: the providers' async HTTP clients belong to the loop that first used them."""

    def __init__(
        self,
        name: str,
        model: BaseChatModel | Callable[[], BaseChatModel],
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        # A model object (tests, fakes) is used as it is; a factory makes one per event loop.
        given = hasattr(model, "ainvoke")
        self._factory = None if given else model
        self._fixed = model if given else None
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, BaseChatModel] = (
            weakref.WeakKeyDictionary()
        )
        self.breaker = breaker or CircuitBreaker()

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatBackend:
        build_chat_model(settings, max_retries=settings.llm_max_retries)  # a bad COACH_LLM fails now, once
        return cls(
            settings.llm or "",
            lambda: build_chat_model(settings, max_retries=settings.llm_max_retries),
            breaker=CircuitBreaker(
                failures_to_open=settings.llm_breaker_failures, cooldown_s=settings.llm_breaker_cooldown_s
            ),
        )

    def __repr__(self) -> str:  # the model's repr is left out: it is the object that holds the key
        return f"ChatBackend(name={self.name!r}, breaker_open={self.breaker.is_open})"

    def built_models(self) -> list[BaseChatModel]:
        """The model objects made so far (one per event loop that called the backend)."""
        return [self._fixed] if self._fixed is not None else list(self._per_loop.values())

    @property
    def _model(self) -> BaseChatModel:
        """The model for the running event loop (or the one given, for tests and fakes)."""
        if self._fixed is not None:
            return self._fixed
        assert self._factory is not None
        loop = asyncio.get_running_loop()
        model = self._per_loop.get(loop)
        if model is None:
            model = self._per_loop[loop] = self._factory()
        return model

    async def acomplete(self, system: str | None, user: str, timeout_s: float) -> str:
        """The model's reply to one prompt within `timeout_s`, or BackendUnavailable (also counted by
        the breaker). On timeout the call is cancelled."""
        if timeout_s <= 0:  # the deadline is spent: not the backend's fault, so not counted
            raise BackendUnavailable("no time left before the deadline")
        if not self.breaker.allow():
            raise BackendUnavailable("the backend failed repeatedly and is cooling down")
        from langchain_core.messages import HumanMessage, SystemMessage

        messages: list[BaseMessage] = [SystemMessage(system)] if system else []
        messages.append(HumanMessage(user))
        try:
            async with asyncio.timeout(timeout_s):
                reply = await self._model.ainvoke(messages)
        except TimeoutError:
            self.breaker.record_failure()
            log.warning("backend %s gave no answer within %.1f s; call cancelled", self.name, timeout_s)
            raise BackendUnavailable(f"no answer within {timeout_s:.1f} s") from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.breaker.record_failure()
            reason = f"{type(exc).__name__}: {scrub(str(exc))[:200]}"
            log.warning("backend %s failed: %s", self.name, reason)
            raise BackendUnavailable(reason) from None
        self.breaker.record_success()
        return reply.text if isinstance(reply.text, str) else str(reply.content)

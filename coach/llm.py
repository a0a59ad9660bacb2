"""Chat-model backends (through LangChain's init_chat_model) behind a hard deadline and a circuit breaker."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from coach.errors import CoachError
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


def secrets_in_env() -> list[str]:
    return [v for name in KEY_VARIABLES.values() if (v := os.environ.get(name)) and len(v) >= 4]


def scrub(text: str) -> str:
    """The text with any API key from the environment replaced by '***'."""
    for secret in secrets_in_env():
        text = text.replace(secret, "***")
    return text


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


def call_with_deadline(model: BaseChatModel, messages: Sequence[BaseMessage], timeout_s: float) -> str:
    """Invoke the model in a daemon thread and wait at most `timeout_s` for its text.

    A daemon thread rather than a ThreadPoolExecutor: a call stuck on a server that never answers must
    not keep the process alive at exit (executor threads are joined); the client's own timeout ends it
    later."""
    if timeout_s <= 0:
        raise BackendUnavailable("no time left before the deadline")
    future: Future[str] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            reply = model.invoke(list(messages))
            future.set_result(reply.text if isinstance(reply.text, str) else str(reply.content))
        except BaseException as exc:  # handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=run, name="coach-llm-call", daemon=True).start()
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        raise BackendUnavailable(f"no answer within {timeout_s:.1f} s") from None
    except Exception as exc:
        raise BackendUnavailable(f"{type(exc).__name__}: {scrub(str(exc))[:200]}") from None


class ChatBackend:
    """One configured chat model, shared by every conversation of the process."""

    def __init__(
        self,
        name: str,
        model: BaseChatModel,
        *,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self._model = model
        self.breaker = breaker or CircuitBreaker()

    @classmethod
    def from_settings(cls, settings: Settings) -> ChatBackend:
        return cls(
            settings.llm or "",
            build_chat_model(settings, max_retries=settings.llm_max_retries),
            breaker=CircuitBreaker(
                failures_to_open=settings.llm_breaker_failures, cooldown_s=settings.llm_breaker_cooldown_s
            ),
        )

    def __repr__(self) -> str:  # the model's repr is left out: it is the object that holds the key
        return f"ChatBackend(name={self.name!r}, breaker_open={self.breaker.is_open})"

    def complete(self, system: str | None, user: str, timeout_s: float) -> str:
        """The model's reply to one prompt, or BackendUnavailable (also counted by the breaker)."""
        if timeout_s <= 0:  # the deadline is spent: not the backend's fault, so not counted
            raise BackendUnavailable("no time left before the deadline")
        if not self.breaker.allow():
            raise BackendUnavailable("the backend failed repeatedly and is cooling down")
        from langchain_core.messages import HumanMessage, SystemMessage

        messages: list[BaseMessage] = [SystemMessage(system)] if system else []
        messages.append(HumanMessage(user))
        try:
            text = call_with_deadline(self._model, messages, timeout_s)
        except BackendUnavailable as exc:
            self.breaker.record_failure()
            log.warning("backend %s failed: %s", self.name, scrub(str(exc)))
            raise
        self.breaker.record_success()
        return text

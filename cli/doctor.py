"""`coach doctor` (settings of the core and the bot): checks settings, store, the index's embedding model, corpus and backend, and says what to fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, SecretStr, ValidationError

from bot.settings import BotSettings, load_bot_settings
from coach.errors import CoachError
from coach.redact import mask_url, redact

Status = Literal["ok", "fail", "skipped"]
INGEST_FIX = "run `coach ingest` (with docker compose: `docker compose run --rm ingest`)"
REBUILD_FIX = (
    "run `coach ingest --rebuild` (with docker compose: `docker compose run --rm ingest ingest --rebuild`)"
)
SERVER_FIX = "start the Chroma server (`docker compose up -d chroma`) or correct/unset COACH_CHROMA_URL"
LLM_PROBE_TIMEOUT_S = 2.0
# Keys LangChain's providers read from the environment when no base URL points at a local server.
PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"


class Check(BaseModel):
    """One health check: what was found, and what to do when it failed."""

    name: str
    status: Status
    summary: str
    fix: str | None = None


class DoctorReport(BaseModel):
    """Everything `coach doctor --json` prints."""

    ok: bool
    settings: dict[str, Any]
    checks: list[Check]


def env_name(field: str) -> str:
    """The environment variable a BotSettings field is read from (its alias, else COACH_<NAME>)."""
    info = BotSettings.model_fields[field]
    alias = info.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return str(choices[0])
    return f"COACH_{field.upper()}"


def effective_settings(settings: BotSettings) -> dict[str, Any]:
    """Every setting as the coach sees it, by variable name; secrets show only whether they are set."""
    shown: dict[str, Any] = {}
    for name in BotSettings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = "set (hidden)" if value.get_secret_value() else None
        elif name.endswith("_url"):
            value = mask_url(value)
        elif value is not None and not isinstance(value, bool | int | float | str):
            value = str(value)
        shown[env_name(name)] = value
    for key in PROVIDER_KEYS.values():
        shown[key] = "set (hidden)" if os.environ.get(key) else None
    return shown


def _variable(loc: tuple) -> str:
    """The variable a validation error is about, as users set it (COACH_TOP_K rather than top_k)."""
    field = str(loc[0]) if loc else ""
    return env_name(field) if field in BotSettings.model_fields else ".".join(map(str, loc))


def _skipped(name: str, why: str) -> Check:
    return Check(name=name, status="skipped", summary=f"skipped: {why}")


def check_store(settings: BotSettings, model_name: str, model_dim: int) -> tuple[Check, Check]:
    """The store (reachable, collection, count) and the index's embedding model."""
    from coach.store import heartbeat, open_client, store_failure

    where = mask_url(settings.chroma_url) or str(settings.chroma_dir)
    if settings.chroma_url:
        try:
            heartbeat(settings.chroma_url)
        except CoachError as exc:
            return (
                Check(
                    name="store",
                    status="fail",
                    summary=str(exc),
                    fix=SERVER_FIX,
                ),
                _skipped("model", "the store is not reachable"),
            )
    elif not settings.chroma_dir.is_dir():  # opening would create it; the doctor changes nothing
        return (
            Check(name="store", status="fail", summary=f"there is no index at {where}", fix=INGEST_FIX),
            _skipped("model", "there is no index"),
        )
    try:
        client = open_client(settings)
        names = [getattr(c, "name", c) for c in client.list_collections()]
        collection = client.get_collection(settings.collection) if settings.collection in names else None
        count = collection.count() if collection is not None else 0
    except CoachError as exc:
        return (
            Check(
                name="store",
                status="fail",
                summary=str(exc),
                fix=SERVER_FIX if settings.chroma_url else REBUILD_FIX,
            ),
            _skipped("model", "the store cannot be opened"),
        )
    except Exception as exc:  # a server that went away between calls, or an unreadable index
        failure = store_failure(settings, "read", exc)
        fix = (
            REBUILD_FIX if not settings.chroma_url else "check the Chroma server's logs and COACH_CHROMA_URL"
        )
        return (
            Check(name="store", status="fail", summary=str(failure), fix=fix),
            _skipped("model", "the store cannot be read"),
        )
    if collection is None:
        return (
            Check(
                name="store",
                status="fail",
                summary=f"{where} is reachable but has no collection {settings.collection!r}",
                fix=INGEST_FIX,
            ),
            _skipped("model", "there is no collection"),
        )
    if count == 0:
        store = Check(
            name="store",
            status="fail",
            summary=f"collection {settings.collection!r} at {where} is empty",
            fix=INGEST_FIX,
        )
    else:
        store = Check(
            name="store",
            status="ok",
            summary=f"{count} chunks in collection {settings.collection!r} at {where}",
        )
    meta = collection.metadata or {}
    built_with, dim = meta.get("embedding_model"), meta.get("embedding_dim")
    if built_with == model_name and dim == model_dim:
        model = Check(
            name="model",
            status="ok",
            summary=f"index built with {model_name} (dimension {dim}); {query_path(settings)}",
        )
    else:
        model = Check(
            name="model",
            status="fail",
            summary=(
                f"index built with {built_with or 'an unknown model'} (dimension {dim or '?'}), "
                f"the coach uses {model_name} (dimension {model_dim})"
            ),
            fix=REBUILD_FIX,
        )
    return store, model


def query_path(settings: BotSettings) -> str:
    """Which path embeds questions: the ONNX export, or (without one) the slower-starting reference."""
    from coach.embeddings import find_export

    found = find_export(settings.model_dir)
    if found is not None:
        return f"questions embed on onnxruntime (export in {found})"
    return (
        f"no ONNX export in {settings.model_dir}: questions embed on sentence-transformers, a slower "
        "start (`coach ingest` or `coach export-model` makes it)"
    )


def check_corpus(settings: BotSettings) -> Check:
    """The corpus loads, and the index's source snapshot matches it article by article."""
    from coach.storage import read_snapshot
    from ingest.loader import load_corpus

    skipped: list = []
    try:
        loaded = load_corpus(settings.corpus_dir, max_article_mb=settings.max_article_mb, skipped=skipped)
    except CoachError as exc:
        return Check(
            name="corpus",
            status="fail",
            summary=str(exc),
            fix="point COACH_CORPUS_DIR at a directory of articles (.txt, .md, .html) and sources.toml",
        )
    current = {ls.source.source_id: ls.sha for ls in loaded}
    found = f"{len(loaded)} articles in {settings.corpus_dir}"
    if skipped:  # ingest skips them too (keeping a version indexed before): said, not a failure
        found += f" ({len(skipped)} skipped: {'; '.join(s.line() for s in skipped)})"
    snapshot = read_snapshot(settings)
    if not snapshot:
        return Check(
            name="corpus",
            status="fail",
            summary=f"{found}; no source snapshot at {settings.snapshot_path} (never ingested here)",
            fix=INGEST_FIX,
        )
    indexed = {sid: entry.get("sha") for sid, entry in snapshot.items()}
    added = sorted(set(current) - set(indexed))
    removed = sorted(set(indexed) - set(current) - {s.path.stem for s in skipped})
    changed = sorted(sid for sid in set(current) & set(indexed) if current[sid] != indexed[sid])
    if added or removed or changed:
        parts = [
            f"{label}: {', '.join(ids)}"
            for label, ids in (("changed", changed), ("added", added), ("removed", removed))
            if ids
        ]
        return Check(
            name="corpus",
            status="fail",
            summary=f"{found}; the index is out of date ({'; '.join(parts)})",
            fix=INGEST_FIX,
        )
    return Check(name="corpus", status="ok", summary=f"{found}; the index is up to date with them")


def _probe(url: str, timeout: float) -> str | None:
    """None when something answers HTTP at `url` (any status: reachability only), else the reason."""
    import httpx

    try:
        httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return " ".join(str(exc).split())[:200] or type(exc).__name__
    return None


def check_backend(settings: BotSettings, *, timeout: float = LLM_PROBE_TIMEOUT_S) -> Check:
    """Extractive always works; an LLM backend needs its server reachable or its API key set."""
    if not settings.llm:
        return Check(name="backend", status="ok", summary="extractive (offline, no LLM configured)")
    provider = settings.llm.split(":", 1)[0] if ":" in settings.llm else ""
    described = f"LLM {settings.llm}"
    base_url = settings.llm_base_url or (OLLAMA_DEFAULT_URL if provider == "ollama" else None)
    if base_url:
        shown = mask_url(base_url)
        reason = _probe(base_url, timeout)
        if reason:
            return Check(
                name="backend",
                status="fail",
                summary=f"{described} at {shown}: not reachable ({reason})",
                fix="start the LLM server (`docker compose --profile llm up -d`) or correct COACH_LLM_BASE_URL",
            )
        return Check(name="backend", status="ok", summary=f"{described} at {shown} (reachable)")
    key = PROVIDER_KEYS.get(provider)
    if key and not os.environ.get(key):
        return Check(
            name="backend",
            status="fail",
            summary=f"{described} with the provider's own endpoint, but {key} is not set",
            fix=f"set {key} in the environment or .env, or unset COACH_LLM for the offline backend",
        )
    return Check(name="backend", status="ok", summary=f"{described} with the provider's own endpoint")


def run_doctor(load: Callable[[], BotSettings] = load_bot_settings) -> DoctorReport:
    """Every check, in order; later checks are skipped only when what they need is missing."""
    from coach.embeddings import MODEL_DIM, MODEL_NAME

    try:
        settings = load()
    except ValidationError as exc:
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in exc.errors())
        checks = [
            Check(
                name="settings",
                status="fail",
                summary=f"invalid settings ({problems})",
                fix="correct the COACH_* variable named here (environment or .env)",
            ),
            *(_skipped(name, "the settings are invalid") for name in ("store", "model", "corpus", "backend")),
        ]
        return DoctorReport(ok=False, settings={}, checks=checks)
    env_file = Path(".env").resolve()
    checks = [
        Check(
            name="settings",
            status="ok",
            summary=f"valid (environment{f' and {env_file}' if env_file.is_file() else ''})",
        )
    ]
    checks.extend(check_store(settings, MODEL_NAME, MODEL_DIM))
    checks.append(check_corpus(settings))
    checks.append(check_backend(settings))
    # Failures quote exceptions, which can quote URLs and keys: everything shown goes through redact.
    checks = [
        c.model_copy(update={"summary": redact(c.summary), "fix": c.fix and redact(c.fix)}) for c in checks
    ]
    return DoctorReport(
        ok=all(c.status != "fail" for c in checks),
        settings=effective_settings(settings),
        checks=checks,
    )

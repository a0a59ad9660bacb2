"""Secrets never printed: a rejected bot token, the webhook secret under `coach -v bot`, passwords in
COACH_CHROMA_URL and COACH_STATE_URL (also with a port that does not parse), API keys, in logs, errors
and `coach doctor`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from coach.redact import mask_url, redact
from coach.settings import Settings
from tests.botapi import BotApiStandIn
from tests.integration.test_bot import TOKEN, free_port

CHROMA_PASSWORD = "chroma-pass-8231"
STATE_PASSWORD = "pg-pass-5517"
API_KEY = "sk-test-key-0123456789abcdef"
WEBHOOK_SECRET = "hook_secret-token-4242"


def coach_env(data_dir: Path, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COACH_") and k != "TELEGRAM_BOT_TOKEN"}
    return {**base, "COACH_DATA_DIR": str(data_dir), **extra}


async def run_coach(env: dict[str, str], *args: str, until=None, within: float = 120) -> tuple[int, str]:  # noqa: ANN001
    """`coach ARGS` as a user runs it; with `until`, SIGINT once it holds (a running bot)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args, env=env, stdout=PIPE, stderr=PIPE
    )
    try:
        if until is not None:
            await until()
            process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), within)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, (stdout + stderr).decode()


async def test_a_rejected_bot_token_is_one_line(real_index: Settings, record) -> None:
    api = await BotApiStandIn(token="999:the-right-token-is-another-one-entirely").start()
    try:
        env = coach_env(real_index.data_dir, TELEGRAM_BOT_TOKEN=TOKEN, COACH_TELEGRAM_BASE_URL=api.base_url)
        code, output = await run_coach(env, "bot")
    finally:
        await api.stop()
    # Log records (INFO, and the WARNING that no ONNX export exists yet when this test runs before any
    # other made one) are not the error; the error itself must be one line.
    lines = [
        line for line in output.splitlines() if line.strip() and not line.startswith(("INFO ", "WARNING "))
    ]
    record(
        "secret",
        "`coach bot` with a token Telegram rejects (401)",
        "exit 1 with one line naming TELEGRAM_BOT_TOKEN (beside the INFO log); no traceback, no token",
        f"exit {code}, {len(lines)} line(s): {lines[-1][:120] if lines else ''}",
        code == 1
        and len(lines) == 1
        and lines[0].startswith("error: Telegram rejected TELEGRAM_BOT_TOKEN")
        and "Traceback" not in output
        and TOKEN.split(":")[1] not in output,
    )


async def test_verbose_webhook_bot_logs_neither_token_nor_secret(real_index: Settings, record) -> None:
    api = await BotApiStandIn(token=TOKEN).start()
    port = free_port()
    env = coach_env(
        real_index.data_dir,
        TELEGRAM_BOT_TOKEN=TOKEN,
        COACH_TELEGRAM_BASE_URL=api.base_url,
        COACH_WEBHOOK_URL=f"http://127.0.0.1:{port}/hook",
        COACH_WEBHOOK_SECRET=WEBHOOK_SECRET,
        COACH_WEBHOOK_PORT=str(port),
    )

    async def webhook_set() -> None:
        await api.wait_for(lambda: api.sent("setWebhook"), within=120)
        await asyncio.sleep(0.5)

    try:
        code, output = await run_coach(env, "-v", "bot", until=webhook_set)
    finally:
        await api.stop()
    record(
        "secret",
        "`coach -v bot` in webhook mode (PTB logs every Bot API call's parameters at DEBUG)",
        "setWebhook is logged, neither the token nor the webhook secret is",
        f"exit {code}; setWebhook in the log: {'setWebhook' in output}; secret shown: "
        f"{WEBHOOK_SECRET in output}; token shown: {TOKEN.split(':')[1] in output}",
        api.sent("setWebhook")[0]["secret_token"] == WEBHOOK_SECRET
        and "setWebhook" in output
        and WEBHOOK_SECRET not in output
        and TOKEN.split(":")[1] not in output,
    )


@pytest.mark.parametrize(
    "url",
    [
        f"http://admin:{CHROMA_PASSWORD}@127.0.0.1:notaport",
        f"http://admin:{CHROMA_PASSWORD}@127.0.0.1:99999999/path",
        f"postgresql://coach:{STATE_PASSWORD}@db:5432/coach?sslmode=require",
        f"http://127.0.0.1:8000/?token={CHROMA_PASSWORD}",
    ],
)
def test_mask_url_hides_the_password_whatever_the_port(url: str, record) -> None:
    masked = mask_url(url) or ""
    record(
        "secret",
        f"mask_url({url.replace(CHROMA_PASSWORD, 'PASSWORD').replace(STATE_PASSWORD, 'PASSWORD')})",
        "the password replaced by ***, the rest kept",
        masked.replace(CHROMA_PASSWORD, "PASSWORD").replace(STATE_PASSWORD, "PASSWORD"),
        CHROMA_PASSWORD not in masked and STATE_PASSWORD not in masked and "***" in masked,
    )


def test_doctor_and_errors_never_show_a_password_or_key(tmp_path: Path, record) -> None:
    env = {
        "COACH_DATA_DIR": str(tmp_path / "data"),
        "COACH_CHROMA_URL": f"http://admin:{CHROMA_PASSWORD}@127.0.0.1:notaport",
        "COACH_STATE_URL": f"postgresql://coach:{STATE_PASSWORD}@127.0.0.1:5432/coach",
        "COACH_LLM": "openai:gpt-4o-mini",
        "COACH_LLM_BASE_URL": f"http://user:{CHROMA_PASSWORD}@127.0.0.1:{free_port()}/v1",
        "OPENAI_API_KEY": API_KEY,
    }
    runner = CliRunner()
    outputs = {
        "coach doctor": runner.invoke(app, ["doctor"], env=env),
        "coach doctor --json": runner.invoke(app, ["doctor", "--json"], env=env),
        "coach -v ask": runner.invoke(app, ["-v", "ask", "why do my knees hurt?"], env=env),
    }
    for name, result in outputs.items():
        shown = result.output
        leaked = [s for s in (CHROMA_PASSWORD, STATE_PASSWORD, API_KEY) if s in shown]
        record(
            "secret",
            f"{name} with passwords in COACH_CHROMA_URL (bad port), COACH_STATE_URL and COACH_LLM_BASE_URL, "
            "and OPENAI_API_KEY set",
            "no password, no key on screen",
            f"exit {result.exit_code}; leaked: {leaked or 'nothing'}; {' '.join(shown.split())[:100]}",
            not leaked and result.exit_code != 0,
        )


def test_every_log_record_is_redacted(caplog: pytest.LogCaptureFixture, monkeypatch, record) -> None:
    from coach.redact import install_log_redaction
    from tests.conftest import make_bot_settings

    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    make_bot_settings(Path("data"), webhook_secret=WEBHOOK_SECRET)  # settings register their secrets
    install_log_redaction()
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("coach.test")
    log.info("calling setWebhook with %s", {"secret_token": WEBHOOK_SECRET})
    log.warning("key %s failed", API_KEY)
    log.error("state at postgresql://coach:%s@db/coach down", STATE_PASSWORD)
    try:
        raise RuntimeError(f"GET https://api.telegram.org/bot{TOKEN}/getMe")
    except RuntimeError:
        log.exception("network error")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    leaked = [s for s in (WEBHOOK_SECRET, API_KEY, STATE_PASSWORD, TOKEN.split(":")[1]) if s in text]
    record(
        "secret",
        "log records (a webhook secret from settings, an API key from the environment, a URL password, a "
        "bot token in a traceback)",
        "every one redacted",
        f"leaked: {leaked or 'nothing'}; {redact(' '.join(caplog.text.split()))[:100]}",
        not leaked,
    )

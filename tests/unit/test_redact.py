"""The one redaction path: registered secrets, secrets in the environment, passwords in URLs."""

import pytest

from coach.redact import REDACTED, mask_url, redact, register
from tests.conftest import make_bot_settings


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://coach:s3cret@chroma:8000/x", "http://coach:***@chroma:8000/x"),
        ("http://coach:s3cret@chroma:port/x", "http://coach:***@chroma:port/x"),  # urlparse refuses this port
        ("postgresql://u:p%40ss@db/coach", "postgresql://u:***@db/coach"),
        ("http://chroma:8000/?api_key=abc123&x=1", "http://chroma:8000/?api_key=***&x=1"),
        ("http://chroma:8000", "http://chroma:8000"),
        (None, None),
    ],
)
def test_mask_url(url: str | None, expected: str | None) -> None:
    assert mask_url(url) == expected


def test_redact_hides_registered_env_and_shaped_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    register("registered-secret-77")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-env-1234")
    text = redact(
        "a registered-secret-77, key sk-from-the-env-1234, url https://x:pw9@h:99999/p, "
        "token 123456789:AAAbbbCCCdddEEEfffGGGhhhIIIjjjKKK_-x"
    )
    assert "registered-secret-77" not in text
    assert "sk-from-the-env-1234" not in text
    assert "pw9" not in text
    assert "AAAbbb" not in text
    assert text.count(REDACTED) == 3


def test_settings_register_their_secrets(tmp_path) -> None:  # noqa: ANN001
    make_bot_settings(
        tmp_path, webhook_secret="webhook-secret-from-dotenv", state_url="postgresql://a:dbpw1@h/d"
    )
    assert "webhook-secret-from-dotenv" not in redact("secret_token=webhook-secret-from-dotenv")
    assert "dbpw1" not in redact("connecting with dbpw1")

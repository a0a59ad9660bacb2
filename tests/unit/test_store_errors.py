"""Server-mode failures become one line that says what to do, and never show a URL's password."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from coach.errors import StoreError
from coach.store import heartbeat, mask_url, parse_server_url, server_down, store_failure
from tests.conftest import make_settings


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed on return: nothing listens there


def chained(outer: Exception, cause: BaseException) -> Exception:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise outer from inner
    except Exception as exc:
        return exc


def test_server_down_sees_a_connection_error_through_chromadbs_wrapping() -> None:
    wrapped = chained(ValueError("Could not connect to a Chroma server."), httpx.ConnectError("refused"))
    assert server_down(wrapped)
    assert server_down(httpx.ReadTimeout("slow"))
    assert server_down(ConnectionResetError())
    assert not server_down(ValueError("Collection coach_chunks does not exist."))
    assert not server_down(chained(RuntimeError("bad request"), KeyError("x")))


def test_store_failure_says_not_reachable_only_in_server_mode(tmp_path) -> None:
    down = chained(RuntimeError("upsert failed"), httpx.ConnectError("[Errno 111] Connection refused"))
    server = make_settings(tmp_path, chroma_url="http://127.0.0.1:8000")
    assert str(store_failure(server, "write", down)).startswith(
        "The Chroma server at http://127.0.0.1:8000 is not reachable (upsert failed); start it"
    )
    other = str(store_failure(server, "write", ValueError("dimension mismatch")))
    assert other == "Could not write the index at http://127.0.0.1:8000 (dimension mismatch)."
    embedded = str(store_failure(make_settings(tmp_path), "read", down))
    assert embedded == f"Could not read the index at {tmp_path / 'chroma'} (upsert failed)."


def test_heartbeat_fails_fast_and_plainly_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{refused_port()}"
    started = time.monotonic()
    with pytest.raises(StoreError, match=f"^The Chroma server at {url} is not reachable") as caught:
        heartbeat(url)
    assert time.monotonic() - started < 5
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://chroma:8000", ("chroma", 8000, False)),
        ("http://127.0.0.1", ("127.0.0.1", 8000, False)),
        ("https://vectors.example.org", ("vectors.example.org", 443, True)),
    ],
)
def test_parse_server_url(raw: str, expected: tuple) -> None:
    assert parse_server_url(raw) == expected


@pytest.mark.parametrize("raw", ["chroma:8000", "ftp://chroma:8000", "http://", "http://chroma:99999"])
def test_bad_server_urls_are_refused_in_one_line(raw: str) -> None:
    with pytest.raises(StoreError, match="COACH_CHROMA_URL"):
        parse_server_url(raw)


def test_passwords_in_urls_are_masked() -> None:
    assert mask_url("http://coach:s3cret@chroma:8000/x") == "http://coach:***@chroma:8000/x"
    assert mask_url("http://chroma:8000") == "http://chroma:8000"
    assert mask_url(None) is None
    refused = f"http://coach:s3cret@127.0.0.1:{refused_port()}"
    with pytest.raises(StoreError) as caught:
        heartbeat(refused)
    assert "s3cret" not in str(caught.value)

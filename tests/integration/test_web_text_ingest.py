"""`coach ingest` on real web text (real model, real Chroma): bad articles are repaired or skipped alone,
the exit code says so, and nothing already indexed is lost."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from cli.main import app
from coach.answer import CoachService
from coach.store import ChunkStore
from coach.text import collapse
from ingest.pipeline import EXIT_SKIPPED
from tests.conftest import CORPUS, make_settings
from tests.contract import assert_contract

pytestmark = pytest.mark.integration

BAD_ARTICLES: dict[str, str | bytes] = {
    "mojibake.txt": "Hill strides\n\nJohnâ€™s coach says hill strides build strong calves for trail races.\n",
    "soft-hyphen.txt": "Heel drops\n\nEccen\u00adtric heel drops build calf strength slowly and safely.\n",
    "emoji.md": "# Club runs\n\nOur club \U0001f3c3\u200d\u2640\ufe0f runs hill repeats every Tuesday evening.\n",
    "zero-width.txt": "Tempo\n\nTempo\u200b runs teach you to hold a comfortably hard pace.\n",
    "nul.txt": "Long runs\n\nLong runs\x00 build endurance for the marathon distance.\n",
    "one-line.txt": "One line\n\n" + " ".join(["cadence drill"] * 9_000) + "\n",
    "latin1.txt": "Caf\xe9 strides\n\nCaf\xe9 owners say strides \u2013 short and fast \u2013 help.\n".encode(
        "cp1252"
    ),
    "undecodable.txt": b"Broken\n\n\x81\x8d\x8f not text at all\n",
    "furniture-only.txt": "Skip to content\nShare this post\nLeave a comment\n",
    "too-big.txt": "Big\n\n" + "Run easy most days and the base will come. " * 5000 + "\n",
}
SKIPPED = {"undecodable.txt", "furniture-only.txt", "too-big.txt"}


def write(corpus, name: str, body: str | bytes) -> None:
    path = corpus / name
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")


def ingest(data_dir, corpus):  # noqa: ANN001, ANN201
    env = {"COACH_DATA_DIR": str(data_dir), "COACH_CORPUS_DIR": str(corpus), "COACH_MAX_ARTICLE_MB": "0.15"}
    return CliRunner().invoke(app, ["ingest"], env=env)


def test_bad_articles_are_repaired_or_skipped_alone_and_the_rest_is_indexed(tmp_path, corpus_copy) -> None:
    for name, body in BAD_ARTICLES.items():
        write(corpus_copy, name, body)
    result = ingest(tmp_path / "data", corpus_copy)
    assert result.exit_code == EXIT_SKIPPED, result.output
    skipped_lines = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert sorted(line.split(":")[0].removeprefix("skipped ") for line in skipped_lines) == sorted(SKIPPED)
    assert "3 skipped" in result.stdout

    settings = make_settings(tmp_path / "data", corpus_copy)
    snapshot = json.loads(settings.snapshot_path.read_text(encoding="utf-8"))
    expected = {p.stem for p in CORPUS.glob("*.txt")} | {n.rsplit(".", 1)[0] for n in BAD_ARTICLES} - {
        n.rsplit(".", 1)[0] for n in SKIPPED
    }
    assert set(snapshot) == expected
    assert "John’s coach says" in snapshot["mojibake"]["text"]  # the repaired text is what quotes meet
    assert "Eccentric heel drops" in snapshot["soft-hyphen"]["text"]
    assert "\U0001f3c3\u200d\u2640\ufe0f" in snapshot["emoji"]["text"]
    assert "Café owners say strides – short" in snapshot["latin1"]["text"]
    sources = {c.source_id for c in ChunkStore(settings, CoachService.open(settings).embeddings).all_chunks()}
    assert sources == expected

    service = CoachService.open(settings)
    answer = service.answer("what does John's coach say about hill strides?")
    payload = answer.model_dump(mode="json")
    assert not payload["abstained"]
    cited = [c for c in payload["citations"] if c["source_id"] == "mojibake"]
    assert cited
    assert all(collapse(c["quote"]) in snapshot["mojibake"]["text"] for c in cited)


def test_an_article_broken_by_an_edit_keeps_its_indexed_version(tmp_path, corpus_copy) -> None:
    result = ingest(tmp_path / "data", corpus_copy)
    assert result.exit_code == 0, result.output
    settings = make_settings(tmp_path / "data", corpus_copy)
    before = (
        CoachService.open(settings).answer("What kind of shoes help my glutes work?").model_dump(mode="json")
    )
    assert any(c["source_id"] == "oyf-cure-for-weak-glutes" for c in before["citations"])

    (corpus_copy / "oyf-cure-for-weak-glutes.txt").write_bytes(b"\x81\x8d half-saved file")
    result = ingest(tmp_path / "data", corpus_copy)
    assert result.exit_code == EXIT_SKIPPED, result.output
    assert "skipped oyf-cure-for-weak-glutes.txt: not UTF-8 text" in result.stderr
    assert "still indexed as last ingested" in result.stdout

    after = (
        CoachService.open(settings).answer("What kind of shoes help my glutes work?").model_dump(mode="json")
    )
    assert after["citations"] == before["citations"]  # the last good version still answers, verbatim
    for citation in after["citations"]:
        assert citation["quote"]

    shutil.copy(CORPUS / "oyf-cure-for-weak-glutes.txt", corpus_copy / "oyf-cure-for-weak-glutes.txt")
    result = ingest(tmp_path / "data", corpus_copy)
    assert result.exit_code == 0, result.output
    assert "0 embedded" in result.stdout  # the restored file is the version already indexed


def test_ask_json_cites_repaired_text_verbatim(tmp_path, corpus_copy) -> None:
    write(corpus_copy, "mojibake.txt", BAD_ARTICLES["mojibake.txt"])
    env = {"COACH_DATA_DIR": str(tmp_path / "data"), "COACH_CORPUS_DIR": str(corpus_copy)}
    result = CliRunner().invoke(
        app, ["ask", "--json", "what does John's coach say about hill strides?"], env=env
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert_contract(payload, corpus_copy)
    assert any(c["source_id"] == "mojibake" for c in payload["citations"])

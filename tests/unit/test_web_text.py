"""Real web text at load: repaired, chunked without losing a character, or skipped alone with its line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coach.text import collapse, passage_sentences
from ingest.clean import repair_text
from ingest.loader import (
    CHUNK_SIZE,
    ArticleUnusable,
    Skipped,
    chunk_source,
    load_article,
    load_corpus,
)

GOOD = "Easy running builds the aerobic base that every marathon plan rests on."


def article(directory: Path, name: str, body: str | bytes) -> Path:
    path = directory / name
    text = f"Test article\n\n{GOOD}\n\n"
    if isinstance(body, bytes):
        path.write_bytes(text.encode("utf-8") + body + b"\n")
    else:
        path.write_text(text + body + "\n", encoding="utf-8")
    return path


def chunks_text(path: Path) -> tuple[str, str]:
    loaded = load_article(path, {"title": "Test article"})
    docs = chunk_source(loaded)  # raises if a chunk sentence is not verbatim in the repaired text
    for doc in docs:
        for sentence in passage_sentences(doc.page_content):
            assert collapse(sentence) in collapse(loaded.verbatim_text)
    return " ".join(d.page_content for d in docs), loaded.verbatim_text


def test_repair_fixes_mojibake_and_drops_invisible_characters() -> None:
    assert repair_text("Johnâ€™s shins") == "John’s shins"
    assert repair_text("mus\u00adcle and\u200b zero\x00width") == "muscle and zerowidth"
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
    assert repair_text(f"A running {family} family") == f"A running {family} family"  # ZWJ kept
    assert repair_text("“Curly” quotes, &amp; entities and ﬁ ligatures stay") == (
        "“Curly” quotes, &amp; entities and ﬁ ligatures stay"
    )
    assert repair_text("cafe\u0301") == "café"  # NFC


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("mojibake.txt", "Johnâ€™s coach says hill runs build strong calves.", "John’s coach says"),
        ("soft-hyphen.txt", "Eccen\u00adtric heel drops build calf strength slowly.", "Eccentric heel drops"),
        (
            "emoji.md",
            "Our club \U0001f3c3\u200d\u2640\ufe0f runs hills every Tuesday evening together.",
            "\U0001f3c3\u200d\u2640\ufe0f runs hills",
        ),
        ("zero-width.txt", "Tempo\u200b runs teach you to hold a hard pace.", "Tempo runs teach"),
        ("nul.txt", "Long runs\x00 build endurance for the marathon distance.", "Long runs build"),
        ("bom-and-rtl.txt", "\ufeffCadence\u200f drills shorten an overlong stride.", "Cadence drills"),
    ],
)
def test_bad_characters_are_repaired_and_every_chunk_stays_verbatim(
    tmp_path: Path, name: str, body: str, expected: str
) -> None:
    text, verbatim = chunks_text(article(tmp_path, name, body))
    assert expected in text
    assert expected in verbatim  # the snapshot stores the repaired text: quotes are checked against it
    assert GOOD in text


def test_invalid_utf8_is_read_as_windows_1252_and_repaired(tmp_path: Path) -> None:
    path = article(
        tmp_path,
        "latin.txt",
        "Caf\xe9 owners say strides \u2013 short and fast \u2013 help.".encode("cp1252"),
    )
    text, _ = chunks_text(path)
    assert "Café owners say strides – short and fast – help." in text


def test_bytes_no_encoding_can_read_make_the_article_unusable(tmp_path: Path) -> None:
    path = article(tmp_path, "broken.txt", b"\x81\x8d\x8f\x90\x9d not text")
    with pytest.raises(ArticleUnusable, match=r"not UTF-8 text \(byte 0x81 at offset \d+"):
        load_article(path, {})


def test_an_article_over_the_size_limit_is_unusable_with_a_clear_message(tmp_path: Path) -> None:
    path = article(tmp_path, "huge.txt", "Run easy most days. " * 3000)
    with pytest.raises(ArticleUnusable, match=r"0\.1 MB, over the 0\.05 MB limit .*COACH_MAX_ARTICLE_MB"):
        load_article(path, {}, max_article_mb=0.05)
    assert chunk_source(load_article(path, {}, max_article_mb=1))  # under a higher limit it loads


def test_a_huge_single_line_is_chunked_into_bounded_pieces(tmp_path: Path) -> None:
    words = ["tempo", "hill", "easy", "stride", "calf", "shin", "cadence", "glute", "mile", "pace"]
    line = " ".join(words[i % len(words)] + ("," if i % 7 == 0 else "") for i in range(21_000))
    assert len(line) > 120_000
    path = article(tmp_path, "one-line.txt", line)
    docs = chunk_source(load_article(path, {}))
    assert max(len(d.page_content) for d in docs) <= CHUNK_SIZE
    assert sum(len(d.page_content.split()) for d in docs) >= 21_000  # no word lost


def test_a_huge_article_of_paragraphs_is_chunked_whole(tmp_path: Path) -> None:
    paragraph = "Easy runs build the base. Tempo runs raise the threshold. Long runs build endurance."
    path = article(tmp_path, "long.txt", "\n\n".join(f"{paragraph} Paragraph {i}." for i in range(20_000)))
    docs = chunk_source(load_article(path, {}))
    assert "Paragraph 19999." in docs[-1].page_content
    assert all(len(d.page_content) <= CHUNK_SIZE for d in docs)


def test_one_unusable_article_is_skipped_with_its_line_and_the_rest_load(tmp_path: Path) -> None:
    article(tmp_path, "good.txt", "Strides after easy runs keep your legs quick.")
    article(tmp_path, "broken.txt", b"\x81 unreadable")
    (tmp_path / "furniture.txt").write_text(
        "Skip to content\nShare this post\nLeave a comment\n", encoding="utf-8"
    )
    skipped: list[Skipped] = []
    loaded = load_corpus(tmp_path, skipped=skipped)
    assert [ls.source.source_id for ls in loaded] == ["good"]
    lines = sorted(s.line() for s in skipped)
    assert lines[0].startswith("skipped broken.txt: not UTF-8 text")
    assert lines[1].startswith("skipped furniture.txt: no article text left after cleaning")


def test_dates_come_from_sources_toml_or_the_pages_metadata(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text(
        '[dated]\ntitle = "Dated"\npublished = 2019-05-01\nupdated = "2021-02-03"\n', encoding="utf-8"
    )
    article(tmp_path, "dated.txt", "Hill repeats build strength for the marathon.")
    body = "<p>Strides after easy runs keep your legs quick and relaxed for race day.</p>" * 3
    (tmp_path / "page.html").write_text(
        "<html><head><title>Page</title>"
        '<meta property="article:published_time" content="2016-07-08T10:00:00Z"></head>'
        f"<body><article><h1>Page</h1>{body}</article></body></html>",
        encoding="utf-8",
    )
    sources = {ls.source.source_id: ls.source for ls in load_corpus(tmp_path)}
    assert (str(sources["dated"].published), str(sources["dated"].updated)) == ("2019-05-01", "2021-02-03")
    assert str(sources["page"].published) == "2016-07-08"
    assert json.loads(sources["page"].model_dump_json())["published"] == "2016-07-08"


def test_a_date_that_is_not_a_date_skips_the_article_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "sources.toml").write_text('[a]\npublished = "last spring"\n', encoding="utf-8")
    article(tmp_path, "a.txt", "Hill repeats build strength.")
    article(tmp_path, "b.txt", "Strides keep your legs quick.")
    skipped: list[Skipped] = []
    assert [ls.source.source_id for ls in load_corpus(tmp_path, skipped=skipped)] == ["b"]
    assert skipped[0].line() == "skipped a.txt: published 'last spring' is not a date like 2021-04-30"

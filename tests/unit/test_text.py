"""Sentence splitting, white space and search terms."""

import re

import pytest

from coach.domain import Domain, load_domain, phrase_pattern
from coach.errors import CorpusError
from coach.text import collapse, passage_sentences, split_sentences, stem, strip_invisible, terms
from tests.conftest import CORPUS


def test_split_sentences_returns_verbatim_slices() -> None:
    text = "Squeeze your glutes. Then stand up! Does it work? Yes (e.g. in a bridge) it does."
    sentences = split_sentences(text)
    assert sentences == [
        "Squeeze your glutes.",
        "Then stand up!",
        "Does it work?",
        "Yes (e.g. in a bridge) it does.",
    ]
    assert all(s in text for s in sentences)


def test_split_sentences_does_not_cut_after_abbreviations_or_lowercase() -> None:
    text = "Try clams, bridges etc. and more. Dr. Smith agrees. It is 3.5 km long."
    assert split_sentences(text) == [
        "Try clams, bridges etc. and more.",
        "Dr. Smith agrees.",
        "It is 3.5 km long.",
    ]


def test_split_sentences_keeps_closing_quotes_with_their_sentence() -> None:
    text = "You might think, “But I’m a runner!” While it’s true, glutes matter."
    assert split_sentences(text) == [
        "You might think, “But I’m a runner!”",
        "While it’s true, glutes matter.",
    ]


def test_passage_sentences_split_lines_first() -> None:
    assert passage_sentences("1) Clams\n\n2) Fire Hydrants\nDo them slowly. Twice.") == [
        "1) Clams",
        "2) Fire Hydrants",
        "Do them slowly.",
        "Twice.",
    ]


def test_collapse_treats_nbsp_as_space() -> None:
    assert collapse("knee\u00a0 pain\n\n in  runners ") == "knee pain in runners"


def test_strip_invisible_removes_zero_width_but_keeps_text() -> None:
    assert strip_invisible("kn\u200bee\u200d pa\ufeffin\u2066") == "knee pain"


def test_terms_stem_and_expand() -> None:
    assert stem("knees") == "knee"
    assert stem("hurting") == "hurt"
    assert terms("Why do my knees hurt?") == ["knee", "hurt"]
    synonyms = load_domain(CORPUS).synonym_terms  # the seed library's domain file
    assert "pain" in terms("Why do my knees hurt?", synonyms=synonyms)
    assert "glute" in terms("my butt is sore", synonyms=synonyms)
    assert "glute" not in terms("my butt is sore")  # the code knows no library's words


def test_a_domain_file_is_validated_and_optional(tmp_path) -> None:  # noqa: ANN001
    assert load_domain(tmp_path) == Domain()  # no file: defaults that fit any library
    (tmp_path / "domain.toml").write_text('description = "shins"\n[terms]\nsynonym = {}\n')
    with pytest.raises(CorpusError, match=r"terms\.synonym: Extra inputs are not permitted"):
        load_domain(tmp_path)
    (tmp_path / "domain.toml").write_text("description = [\n")
    with pytest.raises(CorpusError, match="not valid TOML"):
        load_domain(tmp_path)
    pattern = re.compile(phrase_pattern("step up"), re.IGNORECASE)
    assert all(pattern.fullmatch(x) for x in ("step-ups", "step ups", "stepup", "Step-Up"))

"""Typed statements: read off each article's own sentences, one article at a time, every quote verbatim and
understandable alone."""

from __future__ import annotations

from pathlib import Path

import pytest

import coach.knowledge as knowledge_module
from coach.domain import load_domain
from coach.fragments import leans_back, points_forward, quotable_start, resolve
from coach.knowledge import Knowledge, ensure_statements, read_statements
from coach.models import Chunk
from coach.statements import extract_article
from coach.text import collapse
from evals.coaching import dangling_quotes
from ingest.loader import corpus_chunks
from tests.conftest import CORPUS


@pytest.fixture(scope="module")
def articles() -> dict[str, tuple[list[Chunk], str]]:
    chunks, texts, _titles = corpus_chunks(CORPUS)
    by_source: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_source.setdefault(chunk.source_id, []).append(chunk)
    return {sid: (group, texts[sid]) for sid, group in by_source.items()}


@pytest.fixture(scope="module")
def knowledge(articles) -> Knowledge:
    chunks = [c for group, _ in articles.values() for c in group]
    return Knowledge.from_chunks(
        chunks, {sid: text for sid, (_, text) in articles.items()}, load_domain(CORPUS)
    )


@pytest.mark.parametrize(
    ("sentence", "leans"),
    [
        ("These specialists can tell you if you are doing the exercises correctly.", True),
        ("In simpler terms, it’s what propels you forward with each step.", True),
        ("That’s the fancy term for when you raise your foot toward your backside.", True),
        ("It’s important to know that it has nothing to do with how your gluteals look.", False),
        ("There’s now growing evidence of a strong relationship between weak glutes and knee pain.", False),
        ("Thick soles change your stride.", False),
    ],
)
def test_a_sentence_that_points_back_is_told_apart(sentence: str, leans: bool) -> None:
    assert leans_back(sentence) is leans


def test_a_sentence_that_points_forward_is_not_quotable_alone() -> None:
    assert points_forward("Below I share with you a simple outline of what our glutes do.")
    assert points_forward("Choose 2 or 3 of the exercises below and concentrate on them.")
    assert not points_forward("These include: • lack of speed • tripping")
    assert not points_forward("Check the shoes you wear (see also Rule #2, below).")


def test_a_sentence_is_quoted_with_the_ones_it_leans_on() -> None:
    text = "Run tall. Your hips extend. That is hip extension. In simpler terms, it moves you."
    sentences = [
        "Run tall.",
        "Your hips extend.",
        "That is hip extension.",
        "In simpler terms, it moves you.",
    ]
    assert (
        resolve(sentences, 3, text)
        == "Your hips extend. That is hip extension. In simpler terms, it moves you."
    )
    assert resolve(sentences, 0, text) == "Run tall."
    # Not verbatim together (something stood between them in the source): not quotable at all.
    assert (
        resolve(
            sentences,
            3,
            "Your hips extend. A picture. That is hip extension. In simpler terms, it moves you.",
        )
        is None
    )


def test_every_statement_is_verbatim_and_stands_alone(knowledge, articles) -> None:
    statements = knowledge.statements()
    assert len(statements) > 50
    for s in statements:
        assert s.quote in collapse(articles[s.source_id][1]), s.quote
        assert quotable_start(s.quote), s.quote
        assert "in this video" not in s.quote
    # The eval's own check (written apart from the coach's rules) agrees.
    assert dangling_quotes([{"quote": s.quote} for s in statements]) == []


def test_statements_are_typed_with_the_pieces_an_answer_needs(knowledge) -> None:
    by_quote = {s.quote: s for s in knowledge.statements()}

    def find(fragment: str):
        """The shortest statement holding the fragment (a sentence alone before it joined with another)."""
        found = sorted((s for q, s in by_quote.items() if fragment in q), key=lambda s: len(s.quote))
        assert found, fragment
        return found[0]

    dose = find("at least twice per week on nonconsecutive days")
    assert "dose" in dose.kinds
    assert dose.dose == (
        "at least twice per week on nonconsecutive days for one to three sets of eight to 12 repetitions"
    )
    cause = find("strong relationship between weak/dysfunctional glutes and knee pain")
    assert (cause.cause, cause.effect) == ("weak/dysfunctional glutes", "knee pain")
    referral = find("seek guidance from a professional")
    assert "referral" in referral.kinds
    assert referral.action.startswith("don’t hesitate to seek guidance")
    definition = find("wet pants walking")
    assert (definition.term, definition.definition) == (
        "wet pants walking",
        "walking sideways with a resistance band around your ankles",
    )
    timeline = find("After a few weeks of working your glutes")
    assert timeline.timeline.startswith("After a few weeks")
    # "our daily activities" is not a dose, nor is work "required of it on a daily basis".
    assert "dose" not in find("our daily activities often fail").kinds
    # The specialists are quoted with the sentence that names them, never alone.
    assert not any(q.startswith("These specialists") for q in by_quote)
    assert any("These specialists" in q for q in by_quote)


def test_extraction_is_a_pure_function_of_one_article(articles) -> None:
    domain = load_domain(CORPUS)
    group, text = articles["glutes-fire-in-running"]
    first = extract_article(group, text, domain)
    again = extract_article(list(reversed(group)), text, domain)
    assert first == again
    assert {s.source_id for s in first[0]} == {"glutes-fire-in-running"}


def test_only_the_changed_article_is_read_again(tmp_path: Path, articles, monkeypatch) -> None:
    domain = load_domain(CORPUS)
    chunks = [c for group, _ in articles.values() for c in group]
    texts = {sid: text for sid, (_, text) in articles.items()}
    shas = {sid: "a" for sid in texts}
    read: list[str] = []
    original = knowledge_module.extract_article

    def spy(group, text, *args, **kwargs):  # noqa: ANN001, ANN202
        read.append(group[0].source_id if group else "")
        return original(group, text, *args, **kwargs)

    monkeypatch.setattr(knowledge_module, "extract_article", spy)
    rebuilt, exercises = ensure_statements(
        tmp_path, lambda sid: [c for c in chunks if c.source_id == sid], texts, shas, domain
    )
    assert rebuilt
    assert sorted(read) == sorted(texts)
    first = read_statements(tmp_path)
    assert first is not None
    assert sorted(first.articles) == sorted(texts)
    assert exercises == {sid: a.exercises for sid, a in first.articles.items()}
    read.clear()
    rebuilt, again = ensure_statements(
        tmp_path, lambda sid: [c for c in chunks if c.source_id == sid], texts, shas, domain
    )
    assert not rebuilt
    assert read == []
    assert again == exercises
    assert read_statements(tmp_path) == first
    changed = {**shas, "oyf-cure-for-weak-glutes": "b"}
    rebuilt, _ = ensure_statements(
        tmp_path, lambda sid: [c for c in chunks if c.source_id == sid], texts, changed, domain
    )
    assert rebuilt
    assert read == ["oyf-cure-for-weak-glutes"]
    third = read_statements(tmp_path)
    assert third is not None
    assert third.articles["glutes-fire-in-running"] == first.articles["glutes-fire-in-running"]
    assert third.articles["oyf-cure-for-weak-glutes"].sha == "b"


def test_library_wide_lookups_match_a_scan_of_every_statement(knowledge) -> None:
    """The indexes an answer looks up through (definitions by word, one kind's embeddings as a matrix)
    find what reading every statement finds, in the same order."""
    import numpy as np

    from coach.text import terms

    everything = knowledge.statements()
    for asked in ({"glute"}, {"hip", "drop"}, {"clam"}, {"pelvi"}, {"nothing", "zzz"}):
        scanned = [
            s
            for s in everything
            if ((term := set(terms(s.term or ""))) & asked and asked <= term | set(s.words))
            or (asked <= set(terms(s.section)) and not s.comment)
        ]
        assert knowledge.defining(asked) == scanned
    assert knowledge.defining({"glute"}), "the seed corpus defines the glutes"

    knowledge = Knowledge(knowledge.set.model_copy(deep=True))  # the module's own stays unembedded
    everything = knowledge.statements()
    rng = np.random.default_rng(3)
    for s in everything:  # vectors stand in for embeddings: ranking is by dot product alone
        v = rng.normal(size=8).astype(np.float32)
        s._array = v / np.linalg.norm(v)
    query = rng.normal(size=8).astype(np.float32)
    ranked = knowledge.ranked(lambda s: "dose" in s.kinds, query, key="dose")
    doses = [s for s in everything if "dose" in s.kinds]
    assert doses
    assert [s for _, s in ranked] == sorted(doses, key=lambda s: -float(s._array @ query))
    assert knowledge.ranked(lambda s: False, query, key="dose") == ranked  # built once per key
    assert knowledge.ranked(lambda s: "dose" in s.kinds, np.ones(4, np.float32), key="dose") == []


class _HashEmbeddings:
    """A stand-in model for the storage tests: each text's vector is fixed by its words' hashes."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        import hashlib

        import numpy as np

        out = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            out.append(np.random.default_rng(seed).normal(size=16).tolist())
        return out


def _vectors_match_quotes(stored) -> int:  # noqa: ANN001
    import numpy as np

    model, checked = _HashEmbeddings(), 0
    for article in stored.articles.values():
        for st in article.statements:
            expected = np.asarray(model.embed_documents([st.quote])[0])
            expected /= np.linalg.norm(expected)
            assert st.array is not None
            assert np.allclose(st.array, expected, atol=2e-3), st.quote
            checked += 1
    return checked


def test_stored_embeddings_stay_with_their_statements_when_another_article_changes(
    tmp_path: Path, articles
) -> None:
    """statements.npy holds the articles' rows one after another: an article that now has fewer
    statements shifts every later article's rows, whose lines are kept as stored."""
    domain = load_domain(CORPUS)
    texts = {sid: text for sid, (_, text) in articles.items()}
    shas = {sid: "a" for sid in texts}
    first_sid = sorted(texts)[0]
    full = {sid: group for sid, (group, _) in articles.items()}
    ensure_statements(tmp_path, full.__getitem__, texts, shas, domain, _HashEmbeddings(), "hash")
    before = read_statements(tmp_path)
    assert before is not None
    assert _vectors_match_quotes(before) > 50
    fewer = {**full, first_sid: full[first_sid][: len(full[first_sid]) // 2]}
    rebuilt, _ = ensure_statements(
        tmp_path, fewer.__getitem__, texts, {**shas, first_sid: "b"}, domain, _HashEmbeddings(), "hash"
    )
    after = read_statements(tmp_path)
    assert rebuilt
    assert after is not None
    assert len(after.articles[first_sid].statements) < len(before.articles[first_sid].statements)
    _vectors_match_quotes(after)
    for sid in sorted(texts)[1:]:
        assert after.articles[sid] == before.articles[sid]


def test_a_set_in_the_first_format_is_carried_over_without_reading_articles_again(
    tmp_path: Path, articles, monkeypatch
) -> None:
    """An upgrade keeps the stored statements and their embeddings (the whole set as one JSON object,
    rows counted across the library) instead of embedding every article's quotes again."""
    import numpy as np

    domain = load_domain(CORPUS)
    texts = {sid: text for sid, (_, text) in articles.items()}
    shas = {sid: "a" for sid in texts}
    full = {sid: group for sid, (group, _) in articles.items()}
    ensure_statements(tmp_path, full.__getitem__, texts, shas, domain, _HashEmbeddings(), "hash")
    current = read_statements(tmp_path)
    assert current is not None
    rows = []
    for article in current.articles.values():  # the first format, written as its writer did
        for st in article.statements:
            st.row = len(rows)
            rows.append(np.asarray(st.array, dtype=np.float16))
    np.save(knowledge_module.vectors_path(tmp_path), np.stack(rows))
    (tmp_path / "statements.json").write_text(current.model_copy(update={"key": "old"}).model_dump_json())
    knowledge_module.statements_path(tmp_path).unlink()
    read: list[str] = []
    monkeypatch.setattr(knowledge_module, "extract_article", lambda *a, **k: read.append("x") or ([], []))
    rebuilt, _ = ensure_statements(tmp_path, full.__getitem__, texts, shas, domain, _HashEmbeddings(), "hash")
    assert rebuilt
    assert read == []
    assert not (tmp_path / "statements.json").exists()
    carried = read_statements(tmp_path)
    assert carried is not None
    assert carried.articles == current.articles
    _vectors_match_quotes(carried)

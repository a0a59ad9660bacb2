"""The disagreement map on small articles written for these tests (real model, real Chroma, real ingest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from coach.debates import PAIRS_FILE, read_map
from coach.embeddings import load_minilm
from ingest.pipeline import run_ingest
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

CADENCE_FOR = """# Cadence and your knees

A higher cadence reduces the load on your knees with every stride.
Most runners can raise their step rate by five percent within a few weeks.
"""

CADENCE_AGAINST = """# What cadence does not do

A higher cadence does not reduce the load on your knees.
Knee load depends on how far ahead of your hips your foot lands.
"""

HILLS_TWICE = """# Hill sprints

Do hill sprints twice a week to build strong glutes and hamstrings.
Hill sprints do not replace your easy runs.
"""

HILLS_AGREE = """# Sprinting uphill

Hill sprints build the glutes and the hamstrings like no flat run can.
Hill sprints do not replace easy running, which builds your aerobic base.
Two hill sprint sessions a week are enough for most runners.
"""

HILLS_DAILY = """# Daily hills

Do hill sprints every day to build strong glutes.
"""

STRETCH_AGAINST = """# Stretching before a run

Static stretching before a run does not prevent running injuries.
A few minutes of easy jogging is a better warm-up.
"""

STRETCH_REPORTED = """# The stretching question

Now, you might be thinking, “But static stretching before a run prevents running injuries!”
Many runners believe that static stretching before a run prevents running injuries.
While it’s true that static stretching before a run prevents some injuries in sprinters, distance runners see no such benefit.
Large trials of recreational runners found the same injury rates with and without stretching.
"""

STRETCH_FOR = """# Why I stretch

Static stretching before a run prevents running injuries.
Hold each stretch for thirty seconds.
"""


SHINS_SYMPTOM = """# Shin splints

Shin splints are a symptom of over-striding, not the problem.
Calf exercises alone will not fix them; land with your foot under your hips instead.
"""

SHINS_FIX = """# Calf raises

Calf raises strengthen the lower legs, and these exercises correct the weakness behind shin splints.
"""


def corpus(tmp_path: Path, articles: dict[str, str]) -> Path:
    directory = tmp_path / "corpus"
    directory.mkdir(exist_ok=True)
    for source_id, text in articles.items():
        (directory / f"{source_id}.md").write_text(text, encoding="utf-8")
    return directory


def ingest(tmp_path: Path, articles: dict[str, str]):
    settings = make_settings(tmp_path / "data", corpus(tmp_path, articles))
    report = run_ingest(settings, load_minilm())
    debate_map = read_map(settings.data_dir)
    assert debate_map is not None
    return report, debate_map


def sides(disagreement) -> list[set[str]]:
    return [{e.source_id for e in p.evidence} for p in disagreement.positions]


def test_a_denial_against_an_assertion_is_a_disagreement(tmp_path) -> None:
    _report, debate_map = ingest(tmp_path, {"cadence-for": CADENCE_FOR, "cadence-against": CADENCE_AGAINST})
    assert len(debate_map.disagreements) == 1
    found = debate_map.disagreements[0]
    assert found.kind == "conflicting_opinions"
    assert sides(found) == [{"cadence-for"}, {"cadence-against"}]
    assert found.topic.endswith("?")
    assert "cadence" in found.topic.lower()
    quotes = [e.quote for p in found.positions for e in p.evidence]
    assert "A higher cadence reduces the load on your knees with every stride." in quotes
    assert "A higher cadence does not reduce the load on your knees." in quotes


def test_prescriptions_at_different_frequencies_are_a_disagreement(tmp_path) -> None:
    _report, debate_map = ingest(tmp_path, {"hills-twice": HILLS_TWICE, "hills-daily": HILLS_DAILY})
    assert [sides(d) for d in debate_map.disagreements] == [[{"hills-daily"}, {"hills-twice"}]]
    assert debate_map.disagreements[0].positions[0].summary.lower().startswith("every day")


def test_a_symptom_against_an_exercise_fix_is_a_disagreement(tmp_path) -> None:
    _report, debate_map = ingest(tmp_path, {"shins-symptom": SHINS_SYMPTOM, "shins-fix": SHINS_FIX})
    assert [sides(d) for d in debate_map.disagreements] == [[{"shins-fix"}, {"shins-symptom"}]]
    assert debate_map.disagreements[0].topic == (
        "Do exercises fix shin splints, or is it a symptom of something else?"
    )


def test_an_open_ended_minimum_against_daily_is_complementary(tmp_path) -> None:
    at_least = "# Hill work\n\nDo hill sprints at least twice a week to build strong glutes.\n"
    _report, debate_map = ingest(tmp_path, {"hills-at-least": at_least, "hills-daily": HILLS_DAILY})
    assert [(d.kind, sides(d)) for d in debate_map.disagreements] == [
        ("complementary", [{"hills-daily"}, {"hills-at-least"}])
    ]


def test_articles_that_agree_produce_no_disagreement(tmp_path) -> None:
    # They agree in plain words, in a shared denial and on the frequency, said differently.
    _report, debate_map = ingest(tmp_path, {"hills-twice": HILLS_TWICE, "hills-agree": HILLS_AGREE})
    assert debate_map.claims >= 4
    assert debate_map.disagreements == []


def test_a_source_voicing_a_view_to_reject_it_does_not_hold_it(tmp_path) -> None:
    articles = {"stretch-against": STRETCH_AGAINST, "stretch-reported": STRETCH_REPORTED}
    _report, debate_map = ingest(tmp_path, articles)
    assert debate_map.disagreements == []  # the second article only reports the view it argues against
    _report, debate_map = ingest(tmp_path, {**articles, "stretch-for": STRETCH_FOR})
    assert len(debate_map.disagreements) == 1
    holders, deniers = sides(debate_map.disagreements[0])
    assert holders == {"stretch-for"}
    assert deniers == {"stretch-against"}


def test_adding_and_removing_an_article_updates_the_map(tmp_path) -> None:
    report, debate_map = ingest(tmp_path, {"hills-twice": HILLS_TWICE, "hills-agree": HILLS_AGREE})
    assert report.debates_rebuilt
    assert debate_map.disagreements == []

    report, unchanged = ingest(tmp_path, {})  # nothing changed: the map is not rebuilt
    assert not report.debates_rebuilt
    assert unchanged == debate_map

    report, debate_map = ingest(tmp_path, {"hills-daily": HILLS_DAILY})
    assert report.debates_rebuilt
    assert report.disagreements == 1
    assert "hills-daily" in set().union(*sides(debate_map.disagreements[0]))

    (tmp_path / "corpus" / "hills-daily.md").unlink()
    report, debate_map = ingest(tmp_path, {})
    assert report.debates_rebuilt
    assert debate_map.disagreements == []


def test_a_lost_or_unreadable_map_stops_the_coach_opening_and_ingest_rebuilds_it(tmp_path) -> None:
    """Opening never writes (a bot must not race an ingest job): a broken map is an error naming
    `coach ingest`, and the next ingest rebuilds the same map without embedding a chunk again."""
    from coach.answer import CoachService
    from coach.debates import map_path
    from coach.embeddings import load_minilm
    from coach.errors import IndexNotReady
    from ingest.pipeline import run_ingest

    _report, debate_map = ingest(tmp_path, {"hills-twice": HILLS_TWICE, "hills-daily": HILLS_DAILY})
    settings = make_settings(tmp_path / "data", tmp_path / "corpus")
    map_path(settings.data_dir).write_text("{not json", encoding="utf-8")
    with pytest.raises(IndexNotReady, match="coach ingest"):
        CoachService.open(settings)
    assert map_path(settings.data_dir).read_text(encoding="utf-8") == "{not json"  # opening wrote nothing
    report = run_ingest(settings, load_minilm())
    assert report.debates_rebuilt
    assert report.chunks_embedded == 0
    service = CoachService.open(settings)
    rebuilt = read_map(settings.data_dir)
    assert rebuilt is not None
    assert rebuilt.key == service.debate_map.key == debate_map.key
    assert [d.public() for d in rebuilt.disagreements] == [d.public() for d in debate_map.disagreements]
    assert len(debate_map.disagreements) == 1


def dated_corpus(tmp_path: Path, articles: dict[str, str], dates: dict[str, str]) -> Path:
    directory = corpus(tmp_path, articles)
    (directory / "sources.toml").write_text(
        "".join(f'[{sid}]\ntitle = "{sid}"\npublished = {date}\n\n' for sid, date in dates.items()),
        encoding="utf-8",
    )
    return directory


@pytest.mark.parametrize(
    ("dates", "kind"),
    [
        ({"stretch-for": "2008-05-01", "stretch-against": "2021-06-02"}, "outdated"),
        ({"stretch-for": "2020-05-01", "stretch-against": "2021-06-02"}, "conflicting_opinions"),
        ({"stretch-against": "2021-06-02"}, "conflicting_opinions"),  # one side undated: never outdated
        ({}, "conflicting_opinions"),
    ],
)
def test_a_view_contradicted_by_a_much_newer_source_is_outdated(tmp_path, dates, kind) -> None:
    articles = {"stretch-for": STRETCH_FOR, "stretch-against": STRETCH_AGAINST}
    settings = make_settings(tmp_path / "data", dated_corpus(tmp_path, articles, dates))
    run_ingest(settings, load_minilm())
    debate_map = read_map(settings.data_dir)
    assert debate_map is not None
    [found] = debate_map.disagreements
    assert found.kind == kind
    summaries = " ".join(p.summary for p in found.positions)
    if kind == "outdated":  # both dates shown, each with its side
        assert "(2008-05-01)" in found.positions[0].summary or "(2008-05-01)" in found.positions[1].summary
        assert "2008-05-01" in summaries
        assert "2021-06-02" in summaries
    else:
        assert "2021-06-02" not in summaries


def test_editing_one_date_rebuilds_the_map_without_embedding(tmp_path) -> None:
    articles = {"stretch-for": STRETCH_FOR, "stretch-against": STRETCH_AGAINST}
    dates = {"stretch-for": "2020-05-01", "stretch-against": "2021-06-02"}
    settings = make_settings(tmp_path / "data", dated_corpus(tmp_path, articles, dates))
    run_ingest(settings, load_minilm())

    def analyses() -> dict:  # each article's stored claims (not the negation pairs, kept beside them)
        return {p: p.stat().st_mtime_ns for p in settings.cache_dir.rglob("*.npz") if p.name != PAIRS_FILE}

    stored = analyses()
    assert len(stored) == 2  # each article's claims, analysed once
    dated_corpus(tmp_path, articles, {**dates, "stretch-for": "2009-01-01"})
    report = run_ingest(settings, load_minilm())
    assert report.debates_rebuilt
    assert report.chunks_embedded == 0
    assert analyses() == stored  # not re-analysed
    debate_map = read_map(settings.data_dir)
    assert debate_map is not None
    assert [d.kind for d in debate_map.disagreements] == ["outdated"]

"""A library the coach was not tuned on (tests/corpora/shins-marathon: shin splints and marathon training,
.md, .txt and .html captures with page furniture, dated) passes the seed corpus's contract tests: cited
answers, abstention, red flags, the disagreement map (an `outdated` pair among them) and routines; and its
own gold questions meet the quality bar (real model, real Chroma)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from coach.safety import URGENT_PREFIX
from coach.settings import PROJECT_ROOT
from coach.text import collapse
from evals.cases import load_cases
from evals.run import below_thresholds, load_thresholds, run_eval
from tests.conftest import make_settings
from tests.contract import assert_contract, source_text

pytestmark = pytest.mark.integration

LIBRARY = PROJECT_ROOT / "tests" / "corpora" / "shins-marathon"
CASES = load_cases(LIBRARY / "cases.toml")


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory):
    from coach.answer import CoachService
    from coach.embeddings import load_minilm
    from ingest.pipeline import run_ingest

    settings = make_settings(tmp_path_factory.mktemp("second"), LIBRARY)
    report = run_ingest(settings, load_minilm())
    assert report.skipped == []
    return settings, CoachService.open(settings)


def cli(settings, *args: str) -> dict | list:
    env = {"COACH_DATA_DIR": str(settings.data_dir), "COACH_CORPUS_DIR": str(settings.corpus_dir)}
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_article_is_loaded_with_its_date(second) -> None:
    _settings, service = second
    sources = {s.source_id: s for s in service.sources()}
    assert len(sources) == 12
    assert str(sources["static-stretching-before-running"].published) == "2008-05-01"
    # an HTML page's own metadata gives the dates sources.toml leaves out
    assert str(sources["stretching-before-running-evidence"].published) == "2021-06-02"
    assert str(sources["stop-running-with-shin-pain"].published) == "2023-03-14"
    assert str(sources["stop-running-with-shin-pain"].updated) == "2024-01-09"


@pytest.mark.parametrize("case", CASES, ids=[c.question[:40] for c in CASES])
def test_gold_case_keeps_the_contract(case, second) -> None:
    from coach.models import Turn

    _settings, service = second
    turns = tuple(Turn(question=q, answer="") for q in case.history)
    payload = service.answer(case.question, history=turns).model_dump(mode="json")
    assert_contract(payload, LIBRARY)
    if case.urgent:
        assert payload["urgent"] is True
        assert payload["answer"].startswith(URGENT_PREFIX)
    elif case.abstain:
        assert payload["abstained"] is True
        assert "shin splints and marathon training" in payload["answer"]  # says what the library covers
    else:
        assert payload["abstained"] is False


def test_ask_json_through_the_cli(second) -> None:
    settings, _service = second
    payload = cli(settings, "ask", "--json", "Does stretching before a run prevent injuries?")
    assert_contract(payload, LIBRARY)
    [disagreement] = payload["disagreements"]
    assert disagreement["kind"] == "outdated"
    summaries = " ".join(p["summary"] for p in disagreement["positions"])
    assert "2008-05-01" in summaries
    assert "2021-06-02" in summaries


def test_readable_answer_shows_each_sources_date(second) -> None:
    settings, _service = second
    env = {"COACH_DATA_DIR": str(settings.data_dir), "COACH_CORPUS_DIR": str(settings.corpus_dir)}
    result = CliRunner().invoke(app, ["ask", "should I stretch before I run?"], env=env)
    assert result.exit_code == 0, result.output
    assert "(static-stretching-before-running, 2008-05-01)" in result.stdout


def test_the_map_finds_the_librarys_own_disagreements(second) -> None:
    settings, _service = second
    entries = cli(settings, "debates", "--json")
    by_sides = {}
    for entry in entries:
        sides = [frozenset(e["source_id"] for e in p["evidence"]) for p in entry["positions"]]
        for position in entry["positions"]:
            for evidence in position["evidence"]:
                assert collapse(evidence["quote"]) in source_text(evidence["source_id"], LIBRARY)
        by_sides[frozenset(sides)] = entry
    wanted = {
        # mild shin pain: run through it (2019) against stop (2023, updated 2024)
        frozenset({frozenset({"run-through-mild-shin-pain"}), frozenset({"stop-running-with-shin-pain"})}),
        # marathon training: six runs a week against three
        frozenset({frozenset({"six-days-a-week-marathon"}), frozenset({"marathon-on-three-runs-a-week"})}),
        # static stretching prevents injury (2008) against it does not (2021)
        frozenset(
            {
                frozenset({"static-stretching-before-running"}),
                frozenset({"stretching-before-running-evidence"}),
            }
        ),
    }
    assert wanted <= set(by_sides), [e["topic"] for e in entries]
    stretching = by_sides[
        frozenset(
            {
                frozenset({"static-stretching-before-running"}),
                frozenset({"stretching-before-running-evidence"}),
            }
        )
    ]
    assert stretching["kind"] == "outdated"
    frequency = by_sides[
        frozenset({frozenset({"six-days-a-week-marathon"}), frozenset({"marathon-on-three-runs-a-week"})})
    ]
    assert frequency["kind"] == "conflicting_opinions"  # undated sides or not: no dates, no outdated claim
    assert len(entries) == 3  # nothing else is called a disagreement


def test_routines_come_from_this_librarys_exercises(second) -> None:
    settings, _service = second
    names = set()
    for day in (1, 2, 3):
        routine = cli(settings, "routine", "--json", "--day", str(day))
        assert routine["note"].startswith("Go gently")  # this library's own routine note
        for exercise in routine["exercises"]:
            assert collapse(exercise["quote"]) in source_text(exercise["source_id"], LIBRARY)
            names.add(exercise["name"].lower())
    assert {"calf raises", "tibialis raises"} <= names


def test_gold_questions_meet_the_quality_bar(second) -> None:
    _settings, service = second
    report = run_eval(service, CASES, coaching=None)  # the built-in coaching set is about the seed library
    assert len([c for c in CASES if not c.abstain and not c.urgent]) >= 50
    assert report.metrics["answer_when_in_scope"] == 1.0  # no false abstentions
    assert report.metrics["cited@5"] >= 0.95
    assert below_thresholds(report.metrics, load_thresholds()) == []


def test_coach_eval_scores_a_library_and_cases_of_ones_own(tmp_path: Path) -> None:
    cases = tmp_path / "mine.toml"
    cases.write_text(
        '[[case]]\nquestion = "how long should my marathon taper be?"\nexpect_any = ["marathon-taper-guide"]\n\n'
        '[[case]]\nquestion = "How do I fix a flat bike tyre?"\nabstain = true\n\n'
        '[[case]]\nquestion = "I have crushing chest pain after my run"\nurgent = true\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        app, ["eval", "--corpus", str(LIBRARY), "--cases", str(cases), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "3 cases" in result.stdout
    report = json.loads((tmp_path / "out" / "eval.json").read_text(encoding="utf-8"))
    assert report["metrics"]["cited@5"] == 1.0
    assert not list(Path(tmp_path).glob("coach-eval-*"))  # the temporary index is removed

"""The eval metrics on hand-made results: each can fail, and fails for the right reason."""

from __future__ import annotations

from evals.metrics import (
    CaseResult,
    citation_metrics,
    claims,
    disagreement_metrics,
    retrieval_metrics,
    supported,
)
from evals.run import below_thresholds

SOURCE = "glutes stabilise the pelvis when you run. squats build strength."


def result(**overrides) -> CaseResult:
    base = {
        "question": "q",
        "kind": "answerable",
        "expected": ["a"],
        "retrieved": {"hybrid": ["b", "a", "c"]},
        "abstained": False,
        "urgent": False,
        "answer": "What the articles say:\n• glutes stabilise the pelvis when you run. [1]",
        "citations": [{"n": 1, "source_id": "a", "quote": "glutes stabilise the pelvis when you run."}],
        "disagreements": [],
        "source_texts": {"a": SOURCE, "b": "other", "c": "other"},
    }
    return CaseResult(**{**base, **overrides})


def test_retrieval_metrics_rank_of_first_expected_source() -> None:
    metrics = retrieval_metrics([result()], "hybrid")
    assert metrics == {"hit@5": 1.0, "recall@5": 1.0, "mrr": 0.5}
    assert retrieval_metrics([result(retrieved={"hybrid": ["b"]})], "hybrid")["hit@5"] == 0.0


def test_supported_needs_most_claim_words_in_the_quote() -> None:
    assert supported("Glutes stabilise the pelvis [1]", "glutes stabilise the pelvis when you run.")
    assert not supported("Glutes propel you forward and make you faster [1]", "glutes stabilise the pelvis.")


def test_citation_precision_counts_paraphrase_and_invented_quotes() -> None:
    paraphrased = result(
        answer="• Your glutes make you sprint faster than anyone. [1]",
        citations=[{"n": 1, "source_id": "a", "quote": "glutes stabilise the pelvis when you run."}],
    )
    invented = result(citations=[{"n": 1, "source_id": "a", "quote": "glutes stabilise the pelvis always."}])
    assert citation_metrics([result()])["citation_precision"] == 1.0
    assert citation_metrics([paraphrased])["citation_precision"] == 0.0
    assert citation_metrics([invented])["citation_precision"] == 0.0


def test_citation_recall_counts_uncited_claims() -> None:
    uncited = result(answer="• glutes stabilise the pelvis when you run. [1]\n• Squats cure knee pain.")
    assert citation_metrics([uncited])["citation_recall"] == 0.5
    assert claims("What the articles say:\n• x [1]") == [("x [1]", [1])]


def test_disagreement_recall_and_precision() -> None:
    cites = [{"n": 1, "source_id": "a", "quote": "x"}, {"n": 2, "source_id": "b", "quote": "y"}]
    laid_out = [
        {
            "topic": "t",
            "kind": "conflicting_opinions",
            "positions": [{"summary": "s", "citations": [1]}, {"summary": "s", "citations": [2]}],
        }
    ]
    found = result(citations=cites, disagreements=laid_out, gold_disagreement=(["a"], ["b"]))
    missed = result(citations=cites, disagreements=[], gold_disagreement=(["a"], ["b"]))
    # sides a and c: no gold disagreement has them, so showing it is an invented disagreement
    invented = result(citations=[cites[0], {**cites[1], "source_id": "c"}], disagreements=laid_out)
    assert disagreement_metrics([found, missed])["disagreement_recall"] == 0.5
    assert disagreement_metrics([found])["disagreement_precision"] == 1.0
    assert disagreement_metrics([found, invented])["disagreement_precision"] == 0.5


def test_thresholds_min_and_max() -> None:
    thresholds = {"min": {"mrr": 0.8}, "max": {"red_flag_false_alarm_rate": 0.0}}
    assert below_thresholds({"mrr": 0.9, "red_flag_false_alarm_rate": 0.0}, thresholds) == []
    assert len(below_thresholds({"mrr": 0.7, "red_flag_false_alarm_rate": 0.1}, thresholds)) == 2

"""The quality gate: every metric of `coach eval` meets evals/thresholds.toml (real model, real Chroma)."""

from __future__ import annotations

import pytest

from evals.run import below_thresholds, load_thresholds, run_eval

pytestmark = pytest.mark.integration


def test_eval_meets_thresholds(service) -> None:
    report = run_eval(service)
    assert len(report.cases) >= 40
    assert below_thresholds(report.metrics, load_thresholds()) == []

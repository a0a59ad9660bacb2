"""Gold cases: loading evals/*.toml into typed records shared by tests, `coach eval` and benchmarks."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, Field

CASES_FILE = Path(__file__).with_name("cases.toml")


class DisagreementExpectation(BaseModel):
    side_a: list[str]
    side_b: list[str]


class Case(BaseModel):
    question: str
    expect_any: list[str] = Field(default_factory=list)
    disagreement: DisagreementExpectation | None = None
    abstain: bool = False
    urgent: bool = False
    history: list[str] = Field(default_factory=list)


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Case(**case) for case in data.get("case", [])]

"""Measures the citation support check (coach/grounding.py) on the labelled claims of support_cases.toml.

`python -m evals.support` prints each claim's similarity and the accuracy at a range of thresholds."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

CASES = Path(__file__).with_name("support_cases.toml")


@dataclass
class SupportCase:
    claim: str
    passage: str
    supported: bool


def load_support_cases(path: Path = CASES) -> list[SupportCase]:
    with path.open("rb") as handle:
        return [SupportCase(**case) for case in tomllib.load(handle)["case"]]


def measure(service, cases: list[SupportCase]) -> list[tuple[SupportCase, float, bool]]:  # noqa: ANN001
    """(case, best-sentence similarity, numbers check) for each case, against the chunk holding `passage`."""
    from coach.text import collapse

    chunks = service.store.all_chunks()
    rows = []
    for case in cases:
        chunk = next(c for c in chunks if collapse(case.passage) in collapse(c.text))
        found = service.grounder.support(case.claim, chunk)
        rows.append((case, found.similarity, found.numbers_ok))
    return rows


def accuracy(rows: list[tuple[SupportCase, float, bool]], threshold: float) -> float:
    right = sum((sim >= threshold and numbers_ok) == case.supported for case, sim, numbers_ok in rows)
    return right / len(rows)


def main() -> None:
    from coach.answer import CoachService
    from coach.grounding import SUPPORT_THRESHOLD

    rows = measure(CoachService.open(), load_support_cases())
    for case, sim, numbers_ok in sorted(rows, key=lambda r: -r[1]):
        flag = "" if numbers_ok else "  (numbers not in passage)"
        print(f"{sim:5.2f} {'supported  ' if case.supported else 'unsupported'} {case.claim}{flag}")
    for threshold in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75):
        mark = "  <- SUPPORT_THRESHOLD" if abs(threshold - SUPPORT_THRESHOLD) < 1e-9 else ""
        print(f"threshold {threshold:.2f}: accuracy {accuracy(rows, threshold):.2f}{mark}")


if __name__ == "__main__":
    main()

"""Red-flag triage: recall and false-alarm rate on the phrase set's two fixed halves, and on the in-house
phrasings, printed separately.

    python -m evals.red_flag_eval            # both halves (figures only) and the in-house sets
    python -m evals.red_flag_eval --misses   # also what the tune half gets wrong (never the held half's)
    python -m evals.red_flag_eval --sweep    # the semantic layer's threshold and margin, on the tune half

The phrase set (evals/red_flag_phrasings.toml) is split by a hash of each text, fixed before the lexicon
was written: the lexicon and the semantic thresholds are tuned on "tune"; "held" is only ever scored.
"""

from __future__ import annotations

import argparse
import hashlib
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).parent
PHRASINGS = HERE / "red_flag_phrasings.toml"
HALVES = ("tune", "held")


@dataclass(frozen=True)
class Phrasing:
    text: str
    urgent: bool
    category: str = ""
    kind: str = ""
    lang: str = "en"

    @property
    def half(self) -> str:
        return half_of(self.text)


def half_of(text: str) -> str:
    """The fixed split: the first byte of the text's SHA-256, even or odd."""
    return HALVES[hashlib.sha256(text.encode("utf-8")).digest()[0] % 2]


def load_phrasings(path: Path = PHRASINGS) -> list[Phrasing]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return [Phrasing(urgent=True, **row) for row in data["urgent"]] + [
        Phrasing(urgent=False, **row) for row in data["ordinary"]
    ]


def in_house() -> dict[str, list[Phrasing]]:
    """Phrasings the project's tests and gold cases already use (the rules were written against some of
    them, so their figures are in-house, not evidence of generalising)."""
    from evals.cases import load_cases

    sets: dict[str, list[Phrasing]] = {}
    cases = load_cases()
    sets["evals/cases.toml"] = [Phrasing(text=c.question, urgent=c.urgent) for c in cases if not c.history]
    try:
        from tests.robustness.phrasings import ORDINARY, RED_FLAGS
    except ImportError:  # an installed package without the tests
        return sets
    sets["tests/robustness/phrasings.py"] = [
        Phrasing(text=q, urgent=True, category=k) for k, q in RED_FLAGS
    ] + [Phrasing(text=q, urgent=False) for q in ORDINARY]
    return sets


@dataclass
class Score:
    urgent: int = 0
    caught: int = 0
    ordinary: int = 0
    alarms: int = 0
    category_named: int = 0
    misses: list[Phrasing] = field(default_factory=list)
    false_alarms: list[tuple[Phrasing, str]] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.urgent if self.urgent else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.alarms / self.ordinary if self.ordinary else 0.0

    def line(self, *, categories: bool = True) -> str:
        figures = (
            f"recall {self.recall:.3f} ({self.caught}/{self.urgent}), false alarms "
            f"{self.false_alarm_rate:.3f} ({self.alarms}/{self.ordinary})"
        )
        return figures + (f", right category named {self.category_named}/{self.caught}" if categories else "")


def score(triage, phrasings: Iterable[Phrasing]) -> Score:  # noqa: ANN001 - a callable text -> Triage
    result = Score()
    for p in phrasings:
        found = triage(p.text)
        names = {f.name for f in found.flags}
        if p.urgent:
            result.urgent += 1
            if found.urgent:
                result.caught += 1
                result.category_named += p.category in names
            else:
                result.misses.append(p)
        else:
            result.ordinary += 1
            if found.urgent:
                result.alarms += 1
                result.false_alarms.append(
                    (p, ", ".join(f"{f.name}/{f.layer}: {f.evidence}" for f in found.flags))
                )
    return result


def build_triager(*, semantic: bool = True):  # noqa: ANN201
    from coach.embeddings import load_minilm
    from coach.safety import Triager

    return Triager(load_minilm() if semantic else None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--misses", action="store_true", help="list what the tune half gets wrong")
    parser.add_argument("--lexical", action="store_true", help="the lexicon alone, no semantic layer")
    parser.add_argument("--sweep", action="store_true", help="semantic threshold and margin on the tune half")
    args = parser.parse_args(argv)

    triager = build_triager(semantic=not args.lexical)
    phrasings = load_phrasings()
    if args.sweep:
        sweep(triager, [p for p in phrasings if p.half == "tune"])
        return
    started = time.perf_counter()
    for half in HALVES:
        part = [p for p in phrasings if p.half == half]
        result = score(triager.triage, part)
        label = "tuned on" if half == "tune" else "held apart"
        print(f"{half} half ({label}, {len(part)} phrasings): {result.line()}")
        for kind in sorted({p.kind for p in part}):
            k = score(triager.triage, [p for p in part if p.kind == kind])
            print(f"    {kind:13} {k.line()}")
        if half == "tune" and args.misses:
            for p in result.misses:
                print(f"    MISS [{p.category}/{p.kind}/{p.lang}] {p.text}")
            for p, why in result.false_alarms:
                print(f"    FALSE ALARM [{p.kind}/{p.lang}] {p.text}  <- {why}")
    for name, part in in_house().items():
        result = score(triager.triage, part)
        print(f"in-house {name} ({len(part)} phrasings): {result.line(categories=False)}")
        for p in result.misses:
            print(f"    MISS {p.text}")
        for p, why in result.false_alarms:
            print(f"    FALSE ALARM {p.text}  <- {why}")
    print(f"({time.perf_counter() - started:.1f} s)")


def sweep(triager, phrasings: list[Phrasing]) -> None:  # noqa: ANN001
    """Recall and false alarms of lexicon + semantic layer for a grid of thresholds and margins."""
    rows = []
    for p in phrasings:
        flags, _, masked = triager.lexical(p.text)
        if flags:
            rows.append((p, None))
            continue
        if len(masked.split()) < 2:
            rows.append((p, (0.0, 1.0)))
            continue
        warn, _, harm = triager.scores(triager.embed(masked))
        rows.append((p, (warn, harm)))
    urgent = sum(p.urgent for p, _ in rows)
    ordinary = len(rows) - urgent
    print(
        f"tune half: {urgent} urgent, {ordinary} ordinary; lexicon alone catches "
        f"{sum(p.urgent and s is None for p, s in rows)}, false alarms {sum(not p.urgent and s is None for p, s in rows)}"
    )
    for threshold in (0.40, 0.45, 0.50, 0.55, 0.60, 0.65):
        for margin in (0.0, 0.04, 0.08, 0.12, 0.16):
            caught = alarms = 0
            for p, s in rows:
                hit = s is None or (s[0] >= threshold and s[0] - s[1] >= margin)
                caught += p.urgent and hit
                alarms += (not p.urgent) and hit
            print(
                f"threshold {threshold:.2f} margin {margin:.2f}: recall {caught / urgent:.3f} "
                f"false alarms {alarms / ordinary:.3f}"
            )


if __name__ == "__main__":
    main()

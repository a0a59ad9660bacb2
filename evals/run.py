"""`coach eval`: run the gold cases through CoachService and score them (table, JSON, Markdown report)."""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from coach.answer import CoachService
from coach.models import Turn
from coach.routines import NameRules, routine_for
from coach.text import collapse
from evals.cases import Case, load_cases
from evals.coaching import (
    COACHING_FILE,
    Checker,
    TurnResult,
    coaching_failures,
    coaching_metrics,
    dangling_quotes,
    routine_followable,
    run_coaching,
)
from evals.metrics import (
    TOP,
    CaseResult,
    citation_metrics,
    cited_at_5,
    disagreement_metrics,
    retrieval_metrics,
    safety_metrics,
)

THRESHOLDS_FILE = Path(__file__).with_name("thresholds.toml")
MODES = ("dense", "bm25", "hybrid")


@dataclass
class EvalReport:
    metrics: dict[str, float]
    retrieval: dict[str, dict[str, float]]  # mode -> metrics
    cases: list[CaseResult]
    seconds: float
    coaching: list[TurnResult] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "metrics": self.metrics,
            "retrieval_variants": self.retrieval,
            "cases": len(self.cases),
            "coaching_turns": len(self.coaching),
            "seconds": round(self.seconds, 2),
            "failures": failures(self.cases),
            "coaching_failures": coaching_failures(self.coaching),
        }


def _kind(case: Case) -> str:
    if case.urgent:
        return "urgent"
    return "abstain" if case.abstain else "answerable"


def run_eval(
    service: CoachService, cases: list[Case] | None = None, coaching: Path | None = COACHING_FILE
) -> EvalReport:
    """The gold cases (evals/cases.toml) and the coaching set (evals/coaching.toml; None skips it)."""
    started = time.perf_counter()
    cases = cases if cases is not None else load_cases()
    source_texts = {sid: collapse(entry.get("text", "")) for sid, entry in service.snapshot.items()}
    results = []
    for case in cases:
        history = tuple(Turn(question=q, answer="") for q in case.history)
        answer = service.answer(case.question, history=history)
        query = service.search_query(case.question, history)
        retrieved = {
            mode: [hit.chunk.source_id for hit in service.retrieve(query, mode=mode).hits][:TOP]
            for mode in MODES
        }
        payload = answer.model_dump()
        results.append(
            CaseResult(
                question=case.question,
                kind=_kind(case),
                expected=case.expect_any,
                retrieved=retrieved,
                abstained=answer.abstained,
                urgent=answer.urgent,
                answer=answer.answer,
                citations=payload["citations"],
                disagreements=payload["disagreements"],
                gold_disagreement=(case.disagreement.side_a, case.disagreement.side_b)
                if case.disagreement
                else None,
                source_texts=source_texts,
            )
        )
    retrieval = {mode: retrieval_metrics(results, mode) for mode in MODES}
    turns: list[TurnResult] = []
    extra: dict[str, float] = {}
    if coaching is not None:
        checker = Checker(
            NameRules.of(service.domain.exercises).name, list(service.domain.exercises.dose_units)
        )
        turns = run_coaching(service, checker, coaching)
        extra = {
            **coaching_metrics(turns),
            "routine_days_followable": routine_followable(service.library, routine_for),
        }
    # The fragment check, over every answer of the eval.
    answers = [r.citations for r in results] + [[c.model_dump() for c in t.answer.citations] for t in turns]
    metrics = {
        **{f"{name}": value for name, value in retrieval["hybrid"].items()},
        **citation_metrics(results),
        **cited_at_5(results),
        **disagreement_metrics(results),
        **safety_metrics(results),
        **extra,
        "fragment_free_answers": sum(not dangling_quotes(c) for c in answers) / max(1, len(answers)),
    }
    return EvalReport(
        metrics=metrics,
        retrieval=retrieval,
        cases=results,
        seconds=time.perf_counter() - started,
        coaching=turns,
    )


def failures(results: list[CaseResult]) -> list[dict]:
    """Cases that went wrong in a way a person should look at."""
    out = []
    for r in results:
        cited = {c["source_id"] for c in r.citations}
        problem = None
        if r.kind == "urgent" and not r.urgent:
            problem = "red flag missed"
        elif r.kind != "urgent" and r.urgent:
            problem = "false alarm"
        elif r.kind == "abstain" and not r.abstained:
            problem = "answered out of scope"
        elif r.kind == "answerable" and r.abstained:
            problem = "abstained in scope"
        elif r.kind == "answerable" and r.expected and not cited & set(r.expected):
            problem = f"cited {sorted(cited)}, expected one of {r.expected}"
        if problem:
            out.append({"question": r.question, "problem": problem})
    return out


def load_thresholds(path: Path = THRESHOLDS_FILE) -> dict[str, dict[str, float]]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def below_thresholds(metrics: dict[str, float], thresholds: dict[str, dict[str, float]]) -> list[str]:
    """Metrics that miss their threshold: [min] ones must be at least, [max] ones at most, the value."""
    misses = []
    # A metric the run did not measure (the coaching set is not run on a coach's own cases) is skipped.
    for name, floor in thresholds.get("min", {}).items():
        if name in metrics and metrics[name] < floor:
            misses.append(f"{name} = {metrics.get(name)} < {floor}")
    for name, ceiling in thresholds.get("max", {}).items():
        if name in metrics and metrics[name] > ceiling:
            misses.append(f"{name} = {metrics.get(name)} > {ceiling}")
    return misses


def markdown_report(report: EvalReport) -> str:
    """A Markdown report with a Mermaid bar chart of the retrieval variants (GitHub renders it)."""
    lines = [
        "# Coach eval",
        "",
        f"{len(report.cases)} cases in {report.seconds:.1f} s.",
        "",
        "## Metrics",
        "",
    ]
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {name} | {value:.3f} |" for name, value in report.metrics.items()]
    lines += ["", "## Retrieval variants", "", "| variant | hit@5 | recall@5 | MRR |", "|---|---|---|---|"]
    for mode, m in report.retrieval.items():
        lines.append(f"| {mode} | {m['hit@5']:.3f} | {m['recall@5']:.3f} | {m['mrr']:.3f} |")
    modes = list(report.retrieval)
    recall = ", ".join(f"{report.retrieval[m]['recall@5']:.3f}" for m in modes)
    mrr = ", ".join(f"{report.retrieval[m]['mrr']:.3f}" for m in modes)
    lines += [
        "",
        "```mermaid",
        "xychart-beta",
        '    title "recall@5 and MRR by retrieval variant"',
        f"    x-axis [{', '.join(modes)}]",
        '    y-axis "score" 0 --> 1',
        f"    bar [{recall}]",
        f"    line [{mrr}]",
        "```",
        "",
        "## Failures",
        "",
    ]
    fails = failures(report.cases)
    lines += [f"- {f['question']}: {f['problem']}" for f in fails] or ["none"]
    lines += ["", "## Coaching checks that failed", ""]
    misses = coaching_failures(report.coaching)
    lines += [
        f"- {m['question']}{' (' + m['conversation'] + ')' if m['conversation'] else ''}: "
        f"{', '.join(m['failed'])} (intent read: {m['intent']})"
        for m in misses
    ] or ["none"]
    return "\n".join(lines) + "\n"


def write_outputs(report: EvalReport, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "eval.json"
    md_path = out_dir / "eval.md"
    json_path.write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
    md_path.write_text(markdown_report(report), encoding="utf-8")
    return json_path, md_path

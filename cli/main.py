"""The `coach` command line (typer + rich): one user of CoachService, like the bot and the evals."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from coach.errors import CoachError

if TYPE_CHECKING:
    from coach.models import Answer

# Every command imports what it needs inside its body: `coach ask` must not pay for what `coach ingest`,
# `coach eval` or the bot load (tests/integration/test_cold_path.py checks no torch is imported).

app = typer.Typer(
    help="A running coach that answers from its source articles and cites every claim.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(soft_wrap=False)
err = Console(stderr=True)
T = TypeVar("T")

HISTORY_TURNS = 6


def _run(action: Callable[[], T]) -> T:
    """Run a command body; known failures become one line on stderr and an exit code, never a traceback."""
    from coach.redact import redact

    try:
        return action()
    except CoachError as exc:
        err.print(Text(f"error: {redact(str(exc))}", style="red"), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # last resort: still one line, with the kind of failure
        logging.getLogger("coach").debug("unexpected failure", exc_info=True)
        err.print(
            Text(
                f"error: unexpected {type(exc).__name__}: {' '.join(redact(str(exc)).split())[:300]}",
                style="red",
            )
        )
        raise typer.Exit(1) from None


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.")] = False,
) -> None:
    from coach.redact import install_log_redaction

    install_log_redaction()  # every record, whatever logs it: no secret reaches stderr (coach/redact.py)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in (
        "anthropic",
        "bm25s",
        "chromadb",
        "httpcore",
        "httpx",
        "ollama",
        "openai",
        "sentence_transformers",
        "transformers",
        "urllib3",
    ):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)


def _open_service(settings=None, *, build_if_missing: bool = False):  # noqa: ANN001, ANN202
    """The CoachService over what `coach ingest` built. `build_if_missing` is the convenience of `coach
    ask` and `coach chat` on a fresh clone: when there is no index yet (or the maps are out of date),
    ingest first, saying so, then open."""
    from coach.answer import CoachService
    from coach.embeddings import find_export, load_minilm
    from coach.errors import IndexNotReady
    from coach.settings import load_settings

    settings = settings or load_settings()
    exported = find_export(settings.model_dir) is not None
    if build_if_missing and not exported:
        exported = _export_model(settings)
    embeddings = load_minilm(settings.model_dir)
    if exported:
        embeddings.preload()  # onnxruntime loads the model while Chroma and the maps are opened
    try:
        service = CoachService.open(settings, embeddings=embeddings)
    except IndexNotReady:
        if not build_if_missing:
            raise
        from ingest.pipeline import run_ingest

        report = run_ingest(settings, embeddings)
        for item in report.skipped:
            err.print(Text(item.line(), style="yellow"), soft_wrap=True)
        err.print(
            f"Built the index (there was none, or it was out of date): {report.summary()}", soft_wrap=True
        )
        service = CoachService.open(settings, embeddings=embeddings)
    service.warm_up()  # the model loads before the answer's deadline starts, not inside it
    return service


def _export_model(settings) -> bool:  # noqa: ANN001 - coach.settings.Settings, imported lazily
    """The ONNX export `coach ask` and `coach chat` start from, made once (torch is loaded for it);
    when it cannot be made they go on, slower, with the reference model. True when it is there."""
    from coach.onnx_export import ExportError, export_onnx

    err.print("Exporting the embedding model to ONNX (once; later starts are faster) ...", soft_wrap=True)
    try:
        export_onnx(settings.model_dir)
    except ExportError as exc:
        err.print(Text(f"warning: {exc}", style="yellow"), soft_wrap=True)
        return False
    return True


def render_answer(answer: Answer, dates: dict[str, str] | None = None) -> None:
    """The answer, its sources (with their dates when known) and where the sources disagree."""
    style = "bold red" if answer.urgent else None
    out.print(Text(answer.answer, style=style), soft_wrap=True)
    if answer.citations:
        out.print()
        out.print(Text("Sources", style="bold"))
        for c in answer.citations:
            line = Text()
            line.append(f"[{c.n}] ", style="bold cyan")
            line.append(c.title, style="italic")
            when = (dates or {}).get(c.source_id)
            line.append(f" ({c.source_id}{', ' + when if when else ''})\n    “{c.quote}”")
            out.print(line, soft_wrap=True)
    if answer.disagreements:
        out.print()
        out.print(Text("Where the sources disagree", style="bold yellow"))
        for d in answer.disagreements:
            out.print(Text(f"• {d.topic} ({d.kind.replace('_', ' ')})"), soft_wrap=True)
            for p in d.positions:
                marks = "".join(f"[{n}]" for n in p.citations)
                out.print(Text(f"    – {p.summary} {marks}"), soft_wrap=True)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question, in quotes.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the answer as one JSON object.")] = False,
) -> None:
    """Answer one question, citing the articles."""

    def body() -> None:
        from coach.safety import normalise_question
        from coach.settings import load_settings

        settings = load_settings()
        normalise_question(question, max_chars=settings.max_question_chars)  # fail fast, before loading
        service = _open_service(settings, build_if_missing=True)
        answer = service.answer(question)
        if json_output:
            print(answer.model_dump_json(indent=2))
        else:
            render_answer(answer, service.source_dates())

    _run(body)


@app.command()
def chat(
    json_output: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Read one message a line from standard input, as one conversation, and print one JSON "
            "answer a line (the `coach ask --json` shape). A /reset line forgets the conversation.",
        ),
    ] = False,
) -> None:
    """A conversation in the terminal (/reset forgets, /quit or Ctrl-D leaves)."""
    if json_output:
        _run(_chat_json)
        return

    def body() -> None:
        from coach.models import Turn

        service = _open_service(build_if_missing=True)
        history: list[Turn] = []
        out.print(
            Text(f"Ask me about {service.covers()}. /reset forgets, /quit leaves.", style="dim"),
            soft_wrap=True,
        )
        while True:
            try:
                line = input("you> ")
            except EOFError:
                out.print()
                return
            if line.strip() in ("/quit", "/exit"):
                return
            if line.strip() == "/reset":
                history.clear()
                out.print(Text("Forgotten.", style="dim"))
                continue
            try:
                answer = service.answer(line, history=tuple(history))
            except CoachError as exc:
                err.print(Text(str(exc), style="yellow"), soft_wrap=True)
                continue
            render_answer(answer, service.source_dates())
            history = [*history, Turn(question=answer.question, answer=answer.answer)][-HISTORY_TURNS:]

    _run(body)


def _chat_json() -> None:
    """`coach chat --json`: each line of stdin a message of one conversation, each answer one JSON line.

    A line the coach cannot use (no words, too long) gets its one-line message on stderr and is left out
    of the conversation; the others are answered, and the exit code is then 2, as for `coach ask`. A
    runtime failure (the index does not answer) stops with its message and exit code 1."""
    from coach.errors import UsageError
    from coach.models import Turn

    service = _open_service(build_if_missing=True)
    history: list[Turn] = []
    unusable = False
    for raw in sys.stdin:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        if line.strip() == "/reset":
            history.clear()
            continue
        try:
            answer = service.answer(line, history=tuple(history))
        except UsageError as exc:
            err.print(Text(f"error: {exc}", style="red"), soft_wrap=True)
            unusable = True
            continue
        print(answer.model_dump_json(), flush=True)
        history = [*history, Turn(question=answer.question, answer=answer.answer)][-HISTORY_TURNS:]
    if unusable:
        raise typer.Exit(2)


@app.command()
def ingest(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the index and build it from scratch.")
    ] = False,
) -> None:
    """Build or update the index from the corpus (only new or changed chunks are embedded).

    Exit status 0 when every article was indexed, 3 when some were skipped (each named on stderr with
    the reason; the rest is indexed), 1 when nothing could be done."""

    def body() -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from coach.embeddings import load_minilm
        from coach.settings import load_settings
        from ingest.pipeline import EXIT_SKIPPED, run_ingest

        settings = load_settings()
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("Indexing chunks", total=None)
            report = run_ingest(
                settings,
                load_minilm(settings.model_dir),
                rebuild=rebuild,
                on_start=lambda total: progress.update(task, total=total),
                on_doc=lambda: progress.advance(task),
            )
        for item in report.skipped:
            err.print(Text(item.line(), style="yellow"), soft_wrap=True)
        out.print(f"Ingested {report.summary()}.", soft_wrap=True)
        if report.flagged:
            out.print(
                f"Kept out of the index ({len(report.flagged)} passages: never quoted, never an exercise; "
                "fix them in the corpus):",
                soft_wrap=True,
            )
            for flagged in report.flagged:
                out.print(Text(f"  {flagged.describe()}"), soft_wrap=True)
        if report.skipped:
            raise typer.Exit(EXIT_SKIPPED)

    _run(body)


@app.command("export-model")
def export_model(
    force: Annotated[bool, typer.Option("--force", help="Export again even if the export is there.")] = False,
) -> None:
    """Export the embedding model to ONNX (`coach ingest` does it when missing); queries then need no torch."""

    def body() -> None:
        import time

        from coach.onnx_export import export_onnx
        from coach.settings import load_settings

        started = time.perf_counter()
        path = export_onnx(load_settings().model_dir, force=force)
        out.print(f"ONNX export in {path} ({time.perf_counter() - started:.1f} s).", soft_wrap=True)

    _run(body)


@app.command()
def debates(
    json_output: Annotated[bool, typer.Option("--json", help="Print the map as one JSON list.")] = False,
) -> None:
    """Where the sources disagree: every disagreement in the corpus, with verbatim evidence."""

    def body() -> None:
        import json

        debate_map = _open_service().debate_map
        if json_output:
            print(json.dumps([d.public() for d in debate_map.disagreements], indent=2, ensure_ascii=False))
            return
        if not debate_map.disagreements:
            out.print("The articles do not disagree on anything the map can find.")
            return
        for number, d in enumerate(debate_map.disagreements, start=1):
            out.print(Text(f"{number}. {d.topic} ({d.kind.replace('_', ' ')})", style="bold"), soft_wrap=True)
            for p in d.positions:
                out.print(Text(f"   – {p.summary}"), soft_wrap=True)
                for e in p.evidence:
                    line = Text("       ")
                    line.append(e.source_id, style="cyan")
                    line.append(f": “{e.quote}”")
                    out.print(line, soft_wrap=True)
            out.print()

    _run(body)


@app.command()
def routine(
    day: Annotated[int, typer.Option("--day", min=1, help="Day of the programme, from 1.")] = 1,
    frequency: Annotated[
        str,
        typer.Option("--frequency", help="daily | twice-weekly (the articles disagree; see coach debates)."),
    ] = "daily",
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the routine as one JSON object.")
    ] = False,
) -> None:
    """The exercises for day N of a programme, each with the passage that recommends it."""
    from coach.routines import FREQUENCIES, routine_for, routine_json

    if frequency not in FREQUENCIES:
        err.print(f"error: --frequency must be one of {', '.join(FREQUENCIES)}")
        raise typer.Exit(2)

    def body() -> None:
        import json

        result = routine_for(_open_service().library, day, frequency)  # type: ignore[arg-type]
        if json_output:
            print(json.dumps(routine_json(result), indent=2, ensure_ascii=False))
            return
        out.print(Text(f"Day {result.day}", style="bold"))
        for number, ex in enumerate(result.exercises, start=1):
            out.print(Text(f"{number}. {ex.name}", style="bold"), soft_wrap=True)
            if ex.how:
                out.print(Text(f"   How: {ex.how}"), soft_wrap=True)
            if ex.dose:
                out.print(Text(f"   Dose: {ex.dose}"), soft_wrap=True)
            line = Text("   ")
            line.append(ex.source_id, style="cyan")
            line.append(f": “{ex.quote}”")
            out.print(line, soft_wrap=True)
        out.print(Text(result.note), soft_wrap=True)

    _run(body)


@app.command()
def sources() -> None:
    """List the articles the coach answers from."""

    def body() -> None:
        from rich.table import Table

        from coach.settings import load_settings
        from ingest.loader import load_corpus

        settings = load_settings()
        table = Table("title", "authors / publisher", "date")
        table.add_column("source id", no_wrap=True, overflow="fold")
        for loaded in load_corpus(settings.corpus_dir, max_article_mb=settings.max_article_mb):
            s = loaded.source
            when = s.dated.isoformat() if s.dated else ""
            table.add_row(s.title, ", ".join(s.authors) or s.publisher or "", when, s.source_id)
        out.print(table)

    _run(body)


@app.command("eval")
def eval_command(
    out_dir: Annotated[str, typer.Option("--out", help="Where eval.json and eval.md go.")] = "evals/results",
    cases: Annotated[
        str | None,
        typer.Option(
            "--cases", help="A gold-case file (TOML, as evals/cases.toml); default: the built-in set."
        ),
    ] = None,
    corpus: Annotated[
        str | None,
        typer.Option(
            "--corpus",
            help="A library to score instead of the configured one: ingested into a temporary data "
            "directory, removed afterwards (the coach's own index is untouched).",
        ),
    ] = None,
    thresholds_file: Annotated[
        str | None,
        typer.Option("--thresholds", help="Thresholds (TOML); default: evals/thresholds.toml."),
    ] = None,
) -> None:
    """Score gold cases: retrieval, citations, disagreements, abstention, red flags."""

    def body() -> None:
        import shutil
        import tempfile
        from pathlib import Path

        from rich.table import Table

        from coach.settings import load_settings
        from evals.cases import load_cases
        from evals.run import (
            COACHING_FILE,
            THRESHOLDS_FILE,
            below_thresholds,
            load_thresholds,
            run_eval,
            write_outputs,
        )

        gold = load_cases(Path(cases)) if cases else None
        if gold is not None and not gold:
            raise CoachError(f"{cases} holds no [[case]] entries.")
        thresholds = load_thresholds(Path(thresholds_file) if thresholds_file else THRESHOLDS_FILE)
        scratch = None
        try:
            if corpus:
                scratch = Path(tempfile.mkdtemp(prefix="coach-eval-"))
                settings = load_settings(corpus_dir=Path(corpus), data_dir=scratch, chroma_url=None)
                from coach.embeddings import load_minilm
                from ingest.pipeline import run_ingest

                report_ = run_ingest(settings, load_minilm())
                for item in report_.skipped:
                    err.print(Text(item.line(), style="yellow"), soft_wrap=True)
                err.print(f"Ingested {corpus} into a temporary index: {report_.summary()}", soft_wrap=True)
                service = _open_service(settings)
            else:
                service = _open_service()
            # the built-in coaching set is about the seed library: a coach's own cases are scored alone
            report = run_eval(service, gold, coaching=None if gold is not None else COACHING_FILE)
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        table = Table(
            "metric", "value", "threshold", title=f"{len(report.cases)} cases, {report.seconds:.1f} s"
        )
        for name, value in report.metrics.items():
            floor = thresholds.get("min", {}).get(name)
            ceiling = thresholds.get("max", {}).get(name)
            limit = f">= {floor}" if floor is not None else f"<= {ceiling}" if ceiling is not None else ""
            table.add_row(name, f"{value:.3f}", limit)
        out.print(table)
        variants = Table("variant", "hit@5", "recall@5", "MRR", title="retrieval variants")
        for mode, m in report.retrieval.items():
            variants.add_row(mode, f"{m['hit@5']:.3f}", f"{m['recall@5']:.3f}", f"{m['mrr']:.3f}")
        out.print(variants)
        json_path, md_path = write_outputs(report, Path(out_dir))
        out.print(f"Wrote {json_path} and {md_path}.")
        misses = below_thresholds(report.metrics, thresholds)
        if misses:
            raise CoachError("below threshold: " + "; ".join(misses))

    _run(body)


@app.command()
def bench(
    quick: Annotated[
        bool, typer.Option("--quick", help="Skip the 100,000-chunk figure and the generated library.")
    ] = False,
    library_only: Annotated[
        bool,
        typer.Option("--library-only", help="Only the generated-library figures (100 and 1,000 articles)."),
    ] = False,
    library_articles: Annotated[
        int, typer.Option("--library-articles", min=10, help="Size of the large generated library.")
    ] = 1000,
) -> None:
    """Speed and scale figures beside their floors, with peak memory (evals/results/bench.json)."""

    def body() -> None:
        import json
        from pathlib import Path

        from rich.table import Table

        from evals.bench import LIBRARY_TARGETS, LOWER_BOUNDS, TARGETS, run_bench, run_library_bench

        report: dict = {"results": {}, "targets": {}}
        if not library_only:
            report = run_bench(scales=(10_000,) if quick else (10_000, 100_000))
        if library_only or not quick:
            sizes = (max(10, library_articles // 10), library_articles)
            library = run_library_bench(sizes)
            report["results"].update(library["results"])
            report["targets"] = {**report.get("targets", {}), **library["targets"]}
        targets = {**TARGETS, **LIBRARY_TARGETS}
        lower = LOWER_BOUNDS | {"library_throughput_ratio"}
        cpus = report.get("machine", {}).get("cpus", "?")
        table = Table("figure", "measure", "value", "target", "met", title=f"coach bench ({cpus} cpus)")
        for figure, values in report["results"].items():
            for name, value in values.items():
                target = targets.get(name)
                ok = (
                    None
                    if target is None or not isinstance(value, int | float)
                    else value >= target
                    if name in lower
                    else value <= target
                )
                table.add_row(
                    figure,
                    name,
                    f"{value:.3f}" if isinstance(value, float) else str(value),
                    "" if target is None else f"{'>=' if name in lower else '<='} {target}",
                    "" if ok is None else "yes" if ok else "NO",
                )
        out.print(table)
        path = Path("evals/results")
        path.mkdir(parents=True, exist_ok=True)
        (path / "bench.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        out.print(f"Wrote {path / 'bench.json'}.")

    _run(body)


@app.command()
def doctor(
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
) -> None:
    """Check settings, store, index model, corpus and backend; say what to fix (exit 1 if any fails)."""

    def body() -> None:
        from cli.doctor import run_doctor

        report = run_doctor()
        if json_output:
            print(report.model_dump_json(indent=2))
        else:
            render_doctor(report)
        if not report.ok:
            raise typer.Exit(1)

    _run(body)


@app.command("bot")
def bot_command() -> None:
    """Run the Telegram bot: long polling, or a webhook server when COACH_WEBHOOK_URL is set."""

    def body() -> None:
        from bot.app import serve

        # A long-running service: say what it does at INFO (the token is redacted from every record).
        logging.getLogger("bot").setLevel(min(logging.getLogger().level, logging.INFO))
        serve(on_ready=lambda: err.print("The bot is running; Ctrl-C stops it."))

    _run(body)


def render_doctor(report) -> None:  # noqa: ANN001 - cli.doctor.DoctorReport, imported lazily
    from rich.table import Table

    table = Table("setting", "value", title="Effective settings", title_justify="left")
    for name, value in report.settings.items():
        table.add_row(name, Text("unset", style="dim") if value is None else str(value))
    if report.settings:
        out.print(table)
    marks = {"ok": ("✔", "green"), "fail": ("✘", "red"), "skipped": ("–", "dim")}
    for check in report.checks:
        mark, style = marks[check.status]
        line = Text()
        line.append(f"{mark} {check.name}: ", style=f"bold {style}")
        line.append(check.summary)
        out.print(line, soft_wrap=True)
        if check.fix and check.status == "fail":
            out.print(Text(f"    fix: {check.fix}", style="yellow"), soft_wrap=True)
    out.print(Text("All checks pass." if report.ok else "Some checks failed.", style="bold"))


def main() -> None:
    app()


if __name__ == "__main__":
    main()

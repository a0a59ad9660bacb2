"""The `coach` command line (typer + rich): one user of CoachService, like the bot and the evals."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from coach.errors import CoachError
from coach.models import Answer

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
    try:
        return action()
    except CoachError as exc:
        err.print(Text(f"error: {exc}", style="red"), soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except Exception as exc:  # last resort: still one line, with the kind of failure
        logging.getLogger("coach").debug("unexpected failure", exc_info=True)
        err.print(
            Text(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", style="red")
        )
        raise typer.Exit(1) from None


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("bm25s", "chromadb", "httpx", "sentence_transformers", "transformers", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.ERROR)


def _open_service():  # noqa: ANN202
    from coach.answer import CoachService

    return CoachService.open(on_ingest=lambda summary: err.print(f"Built the index: {summary}"))


def render_answer(answer: Answer) -> None:
    style = "bold red" if answer.urgent else None
    out.print(Text(answer.answer, style=style), soft_wrap=True)
    if answer.citations:
        out.print()
        out.print(Text("Sources", style="bold"))
        for c in answer.citations:
            line = Text()
            line.append(f"[{c.n}] ", style="bold cyan")
            line.append(c.title, style="italic")
            line.append(f" ({c.source_id})\n    “{c.quote}”")
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

        normalise_question(
            question, max_chars=load_settings().max_question_chars
        )  # fail fast, before loading
        answer = _open_service().answer(question)
        if json_output:
            print(answer.model_dump_json(indent=2))
        else:
            render_answer(answer)

    _run(body)


@app.command()
def chat() -> None:
    """A conversation in the terminal (/reset forgets, /quit or Ctrl-D leaves)."""

    def body() -> None:
        from coach.answer import Turn

        service = _open_service()
        history: list[Turn] = []
        out.print(Text("Ask me about running and glute strength. /reset forgets, /quit leaves.", style="dim"))
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
            render_answer(answer)
            history = [*history, Turn(question=answer.question, answer=answer.answer)][-HISTORY_TURNS:]

    _run(body)


@app.command()
def ingest(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the index and build it from scratch.")
    ] = False,
) -> None:
    """Build or update the index from the corpus (only new or changed chunks are embedded)."""

    def body() -> None:
        from coach.embeddings import load_minilm
        from coach.settings import load_settings
        from ingest.pipeline import run_ingest

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
                load_settings(),
                load_minilm(),
                rebuild=rebuild,
                on_start=lambda total: progress.update(task, total=total),
                on_doc=lambda: progress.advance(task),
            )
        out.print(f"Ingested {report.summary()}.")

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
def sources() -> None:
    """List the articles the coach answers from."""

    def body() -> None:
        from coach.settings import load_settings
        from ingest.loader import load_corpus

        settings = load_settings()
        table = Table("title", "authors / publisher")
        table.add_column("source id", no_wrap=True, overflow="fold")
        for loaded in load_corpus(settings.corpus_dir):
            s = loaded.source
            table.add_row(s.title, ", ".join(s.authors) or s.publisher or "", s.source_id)
        out.print(table)

    _run(body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

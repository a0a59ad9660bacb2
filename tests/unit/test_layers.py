"""The layers stack one way: the core (coach/) imports no front end, no ingest and no UI library."""

from __future__ import annotations

import ast
from pathlib import Path

from coach.settings import PROJECT_ROOT

FORBIDDEN_IN_CORE = {"ingest", "bot", "evals", "cli", "telegram", "typer", "rich"}


def imported_modules(path: Path) -> set[str]:
    """Top-level names of every module a file imports, at any depth (lazy imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_imports_no_front_end_and_nothing_of_ingest() -> None:
    offenders = {
        str(path.relative_to(PROJECT_ROOT)): sorted(imported_modules(path) & FORBIDDEN_IN_CORE)
        for path in sorted((PROJECT_ROOT / "coach").rglob("*.py"))
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    """The walk finds an import hidden in a function body, so the rule above cannot pass by accident."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ingest.pipeline import run_ingest\n    import telegram.ext\n")
    assert imported_modules(module) == {"ingest", "telegram"}


def test_the_bot_and_ingest_do_not_import_the_cli() -> None:
    for package in ("bot", "ingest"):
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            assert "cli" not in imported_modules(path), path

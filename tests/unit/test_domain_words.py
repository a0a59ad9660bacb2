"""The code knows no library's subject: the seed library's words live in corpus/domain.toml, not in code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from coach.domain import load_domain
from coach.settings import PROJECT_ROOT
from tests.conftest import CORPUS

CODE_PACKAGES = ("coach", "ingest", "bot", "cli")


def code_strings(path: Path) -> list[str]:
    """String literals and names of a module, docstrings left out (examples in prose are fine)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.append(node.value)
        elif isinstance(node, ast.Name):
            out.append(node.id)
    return out


def test_no_seed_library_word_is_written_into_the_code() -> None:
    domain = load_domain(CORPUS)
    # The seed library's subject and the exercise names of its domain file that are not everyday English
    # verbs ("walk", "raise" and "step" are words instructions use in any library).
    everyday = {"walk", "raise", "hike", "thrust", "abduction", "contraction", "step up"}
    words = {"glute", *(name for name in domain.exercises.names if name not in everyday)}
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words)) + r")", re.IGNORECASE)
    found = {
        f"{path.relative_to(PROJECT_ROOT)}: {text[:60]!r}"
        for package in CODE_PACKAGES
        for path in sorted((PROJECT_ROOT / package).rglob("*.py"))
        for text in code_strings(path)
        if pattern.search(text)
    }
    assert found == set()


def test_the_check_finds_a_word_in_a_string(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Docstrings may say glute."""\nNOTE = "feel your glutes work"\n')
    assert sorted(code_strings(module)) == ["NOTE", "feel your glutes work"]

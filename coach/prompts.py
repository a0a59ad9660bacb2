"""Prompt templates from prompts/*.txt, checked strictly against the variables each one declares."""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from coach.errors import CoachError
from coach.settings import PROJECT_ROOT

PROMPTS_DIR = PROJECT_ROOT / "prompts"

# The variables each prompt must use, no more and no fewer. A template that names another variable,
# or forgets one, is refused when it is loaded instead of sending the model a silent blank.
DECLARED: dict[str, frozenset[str]] = {
    "system": frozenset(),
    "answer": frozenset({"passages", "question", "intent", "statements"}),
    "condense": frozenset({"history", "question"}),
}


class PromptError(CoachError):
    """A prompt file is missing or does not use exactly its declared variables."""


@dataclass(frozen=True)
class Prompt:
    name: str
    template: str
    variables: frozenset[str]

    def format(self, **values: str) -> str:
        given = frozenset(values)
        if given != self.variables:
            raise PromptError(
                f"prompt {self.name!r} takes {sorted(self.variables)}, was given {sorted(given)}"
            )
        return self.template.format(**values)


def fields_of(template: str) -> frozenset[str]:
    """Every replacement field of a str.format template; positional or attribute fields are refused."""
    names: set[str] = set()
    for _literal, field, _spec, _conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not field.isidentifier():
            raise ValueError(f"field {{{field}}} is not a plain variable name")
        names.add(field)
    return frozenset(names)


def parse_prompt(name: str, template: str, declared: frozenset[str]) -> Prompt:
    try:
        used = fields_of(template)
    except ValueError as exc:  # unbalanced braces, {0}, {a.b}
        raise PromptError(f"prompt {name!r} is malformed: {exc}") from None
    unknown, missing = used - declared, declared - used
    if unknown or missing:
        raise PromptError(
            f"prompt {name!r}: unknown variables {sorted(unknown)}, missing variables {sorted(missing)}"
        )
    return Prompt(name=name, template=template, variables=declared)


def load_prompt(name: str, directory: Path = PROMPTS_DIR) -> Prompt:
    """Read prompts/<name>.txt and check it uses exactly the variables DECLARED for it."""
    if name not in DECLARED:
        raise PromptError(f"no prompt named {name!r} is declared")
    path = directory / f"{name}.txt"
    try:
        template = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise PromptError(f"cannot read prompt {path}: {exc.strerror}") from None
    return parse_prompt(name, template, DECLARED[name])


@cache
def prompts() -> dict[str, Prompt]:
    """All declared prompts, loaded once per process (and all checked, so a bad file fails early)."""
    return {name: load_prompt(name) for name in DECLARED}

"""The deployment files as data, shared by the compose test and the Chroma server test."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from coach.settings import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
README = PROJECT_ROOT / "README.md"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}: compose's interpolation forms.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def load_compose(path: Path = COMPOSE_FILE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def chroma_healthcheck(port: int, compose: dict | None = None) -> list[str]:
    """The chroma service's health check command, aimed at `port` instead of the container's 8000."""
    test = (compose or load_compose())["services"]["chroma"]["healthcheck"]["test"]
    assert test[0] == "CMD", test
    return [part.replace("/127.0.0.1/8000", f"/127.0.0.1/{port}") for part in test[1:]]

"""docker-compose.yml, Dockerfile, .dockerignore and .env.example agree with the code.

No Docker engine runs here, so these checks are what keeps the deployment files honest: every service,
volume, health check, variable and command they name must exist and match coach.settings and the CLI.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
import tomllib
from urllib.parse import urlparse

import pytest
import typer

from bot.settings import BotSettings
from cli.main import app
from coach.settings import PROJECT_ROOT
from coach.store import HEARTBEAT_PATH
from tests.deploy import (
    COMPOSE_FILE,
    DOCKERFILE,
    DOCKERIGNORE,
    ENV_EXAMPLE,
    INTERPOLATION,
    README,
    load_compose,
)

# Services built from the project's Dockerfile (they run `coach ...`).
COACH_SERVICES = ("ingest", "bot")
# Deployment-only names that are not coach settings; each must be documented in README.
NON_SETTING_VARIABLES = {
    "TELEGRAM_BOT_TOKEN",  # a Settings field, read under its usual name (alias)
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "HF_HUB_OFFLINE",
    "CHROMA_HOST_PORT",
    "POSTGRES_PASSWORD",  # the postgres service's password, which compose puts into COACH_STATE_URL
}
# Fixed by the deployment (not taken from .env): the container paths and the compose network's URL.
FIXED_IN_COMPOSE = {
    "COACH_CHROMA_URL",
    "COACH_DATA_DIR",
    "COACH_CORPUS_DIR",
    "COACH_STATE_URL",
    "COACH_MODEL_CACHE_DIR",  # the ONNX export built into the image (Dockerfile: coach export-model)
    "HF_HUB_OFFLINE",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose()


def setting_variables() -> dict[str, str]:
    """Environment variable -> Settings field, as pydantic-settings reads them (prefix COACH_, aliases)."""
    names: dict[str, str] = {}
    for field, info in BotSettings.model_fields.items():
        choices = getattr(info.validation_alias, "choices", None)
        for name in choices or [f"COACH_{field.upper()}"]:
            names[str(name)] = field
    return names


def coach_commands() -> set[str]:
    return set(typer.main.get_command(app).commands)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ENV":
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", rest):
                env[name] = value
    return env


def env_example_variables() -> set[str]:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def compose_variables(compose: dict) -> dict[str, str | None]:
    """Every ${NAME...} the compose file interpolates, with its default (None when it has none)."""
    found: dict[str, str | None] = {}
    for name, op, default in INTERPOLATION.findall(COMPOSE_FILE.read_text(encoding="utf-8")):
        found[name] = default if op in (":-", "-") else None
    return found


def resolved(value: object) -> str:
    """A compose value as a container sees it when .env sets nothing: ${X:-d} becomes d."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "", str(value))


def test_services_and_dependencies_exist(compose: dict) -> None:
    services = compose["services"]
    assert set(services) >= {"chroma", "postgres", "ingest", "bot"}
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown service {target}"
            condition = spec["condition"]
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s missing health check"
            assert "profiles" not in services[target], f"{name} depends on optional service {target}"
    assert services["bot"]["depends_on"] == {
        "chroma": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
        "ingest": {"condition": "service_completed_successfully"},
    }
    assert services["ingest"]["depends_on"] == {"chroma": {"condition": "service_healthy"}}
    assert services["ingest"]["restart"] == "no"


def test_named_volumes_are_declared_and_bind_mounts_exist(compose: dict) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert target.startswith("/"), f"{name}: {volume}"
            if source.startswith((".", "/", "~")):
                assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"


def test_chroma_server_matches_the_client_and_has_a_heartbeat_health_check(compose: dict) -> None:
    from chromadb.config import APIVersion

    chroma = compose["services"]["chroma"]
    assert chroma["image"] == f"chromadb/chroma:{importlib.metadata.version('chromadb')}"
    assert APIVersion.V2.value + "/heartbeat" == HEARTBEAT_PATH
    health = chroma["healthcheck"]
    assert health["test"][0] == "CMD"
    command = " ".join(health["test"][1:])
    assert f"GET {HEARTBEAT_PATH} " in command
    assert "/dev/tcp/127.0.0.1/8000" in command  # the port the server listens on inside its container
    assert "200" in command  # healthy only when the heartbeat answers OK
    # The image's default config persists to /data: the volume must be mounted exactly there.
    assert any(v.split(":")[1] == "/data" and not v.startswith(".") for v in chroma["volumes"])
    # Published on loopback only: the coach services reach it over the compose network.
    assert all(
        resolved(p).startswith("127.0.0.1:") and resolved(p).endswith(":8000") for p in chroma["ports"]
    )


def test_coach_services_reach_chroma_by_service_name_and_share_the_data_volume(compose: dict) -> None:
    services = compose["services"]
    for name in COACH_SERVICES:
        env = services[name]["environment"]
        url = urlparse(env["COACH_CHROMA_URL"])
        assert url.hostname == "chroma"
        assert url.hostname in services
        assert url.port == 8000
        data_mounts = [v for v in services[name]["volumes"] if v.split(":")[1] == env["COACH_DATA_DIR"]]
        assert data_mounts == ["coach-data:/data"], f"{name}: the SQLite and snapshot need the volume"
        corpus = [v for v in services[name]["volumes"] if v.split(":")[1] == env["COACH_CORPUS_DIR"]]
        assert corpus
        assert corpus[0].endswith(":ro")
    # ingest writes the source snapshot the bot reads: same store, same data directory.
    assert services["ingest"]["environment"] == services["bot"]["environment"]
    assert services["ingest"]["build"] == services["bot"]["build"]
    assert services["ingest"]["image"] == services["bot"]["image"]


def test_every_variable_is_a_setting_or_documented(compose: dict) -> None:
    settings_vars = setting_variables()
    readme = README.read_text(encoding="utf-8")
    named = set(env_example_variables()) | set(compose_variables(compose))
    named |= {name for name in dockerfile_env() if name.startswith("COACH_")}
    for service in COACH_SERVICES:
        named |= set(compose["services"][service]["environment"])
    for name in sorted(named):
        if name.startswith("COACH_"):
            assert name in settings_vars, (
                f"{name} is not a field of coach.settings.Settings or bot.settings.BotSettings"
            )
        elif name not in settings_vars:
            assert name in NON_SETTING_VARIABLES, f"{name} is neither a setting nor a known variable"
            assert f"`{name}`" in readme, f"{name} is not documented in README"
    # Every variable compose takes from .env is offered in .env.example.
    assert set(compose_variables(compose)) <= env_example_variables()
    # Every setting can be set in the deployment: offered in .env.example and passed to the containers
    # (compose passes only the variables it lists). A new Settings field needs a line in both.
    every_setting = set(settings_vars) - {"COACH_TELEGRAM_BOT_TOKEN"}  # the alias; TELEGRAM_BOT_TOKEN is used
    assert every_setting <= env_example_variables(), every_setting - env_example_variables()
    for service in COACH_SERVICES:
        passed = set(compose["services"][service]["environment"])
        assert every_setting <= passed, f"{service} lacks {every_setting - passed}"


def test_compose_defaults_are_the_coachs_own(monkeypatch: pytest.MonkeyPatch, compose: dict) -> None:
    """With an empty .env, every variable a container gets must load and mean the setting's default."""
    settings_vars = setting_variables()
    env = compose["services"]["bot"]["environment"]
    for name, value in env.items():
        monkeypatch.setenv(name, resolved(value))
    loaded = BotSettings(_env_file=None)
    for name in env:
        if name in FIXED_IN_COMPOSE or name not in settings_vars:
            continue
        field = settings_vars[name]
        assert getattr(loaded, field) == BotSettings.model_fields[field].default, name
    assert str(loaded.data_dir) == "/data"
    assert loaded.chroma_url == "http://chroma:8000"
    assert loaded.state_url is not None  # the postgres service (checked below)
    assert loaded.telegram_bot_token is None  # empty means unset, not an empty token


def test_the_bot_keeps_its_state_in_the_postgres_service(compose: dict) -> None:
    """COACH_STATE_URL names the postgres service with its own user, database and (required) password;
    the service has a pg_isready health check the bot waits for, and its data on a volume."""
    from sqlalchemy.engine import make_url

    from coach.state.engine import state_url

    services = compose["services"]
    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?", postgres["image"]), postgres["image"]
    assert "ports" not in postgres  # only the compose network reaches it
    env = postgres["environment"]
    # The password is required (${VAR:?message}): no database runs with a default one.
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", env["POSTGRES_PASSWORD"])
    assert any(v == "postgres-data:/var/lib/postgresql/data" for v in postgres["volumes"])
    raw = services["bot"]["environment"]["COACH_STATE_URL"]
    assert "${POSTGRES_PASSWORD:?" in raw
    url = make_url(resolved(raw).replace(":@", ":pw@"))
    assert (url.drivername, url.host, url.port) == ("postgresql", "postgres", 5432)
    assert (url.username, url.database) == (env["POSTGRES_USER"], env["POSTGRES_DB"])
    assert state_url(str(url), PROJECT_ROOT).drivername == "postgresql+psycopg"  # the plain URL is accepted
    health = postgres["healthcheck"]["test"]
    assert health[:2] == ["CMD", "pg_isready"]
    flags = dict(zip(health[2::2], health[3::2], strict=True))
    # Over TCP (not the socket the image's first-start server uses), as the URL's user and database.
    assert flags == {"-h": "127.0.0.1", "-p": str(url.port), "-U": url.username, "-d": url.database}
    assert services["bot"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_dockerfile_runs_as_non_root_offline_and_with_the_locked_pins() -> None:
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    requires = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert ">=3.11" in requires
    users = [rest for k, rest in instructions if k == "USER"]
    assert users
    assert users[-1] not in ("root", "0", "0:0")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    env = dockerfile_env()
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["COACH_DATA_DIR"] == "/data"
    runs = " ".join(rest for k, rest in instructions if k == "RUN")
    assert "-c requirements.lock" in runs
    assert '"torch==2.13.0"' in runs
    assert "--index-url" in runs
    assert "TORCH_INDEX_URL" in runs
    # No secret is baked in: none is set as ENV or ARG, and no .env file is copied.
    for keyword, rest in instructions:
        if keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) if keyword == "ENV" else [rest]
            for name in names:
                assert not re.search(r"_TOKEN\b|API_KEY|SECRET|PASSWORD", name), name
        if keyword == "COPY":
            assert ".env" not in rest


def test_dockerfile_copies_what_the_code_reads_beside_it() -> None:
    """Every package and every data folder the code reads from the project root is in the image."""
    copied = {rest.split()[0].rstrip("/") for k, rest in dockerfile_instructions() if k == "COPY"}
    packages = set(
        tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
            "find"
        ]["include"]
    )
    assert {p.rstrip("*") for p in packages} <= copied
    assert {"corpus", "prompts"} <= copied  # PROJECT_ROOT / "corpus" and / "prompts" (coach/prompts.py)
    runs = " ".join(rest for k, rest in dockerfile_instructions() if k == "RUN")
    assert "-e ." in runs  # editable: PROJECT_ROOT is /app, where those folders are


def test_dockerfile_and_compose_commands_are_coach_commands(compose: dict) -> None:
    commands = coach_commands()
    assert "doctor" in commands
    assert "ingest" in commands
    instructions = dict(dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["coach"]
    run = [json.loads(instructions["CMD"])] + [compose["services"][s]["command"] for s in COACH_SERVICES]
    assert compose["services"]["bot"]["healthcheck"]["test"] == ["CMD", "coach", "doctor"]
    for name in COACH_SERVICES:  # a health check in the coach's image runs `coach <command>` in full
        test = compose["services"][name].get("healthcheck", {}).get("test")
        if test:
            assert test[:2] == ["CMD", "coach"], test
            run.append(test[2:])
    for argv in run:
        assert argv[0] in commands, f"`coach {argv[0]}` does not exist"


def test_dockerignore_keeps_secrets_and_state_out_but_not_the_sources() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        result = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                result = not negate
        return result

    for secret in (".env", "data/index.sqlite", ".venv/bin/python"):
        assert ignored(secret), secret
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                if source.startswith("--"):
                    continue
                assert (PROJECT_ROOT / source).exists(), f"COPY {source}: missing"
                assert not ignored(source.rstrip("/")), f"COPY {source}: excluded by .dockerignore"


def test_readme_documents_the_deployment() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme.split("## Deployment", 1)[1].split("\n## ", 1)[0]
    for needed in (
        "cp .env.example .env",
        "docker compose up -d",
        "--profile llm",
        "docker compose run --rm ingest",
        "coach ingest --rebuild",
        "coach doctor",
        ".backup",
        "no Docker engine",
    ):
        assert needed.lower() in section.lower(), needed


def test_the_triage_lexicon_ships_in_the_image_and_the_package() -> None:
    """coach/data/red_flags.toml is code: not ignored by git or the Docker build context, copied by the
    Dockerfile (COPY coach/), and package data of the distribution."""
    import subprocess
    import tomllib

    from coach.safety import DATA_FILE
    from coach.settings import PROJECT_ROOT

    relative = DATA_FILE.relative_to(PROJECT_ROOT)
    ignored = subprocess.run(["git", "check-ignore", "-q", str(relative)], cwd=PROJECT_ROOT, check=False)
    assert ignored.returncode == 1, f"git ignores {relative}"
    dockerignore = (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "!coach/data/" in dockerignore
    assert "COPY coach/ coach/" in (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "data/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["coach"]


def test_the_image_carries_the_onnx_export_that_compose_points_to(compose: dict) -> None:
    """The embedding model is exported at build time into the image, where compose tells the coach to
    look; no volume hides it, and it is written before the image drops root (read-only at run time)."""
    instructions = dockerfile_instructions()
    exports = [i for i, (k, rest) in enumerate(instructions) if k == "RUN" and "coach export-model" in rest]
    assert exports, "the Dockerfile does not export the model"
    assert exports[0] < [k for k, _ in instructions].index("USER")
    assert "export-model" in coach_commands()
    model_dir = dockerfile_env()["COACH_MODEL_CACHE_DIR"]
    for name in COACH_SERVICES:
        service = compose["services"][name]
        assert service["environment"]["COACH_MODEL_CACHE_DIR"] == model_dir
        targets = [v.split(":")[1] for v in service.get("volumes", [])]
        assert not any(model_dir == t or model_dir.startswith(t.rstrip("/") + "/") for t in targets), targets

"""A throwaway PostgreSQL server for tests and benchmarks: Debian's own binaries (initdb, pg_ctl), a
temporary data directory, TCP on 127.0.0.1 only, password authentication, removed at the end.

Hand-written rather than pytest-postgresql's process fixture because initdb refuses to run as root,
which is what CI and this machine run as: as root, the server is run as the `postgres` system user
(runuser), which the Debian package creates. pytest-postgresql has no such switch.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

USER = "coach"
# Set this to skip the PostgreSQL tests on a machine without the server binaries (they fail otherwise,
# saying how to install them); ignored in CI (CI=true), where nothing may be skipped silently.
SKIP_FLAG = "TESTS_WITHOUT_POSTGRES"
INSTALL_HINT = "install Debian's server binaries: apt-get install -y postgresql (.ci/run does this)"


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing, or the server did not start."""


def bin_dir() -> Path:
    """Where initdb and pg_ctl are: `pg_config --bindir` (Debian keeps them off PATH), else PATH."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = Path(
            subprocess.run(
                ["pg_config", "--bindir"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
        if (found / "initdb").exists():
            return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PostgresUnavailable(f"no PostgreSQL server binaries (initdb) found; {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    port: int
    password: str

    def url(self, database: str = "postgres") -> str:
        """A plain URL, as COACH_STATE_URL takes it."""
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def running_postgres() -> Iterator[Server]:
    """Start a server in a temporary directory; stop it and remove the directory at the end."""
    binaries = bin_dir()
    as_root = os.geteuid() == 0
    run_as: list[str] = []
    if as_root:
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root, and no runuser to start PostgreSQL as its own user")
        run_as = ["runuser", "-u", "postgres", "--"]
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="coach-pg-"))
    data, password = root / "data", secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if as_root:
        shutil.chown(root, "postgres")
        shutil.chown(pwfile, "postgres")
    port = _free_port()

    def run(*argv: str, timeout: float = 60) -> None:
        result = subprocess.run([*run_as, *argv], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(argv[0]).name} failed: {(result.stderr or result.stdout).strip()[-600:]}"
            )

    started = False
    try:
        run(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",  # a throwaway cluster: no need to wait for the disk
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=100"
        )
        run(
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        started = True
        yield Server(port=port, password=password)
    finally:
        if started:
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop", timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def wait_for(server: Server, within: float = 10.0) -> None:
    """Until the server accepts a connection (pg_ctl -w already waits; this is for a restart)."""
    import psycopg

    deadline = time.monotonic() + within
    while True:
        try:
            psycopg.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

"""The system under test: a fresh database per backend and the hub as its own process."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Protocol

from router.net import free_port
from router.ratelimit import lifted_limits_environment
from router.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("HUB_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ADMIN_USERNAME = "admin"
_PROBLEM_LINE = re.compile(r"\[(warning|error|critical)\s*\]|Traceback", re.IGNORECASE)


class Database(Protocol):
    backend: str
    url: str  # the SQLAlchemy URL the hub is given

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        """Run a query of plain (tab- and newline-free) values and return its rows as strings."""
        ...

    def describe(self) -> str:
        """Version and the settings that bear on commit cost, for the report."""
        ...


class SqliteDatabase:
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite+aiosqlite:///{path}"

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            return [tuple(str(v) for v in row) for row in connection.execute(sql)]
        finally:
            connection.close()

    def describe(self) -> str:
        return f"SQLite {sqlite3.sqlite_version} (file in a temp dir; the hub sets WAL, synchronous=NORMAL)"


class PostgresDatabase:
    backend = "postgresql"

    def __init__(self, name: str) -> None:
        self.name = name
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        self.psql_url = f"{base}/{name}"
        self.url = self.psql_url.replace("postgresql://", "postgresql+asyncpg://", 1)

    def rows(self, sql: str) -> list[tuple[str, ...]]:
        return [tuple(line.split("\t")) for line in _psql(self.psql_url, sql).splitlines()]

    def describe(self) -> str:
        version, fsync, commit, buffers = (self.rows(f"SHOW {name}")[0][0] for name in
                                           ("server_version", "fsync", "synchronous_commit", "shared_buffers"))
        return (f"PostgreSQL {version.split()[0]} (local, fsync={fsync}, synchronous_commit={commit}, "
                f"shared_buffers={buffers})")


def _psql(url: str, sql: str) -> str:
    result = subprocess.run(["psql", url, "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                            check=True, capture_output=True, text=True, timeout=120)
    return result.stdout


@contextmanager
def open_database(backend: str, workdir: Path) -> Iterator[Database]:
    """An empty database for one run: a SQLite file in ``workdir``, or a new PostgreSQL database dropped after."""
    if backend == "sqlite":
        yield SqliteDatabase(workdir / "hub.sqlite3")
        return
    name = f"shuiwu_bench_{uuid.uuid4().hex[:12]}"
    _psql(PG_ADMIN_URL, f'CREATE DATABASE "{name}"')
    try:
        yield PostgresDatabase(name)
    finally:
        _psql(PG_ADMIN_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class HubProcess:
    """``python -m router run`` with a pinned configuration; stopped with SIGTERM like a service manager does."""

    def __init__(self, database: Database, workdir: Path, overrides: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_password = secrets.token_urlsafe(16)
        self.log_path = workdir / "hub.log"
        defaults = Settings.model_fields
        # Everything that shapes the run is set here, so that neither a HUB_* variable of the caller's
        # shell nor a .env file in the tree changes what is measured.
        self.settings = {
            "HUB_DATABASE_URL": database.url,
            "HUB_DATABASE_POOL_SIZE": str(defaults["database_pool_size"].default),
            "HUB_REDIS_URL": "",
            "HUB_RASA_URL": "",
            "HUB_CHANNELS": "webchat",
            # The per-visitor limit (by default 2 messages/s after a burst of 20) would cap 200 residents
            # at 400 messages/s and make the limiter, not the hub, the thing measured; it is raised
            # out of the way (the bucket is still checked on every frame).
            "HUB_WEBCHAT_MESSAGES_PER_SECOND": "1000",
            "HUB_WEBCHAT_MESSAGE_BURST": "1000",
            # Every simulated resident calls from 127.0.0.1: the per-address limits are raised out of the way.
            **lifted_limits_environment(),
            "HUB_OUTBOUND_POLL_SECONDS": str(defaults["outbound_poll_seconds"].default),
            "HUB_DEMO": "false",
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_LOG_JSON": "false",
            **(overrides or {}),
        }
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        self._env = {
            **inherited,
            **self.settings,
            "HUB_HOST": "127.0.0.1",
            "HUB_PORT": str(self.port),
            "HUB_VAR_DIR": str(workdir / "var"),
            "HUB_SECRET_KEY": secrets.token_urlsafe(32),
            "HUB_FIRST_ADMIN_USERNAME": ADMIN_USERNAME,
            "HUB_FIRST_ADMIN_PASSWORD": self.admin_password,
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> HubProcess:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen([sys.executable, "-m", "router", "run"], cwd=ROOT, env=self._env,
                                             stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready(timeout=60)
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop()

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"hub exited with {self._process.returncode}:\n{self.log_tail()}")
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                connection.request("GET", "/readyz")
                if connection.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            time.sleep(0.2)
        raise RuntimeError(f"hub not ready within {timeout:.0f}s:\n{self.log_tail()}")

    def _stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_problems(self) -> list[str]:
        """Warning, error and traceback lines the hub wrote (its log level is WARNING)."""
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if _PROBLEM_LINE.search(line)]

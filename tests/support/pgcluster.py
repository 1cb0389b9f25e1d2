"""A PostgreSQL cluster of a test's own, which the test may stop and start (the shared one is never stopped).

``initdb`` into a temporary directory with the Debian server binaries, on a free port, reachable over TCP from
127.0.0.1 only, as role ``postgres`` without a password. Run as root, the server runs as the ``postgres`` user
(PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from router.net import free_port

SERVER_USER = "postgres"


def _binaries() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise RuntimeError("no PostgreSQL server under /usr/lib/postgresql; run: bash scripts/bootstrap.sh test")
    return versions[-1].parent


class PrivateCluster:
    def __init__(self) -> None:
        self.bin = _binaries()
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="shuiwu-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "server.log"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"  # for libpq and asyncpg itself
        self.url = self.dsn.replace("postgresql://", "postgresql+asyncpg://", 1)  # for the hub (SQLAlchemy)

    def _run(self, *command: str, timeout: float = 120) -> None:
        as_server_user = ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []
        subprocess.run([*as_server_user, *command], check=True, capture_output=True, timeout=timeout)

    def create(self) -> PrivateCluster:
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync")
        settings = (f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                    "fsync = off\nfull_page_writes = off\nmax_connections = 200\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        return self.start()

    def start(self) -> PrivateCluster:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        """A fast shutdown: open connections are cut, as when the database server goes down."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def crash(self) -> None:
        """Stop at once, without a checkpoint, as after a power cut: the next start replays the WAL."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def private_cluster() -> Iterator[PrivateCluster]:
    cluster = PrivateCluster().create()
    try:
        yield cluster
    finally:
        cluster.destroy()

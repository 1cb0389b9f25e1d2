"""A Redis of a run's own, on a free port in its temp dir, so it can be killed without harm.

The machine's shared Redis (6379) serves other runs and is never touched; the run's own PostgreSQL is
tests/support/pgcluster.py.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from bench.hubproc import free_port


class PrivateRedis:
    """``redis-server`` on a free port, without persistence (a restart starts empty, like a lost Redis)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._log = workdir / "redis.log"
        self._argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                      "--appendonly", "no", "--dir", str(workdir)]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(self._argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} not answering after {timeout:.0f} s")

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

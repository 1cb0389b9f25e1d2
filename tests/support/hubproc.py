"""A hub running as its own process, as in production (``python -m router run``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from router.net import free_port
from router.ratelimit import lifted_limits_environment

ROOT = Path(__file__).resolve().parents[2]


class HubProcess:
    def __init__(self, env: dict[str, str], var_dir: Path, name: str = "hub") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.var_dir = var_dir
        self.log_path = var_dir / f"{name}-{self.port}.log"
        # Tests call from 127.0.0.1 only: the per-address limits are lifted unless ``env`` sets them.
        self.env = {**os.environ, **lifted_limits_environment(), "HUB_VAR_DIR": str(var_dir),
                    "HUB_PORT": str(self.port), **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> HubProcess:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "router", "run"], cwd=ROOT, env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited early:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub not ready in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 45) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stopped = f"{self.log_path.name}: did not stop within {timeout}s of SIGTERM"
            raise AssertionError(f"{stopped}:\n{self.output()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

"""The bot's two processes, run beside the hub: the Rasa server and its action server.

With ``HUB_BOT_AUTOSTART`` the hub starts both, waits for their health endpoints, and starts a process
again (with back-off) whenever it dies; the router meanwhile hands residents to people, as it does
whenever the bot does not answer. Rasa keeps its conversations in the hub's own database (its SQL
tracker store, table ``events``); the action server calls the hub's API with a service token derived
from the hub's secret (router/bot_secrets.py).

Both listen on the loopback address (the action server on ``HUB_ACTIONS_HOST``) and answer only with their
secret: Rasa only the hub, the action server only Rasa. They get an environment of their own, not the hub's,
which holds the hub's secret key, the WeChat secret and the database URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import aiohttp
from aiohttp import web
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from router.access import BOT_TOKEN_NAME
from router.accounts import ensure_api_token
from router.bot_secrets import actions_secret, actions_token, rasa_token
from router.logs import get_logger
from router.models import Role
from router.settings import PROJECT_ROOT, Settings

log = get_logger(__name__)

BOT_DIR = PROJECT_ROOT / "bot"
HEALTH_TIMEOUT = 180.0  # Rasa loads TensorFlow and the model: tens of seconds on a small machine
BACKOFF_MAX = 30.0
LOG_ROTATE_BYTES = 20 * 1024 * 1024
# What a companion inherits from the hub's environment; everything else it needs is given by name.
INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TF_ENABLE_ONEDNN_OPTS")


def companion_environment(**variables: str) -> dict[str, str]:
    """A child's environment: the allow-listed variables of the hub's, Rasa kept quiet, and ``variables``."""
    inherited = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
    return {**inherited, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",  # Rasa's dependencies' deprecation warnings would fill its log
            # oneDNN's kernels cost more than they save on one short message at a time: ~1 ms per parse
            "TF_ENABLE_ONEDNN_OPTS": inherited.get("TF_ENABLE_ONEDNN_OPTS", "0"), **variables}


def tracker_store(database_url: str) -> dict[str, object]:
    """Rasa's SQL tracker store in the hub's database (Rasa brings its own drivers: sqlite3, psycopg2)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return {"type": "SQL", "dialect": "sqlite", "db": str(Path(url.database or "").resolve())}
    return {"type": "SQL", "dialect": "postgresql", "url": url.host or "127.0.0.1", "port": url.port or 5432,
            "db": url.database, "username": url.username, "password": url.password}


@dataclass
class Companion:
    """One supervised child process with an HTTP health check."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    health_url: str
    log_path: Path
    health_timeout: float = HEALTH_TIMEOUT
    process: asyncio.subprocess.Process | None = None
    healthy: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0

    async def supervise(self, stopping: asyncio.Event) -> None:
        delay = 1.0
        while not stopping.is_set():
            self.healthy.clear()
            with self._open_log() as output:  # the child keeps its own copy of the descriptor
                self.process = await asyncio.create_subprocess_exec(
                    *self.argv, cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                    stdout=output, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
            log.info("companion started", companion=self.name, pid=self.process.pid)
            if await self._wait_healthy(stopping):
                self.healthy.set()
                delay = 1.0
            elif not stopping.is_set():
                await self.stop()  # hung in start-up: a new process gets another chance
            code = await self.process.wait()
            self.healthy.clear()
            if stopping.is_set():
                return
            self.restarts += 1
            log.warning("companion died; restarting", companion=self.name, exit_code=code, retry_in=delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), delay)
            delay = min(BACKOFF_MAX, delay * 2)

    def _open_log(self) -> BinaryIO:
        """The child's output file, appended to; one older generation is kept once it passes LOG_ROTATE_BYTES."""
        if self.log_path.exists() and self.log_path.stat().st_size > LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_suffix(".log.1"))
        return self.log_path.open("ab")

    async def _wait_healthy(self, stopping: asyncio.Event) -> bool:
        assert self.process is not None
        deadline = asyncio.get_running_loop().time() + self.health_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while asyncio.get_running_loop().time() < deadline and self.process.returncode is None:
                if stopping.is_set():
                    return False
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(self.health_url) as response:
                        if response.status == 200:
                            log.info("companion ready", companion=self.name)
                            return True
                await asyncio.sleep(0.5)
        log.warning("companion not healthy in time", companion=self.name)
        return False

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


class Companions:
    """Rasa and the action server, started after the hub's migrations and stopped before the hub."""

    def __init__(self, settings: Settings, secret_key: str) -> None:
        self._settings = settings
        self._secret_key = secret_key
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.rasa, self.actions = self._define()

    def _define(self) -> tuple[Companion, Companion]:
        settings = self._settings
        run_dir = settings.var_dir / "bot"
        run_dir.mkdir(parents=True, exist_ok=True)
        endpoints = run_dir / "endpoints.yml"
        endpoints.touch(mode=0o600)
        endpoints.chmod(0o600)  # it holds the action server's secret and may hold the database password
        endpoints.write_text(json.dumps({  # JSON is YAML, which Rasa reads
            "action_endpoint": {
                "url": f"http://{settings.actions_host}:{settings.actions_port}/webhook",
                "headers": {"Authorization": f"Bearer {actions_secret(settings.actions_secret, self._secret_key)}"}},
            "tracker_store": tracker_store(settings.effective_database_url),
        }, ensure_ascii=False, indent=2))
        token = rasa_token(settings.rasa_token, self._secret_key)
        rasa = Companion(
            name="rasa",
            argv=[str(BOT_DIR / ".venv" / "bin" / "python"), "-m", "hub_rasa", "run", "--enable-api",
                  "--interface", "127.0.0.1", "--port", str(settings.rasa_port),
                  "--model", str(settings.bot_model_path),
                  "--endpoints", str(endpoints), "--credentials", str(BOT_DIR / "credentials.yml")],
            cwd=BOT_DIR, env=companion_environment(HUB_RASA_TOKEN=token),
            health_url=f"http://127.0.0.1:{settings.rasa_port}/status?token={token}",
            log_path=run_dir / "rasa.log")
        actions = Companion(
            name="actions",
            argv=[sys.executable, "-m", "actions.server", "--port", str(settings.actions_port)],
            cwd=PROJECT_ROOT,
            env=companion_environment(
                HUB_URL=f"http://127.0.0.1:{settings.port}", HUB_TIMEZONE=settings.timezone,
                HUB_ACTIONS_TOKEN=actions_token(self._secret_key), HUB_ACTIONS_HOST=settings.actions_host,
                HUB_ACTIONS_SECRET=actions_secret(settings.actions_secret, self._secret_key)),
            health_url=f"http://{settings.actions_host}:{settings.actions_port}/health",
            log_path=run_dir / "actions.log")
        return rasa, actions

    async def start(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        await self.issue_token(sessions)
        self._tasks = [asyncio.create_task(c.supervise(self._stopping)) for c in (self.actions, self.rasa)]

    async def issue_token(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        """Give the action server its hub token, unless an administrator revoked it (a revocation stays)."""
        async with sessions.begin() as session:
            usable = await ensure_api_token(session, BOT_TOKEN_NAME, Role.AGENT, actions_token(self._secret_key))
        if not usable:
            log.warning("the action server's hub token is revoked: the bot hands residents to people instead of "
                        "filing orders or looking up accounts; to restore it, run "
                        f"`python -m router restore-token {BOT_TOKEN_NAME}` and restart the hub "
                        "(if the token leaked, change HUB_SECRET_KEY first: the token is derived from it)",
                        token=BOT_TOKEN_NAME)

    async def stop(self) -> None:
        self._stopping.set()
        for companion in (self.rasa, self.actions):
            await companion.stop()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


COMPANIONS: web.AppKey[Companions | None] = web.AppKey("companions")

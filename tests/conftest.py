"""Shared fixtures: each backend (SQLite, PostgreSQL) gets its own fresh database and a hub."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright, expect

from router.accounts import create_api_token, create_user
from router.app import create_app
from router.hub import Hub
from router.logs import configure_logging
from router.models import Role
from router.net import free_port
from router.ratelimit import RATE_LIMIT_SETTINGS
from router.settings import Settings
from tests.support import choices, quiet
from tests.support.actors import Resident, Staff
from tests.support.pgcluster import PrivateCluster, private_cluster
from tests.support.restbot import StandInBot, running_bot
from tests.support.services import REDIS_URL, create_pg_database, drop_pg_database

BACKENDS = [b for b in os.environ.get("HUB_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
PASSWORD = "correct-horse-battery"
SECRET = "test-secret-key-0123456789abcdef"

configure_logging("WARNING")


# Tests under these folders share a fixture that is slow to start (the real bot, an Asterisk): under pytest-xdist
# each group runs in one worker, every other test module in one worker of its own choosing. The most specific
# folder first: the campaign tests and the sixty-caller crowd, each on an Asterisk of its own, run one after the
# other beside the other phone tests.
SHARED_FIXTURE_GROUPS = {
    "tests/bot/": "bot",
    "tests/channels/voice/campaigns/": "voice-load",
    "tests/channels/voice/crowd/": "voice-load",
    "tests/channels/voice/": "voice",
}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook turns the marks into the group of each test
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the tests for ``--dist loadgroup`` (scripts/run-tests.sh): module- and package-scoped fixtures
    start once, in the worker that runs their tests."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = next((name for folder, name in SHARED_FIXTURE_GROUPS.items() if module.startswith(folder)), module)
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The dialogue set's task completion rate (tests/bot/test_dialogues.py): dialogues that reached their
    expected outcome, per backend."""
    outcomes: dict[str, list[bool]] = {}
    for status in ("passed", "failed"):
        for report in terminalreporter.stats.get(status, []):
            nodeid = getattr(report, "nodeid", "")
            if "test_dialogues.py::test_dialogue[" in nodeid and report.when == "call":
                backend = "postgresql" if "postgresql" in nodeid else "sqlite"
                outcomes.setdefault(backend, []).append(status == "passed")
    for backend, results in sorted(outcomes.items()):
        rate = 100 * sum(results) / len(results)
        terminalreporter.write_line(f"dialogues ({backend}): {sum(results)} of {len(results)} conversations "
                                    f"reached their expected outcome, task completion {rate:.1f} %")


@contextlib.contextmanager
def new_database(backend: str, directory: Path) -> Iterator[str]:
    """An empty database: a SQLite file in ``directory``, or a PostgreSQL database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / 'hub.sqlite3'}"
        return
    name, url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with new_database(request.param, tmp_path_factory.mktemp(request.param)) as url:
        yield url


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database of its own, for a test that runs extra hubs (without Redis they must not share one)."""
    with new_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def own_settings(make_settings: Callable[..., Settings], fresh_database_url: str, tmp_path: Path,
                 ) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return make_settings(database_url=fresh_database_url, var_dir=tmp_path / "var", **overrides)

    return make


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A PostgreSQL server of the test's own, for outages: ``stop()`` and ``start()`` it (never the shared one)."""
    with private_cluster() as cluster:
        yield cluster


def outage_settings(cluster: PrivateCluster, var_dir: Path, **overrides: Any) -> Settings:
    """A hub's settings on ``cluster`` (tests of outages run on PostgreSQL only: SQLite has no server to lose)."""
    return hub_settings(var_dir=var_dir, database_url=cluster.url, **overrides)


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


def hub_settings(**values: Any) -> Settings:
    """The tests' settings of a hub, with ``values`` (``var_dir`` and ``database_url`` at least)."""
    return Settings(**{
        "secret_key": SECRET,
        "rasa_url": "",
        "outbound_poll_seconds": 0.2,
        # The suite signs in hundreds of times from 127.0.0.1, some of them wrongly on purpose; the throttle's
        # own tests (tests/router/test_sign_in_throttle.py) keep the real limit.
        "login_ip_free_failures": 10_000,
        # Every test calls from 127.0.0.1: the per-address limits are raised out of the way, except
        # where a test sets its own (tests/router/test_rate_limits.py).
        **dict.fromkeys(RATE_LIMIT_SETTINGS, "1000000/minute"),
        **values,
    })


@pytest.fixture(scope="session")
def make_settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Settings]:
    var_dir = tmp_path_factory.mktemp("var")

    def make(**overrides: Any) -> Settings:
        return hub_settings(**{"var_dir": var_dir, "database_url": database_url, **overrides})

    return make


class RunningHub:
    def __init__(self, hub: Hub, url: str, runner: web.AppRunner) -> None:
        self.hub, self.url, self.runner = hub, url, runner

    async def staff(self, role: Role = Role.AGENT, teams: list[str] | None = None, listen: bool = True,
                    max_chats: int = 5) -> Staff:
        """A new staff member of ``role``, signed in (and listening to live events)."""
        username = f"{role.value}-{uuid.uuid4().hex[:8]}"
        async with self.hub.sessions.begin() as session:
            await create_user(session, username=username, password=PASSWORD, role=role, max_chats=max_chats,
                              team_names=teams if teams is not None else [self.hub.settings.default_team])
        staff = await Staff(self.url).login(username, PASSWORD)
        return await staff.listen() if listen else staff

    async def token(self, role: Role) -> str:
        async with self.hub.sessions.begin() as session:
            return await create_api_token(session, f"svc-{uuid.uuid4().hex[:8]}", role)


async def start_hub(settings: Settings) -> RunningHub:
    port = free_port()
    settings = settings.model_copy(update={"host": "127.0.0.1", "port": port})  # links the hub hands out
    hub = Hub(settings)
    app = create_app(settings, hub)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return RunningHub(hub, f"http://127.0.0.1:{port}", runner)


@pytest.fixture(scope="session")
async def running_hub(make_settings: Callable[..., Settings]) -> AsyncIterator[RunningHub]:
    """One hub per backend for the whole session, without a bot (conversations queue for humans)."""
    running = await start_hub(make_settings())
    yield running
    await running.runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def resident(http: aiohttp.ClientSession, running_hub: RunningHub) -> AsyncIterator[Resident]:
    visitor = await Resident(http, running_hub.url).connect()
    yield visitor
    await visitor.close()


@pytest.fixture
async def agent(running_hub: RunningHub) -> AsyncIterator[Staff]:
    staff = await running_hub.staff(Role.AGENT)
    yield staff
    await staff.close()


@pytest.fixture
async def acd_hub(own_settings: Callable[..., Settings], request: pytest.FixtureRequest) -> AsyncIterator[RunningHub]:
    """A hub of its own whose ACD sweeps every 0.2 s; ``indirect`` parametrization adds settings."""
    overrides: dict[str, Any] = getattr(request, "param", {})
    running = await start_hub(own_settings(**{"acd_sweep_seconds": 0.2, "reopen_window_seconds": 0, **overrides}))
    yield running
    await running.runner.cleanup()


@pytest.fixture
async def residents(acd_hub: RunningHub) -> AsyncIterator[Callable[[], Any]]:
    """Call to connect one more web-chat resident to ``acd_hub``."""
    opened: list[Resident] = []
    async with aiohttp.ClientSession() as session:
        async def new() -> Resident:
            opened.append(await Resident(session, acd_hub.url).connect())
            return opened[-1]

        yield new
        for person in opened:
            await person.close()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    return tmp_path


CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # The inbox's softphone: a fake microphone (a tone), and no permission prompt to answer.
                  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


# What a page shows follows the hub's answer; on a two-core machine running the phone tests beside the
# browser tests an answer may take several seconds, so assertions wait up to 15 s (not Playwright's 5).
expect.set_options(timeout=15_000)


# Tests that would slow a load test down (or be slowed down by it) past what it measures: browsers and calls.
HEAVY_FIXTURES = ("browser", "asterisk")


def _turn_on_the_machine(item: pytest.Item) -> contextlib.AbstractContextManager[None]:
    """A load test (marked ``load_test``) has the machine to itself: no browser or phone test, nor one whose
    deadlines are tight (marked ``timing``), runs beside it in the other test process (tests/support/quiet.py)."""
    if not hasattr(item.config, "workerinput"):  # the run has one process
        return contextlib.nullcontext()
    shared = Path(item.config.option.basetemp).parent  # pytest-xdist: a folder of the run for each worker
    if item.get_closest_marker("load_test") is not None:
        return quiet.alone(shared)
    if item.get_closest_marker("timing") is not None or any(
            name in getattr(item, "fixturenames", ()) for name in HEAVY_FIXTURES):
        return quiet.beside_others(shared)
    return contextlib.nullcontext()


# Outside pytest-timeout's own wrapper (tryfirst: the outermost): waiting for the machine is not the test's time.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[object]:
    with _turn_on_the_machine(item):
        return (yield)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium from Debian, driven by Playwright."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        await chromium.close()


# -- a hub behind a stand-in bot that offers choices (tests/router/test_bot_choices.py, tests/e2e) ---------


@pytest.fixture
async def bot() -> AsyncIterator[StandInBot]:
    async with running_bot(choices.ASKED) as bot:
        yield bot


@pytest.fixture
async def choices_hub(own_settings, bot) -> AsyncIterator[RunningHub]:
    running = await start_hub(own_settings(rasa_url=bot.url))
    yield running
    await running.runner.cleanup()

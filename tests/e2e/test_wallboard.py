"""The supervisors' wallboard (/app/wallboard) in headless Chromium: queues and agents live, forcing a state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, expect

from router.models import Role
from tests.conftest import RunningHub
from tests.support.actors import Staff
from tests.support.pages import sign_in, watch_errors

T = TypeVar("T")

# What the ECharts instances on the page hold, read back from their options.
AGENTS_BY_STATE_JS = """() => {
  const option = echarts.getInstanceByDom(document.querySelector('[data-testid=agent-state-chart]')).getOption();
  return Object.fromEntries(option.xAxis[0].data.map((label, i) => [label, option.series[0].data[i].value]));
}"""
GAUGE_JS = """(teamId) => {
  const node = document.querySelector(`[data-testid=queue-card][data-team-id="${teamId}"] `
    + '[data-testid=queue-service-level-chart]');
  return echarts.getInstanceByDom(node).getOption().series[0].data[0].value;
}"""


async def until(read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 5.0) -> T:
    """Read until ``ok`` holds; fails with the last value read."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await read()
        if ok(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(0.1)


class Browsers:
    """Staff members at browsers of their own, each signed in on a page. Every request and WebSocket the
    pages open is recorded; script errors and Content-Security-Policy violations fail the test."""

    def __init__(self, browser: Browser, hub: RunningHub) -> None:
        self.browser, self.hub = browser, hub
        self.requests: list[str] = []
        self.sockets: list[str] = []
        self.errors: list[str] = []
        self.contexts: list[BrowserContext] = []

    async def open(self, staff: Staff, path: str = "/app/wallboard") -> Page:
        context = await self.browser.new_context()
        self.contexts.append(context)
        context.on("request", lambda request: self.requests.append(request.url))
        page = watch_errors(await context.new_page(), staff.user["username"], self.errors)
        page.on("websocket", lambda socket: self.sockets.append(socket.url))
        await sign_in(page, self.hub.url, staff.user["username"], path)
        return page

    def foreign(self) -> list[str]:
        """What the pages loaded from anywhere but the hub."""
        hub = urlsplit(self.hub.url).netloc
        return [url for url in self.requests + self.sockets if urlsplit(url).netloc != hub]


@pytest.fixture
async def browsers(browser: Browser, acd_hub: RunningHub) -> AsyncIterator[Browsers]:
    opened = Browsers(browser, acd_hub)
    yield opened
    for context in opened.contexts:
        await context.close()
    assert opened.errors == []
    assert opened.foreign() == []


class Board:
    """The wallboard as a supervisor sees it, for the queue of ``team_id``."""

    def __init__(self, page: Page, team_id: int) -> None:
        self.page, self.team_id = page, team_id

    def tile(self, name: str) -> Locator:
        return self.page.locator(f"[data-testid=queue-card][data-team-id='{self.team_id}'] [data-testid=queue-{name}]")

    def row(self, staff: Staff) -> Locator:
        return self.page.locator(f"[data-testid=agent-row][data-agent-id='{staff.user['id']}']")

    async def agents_by_state(self) -> dict[str, int]:
        return await self.page.evaluate(AGENTS_BY_STATE_JS)

    async def shows_agents(self, expected: dict[str, int]) -> dict[str, int]:
        """Waits until the agents-by-state chart counts ``expected`` (labels as shown) and returns all its counts."""
        return await until(self.agents_by_state, lambda shown: all(shown.get(k) == v for k, v in expected.items()))

    async def service_level_gauge(self) -> float:
        return await self.page.evaluate(GAUGE_JS, self.team_id)


async def open_board(browsers: Browsers, supervisor: Staff) -> Board:
    """The supervisor's wallboard, watching the default team's queue (empty yet)."""
    queues = (await supervisor.call("GET", "/api/queues"))["items"]
    team_id = next(q["team_id"] for q in queues if q["name"] == browsers.hub.hub.settings.default_team)
    board = Board(await browsers.open(supervisor), team_id)
    await expect(board.tile("waiting")).to_have_attribute("data-value", "0")
    return board


async def test_a_waiting_chat_shows_live_and_leaves_when_an_agent_gets_ready(acd_hub, browsers, residents):
    supervisor = await acd_hub.staff(Role.SUPERVISOR, teams=[], listen=False)
    agent = await acd_hub.staff(Role.AGENT, listen=False)
    board = await open_board(browsers, supervisor)
    row = board.row(agent)
    await expect(row.locator("[data-testid=agent-state]")).to_have_text("未签入")
    before = await board.shows_agents({"就绪": 0})
    assert sum(before.values()) == await board.page.locator("[data-testid=agent-row]").count()
    await expect(board.tile("service-level")).to_have_text("今日服务水平—")

    resident = await residents()
    await resident.says("家里停水了,什么时候来水?")
    # Pushed by the staff socket: before the five-second safety refresh (the bot's answer and the board's three
    # reads may take seconds on a loaded two-core machine), and without a reload.
    await expect(board.tile("waiting")).to_have_attribute("data-value", "1", timeout=4500)
    await expect(board.tile("waiting")).to_have_class("wb-tile wb-alert")  # nobody ready to take it
    await expect(board.tile("entered")).to_have_attribute("data-value", "1")
    # The longest wait ticks every second on the page (the figures themselves are fetched far less often).
    read = "tile => [Number(tile.dataset.value), tile.querySelector('.wb-tile-value').textContent]"
    seen = []
    for _ in range(17):
        seen.append(await board.tile("longest-wait").evaluate(read))
        await asyncio.sleep(0.2)
    seconds = [value for value, _text in seen]
    assert seconds == sorted(seconds) and len(set(seconds)) >= 3, seen
    assert all(text == f"00:{value:02d}" for value, text in seen), seen

    await agent.becomes("ready")
    await expect(board.tile("waiting")).to_have_attribute("data-value", "0")
    await expect(board.tile("longest-wait")).to_have_attribute("data-value", "0")
    await expect(board.tile("answered")).to_have_attribute("data-value", "1")
    await expect(board.tile("ready")).to_have_attribute("data-value", "1")
    await expect(board.tile("signed-in")).to_have_attribute("data-value", "1")
    await expect(board.tile("service-level")).to_have_attribute("data-value", "100")  # answered within 20 s
    assert await until(board.service_level_gauge, lambda value: value == 100) == 100
    await expect(row).to_have_attribute("data-state", "ready")
    await expect(row.locator("[data-testid=agent-state]")).to_have_text("就绪")
    await expect(row.locator("[data-testid=agent-load]")).to_have_text("1/5")
    after = await board.shows_agents({"就绪": 1})
    assert after["未签入"] == before["未签入"] - 1
    await agent.close()
    await supervisor.close()


async def test_the_supervisor_forces_an_agent_away_and_signs_them_out(acd_hub, browsers):
    supervisor = await acd_hub.staff(Role.SUPERVISOR, teams=[], listen=False)
    agent = await acd_hub.staff(Role.AGENT)  # its inbox socket is open
    await agent.becomes("ready")
    await agent.sees(lambda f: f["type"] == "presence" and f["presence"]["state"] == "ready")
    board = await open_board(browsers, supervisor)
    row = board.row(agent)
    await expect(row).to_have_attribute("data-state", "ready")
    await expect(row.locator("[data-testid=force-ready]")).to_be_disabled()

    await row.locator("[data-testid=force-reason]").select_option("培训")
    await row.locator("[data-testid=force-away]").click()
    pushed = await agent.sees(lambda f: f["type"] == "presence" and f["presence"]["state"] == "away")
    assert pushed["presence"]["reason"] == "培训"
    mine = (await agent.call("GET", "/api/presence"))["agent"]
    assert (mine["state"], mine["reason"]) == ("away", "培训")
    await expect(board.page.locator("[data-testid=toast]")).to_contain_text("置为小休")
    await expect(row).to_have_attribute("data-state", "away")
    await expect(row.locator("[data-testid=agent-state]")).to_have_text("小休")
    await expect(row.locator("[data-testid=agent-reason]")).to_have_text("培训")
    await board.shows_agents({"就绪": 0, "小休": 1})
    await expect(board.tile("ready")).to_have_attribute("data-value", "0")
    await expect(board.tile("signed-in")).to_have_attribute("data-value", "1")
    time_in_state = row.locator("[data-testid=agent-time-in-state]")
    started = float(await time_in_state.get_attribute("data-seconds"))
    await until(lambda: time_in_state.get_attribute("data-seconds"), lambda s: float(s) >= started + 2)

    await row.locator("[data-testid=force-signed-out]").click()
    await agent.sees(lambda f: f["type"] == "presence" and f["presence"]["state"] == "signed_out")
    assert (await agent.call("GET", "/api/presence"))["agent"]["state"] == "signed_out"
    await expect(row).to_have_attribute("data-state", "signed_out")
    await expect(row.locator("[data-testid=force-signed-out]")).to_be_disabled()
    await expect(board.tile("signed-in")).to_have_attribute("data-value", "0")

    await row.locator("[data-testid=force-ready]").click()
    assert (await agent.sees(lambda f: f["type"] == "presence"))["presence"]["state"] == "ready"
    assert (await agent.call("GET", "/api/presence"))["agent"]["state"] == "ready"
    await board.shows_agents({"就绪": 1, "小休": 0})
    await agent.close()
    await supervisor.close()


async def test_an_agent_who_opens_the_wallboard_is_told_it_is_for_supervisors(acd_hub, browsers):
    agent = await acd_hub.staff(Role.AGENT, listen=False)
    page = await browsers.open(agent)
    refusal = page.locator("[data-testid=wallboard-denied]")
    await expect(refusal).to_be_visible()
    await expect(refusal).to_contain_text("监控大屏仅限班长和管理员使用")
    await expect(page.locator("[data-testid=wallboard]")).to_be_hidden()
    await expect(page.locator("[data-testid=nav-wallboard]")).to_have_count(0)
    assert not [url for url in browsers.requests if "/api/agents" in url or "/api/queues" in url]
    await agent.call("GET", "/api/agents", expect=403)
    await agent.close()


async def test_the_wallboard_is_in_the_supervisors_navigation_and_loads_everything_from_the_hub(acd_hub, browsers):
    supervisor = await acd_hub.staff(Role.SUPERVISOR, teams=[], listen=False)
    page = await browsers.open(supervisor, "/app/orders")
    await page.click("[data-testid=nav-wallboard]")
    await expect(page).to_have_url(f"{acd_hub.url}/app/wallboard")
    await expect(page.locator("[data-testid=nav-wallboard]")).to_have_attribute("aria-current", "page")
    await expect(page.locator("[data-testid=connection]")).to_have_attribute("data-state", "open")
    await expect(page.locator("[data-testid=agent-state-chart] svg")).to_have_count(1)  # ECharts drew
    await expect(page.locator("[data-testid=queue-service-level-chart] svg")).to_have_count(1)
    assert f"{acd_hub.url}/app/static/vendor/echarts.min.js" in browsers.requests
    assert f"{acd_hub.url.replace('http', 'ws', 1)}/api/ws" in browsers.sockets
    assert browsers.foreign() == []
    await supervisor.close()


async def test_the_board_says_when_its_connection_drops_and_catches_up_after(acd_hub, browsers, residents):
    supervisor = await acd_hub.staff(Role.SUPERVISOR, teams=[], listen=False)
    board = await open_board(browsers, supervisor)
    connection = board.page.locator("[data-testid=connection]")
    await expect(connection).to_have_attribute("data-state", "open")
    for ws in list(acd_hub.hub.staff_sockets):  # the hub drops its staff sockets (a restart, a proxy timeout)
        await ws.close()
    await expect(connection).to_have_text("连接已断开，正在重连…")
    await expect(connection).to_have_attribute("data-state", "open", timeout=10_000)
    resident = await residents()
    await resident.says("水压太低了")
    await expect(board.tile("waiting")).to_have_attribute("data-value", "1", timeout=3000)
    await supervisor.close()

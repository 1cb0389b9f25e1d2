"""Per-address limits on the public endpoints: a caller that floods them gets 429 with Retry-After, others
(another address behind the trusted proxy) do not; counts are shared through Redis, and survive its outage."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from channels.wechat.standin import Simulator
from tests.conftest import RunningHub, start_hub
from tests.support.services import REDIS_URL
from tests.support.wechat import TOKEN, running_standin, wechat_settings

LOW = {"rate_limit_new_visitors": "3/minute", "rate_limit_uploads": "3/minute", "rate_limit_surveys": "3/minute",
       "rate_limit_wechat_refusals": "3/minute", "trusted_proxies": "127.0.0.1"}


@pytest.fixture
async def limited(own_settings: Callable[..., Any], request: pytest.FixtureRequest) -> AsyncIterator[RunningHub]:
    """A hub with limits of three a minute (``indirect`` parametrization adds settings)."""
    running = await start_hub(own_settings(**LOW | getattr(request, "param", {})))
    yield running
    await running.runner.cleanup()


def from_address(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}  # the hub trusts 127.0.0.1 as its reverse proxy here


def another_address() -> str:
    """An address no other test has used: the counts live a minute in the Redis every test shares."""
    return f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}:{secrets.token_hex(2)}"


async def statuses(http: aiohttp.ClientSession, method: str, url: str, times: int, **options: Any) -> list[int]:
    seen = []
    for _ in range(times):
        async with http.request(method, url, **options) as response:
            seen.append(response.status)
            if response.status == 429:
                body = await response.json()
                assert body["error"]["code"] == "rate_limited" and "请求过于频繁" in body["error"]["message"]
                assert 1 <= int(response.headers["Retry-After"]) <= 60
    return seen


async def test_new_visitors_from_one_address_are_limited(limited: RunningHub, http: aiohttp.ClientSession) -> None:
    flooder, neighbour = another_address(), another_address()
    url = f"{limited.url}/webchat/visitors"
    assert await statuses(http, "POST", url, 5, json={}, headers=from_address(flooder)) == [201] * 3 + [429] * 2
    assert await statuses(http, "POST", url, 1, json={}, headers=from_address(neighbour)) == [201]


async def test_survey_tokens_cannot_be_tried_in_bulk(limited: RunningHub, http: aiohttp.ClientSession) -> None:
    url, attacker = f"{limited.url}/api/surveys", another_address()
    tried = await statuses(http, "GET", url, 5, params={"token": secrets.token_urlsafe(24)},
                           headers=from_address(attacker))
    assert tried == [404] * 3 + [429] * 2


async def test_uploads_from_one_address_are_limited(limited: RunningHub, http: aiohttp.ClientSession) -> None:
    address = another_address()
    async with http.post(f"{limited.url}/webchat/visitors", json={}, headers=from_address(address)) as response:
        token = (await response.json())["token"]
    seen = []
    for n in range(4):
        form = aiohttp.FormData()
        form.add_field("file", b"%PDF-1.4\n" + bytes(n), filename="bill.pdf", content_type="application/pdf")
        async with http.post(f"{limited.url}/webchat/upload", data=form,
                             headers={**from_address(address), "X-Visitor-Token": token}) as response:
            seen.append(response.status)
    assert seen[3] == 429 and 429 not in seen[:3]


@pytest.fixture
async def limited_wechat(own_settings: Callable[..., Any]) -> AsyncIterator[tuple[RunningHub, str]]:
    async with running_standin() as (_standin, api_url):
        running = await start_hub(own_settings(**LOW, channels="wechat",
                                               **wechat_settings(api_url)))
        yield running, api_url
        await running.runner.cleanup()


async def test_wechat_is_limited_only_for_addresses_whose_posts_are_refused(
        limited_wechat: tuple[RunningHub, str], http: aiohttp.ClientSession) -> None:
    hub, _ = limited_wechat
    genuine = Simulator(http, f"{hub.url}/wechat", TOKEN, mode="plain")
    for n in range(10):  # WeChat's own traffic is never limited, however much of it
        xml = genuine.xml("o" + secrets.token_hex(13), "text", {"Content": f"第{n}条"}, msg_id=secrets.randbits(63))
        assert await genuine.post(xml) == "success"
    forger = another_address()
    query, body = genuine._signed_query(genuine.xml("ovictim", "text", {"Content": "x"}, msg_id=1))
    forged = {**query, "signature": "0" * 40}
    refused = await statuses(http, "POST", f"{hub.url}/wechat", 5, params=forged, data=body.encode(),
                             headers=from_address(forger))
    assert refused == [403] * 3 + [429] * 2
    # Now even a good signature from that address waits (it is not checked at all).
    assert await statuses(http, "POST", f"{hub.url}/wechat", 1, params=query, data=body.encode(),
                          headers=from_address(forger)) == [429]


async def test_processes_sharing_redis_count_together(own_settings: Callable[..., Any],
                                                      http: aiohttp.ClientSession) -> None:
    address, prefix = another_address(), f"test-{secrets.token_hex(4)}"
    hubs = [await start_hub(own_settings(**LOW, redis_url=REDIS_URL, redis_prefix=prefix)) for _ in range(2)]
    try:
        seen = []
        for n in range(4):
            seen += await statuses(http, "POST", f"{hubs[n % 2].url}/webchat/visitors", 1, json={},
                                   headers=from_address(address))
        assert seen == [201] * 3 + [429]
    finally:
        for running in hubs:
            await running.runner.cleanup()


@pytest.mark.parametrize("limited", [{"redis_url": "redis://127.0.0.1:1/0"}], indirect=True)
async def test_a_redis_outage_does_not_take_the_endpoints_down(limited: RunningHub,
                                                                http: aiohttp.ClientSession) -> None:
    address = another_address()
    url = f"{limited.url}/webchat/visitors"
    assert await statuses(http, "POST", url, 4, json={}, headers=from_address(address)) == [201] * 3 + [429]

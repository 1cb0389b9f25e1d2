"""Browsers are told how to treat the hub: every page with its content policy and no framing, HSTS and
``Secure`` cookies when the hub is reached over https; the web chat widget stays embeddable in other sites."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from router.accounts import create_user
from router.middleware import HSTS, RESPONSE_HEADERS, page_headers
from router.models import Role
from tests.conftest import PASSWORD, RunningHub, start_hub
from tests.support.wechat import running_standin, wechat_settings

PAGES = ["/", "/notices", "/my/orders", "/my/callback", "/survey", "/app/login", "/app/inbox",
         "/app/orders", "/app/field", "/app/wallboard", "/app/ivr"]
# /wechat/orders and /wechat/callback send the resident on (to WeChat, then to /my/…): redirects, not pages
NOT_PAGES = ["/widget.js", "/api/openapi.json", "/app/static/app.css", "/readyz", "/api/conversations",
             "/wechat/orders", "/wechat/callback"]


@pytest.fixture
async def https_hub(own_settings) -> AsyncIterator[RunningHub]:
    """A hub behind a TLS-terminating proxy: its public URL is https, ``HUB_COOKIE_SECURE`` left unset."""
    async with running_standin() as (_standin, wechat_url):
        running = await start_hub(own_settings(public_url="https://kf.water.example.cn", channels="webchat,wechat",
                                               wechat_push_menu=False, **wechat_settings(wechat_url)))
        try:
            yield running
        finally:
            await running.runner.cleanup()


@pytest.fixture
async def http_hub(own_settings) -> AsyncIterator[RunningHub]:
    async with running_standin() as (_standin, wechat_url):
        running = await start_hub(own_settings(channels="webchat,wechat", wechat_push_menu=False,
                                               **wechat_settings(wechat_url)))
        try:
            yield running
        finally:
            await running.runner.cleanup()


async def staff_cookies(hub: RunningHub, http: aiohttp.ClientSession) -> list[str]:
    """The ``Set-Cookie`` headers of a staff sign-in, and of a WeChat resident's start of 我的工单."""
    username = "cookie-check"
    async with hub.hub.sessions.begin() as session:
        await create_user(session, username=username, password=PASSWORD, role=Role.AGENT)
    async with http.post(f"{hub.url}/api/auth/login", json={"username": username, "password": PASSWORD}) as login:
        assert login.status == 200
        cookies = login.headers.getall("Set-Cookie")
    async with http.get(f"{hub.url}/wechat/orders", allow_redirects=False) as oauth:
        assert oauth.status == 302
        cookies += oauth.headers.getall("Set-Cookie")
    assert len(cookies) == 3, cookies  # session, CSRF, OAuth state
    return cookies


async def test_every_page_carries_the_security_headers(http_hub, http) -> None:
    for path in PAGES:
        async with http.get(http_hub.url + path, allow_redirects=False) as response:
            assert response.content_type == "text/html", (path, response.status)
            for name, value in {**page_headers(), **RESPONSE_HEADERS}.items():
                assert response.headers.get(name) == value, (path, name)
            assert "Strict-Transport-Security" not in response.headers  # plain http: no HSTS
    for path in NOT_PAGES:
        async with http.get(http_hub.url + path, allow_redirects=False) as response:
            assert response.headers.get("X-Content-Type-Options") == "nosniff", path
            assert "X-Frame-Options" not in response.headers, path


async def test_the_widget_stays_embeddable_in_another_site(http_hub, http) -> None:
    """The utility's own site loads the script and calls the web chat endpoints from its origin."""
    origin = {"Origin": "https://www.water.example.cn"}
    async with http.get(f"{http_hub.url}/widget.js", headers=origin) as script:
        assert script.status == 200 and script.content_type == "application/javascript"
        assert script.headers["Access-Control-Allow-Origin"] == "*"
        assert "Content-Security-Policy" not in script.headers
    async with http.options(f"{http_hub.url}/webchat/visitors",
                            headers={**origin, "Access-Control-Request-Method": "POST"}) as preflight:
        assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    async with http.post(f"{http_hub.url}/webchat/visitors", headers=origin, json={}) as visitor:
        assert visitor.status in {200, 201} and visitor.headers["Access-Control-Allow-Origin"] == "*"
        assert "X-Frame-Options" not in visitor.headers


async def test_cookies_are_not_secure_over_plain_http(http_hub, http) -> None:
    """On a developer's machine (http://127.0.0.1) a Secure cookie would never come back: sign-in must work."""
    assert not [cookie for cookie in await staff_cookies(http_hub, http) if "Secure" in cookie]


async def test_an_https_hub_sends_hsts_on_every_response(https_hub, http) -> None:
    for path in [*PAGES, *NOT_PAGES]:
        async with http.get(https_hub.url + path, allow_redirects=False) as response:
            assert response.headers.get("Strict-Transport-Security") == HSTS, path
    async with http.post(f"{https_hub.url}/api/auth/login", json={"username": "nobody", "password": "x"}) as failed:
        assert failed.status == 401 and failed.headers.get("Strict-Transport-Security") == HSTS


async def test_an_https_hub_sets_secure_cookies(https_hub, http) -> None:
    cookies = await staff_cookies(https_hub, http)
    assert all("; Secure" in cookie or cookie.endswith("Secure") for cookie in cookies), cookies


async def test_cookie_secure_still_overrides_the_public_url(own_settings, http) -> None:
    """``HUB_COOKIE_SECURE=false`` behind an https URL (an operator's explicit choice) is respected."""
    async with running_standin() as (_standin, wechat_url):
        hub = await start_hub(own_settings(public_url="https://kf.water.example.cn", cookie_secure=False,
                                           channels="webchat,wechat", wechat_push_menu=False,
                                           **wechat_settings(wechat_url)))
        try:
            assert not [cookie for cookie in await staff_cookies(hub, http) if "Secure" in cookie]
        finally:
            await hub.runner.cleanup()

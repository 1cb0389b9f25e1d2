"""Fixtures of the browser tests: agents' desks in their own browser contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from router.models import Role
from tests.conftest import RunningHub
from tests.support.actors import Staff
from tests.support.desks import Desk
from tests.support.pages import sign_in, watch_errors


@pytest.fixture
async def desks(browser: Browser, acd_hub: RunningHub) -> AsyncIterator[Callable[..., Any]]:
    errors: list[str] = []
    opened: list[tuple[Any, Staff]] = []

    async def open_desk(role: Role = Role.AGENT, **kwargs: Any) -> Desk:
        staff = await acd_hub.staff(role, listen=False, **kwargs)
        context = await browser.new_context()
        opened.append((context, staff))
        page = watch_errors(await context.new_page(), staff.user["username"], errors)
        await sign_in(page, acd_hub.url, staff.user["username"], "/app/inbox")
        await expect(page.locator("[data-testid=presence-bar]")).to_have_attribute("data-state", "signed_out")
        return Desk(staff, page)

    yield open_desk
    for context, staff in opened:
        await context.close()
        await staff.close()
    assert errors == []


"""Agents and supervisors at their own browser with the inbox open, as the e2e tests drive them."""

from __future__ import annotations

import asyncio

from playwright.async_api import Locator, Page, expect

from router.models import Conversation
from tests.conftest import RunningHub
from tests.support.actors import Staff


class Desk:
    """An agent (or supervisor) at their own browser with the inbox open."""

    def __init__(self, staff: Staff, page: Page) -> None:
        self.staff, self.page = staff, page

    async def becomes(self, state: str, reason: str | None = None) -> None:
        await self.page.select_option("[data-testid=presence-state]", state)
        if reason is not None:
            await self.page.select_option("[data-testid=presence-reason]", reason)
        await expect(self.page.locator("[data-testid=presence-bar]")).to_have_attribute("data-state", state)

    def load(self) -> Locator:
        return self.page.locator("[data-testid=presence-load]")

    def my_chats(self) -> Locator:
        return self.page.locator("[data-testid=conversation-item][data-state=assigned]")

    def item(self, conversation_id: int) -> Locator:
        return self.page.locator(f"[data-testid=conversation-item][data-conversation-id='{conversation_id}']")

    async def show(self, tab: str) -> None:
        await self.page.click(f"[data-testid=tab-{tab}]")

    async def opens(self, conversation_id: int) -> None:
        await self.item(conversation_id).click()
        await expect(self.page.locator("#conversation-view")).to_be_visible()

    async def closes_open_chat(self, disposition: str = "consultation") -> None:
        """Close the open conversation through the dialog, with a consultation type."""
        await self.page.click("[data-testid=close-conversation]")
        await expect(self.page.locator("[data-testid=close-dialog]")).to_be_visible()
        await self.page.select_option("[data-testid=disposition-select]", disposition)
        await self.page.click("[data-testid=close-confirm]")
        await expect(self.page.locator("[data-testid=close-dialog]")).to_be_hidden()


async def conversation(hub: RunningHub, conversation_id: int) -> Conversation:
    async with hub.hub.sessions() as session:
        return await session.get(Conversation, conversation_id)


async def assignee_of(hub: RunningHub, conversation_id: int) -> int:
    for _ in range(100):
        assignee = (await conversation(hub, conversation_id)).assignee_id
        if assignee is not None:
            return assignee
        await asyncio.sleep(0.05)
    raise AssertionError(f"conversation {conversation_id} was not assigned in 5 s")


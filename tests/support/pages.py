"""Steps on the web pages that several browser tests take."""

from __future__ import annotations

from playwright.async_api import Locator, Page, expect

from tests.conftest import PASSWORD


def widget(page: Page, selector: str) -> Locator:
    """A part of the web chat widget (it lives in an open shadow root, which Playwright pierces)."""
    return page.locator(f"[data-testid={selector}]")


async def sign_in(page: Page, base_url: str, username: str) -> None:
    """Open the agent page, get sent to the sign-in page, sign in and come back."""
    await page.goto(f"{base_url}/app/agent")
    await expect(page).to_have_url(f"{base_url}/app/login?next=/app/agent")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("[data-testid=login-submit]")
    await expect(page).to_have_url(f"{base_url}/app/agent")

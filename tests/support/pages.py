"""Steps on the web pages that several browser tests take."""

from __future__ import annotations

import re

from playwright.async_api import Locator, Page, expect

from tests.conftest import PASSWORD


def widget(page: Page, selector: str) -> Locator:
    """A part of the web chat widget (it lives in an open shadow root, which Playwright pierces)."""
    return page.locator(f"[data-testid={selector}]")


async def sign_in(page: Page, base_url: str, username: str, path: str = "/app/inbox") -> None:
    """Open a staff page, get sent to the sign-in page, sign in and come back."""
    await page.goto(f"{base_url}{path}")
    await expect(page).to_have_url(re.compile(rf"^{re.escape(base_url)}/app/login\?next="))
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("[data-testid=login-submit]")
    await expect(page).to_have_url(f"{base_url}{path}")


def watch_errors(page: Page, name: str, errors: list[str]) -> Page:
    """Collect the page's script errors and Content-Security-Policy violations into ``errors``."""
    page.on("pageerror", lambda e: errors.append(f"{name}: {e}"))
    page.on("console", lambda m: errors.append(f"{name} CSP: {m.text}")
            if "Content Security Policy" in m.text else None)
    return page


async def sign_in_with_one_time_password(page: Page, base_url: str, username: str, one_time: str, new: str,
                                         path: str) -> None:
    """Open a staff page, sign in with a one-time password, be made to choose a new one, and arrive."""
    await page.goto(f"{base_url}{path}")
    await expect(page).to_have_url(re.compile(rf"^{re.escape(base_url)}/app/login\?next="))
    await page.fill("#username", username)
    await page.fill("#password", one_time)
    await page.click("[data-testid=login-submit]")
    await expect(page.locator("[data-testid=password-form]")).to_be_visible()
    await expect(page.locator("[data-testid=current-password-field]")).to_be_hidden()  # just typed: not asked again
    await page.fill("#new-password", "123456789012")
    await page.fill("#confirm-password", "123456789012")
    await page.click("[data-testid=password-submit]")
    await expect(page.locator("[data-testid=password-error]")).to_contain_text("常用")  # a common one is refused
    await page.fill("#new-password", new)
    await page.fill("#confirm-password", new)
    await page.click("[data-testid=password-submit]")
    await expect(page).to_have_url(f"{base_url}{path}")

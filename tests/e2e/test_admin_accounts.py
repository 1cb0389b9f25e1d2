"""The admin's pages in headless Chromium: the first admin's one-time password, disabling an agent at work,
a token revoked, a password reset and replaced, and the audit log that shows all of it."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from channels.voice.phones import md5_cred
from router.models import Role, StaffUser
from router.provisioning import ensure_first_admin
from tests.conftest import PASSWORD, RunningHub, start_hub
from tests.support.pages import sign_in, sign_in_with_one_time_password, watch_errors

ADMIN_PASSWORD = "reservoir-dawn-heron-11"
AGENT_PASSWORD = "valve-chamber-willow-5"
ONE_TIME = "hydrant-sparrow-quartz-3"


@pytest.fixture
async def fresh_hub(own_settings: Callable[..., Any]) -> AsyncIterator[tuple[RunningHub, str]]:
    """A new installation: the first admin exists with the one-time password printed at start."""
    running = await start_hub(own_settings())
    credential = await ensure_first_admin(running.hub)
    assert credential is not None
    yield running, credential.password
    await running.runner.cleanup()


def row(page: Page, kind: str, key: str, value: str) -> Any:
    return page.locator(f"[data-testid={kind}-row][data-{key}='{value}']")


async def bearer_status(url: str, token: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/conversations",
                                                         headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


async def test_an_admin_runs_the_accounts_and_the_audit_log_shows_it(browser: Browser, fresh_hub) -> None:
    hub, first_password = fresh_hub
    errors: list[str] = []
    contexts = [await browser.new_context() for _ in range(3)]
    admin_page, agent_page, reset_page = [watch_errors(await c.new_page(), name, errors)
                                          for c, name in zip(contexts, ("admin", "agent", "reset"), strict=True)]
    agent = await hub.staff(Role.AGENT)  # also at work through the API, inbox socket open
    colleague = await hub.staff(Role.AGENT, listen=False)
    try:
        # The first admin must replace the printed password before anything else.
        await sign_in_with_one_time_password(admin_page, hub.url, "admin", first_password, ADMIN_PASSWORD,
                                             "/app/admin")
        await expect(admin_page.locator("[data-testid=nav-audit]")).to_be_visible()

        # Disabling an agent closes their inbox and sends their browser to the sign-in page.
        await sign_in(agent_page, hub.url, agent.user["username"], "/app/inbox")
        await expect(agent_page.locator("#connection")).to_have_attribute("data-state", "open")
        await admin_page.reload()
        agent_row = row(admin_page, "user", "username", agent.user["username"])
        await agent_row.locator("[data-testid=disable-user]").click()
        await expect(agent_row.locator("[data-testid=user-state]")).to_have_text("已停用")
        await agent.closed()
        await agent.call("GET", "/api/conversations", expect=401)
        await expect(agent_page).to_have_url(re.compile(rf"^{re.escape(hub.url)}/app/login"))

        # A token is shown once; revoked, it opens nothing.
        await admin_page.fill("#new-token [name=name]", "meter-importer")
        await admin_page.select_option("#new-token [name=role]", "supervisor")
        await admin_page.click("[data-testid=create-token]")
        await expect(admin_page.locator("[data-testid=new-token-value]")).to_have_text(re.compile(r"^shw_"))
        token = (await admin_page.locator("[data-testid=new-token-value]").text_content() or "").strip()
        assert token.startswith("shw_") and await bearer_status(hub.url, token) == 200
        token_row = row(admin_page, "token", "name", "meter-importer")
        await token_row.locator("[data-testid=revoke-token]").click()
        await expect(token_row.locator("[data-testid=token-state]")).to_contain_text("已吊销")
        assert await bearer_status(hub.url, token) == 401

        # A reset password is one-time: the colleague signs in with it and must choose a new one.
        await admin_page.reload()
        colleague_row = row(admin_page, "user", "username", colleague.user["username"])
        await colleague_row.locator("[data-testid=reset-password]").click()
        await admin_page.fill("#reset-form [name=password]", ONE_TIME)
        await admin_page.click("[data-testid=reset-submit]")
        await expect(colleague_row.locator("[data-testid=user-state]")).to_have_text("待修改一次性密码")
        await colleague.call("GET", "/api/auth/me", expect=401)
        await sign_in_with_one_time_password(reset_page, hub.url, colleague.user["username"], ONE_TIME,
                                             AGENT_PASSWORD, "/app/inbox")
        await admin_page.reload()
        await expect(colleague_row.locator("[data-testid=user-state]")).to_have_text("正常")

        # The audit log shows each of these, newest first, and filters.
        await admin_page.click("[data-testid=nav-audit]")
        await expect(admin_page).to_have_url(f"{hub.url}/app/admin/audit")
        entries = admin_page.locator("[data-testid=audit-row]")
        for action, count in [("user.password_change", 2), ("user.disable", 1), ("token.create", 1),
                              ("token.revoke", 1), ("user.password_reset", 1)]:
            await expect(admin_page.locator(f"[data-testid=audit-row][data-action='{action}']")).to_have_count(count)
        assert await entries.first.get_attribute("data-action") == "user.password_change"  # the colleague's, last
        await expect(admin_page.locator("[data-testid=audit-row][data-action='user.disable']")).to_contain_text(
            agent.user["username"])
        await admin_page.select_option("[data-testid=filter-action]", "token.")
        await admin_page.click("[data-testid=audit-search]")
        await expect(entries).to_have_count(2)
        assert await entries.first.get_attribute("data-action") == "token.revoke"

        # What the agent tried on the way is there too: a failed sign-in while disabled.
        await agent_page.fill("#username", agent.user["username"])
        await agent_page.fill("#password", PASSWORD)
        await agent_page.click("[data-testid=login-submit]")
        await expect(agent_page.locator("[data-testid=login-error]")).to_contain_text("用户名或密码错误")
        await admin_page.select_option("[data-testid=filter-action]", "auth.")
        await admin_page.fill("#audit-filters [name=actor]", agent.user["username"])
        await admin_page.click("[data-testid=audit-search]")
        await expect(admin_page.locator("[data-testid=audit-row][data-action='auth.login_failed']")).to_have_count(1)
    finally:
        for context in contexts:
            await context.close()
        await agent.close()
        await colleague.close()
    assert errors == []


async def test_the_admin_pages_are_for_admins_only(browser: Browser, running_hub) -> None:
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    context = await browser.new_context()
    errors: list[str] = []
    page = watch_errors(await context.new_page(), "supervisor", errors)
    try:
        await sign_in(page, running_hub.url, supervisor.user["username"], "/app/admin")
        await expect(page.locator("[data-testid=admin-denied]")).to_be_visible()
        await expect(page.locator("[data-testid=admin]")).to_be_hidden()
        await page.goto(f"{running_hub.url}/app/admin/audit")
        await expect(page.locator("[data-testid=audit-denied]")).to_be_visible()
        await expect(page.locator("[data-testid=nav-audit]")).to_have_count(0)
    finally:
        await context.close()
        await supervisor.close()
    assert errors == []


async def test_an_admin_gives_an_agent_a_phone_and_takes_it_back(browser: Browser, running_hub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    agent = await running_hub.staff(Role.AGENT, listen=False)
    other = await running_hub.staff(Role.AGENT, listen=False)
    editor = await running_hub.staff(Role.EDITOR, listen=False)
    extension = str(secrets.randbelow(900_000) + 100_000)
    typed = " ".join(chr(ord(d) + 0xFEE0) for d in extension)  # full-width digits with spaces, as an IME types them
    context = await browser.new_context()
    errors: list[str] = []
    page = watch_errors(await context.new_page(), "admin", errors)
    try:
        await sign_in(page, running_hub.url, admin.user["username"], "/app/admin")
        agent_row = row(page, "user", "username", agent.user["username"])
        await expect(agent_row.locator("[data-testid=user-phone]")).to_have_text("—")
        await expect(row(page, "user", "username", editor.user["username"]).locator("[data-testid=set-phone]")
                     ).to_have_count(0)  # editors take no calls

        await agent_row.locator("[data-testid=set-phone]").click()
        await page.fill("#phone-form [name=extension]", typed)
        await page.click("[data-testid=phone-submit]")
        await expect(page.locator("[data-testid=new-phone-extension]")).to_have_text(extension)
        password = (await page.locator("[data-testid=new-phone-password]").text_content() or "").strip()
        assert len(password) >= 16
        realm = running_hub.hub.settings.voice_sip_realm
        await expect(page.locator("[data-testid=new-phone-realm]")).to_have_text(realm)
        await expect(agent_row.locator("[data-testid=user-phone]")).to_have_text(extension)
        async with running_hub.hub.sessions() as session:
            stored = await session.get(StaffUser, agent.user["id"])
        assert stored.sip_md5_cred == md5_cred(extension, realm, password)

        # The same extension for a second agent is refused with the holder's name.
        other_row = row(page, "user", "username", other.user["username"])
        await other_row.locator("[data-testid=set-phone]").click()
        await page.fill("#phone-form [name=extension]", extension)
        await page.click("[data-testid=phone-submit]")
        await expect(page.locator("[data-testid=toast]")).to_contain_text(agent.user["username"])
        await expect(other_row.locator("[data-testid=user-phone]")).to_have_text("—")

        await page.reload()  # the password is not shown again
        await expect(page.locator("[data-testid=new-phone]")).to_be_hidden()
        await agent_row.locator("[data-testid=remove-phone]").click()
        await expect(agent_row.locator("[data-testid=user-phone]")).to_have_text("—")
        await expect(page.locator("[data-testid=toast]")).to_contain_text(f"已收回 {agent.user['username']} 的分机")
        entries = await admin.call("GET", f"/api/audit?action=user.phone&target_id={agent.user['id']}")
        assert [e["action"] for e in entries["items"]] == ["user.phone_remove", "user.phone_set"]
    finally:
        await context.close()
        for person in (admin, agent, other, editor):
            await person.close()
    assert errors == []

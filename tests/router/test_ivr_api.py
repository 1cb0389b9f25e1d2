"""The IVR menu through the admin API: read, check, save (audited; invalid menus refused with every problem,
nothing stored), versions; what the runtime loads for the next call; other roles refused."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from channels.voice.ivr import DEFAULT_MENU
from channels.voice.menus import IvrMenuVersion, current_menu, ensure_default_menu
from router.audit import AuditEntry
from router.models import Role
from tests.conftest import RunningHub
from tests.support.ivr import DEAD_LOOP


def with_loop(text: str) -> str:
    """The default menu with key 6 to two menus that only lead to each other, and key 7 to nowhere."""
    return text.replace('      "9": language_switch\n', '      "9": language_switch\n      "7": nowhere\n'
                        '      "6": loop_a\n', 1) + DEAD_LOOP


async def test_an_admin_reads_changes_and_lists_the_menu_and_the_next_call_gets_it(running_hub: RunningHub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        first = await admin.call("GET", "/api/ivr/menu")
        assert first["yaml"] == DEFAULT_MENU.read_text("utf-8") and first["saved_by"] == "system"
        assert first["tree"]["nodes"]["main"]["keys"]["1"] == "bill"
        assert await ensure_default_menu(running_hub.hub.sessions) is False  # imported once only

        changed = first["yaml"].replace("您好,欢迎致电自来水公司服务热线。", "您好,这里是供水热线。").replace(
            '      "5": application\n', '      "6": application\n')
        checked = await admin.call("POST", "/api/ivr/menu/check", {"yaml": changed})
        assert checked["tree"]["nodes"]["main"]["keys"]["6"] == "application"
        saved = await admin.call("PUT", "/api/ivr/menu", {"yaml": changed})
        assert saved["version"] > first["version"] and saved["saved_by"] == admin.user["username"]
        assert saved["tree"]["prompts"]["welcome"]["zh"] == "您好,这里是供水热线。"

        # The runtime's view, without a restart.
        current = await current_menu(running_hub.hub.sessions)
        assert current.version == saved["version"] and current.menu.nodes["main"].keys["6"] == "application"
        assert (await admin.call("GET", "/api/ivr/menu"))["yaml"] == changed

        versions = (await admin.call("GET", "/api/ivr/menu/versions"))["items"]
        assert [v["id"] for v in versions[:2]] == [saved["version"], first["version"]]
        assert [v["current"] for v in versions[:2]] == [True, False]
        old = await admin.call("GET", f"/api/ivr/menu/versions/{first['version']}")
        assert old["yaml"] == first["yaml"] and old["current"] is False
        await admin.call("GET", "/api/ivr/menu/versions/999999", expect=404)

        async with running_hub.hub.sessions() as session:
            entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "ivr_menu.save",
                                                                   AuditEntry.target_id == str(saved["version"])))
        assert entry is not None and entry.actor == admin.user["username"] and entry.ip == "127.0.0.1"
        assert entry.details == {"previous": first["version"], "nodes": len(saved["tree"]["nodes"])}
    finally:
        await admin.close()


async def test_an_invalid_menu_is_refused_with_every_reason_and_nothing_is_stored(running_hub: RunningHub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        before = await admin.call("GET", "/api/ivr/menu")
        async with running_hub.hub.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(IvrMenuVersion))
        refused = await admin.call("PUT", "/api/ivr/menu", {"yaml": with_loop(before["yaml"])}, expect=422)
        assert refused["error"]["code"] == "invalid_menu"
        problems = refused["error"]["details"]["problems"]
        assert {"node": "main", "message": "按键 7 指向不存在的节点 nowhere"} in problems
        assert any(p["node"] == "loop_a" and "loop_a、loop_b 构成死循环" in p["message"] for p in problems)
        checked = await admin.call("POST", "/api/ivr/menu/check", {"yaml": "nodes: [\n"}, expect=422)
        assert checked["error"]["details"]["problems"][0]["node"] is None
        await admin.call("PUT", "/api/ivr/menu", {"yaml": ""}, expect=422)
        await admin.call("PUT", "/api/ivr/menu", {"yaml": "x", "extra": 1}, expect=422)
        async with running_hub.hub.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(IvrMenuVersion)) == count
        assert (await admin.call("GET", "/api/ivr/menu"))["version"] == before["version"]
    finally:
        await admin.close()


async def test_only_admins_reach_the_menu(running_hub: RunningHub) -> None:
    for role in (Role.AGENT, Role.SUPERVISOR, Role.HANDLER):
        staff = await running_hub.staff(role, listen=False)
        try:
            await staff.call("GET", "/api/ivr/menu", expect=403)
            await staff.call("PUT", "/api/ivr/menu", {"yaml": DEFAULT_MENU.read_text("utf-8")}, expect=403)
            await staff.call("GET", "/api/ivr/menu/versions", expect=403)
        finally:
            await staff.close()


async def test_processes_starting_together_import_the_default_once(acd_hub: RunningHub) -> None:
    imported = await asyncio.gather(*(ensure_default_menu(acd_hub.hub.sessions) for _ in range(4)))
    assert sorted(imported) == [False, False, False, True]
    calls = await asyncio.gather(*(current_menu(acd_hub.hub.sessions) for _ in range(4)))
    assert {c.version for c in calls} == {calls[0].version} and calls[0].saved_by == "system"
    async with acd_hub.hub.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(IvrMenuVersion)) == 1


async def test_a_stored_menu_the_code_no_longer_accepts_gives_the_default_not_silence(acd_hub: RunningHub) -> None:
    async with acd_hub.hub.sessions.begin() as session:
        session.add(IvrMenuVersion(yaml_text="languages: [zh]\n", saved_by="old-release", current=True))
    current = await current_menu(acd_hub.hub.sessions)
    assert current.version == 0 and current.yaml_text == DEFAULT_MENU.read_text("utf-8")
    assert current.menu.start == "main"

"""Staff accounts over their life: disabled, changed, reset, signed out everywhere; tokens revoked; and the
audit log that records it, which nobody can edit. Each change that affects access ends the person's sessions
and closes their open inbox sockets, also on other hub processes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import aiohttp
import pytest
from sqlalchemy import update
from yarl import URL

from router.models import Role, StaffUser, utcnow
from router.provisioning import ensure_first_admin
from tests.conftest import PASSWORD, start_hub
from tests.support.actors import Staff
from tests.support.services import REDIS_URL

NEW_PASSWORD = "river-meter-lantern-42"
ONE_TIME = "pump-station-orchid-7"


async def admin_and_agent(running_hub) -> tuple[Staff, Staff]:
    return await running_hub.staff(Role.ADMIN, listen=False), await running_hub.staff(Role.AGENT)


async def test_a_disabled_user_is_cut_off_at_once_and_can_be_enabled_again(running_hub) -> None:
    admin, agent = await admin_and_agent(running_hub)
    user_id, username = agent.user["id"], agent.user["username"]
    try:
        changed = await admin.call("PATCH", f"/api/users/{user_id}", {"active": False})
        assert changed["active"] is False
        await agent.closed()  # the open inbox socket is closed by the hub
        assert agent.ws.close_code == 4401
        body = await agent.call("GET", "/api/conversations", expect=401)
        assert body["error"]["code"] == "not_authenticated"
        again = Staff(running_hub.url)
        await again.call("POST", "/api/auth/login", {"username": username, "password": PASSWORD}, expect=401)
        await admin.call("PATCH", f"/api/users/{user_id}", {"active": True})
        await again.login(username, PASSWORD)
        await again.close()
        actions = [e["action"] for e in (await admin.call("GET", f"/api/audit?target_id={user_id}"))["items"]]
        assert {"user.disable", "user.enable", "auth.login_failed", "auth.login"} <= set(actions)
    finally:
        await admin.close()
        await agent.close()


async def test_a_role_or_team_change_signs_the_user_out(running_hub) -> None:
    admin, agent = await admin_and_agent(running_hub)
    try:
        changed = await admin.call("PATCH", f"/api/users/{agent.user['id']}", {"teams": ["抄表组"],
                                                                               "display_name": "抄表员小吴"})
        assert [t["name"] for t in changed["teams"]] == ["抄表组"] and changed["display_name"] == "抄表员小吴"
        await agent.closed()
        await agent.call("GET", "/api/auth/me", expect=401)
        agent2 = await Staff(running_hub.url).login(agent.user["username"], PASSWORD)
        await admin.call("PATCH", f"/api/users/{agent.user['id']}", {"role": "supervisor"})
        await agent2.call("GET", "/api/auth/me", expect=401)
        await agent2.close()
        entries = (await admin.call("GET", f"/api/audit?target_id={agent.user['id']}&action=user."))["items"]
        role_change = next(e for e in entries if e["action"] == "user.role_change")
        assert role_change["details"] == {"username": agent.user["username"], "role": ["agent", "supervisor"]}
        assert role_change["actor"] == admin.user["username"] and role_change["ip"] == "127.0.0.1"
        assert {"user.teams_change", "user.update"} <= {e["action"] for e in entries}
    finally:
        await admin.close()
        await agent.close()


async def test_the_only_admin_cannot_be_disabled_or_demoted(own_settings) -> None:
    hub = await start_hub(own_settings())
    admin = await hub.staff(Role.ADMIN, listen=False)
    try:
        for change in ({"active": False}, {"role": "agent"}):
            body = await admin.call("PATCH", f"/api/users/{admin.user['id']}", change, expect=409)
            assert body["error"]["code"] == "last_admin"
        await admin.call("GET", "/api/users")
    finally:
        await admin.close()
        await hub.runner.cleanup()


async def test_a_reset_password_must_be_replaced_before_anything_else(running_hub) -> None:
    admin, agent = await admin_and_agent(running_hub)
    user_id, username = agent.user["id"], agent.user["username"]
    try:
        weak = await admin.call("POST", f"/api/users/{user_id}/password", {"password": "12345678"}, expect=422)
        assert weak["error"]["code"] == "weak_password"
        await agent.call("GET", "/api/auth/me")  # a refused reset changes nothing
        reset = await admin.call("POST", f"/api/users/{user_id}/password", {"password": ONE_TIME})
        assert reset["must_change_password"] and reset["password_expires_at"]
        await agent.closed()
        await agent.call("GET", "/api/auth/me", expect=401)

        person = Staff(running_hub.url)
        await person.call("POST", "/api/auth/login", {"username": username, "password": PASSWORD}, expect=401)
        signed_in = await person.call("POST", "/api/auth/login", {"username": username, "password": ONE_TIME})
        assert signed_in["password_change_required"] is True
        person.csrf = signed_in["csrf_token"]
        for method, path in [("GET", "/api/conversations"), ("GET", "/api/auth/me"), ("GET", "/api/users"),
                             ("PUT", "/api/presence")]:
            body = await person.call(method, path, expect=403)
            assert body["error"]["code"] == "password_change_required"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await person.http.ws_connect(f"{running_hub.url.replace('http', 'ws', 1)}/api/ws")
        assert refused.value.status == 403
        wrong = await person.call("POST", "/api/auth/password", {"current_password": "not-it", "new_password":
                                                                 NEW_PASSWORD}, expect=422)
        assert wrong["error"]["code"] == "wrong_password"
        same = await person.call("POST", "/api/auth/password", {"current_password": ONE_TIME,
                                                                "new_password": ONE_TIME}, expect=422)
        assert same["error"]["code"] == "same_password"
        changed = await person.call("POST", "/api/auth/password", {"current_password": ONE_TIME,
                                                                   "new_password": NEW_PASSWORD})
        assert changed["password_change_required"] is False
        person.csrf = changed["csrf_token"]
        await person.call("GET", "/api/conversations")
        await person.close()
        await Staff(running_hub.url).call("POST", "/api/auth/login", {"username": username, "password": ONE_TIME},
                                          expect=401)
        entries = (await admin.call("GET", f"/api/audit?target_id={user_id}"))["items"]
        assert {"user.password_reset", "user.password_change", "user.password_change_failed"} <= {
            e["action"] for e in entries}
    finally:
        await admin.close()
        await agent.close()


async def test_a_one_time_password_expires(running_hub) -> None:
    admin, agent = await admin_and_agent(running_hub)
    try:
        await admin.call("POST", f"/api/users/{agent.user['id']}/password", {"password": ONE_TIME})
        async with running_hub.hub.sessions.begin() as session:  # 72 hours later
            await session.execute(update(StaffUser).where(StaffUser.id == agent.user["id"])
                                  .values(password_expires_at=utcnow() - timedelta(minutes=1)))
        body = await Staff(running_hub.url).call("POST", "/api/auth/login", {"username": agent.user["username"],
                                                                             "password": ONE_TIME}, expect=401)
        assert body["error"]["code"] == "password_expired" and "过期" in body["error"]["message"]
    finally:
        await admin.close()
        await agent.close()


async def test_the_first_admins_printed_password_is_one_time(own_settings) -> None:
    hub = await start_hub(own_settings(first_admin_username="chief"))
    try:
        credential = await ensure_first_admin(hub.hub)
        assert credential is not None and "首次登录须修改" in credential.note
        chief = Staff(hub.url)
        signed_in = await chief.call("POST", "/api/auth/login", {"username": "chief",
                                                                 "password": credential.password})
        assert signed_in["password_change_required"] is True
        chief.csrf = signed_in["csrf_token"]
        body = await chief.call("POST", "/api/tokens", {"name": "importer", "role": "admin"}, expect=403)
        assert body["error"]["code"] == "password_change_required"
        await chief.call("POST", "/api/auth/password", {"current_password": credential.password,
                                                        "new_password": NEW_PASSWORD})
        chief.csrf = chief.http.cookie_jar.filter_cookies(URL(hub.url))["hub_csrf"].value
        await chief.call("POST", "/api/tokens", {"name": "importer", "role": "admin"}, expect=201)
        await chief.close()
    finally:
        await hub.runner.cleanup()


async def test_changing_ones_own_password_needs_the_current_one_and_ends_other_sessions(running_hub) -> None:
    agent = await running_hub.staff(Role.AGENT)
    other_tab = await Staff(running_hub.url).login(agent.user["username"], PASSWORD)
    try:
        weak = await agent.call("POST", "/api/auth/password", {"current_password": PASSWORD,
                                                               "new_password": agent.user["username"] + "1"},
                                expect=422)
        assert weak["error"]["code"] == "weak_password" and weak["error"]["details"]["fields"]["new_password"]
        changed = await agent.call("POST", "/api/auth/password", {"current_password": PASSWORD,
                                                                  "new_password": NEW_PASSWORD})
        await agent.closed()  # this browser's socket too: it reconnects with the new session
        await other_tab.call("GET", "/api/auth/me", expect=401)
        agent.csrf = changed["csrf_token"]
        await agent.call("GET", "/api/auth/me")
        await agent.listen()
    finally:
        await agent.close()
        await other_tab.close()


async def test_sign_out_everywhere(running_hub) -> None:
    admin, agent = await admin_and_agent(running_hub)
    other_tab = await Staff(running_hub.url).login(agent.user["username"], PASSWORD)
    try:
        await admin.call("POST", f"/api/users/{agent.user['id']}/sign-out")
        await agent.closed()
        for staff in (agent, other_tab):
            await staff.call("GET", "/api/auth/me", expect=401)
        presence = await admin.call("GET", "/api/agents")
        assert next(a for a in presence["items"] if a["id"] == agent.user["id"])["state"] == "signed_out"
        entry = (await admin.call("GET", f"/api/audit?action=user.sign_out_all&target_id={agent.user['id']}"))
        assert entry["items"][0]["details"]["sessions"] == 2
    finally:
        await admin.close()
        await agent.close()
        await other_tab.close()


async def test_a_user_disabled_on_one_process_loses_sockets_on_the_other(own_settings) -> None:
    shared = {"redis_url": REDIS_URL, "redis_prefix": f"test-{uuid.uuid4().hex[:8]}"}
    first = await start_hub(own_settings(**shared))
    second = await start_hub(own_settings(**shared))
    admin = await first.staff(Role.ADMIN, listen=False)
    agent = await Staff(second.url).login((await first.staff(Role.AGENT, listen=False)).user["username"], PASSWORD)
    try:
        await agent.listen()
        await admin.call("PATCH", f"/api/users/{agent.user['id']}", {"active": False})
        await agent.closed()
        assert agent.ws.close_code == 4401
    finally:
        await admin.close()
        await agent.close()
        await first.runner.cleanup()
        await second.runner.cleanup()


async def test_tokens_are_listed_without_secrets_and_a_revoked_one_stops_working(running_hub, http) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        name = f"importer-{uuid.uuid4().hex[:6]}"
        created = await admin.call("POST", "/api/tokens", {"name": name, "role": "supervisor"}, expect=201)
        secret = created["token"]
        headers = {"Authorization": f"Bearer {secret}"}
        async with http.get(f"{running_hub.url}/api/conversations", headers=headers) as response:
            assert response.status == 200
        listed = (await admin.call("GET", "/api/tokens"))["items"]
        mine = next(t for t in listed if t["name"] == name)
        assert "token" not in mine and secret not in str(listed) and mine["revoked_at"] is None
        revoked = await admin.call("POST", f"/api/tokens/{created['id']}/revoke")
        assert revoked["revoked_at"]
        async with http.get(f"{running_hub.url}/api/conversations", headers=headers) as response:
            assert response.status == 401 and (await response.json())["error"]["code"] == "bad_token"
        entries = (await admin.call("GET", f"/api/audit?target_type=token&target_id={created['id']}"))["items"]
        assert [e["action"] for e in entries] == ["token.revoke", "token.create"]
        assert secret not in str(entries)
    finally:
        await admin.close()


@pytest.mark.parametrize("role", [Role.SUPERVISOR, Role.AGENT, Role.HANDLER])
async def test_only_admins_manage_accounts_or_read_the_audit_log(running_hub, role) -> None:
    staff = await running_hub.staff(role, listen=False)
    try:
        for method, path, body in [("GET", "/api/audit", None), ("GET", "/api/users", None),
                                   ("PATCH", f"/api/users/{staff.user['id']}", {"role": "admin"}),
                                   ("POST", f"/api/users/{staff.user['id']}/unlock", None),
                                   ("GET", "/api/tokens", None)]:
            answer = await staff.call(method, path, body, expect=403)
            assert answer["error"]["code"] == "role_forbidden"
    finally:
        await staff.close()


async def test_the_audit_log_cannot_be_edited_or_deleted(running_hub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        entry = (await admin.call("GET", "/api/audit?limit=1"))["items"][0]
        for method in ("PUT", "PATCH", "DELETE"):
            await admin.call(method, "/api/audit", {"action": "x"}, expect=405)
            await admin.call(method, f"/api/audit/{entry['id']}", {"action": "x"}, expect=404)
        again = (await admin.call("GET", f"/api/audit?before_id={entry['id'] + 1}&limit=1"))["items"][0]
        assert again == entry
    finally:
        await admin.close()


async def test_the_audit_log_filters_and_pages_newest_first(running_hub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        names = [f"page-{i}-{uuid.uuid4().hex[:6]}" for i in range(5)]
        for name in names:
            await admin.call("POST", "/api/tokens", {"name": name, "role": "agent"}, expect=201)
        mine = f"actor={admin.user['username']}&action=token."
        first = await admin.call("GET", f"/api/audit?{mine}&limit=3")
        assert [e["details"]["name"] for e in first["items"]] == names[::-1][:3]
        second = await admin.call("GET", f"/api/audit?{mine}&limit=3&before_id={first['next_before_id']}")
        assert [e["details"]["name"] for e in second["items"]] == names[::-1][3:]
        assert second["next_before_id"] is None
        later = (utcnow() + timedelta(hours=1)).isoformat()
        assert (await admin.call("GET", f"/api/audit?{mine}&since={later.replace('+', '%2B')}"))["items"] == []
        naive = await admin.call("GET", "/api/audit?since=2026-12-05T08:00:00", expect=422)
        assert naive["error"]["details"]["fields"]
        wildcard = await admin.call("GET", "/api/audit?action=%25")  # a literal %, not "everything"
        assert wildcard["items"] == []
    finally:
        await admin.close()

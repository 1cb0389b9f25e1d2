"""Every REST route × every role, bad input of every kind, the OpenAPI document, and fuzzing it.

The routes come from the code's own declarations (``router.api.api.endpoints``), so a new route is
covered by these tables the day it is added.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid

import aiohttp
import pytest

from channels.base import InboundMessage
from router.accounts import add_api_token, create_user
from router.api import api
from router.api.spec import PATH_PARAM, UUID_PATTERN, Endpoint
from router.models import Role
from tests.conftest import PASSWORD, start_hub
from tests.support.actors import Staff
from tests.support.hubproc import ROOT

ENDPOINTS = api.endpoints
PROTECTED = [e for e in ENDPOINTS if e.roles is not None]
WITH_BODY = [e for e in ENDPOINTS if e.body is not None]
WITH_ID = [e for e in ENDPOINTS if e.path_params]
# A body that passes validation, per request model, so role checks are seen past validation.
VALID_BODIES = {
    "LoginBody": {"username": "nobody", "password": "wrong-password"},
    "NewUserBody": {"username": "u" + uuid.uuid4().hex[:8], "password": "long-enough-1", "role": "agent",
                    "display_name": "新坐席"},
    "NewTokenBody": {"name": "t" + uuid.uuid4().hex[:8], "role": "agent"},
    "UserChangeBody": {"max_chats": 4},
    "PasswordResetBody": {"password": "weak"},
    "PhoneBody": {"extension": "8001"},
    "FinishBody": {"outcome": "cancelled"},
    "CallControlBody": {"action": "hold"},
    "MonitorBody": {"mode": "listen"},
    "CampaignBody": {"name": "欠费提醒", "kind": "arrears", "message": "您的水费已欠费,请及时缴纳。",
                     "contact_ids": [999999]},
    "CampaignStateBody": {"state": "paused"},
    "PasswordChangeBody": {"current_password": "wrong-password", "new_password": "weak"},
    "ReplyBody": {"text": "您好"},
    "AssignBody": {"agent_id": 1},
    "CloseBody": {"disposition": None},
    "TransferBody": {"team_id": 1},
    "CategoryBody": {"code": "consultation", "name": "咨询", "sla_hours": 24},
    "DepartmentBody": {"name": "管网抢修中心"},
    "NewOrder": {"category": "consultation", "title": "咨询水价", "description": "阶梯水价怎么算"},
    "TransitionBody": {"action": "dispatch", "department_id": 1},
    "TemplateBody": {"key": "workorder.create", "text": None},
    "RuleBody": {"department_id": 999999},
    "NoteBody": {"comment": "已电话联系居民"},
    "PresenceBody": {"state": "away", "reason": "培训"},
    "RoutingBody": {"strategy": "round_robin"},
    "DispositionBody": {"code": "nuisance", "label": "骚扰来电"},
    "CannedReplyBody": {"shortcut": "c" + uuid.uuid4().hex[:8], "text": "您好,请稍等"},
    "FlagsBody": {"vip": False, "blacklisted": False},
    "SurveyAnswer": {"token": "x" * 32, "score": 5, "resolved": True},
    "ResidentCallbackBody": {"token": "x" * 32, "client_id": "c" + uuid.uuid4().hex[:8], "phone": "13900139000"},
    "NoticeBody": {"kind": "repair", "title": "检修", "body": "检修", "starts_at": "2026-11-24T08:00:00+08:00",
                   "ends_at": "2026-11-24T12:00:00+08:00"},
}


def endpoint_id(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


def concrete(path: str, row_id: int) -> str:
    """The path with every parameter filled: integers by the id, UUIDs by one that names no file, hexadecimal
    keys (``[0-9a-f]{n}``) by the id written as one."""
    def value(match: re.Match[str]) -> str:
        pattern = match.group(2)
        if pattern == UUID_PATTERN:
            return str(uuid.UUID(int=row_id))
        if hexadecimal := re.fullmatch(r"\[0-9a-f\]\{(\d+)\}", pattern):
            return f"{row_id:0{hexadecimal.group(1)}x}"
        return str(row_id)
    return PATH_PARAM.sub(value, path)


@pytest.fixture(scope="module")
async def people(running_hub) -> dict:
    """One signed-in user per role, all in the default team, and a queued conversation."""
    hub = running_hub.hub
    users: dict[Role | None, Staff] = {}
    usernames: dict[Role, str] = {}
    for role in Role:
        usernames[role] = f"matrix-{role.value}-{uuid.uuid4().hex[:6]}"
        async with hub.sessions.begin() as session:
            await create_user(session, username=usernames[role], password=PASSWORD, role=role,
                              team_names=[hub.settings.default_team])
        users[role] = await Staff(running_hub.url).login(usernames[role], PASSWORD)
    users[None] = Staff(running_hub.url)
    result = await hub.ingest(InboundMessage(channel="webchat", external_id=f"matrix-{uuid.uuid4()}",
                                             channel_message_id=str(uuid.uuid4()), text="测试"))
    # Account and token routes act on these, not on whatever shares the conversation's id.
    async with hub.sessions.begin() as session:
        target = await create_user(session, username=f"matrix-target-{uuid.uuid4().hex[:6]}", password=PASSWORD,
                                   role=Role.AGENT)
        _, token = await add_api_token(session, f"matrix-target-{uuid.uuid4().hex[:6]}", Role.AGENT)
    ids = {"/api/users/": target.id, "/api/tokens/": token.id}
    yield {"users": users, "usernames": usernames, "conversation_id": result.conversation_id, "ids": ids}
    for staff in users.values():
        await staff.close()


def test_every_route_is_declared_with_roles_and_documented(running_hub) -> None:
    document = api.openapi("x", "1")
    assert len(ENDPOINTS) >= 14
    for endpoint in ENDPOINTS:
        path = PATH_PARAM.sub(r"{\1}", endpoint.path)
        operation = document["paths"][path][endpoint.method.lower()]
        assert operation["summary"]
        if endpoint.roles is not None:
            assert set(operation["x-roles"]) == set(endpoint.roles)
            assert {"401", "403"} <= set(operation["responses"])


@pytest.mark.parametrize("endpoint", PROTECTED, ids=endpoint_id)
@pytest.mark.parametrize("role", [None, *Role], ids=lambda r: r.value if r else "anonymous")
async def test_route_by_role(people, endpoint: Endpoint, role: Role | None) -> None:
    staff = people["users"][role]
    if endpoint.path == "/api/auth/logout" and role is not None:  # sign out a second session, not the shared one
        staff = await Staff(staff.base_url).login(people["usernames"][role], PASSWORD)
    body = VALID_BODIES.get(endpoint.body.__name__) if endpoint.body else None
    if endpoint.body and endpoint.body.__name__ in {"NewUserBody", "NewTokenBody"}:
        body = {**body, ("username" if "username" in body else "name"): "x" + uuid.uuid4().hex[:10]}
    row_id = next((row for prefix, row in people["ids"].items() if endpoint.path.startswith(prefix)),
                  people["conversation_id"])
    answer = await staff.call(endpoint.method, concrete(endpoint.path, row_id), body, expect=None)
    status, code = _status(staff), (answer or {}).get("error", {}).get("code")
    if role is None:
        assert (status, code) == (401, "not_authenticated")
    elif role not in endpoint.roles:
        assert (status, code) == (403, "role_forbidden")
    else:
        assert status < 500 and status != 401 and code != "role_forbidden", (status, answer)


def _status(staff: Staff) -> int:
    return staff.last_status


@pytest.mark.parametrize("endpoint", WITH_BODY, ids=endpoint_id)
@pytest.mark.parametrize(("case", "headers", "payload", "status", "code"), [
    ("malformed", {"Content-Type": "application/json"}, b'{"text": "unterminated', 400, "malformed_json"),
    ("not-json", {"Content-Type": "text/plain"}, b"text=hello", 415, "unsupported_media_type"),
    ("oversized", {"Content-Type": "application/json"}, b'{"text": "' + b"x" * 70000 + b'"}', 413, "too_large"),
    ("wrong-fields", {"Content-Type": "application/json"}, b'{"unexpected": [1, 2]}', 422, "invalid"),
    ("wrong-type", {"Content-Type": "application/json"}, b"[1, 2, 3]", 422, "invalid"),
])
async def test_bad_bodies_are_4xx_with_a_json_error(people, endpoint, case, headers, payload, status, code) -> None:
    staff = people["users"][Role.ADMIN]
    url = staff.base_url + concrete(endpoint.path, people["conversation_id"])
    async with staff.http.request(endpoint.method, url, data=payload,
                                  headers={**headers, "X-CSRF-Token": staff.csrf}) as response:
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (status, code), body
        assert body["error"]["message"]
        if status == 422:
            assert body["error"]["details"]["fields"]


@pytest.mark.parametrize("endpoint", WITH_ID, ids=endpoint_id)
@pytest.mark.parametrize("bad_id", ["999999999", "abc", "-1", "99999999999999999999999"])
async def test_unknown_ids_are_404(people, endpoint, bad_id) -> None:
    staff = people["users"][Role.ADMIN]
    body = VALID_BODIES.get(endpoint.body.__name__) if endpoint.body else None
    url = staff.base_url + PATH_PARAM.sub(bad_id, endpoint.path)
    async with staff.http.request(endpoint.method, url, json=body, headers={"X-CSRF-Token": staff.csrf}) as response:
        answer = await response.json()
        assert response.status in (404, 422), answer
        assert response.status == 404 or answer["error"]["code"] in {"unknown_agent", "unknown_team"}


async def test_csrf_is_required_for_cookie_sessions_but_not_for_bearer_tokens(people, running_hub) -> None:
    agent = people["users"][Role.AGENT]
    url = f"{running_hub.url}/api/conversations/{people['conversation_id']}/claim"
    async with agent.http.post(url) as response:
        assert response.status == 403 and (await response.json())["error"]["code"] == "csrf_failed"
    async with agent.http.post(url, headers={"X-CSRF-Token": "guess"}) as response:
        assert response.status == 403
    token = await running_hub.token(Role.SUPERVISOR)
    async with aiohttp.ClientSession() as http, http.get(
            f"{running_hub.url}/api/conversations", headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
    async with aiohttp.ClientSession() as http, http.get(
            f"{running_hub.url}/api/conversations", headers={"Authorization": "Bearer shw_revoked"}) as response:
        assert response.status == 401 and (await response.json())["error"]["code"] == "bad_token"


async def test_an_agent_cannot_read_another_teams_conversation(running_hub) -> None:
    hub = running_hub.hub
    outsider = await running_hub.staff(Role.AGENT, teams=["抄表组"], listen=False)
    try:
        result = await hub.ingest(InboundMessage(channel="webchat", external_id=f"team-{uuid.uuid4()}",
                                                 channel_message_id=str(uuid.uuid4()), text="热线组的会话"))
        conversation_id = result.conversation_id
        for method, path in [("GET", ""), ("GET", "/messages"), ("POST", "/claim")]:
            answer = await outsider.call(method, f"/api/conversations/{conversation_id}{path}", expect=403)
            assert answer["error"]["code"] == "forbidden"
        listed = await outsider.call("GET", "/api/conversations?state=queued")
        assert conversation_id not in [c["id"] for c in listed["items"]]
    finally:
        await outsider.close()


async def test_staff_socket_checks_the_caller(running_hub, http) -> None:
    ws_url = f"{running_hub.url.replace('http', 'ws')}/api/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as anonymous:
        await http.ws_connect(ws_url)
    assert anonymous.value.status == 401
    crew = await running_hub.staff(Role.FIELD_CREW, listen=False)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as forbidden:
            await crew.http.ws_connect(ws_url)
        assert forbidden.value.status == 403
    finally:
        await crew.close()
    agent = await running_hub.staff(Role.AGENT, listen=False)
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as hijack:
            await agent.http.ws_connect(ws_url, headers={"Origin": "https://evil.example"})
        assert hijack.value.status == 403
    finally:
        await agent.close()


@pytest.mark.timeout(420)  # some 70 operations, 25 examples each, and the stateful runs
async def test_schemathesis_finds_no_server_error(own_settings) -> None:
    # A hub of its own: the fuzzer changes whatever an admin may change (templates, categories …).
    running_hub = await start_hub(own_settings())
    try:
        await _fuzz(running_hub)
    finally:
        await running_hub.runner.cleanup()


async def _fuzz(running_hub) -> None:
    token = await running_hub.token(Role.ADMIN)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "schemathesis.cli", "run", f"{running_hub.url}/api/openapi.json",
        "--checks", "not_a_server_error,status_code_conformance,content_type_conformance",
        "--max-examples", "25", "--seed", "962740", "-H", f"Authorization: Bearer {token}",
        "--exclude-path", "/api/auth/logout", "--exclude-path", "/api/tokens/{token_id}/revoke",
        "--request-timeout", "10",
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    assert "passed" in text.lower()


async def test_nul_characters_are_refused_before_they_reach_the_database(people, running_hub) -> None:
    admin = people["users"][Role.ADMIN]
    body = await admin.call("POST", "/api/auth/login", {"username": "a\u0000b", "password": "x"}, expect=400)
    assert body["error"]["code"] == "nul_character"
    body = await admin.call("GET", "/api/workorders?category=a%00b", expect=422)
    assert body["error"]["code"] == "nul_character"

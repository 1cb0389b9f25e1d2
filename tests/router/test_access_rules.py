"""Who may read which conversation and which resident's files: a service token, agents of another team."""

from __future__ import annotations

import uuid

import aiohttp

from router.filelinks import signed_file_link
from router.models import Role
from tests.support.actors import Resident
from tests.support.files import png_bytes, visitor_upload


async def test_a_service_token_reads_no_conversation_wholesale(running_hub, resident: Resident) -> None:
    said = await resident.says("我家水表井里一直在冒水")
    conversation_id = said["conversation_id"]
    token = await running_hub.token(Role.AGENT)  # as the bot's action server holds one
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as service:
        for path in (f"/api/conversations/{conversation_id}", f"/api/conversations/{conversation_id}/messages"):
            async with service.get(running_hub.url + path) as response:
                assert response.status == 403, (path, await response.text())
        for state in ("queued", "closed"):
            async with service.get(f"{running_hub.url}/api/conversations", params={"state": state}) as response:
                listed = (await response.json())["items"]
            assert listed == [], listed


async def test_a_residents_file_is_fetched_only_by_staff_who_see_a_conversation_of_theirs(
        http, running_hub, resident: Resident) -> None:
    await resident.says("水表坏了,我拍了照片")
    status, body = await visitor_upload(http, running_hub.url, resident.token, "水表.png", png_bytes())
    assert status == 201, body
    url = f"/files/{body['message']['attachment']['file_id']}"  # as staff pages fetch it
    hotline = await running_hub.staff(Role.AGENT, listen=False)
    outsider = await running_hub.staff(Role.AGENT, teams=[f"营业厅-{uuid.uuid4().hex[:6]}"], listen=False)
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    try:
        for reader in (hotline, supervisor):  # the resident waits in the hotline's queue
            assert (await reader.fetch(url))[:2] == (200, png_bytes())
        status, content, _ = await outsider.fetch(url)
        assert status == 404, content
    finally:
        for staff in (hotline, outsider, supervisor):
            await staff.close()


async def test_a_file_link_opens_one_file_for_a_while_and_the_visitor_token_opens_none(
        http, running_hub, resident: Resident) -> None:
    await resident.says("两张水表照片")
    links = []
    for size in (2, 3):
        status, body = await visitor_upload(http, running_hub.url, resident.token, "水表.png", png_bytes(size, size))
        assert status == 201, body
        links.append((body["message"]["attachment"]["file_id"], body["message"]["attachment"]["url"]))
    (first_id, first_link), (second_id, _) = links
    async with http.get(running_hub.url + first_link) as response:
        assert response.status == 200 and await response.read() == png_bytes(2, 2)
    signature = first_link.split("?s=", 1)[1]
    expired = signed_file_link(running_hub.hub.secret_key, first_id, -1)
    forged = signed_file_link("another-hubs-secret-0123456789abcdef", first_id, 600)
    for path, params in [(f"/files/{second_id}", {"s": signature}),  # another file, the same signature
                         (expired, None), (forged, None),
                         (f"/files/{first_id}", {"token": resident.token}),  # the long-lived visitor token
                         (f"/webchat/files/{first_id}", {"token": resident.token})]:
        async with http.get(running_hub.url + path, params=params) as response:
            assert response.status == 404, (path, params, response.status)

    again = await Resident(http, running_hub.url, token=resident.token).connect()  # a reload gets fresh links
    try:
        shown = [m["attachment"]["url"] for m in again.hello["messages"] if m["attachment"]]
        assert len(shown) == 2 and all(link.startswith("/files/") and "?s=" in link for link in shown)
        for link in shown:
            async with http.get(running_hub.url + link) as response:
                assert response.status == 200
    finally:
        await again.close()


async def test_a_service_token_neither_writes_nor_reads_the_teams_canned_replies(running_hub) -> None:
    supervisor = await running_hub.staff(Role.SUPERVISOR, listen=False)
    agent = await running_hub.staff(Role.AGENT, listen=False)
    team_id = agent.user["teams"][0]["id"]
    team_reply = f"t{uuid.uuid4().hex[:6]}"
    await supervisor.call("POST", "/api/canned-replies", {"shortcut": team_reply, "text": "本组内部口径",
                                                          "scope": "team", "team_id": team_id}, expect=201)
    token = await running_hub.token(Role.AGENT)
    shortcut = f"pay{uuid.uuid4().hex[:6]}"
    reply = {"shortcut": shortcut, "text": "请扫码向个人账户缴费", "scope": "personal"}
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as service:
            async with service.post(f"{running_hub.url}/api/canned-replies", json=reply) as response:
                assert response.status == 403, await response.text()  # a personal reply needs a person
            async with service.get(f"{running_hub.url}/api/canned-replies") as response:
                assert team_reply not in [r["shortcut"] for r in (await response.json())["items"]]
        listed = (await agent.call("GET", "/api/canned-replies"))["items"]
        assert shortcut not in [r["shortcut"] for r in listed] and team_reply in [r["shortcut"] for r in listed]
    finally:
        await agent.close()
        await supervisor.close()


async def test_a_visitor_renews_links_only_to_their_own_files(http, running_hub, resident: Resident) -> None:
    await resident.says("我上传一张照片")
    status, body = await visitor_upload(http, running_hub.url, resident.token, "水表.png", png_bytes())
    assert status == 201, body
    file_id = body["message"]["attachment"]["file_id"]
    stranger = await Resident(http, running_hub.url).connect()
    try:
        async def renew(token: str | None, payload: object) -> tuple[int, dict]:
            headers = {"X-Visitor-Token": token} if token else {}
            async with http.post(f"{running_hub.url}/webchat/file-links", json=payload, headers=headers) as response:
                return response.status, await response.json()

        status, mine = await renew(resident.token, {"file_ids": [file_id]})
        assert status == 200 and list(mine["links"]) == [file_id]
        async with http.get(running_hub.url + mine["links"][file_id]) as response:
            assert response.status == 200
        assert await renew(stranger.token, {"file_ids": [file_id]}) == (200, {"links": {}})
        assert (await renew(None, {"file_ids": [file_id]}))[0] == 401
        for bad in ({"file_ids": []}, {"file_ids": ["../../etc/passwd"]}, {"file_ids": [file_id] * 101}, [file_id]):
            assert (await renew(resident.token, bad))[0] == 422, bad
    finally:
        await stranger.close()

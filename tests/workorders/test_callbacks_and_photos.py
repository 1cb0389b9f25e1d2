"""After the repair: photos and notes on the order, the resident's survey, reopening, working-hours deadlines."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import datetime, time, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import text, update

from channels.base import InboundMessage
from router.models import Role
from tests.support.actors import Resident
from tests.support.files import png_bytes
from tests.workorders.conftest import act
from workorders.models import CallbackSurvey

SHANGHAI = ZoneInfo("Asia/Shanghai")


async def new_category(crew, **settings) -> dict:
    code = f"c_{uuid.uuid4().hex[:8]}"
    return await crew["admin"].call("POST", "/api/workorder-categories", {
        "code": code, "name": f"测试类别-{code}", "sla_hours": 4, **settings}, expect=201)


async def order_in_progress(crew, category: dict, resident: Resident | None = None) -> dict:
    conversation_id = None
    if resident is not None:
        conversation_id = (await resident.says("楼道水管漏水了"))["conversation_id"]
    order = await crew["agent"].call("POST", "/api/workorders", {
        "category": category["code"], "title": "楼道水管漏水", "description": "三楼楼道水管接头漏水",
        "address": "昆山市清源路18号", "conversation_id": conversation_id}, expect=201)
    await act(crew["agent"], order["id"], action="dispatch", department_id=crew["repair"]["id"])
    await act(crew["handler"], order["id"], action="assign", assignee_id=crew["field"].user["id"])
    return await act(crew["field"], order["id"], action="start")


async def survey_notice(resident: Resident) -> dict:
    """The resident's messages up to the one carrying the survey link."""
    for _ in range(8):
        message = await resident.hears("system")
        if (message["payload"] or {}).get("survey"):
            return message
    raise AssertionError("no survey link reached the resident")


def token_of(notice: dict) -> str:
    return parse_qs(urlsplit(notice["payload"]["survey"]["url"]).query)["t"][0]


async def completed_with_survey(crew, running_hub, http, comment: str) -> tuple[Resident, dict, str]:
    """A chat's order on a survey category, completed: the resident, the order and the survey's token."""
    resident = await Resident(http, running_hub.url).connect()
    order = await order_in_progress(crew, await new_category(crew, callback="survey"), resident)
    await act(crew["field"], order["id"], action="complete", comment=comment)
    return resident, order, token_of(await survey_notice(resident))


async def test_a_satisfied_resident_closes_the_order_by_the_survey_link(crew, running_hub, http) -> None:
    category = await new_category(crew, callback="survey")
    resident = await Resident(http, running_hub.url).connect()
    order = await order_in_progress(crew, category, resident)
    await act(crew["field"], order["id"], action="complete", comment="更换接头,已不再漏水")

    notice = await survey_notice(resident)
    url = notice["payload"]["survey"]["url"]
    assert url.startswith(f"{running_hub.url}/survey?t=")
    assert notice["text"] == f"工单 {order['number']} 已处理完毕:更换接头,已不再漏水。请您为本次服务评价:{url}"
    token = token_of(notice)
    async with http.get(f"{running_hub.url}/api/surveys", params={"token": token}) as response:
        view = await response.json()
    assert response.status == 200
    assert view == {"number": order["number"], "category": category["name"], "title": "楼道水管漏水",
                    "completion": "更换接头,已不再漏水", "answered": False, "score": None, "expired": False}

    answer = {"token": token, "score": 5, "resolved": True, "comment": "师傅很快就修好了"}
    async with http.post(f"{running_hub.url}/api/surveys", json=answer) as response:
        assert response.status == 200
        assert (await response.json())["answered"] is True
    closed = await crew["agent"].call("GET", f"/api/workorders/{order['id']}")
    assert closed["state"] == "closed" and closed["satisfaction"] == 5
    visit, close = closed["timeline"][-2:]
    assert (visit["action"], visit["actor_name"], visit["comment"], visit["data"]) == (
        "visit", "居民评价", "师傅很快就修好了", {"satisfaction": 5})
    assert (close["action"], close["to_state"]) == ("close", "closed")
    assert (await resident.hears("system"))["text"] == f"工单 {order['number']} 已办结,感谢您对供水服务的支持。"

    async with http.post(f"{running_hub.url}/api/surveys", json=answer) as response:
        assert response.status == 409 and (await response.json())["error"]["code"] == "survey_answered"
    async with http.get(f"{running_hub.url}/api/surveys", params={"token": "x" * 32}) as response:
        assert response.status == 404
    async with http.post(f"{running_hub.url}/api/surveys", json={**answer, "score": 6}) as response:
        assert response.status == 422 and "score" in (await response.json())["error"]["details"]["fields"]
    await resident.close()


async def test_an_unresolved_problem_reopens_the_order_with_a_new_deadline(crew, running_hub, http) -> None:
    resident, order, token = await completed_with_survey(crew, running_hub, http, "已紧固接头")

    async with http.post(f"{running_hub.url}/api/surveys",
                         json={"token": token, "score": 2, "resolved": False, "comment": "还在滴水"}) as response:
        assert response.status == 200
    reopened = await crew["agent"].call("GET", f"/api/workorders/{order['id']}")
    assert reopened["state"] == "assigned" and reopened["satisfaction"] == 2
    assert reopened["assignee"]["id"] == crew["field"].user["id"]  # back to the crew who did the work
    reopen = reopened["timeline"][-1]
    assert (reopen["action"], reopen["reason"], reopen["from_state"]) == ("reopen", "居民反馈问题未解决", "visited")
    assert datetime.fromisoformat(reopened["sla_due_at"]) > datetime.fromisoformat(order["sla_due_at"])
    assert (await resident.hears("system"))["text"] == (
        f"工单 {order['number']} 已重新安排处理:居民反馈问题未解决。")
    # The clock runs again: the escalation timer in the job store is set to the new deadline.
    async with running_hub.hub.sessions() as session:
        run_at = await session.scalar(text("SELECT next_run_time FROM apscheduler_jobs WHERE id = :id"),
                                      {"id": f"sla-escalate-{order['id']}"})
    assert run_at == pytest.approx(datetime.fromisoformat(reopened["sla_due_at"]).timestamp(), abs=0.001)
    await resident.close()


async def test_an_agents_callback_first_keeps_the_order_and_still_records_the_answer(crew, running_hub, http) -> None:
    resident, order, token = await completed_with_survey(crew, running_hub, http, "已修复")
    await act(crew["agent"], order["id"], action="visit", satisfaction=3, comment="电话回访:基本满意")

    async with http.post(f"{running_hub.url}/api/surveys", json={"token": token, "score": 4, "resolved": True},
                         ) as response:
        assert response.status == 200 and (await response.json())["score"] == 4
    kept = await crew["agent"].call("GET", f"/api/workorders/{order['id']}")
    assert kept["state"] == "visited" and kept["satisfaction"] == 3
    assert [e["action"] for e in kept["timeline"]].count("visit") == 1
    await resident.close()


async def test_an_expired_survey_is_refused_and_orders_without_a_chat_wait_for_an_agent(crew, running_hub,
                                                                                       http) -> None:
    resident, order, token = await completed_with_survey(crew, running_hub, http, "已修复")
    async with running_hub.hub.sessions.begin() as session:
        await session.execute(update(CallbackSurvey).where(CallbackSurvey.order_id == order["id"])
                              .values(expires_at=datetime.now(SHANGHAI) - timedelta(minutes=1)))
    async with http.post(f"{running_hub.url}/api/surveys", json={"token": token, "score": 5, "resolved": True},
                         ) as response:
        assert response.status == 409 and (await response.json())["error"]["code"] == "survey_expired"
    assert (await crew["agent"].call("GET", f"/api/workorders/{order['id']}"))["state"] == "completed"

    category = order["category"]
    by_phone = await order_in_progress(crew, category)  # no conversation: the callback is an agent's task
    done = await act(crew["field"], by_phone["id"], action="complete", comment="已修复")
    async with running_hub.hub.sessions() as session:
        assert await session.scalar(text("SELECT count(*) FROM callback_survey WHERE order_id = :id"),
                                    {"id": by_phone["id"]}) == 0
    waiting = await crew["agent"].call("GET", f"/api/workorders?state=completed&category={category['code']}")
    assert {o["id"] for o in waiting["items"]} == {order["id"], done["id"]}
    await resident.close()


async def test_photos_and_notes_on_an_open_order(crew) -> None:
    category = await new_category(crew)
    order = await order_in_progress(crew, category)
    path = f"/api/workorders/{order['id']}"
    photo = png_bytes(4, 3)

    with_photo = await crew["field"].upload(f"{path}/attachments", "现场.png", photo)
    [attachment] = with_photo["attachments"]
    assert (attachment["name"], attachment["content_type"], attachment["size"]) == ("现场.png", "image/png", len(photo))
    assert with_photo["timeline"][-1]["action"] == "attach"
    assert with_photo["timeline"][-1]["data"]["name"] == "现场.png"
    for reader in ("field", "handler", "agent"):
        status, body, content_type = await crew[reader].fetch(attachment["url"])
        assert (status, body, content_type) == (200, photo, "image/png")
    for outsider in ("billing_handler", "field2"):  # another department; a crew member it is not assigned to
        assert (await crew[outsider].fetch(attachment["url"]))[0] == 403
        await crew[outsider].upload(f"{path}/attachments", "x.png", photo, expect=403)

    refused = [
        ("说明.txt", "不是图片".encode(), 415),
        ("empty.png", b"", 400),
        ("fake.png", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", 415),  # a PDF, whatever its name says
    ]
    for name, data, status in refused:
        body = await crew["field"].upload(f"{path}/attachments", name, data, expect=status)
        assert body["error"]["message"]
    assert (await crew["field"].call("POST", f"{path}/attachments", {"file": "x"}, expect=415))["error"]
    other = await order_in_progress(crew, category)
    assert (await crew["agent"].fetch(f"/api/workorders/{other['id']}/files/{attachment['id']}"))[0] == 404

    note = "阀门井被车辆压住,已联系交警"
    noted = await crew["field"].call("POST", f"{path}/notes", {"comment": note}, expect=201)
    assert (noted["timeline"][-1]["action"], noted["timeline"][-1]["comment"]) == ("note", note)
    await crew["field"].call("POST", f"{path}/notes", {"comment": ""}, expect=422)
    await act(crew["field"], order["id"], action="complete", comment="已修复")
    await act(crew["agent"], order["id"], action="visit", satisfaction=5)
    await act(crew["agent"], order["id"], action="close")
    finished = await crew["agent"].call("POST", f"{path}/notes", {"comment": "补充"}, expect=409)
    assert finished["error"]["code"] == "order_finished"
    assert len((await crew["agent"].call("GET", path))["attachments"]) == 1


async def test_working_hours_deadlines_skip_nights_and_weekends(crew) -> None:
    office = await new_category(crew, sla_hours=2, sla_calendar="working_hours")
    assert office["sla_calendar"] == "working_hours"
    around_the_clock = await new_category(crew, sla_hours=2)
    for category in (office, around_the_clock):
        order = await crew["agent"].call("POST", "/api/workorders", {
            "category": category["code"], "title": "水费有疑问", "description": "本月水费比上月多一倍"}, expect=201)
        created = datetime.fromisoformat(order["created_at"])
        due = datetime.fromisoformat(order["sla_due_at"])
        if category is around_the_clock:
            assert due - created == timedelta(hours=2)
            continue
        local = due.astimezone(SHANGHAI)
        assert due - created >= timedelta(hours=2)
        assert time(8, 30) <= local.time() <= time(12) or time(13, 30) <= local.time() <= time(17, 30)
        assert local.weekday() < 5 or local.date().isoformat() in {"2026-09-20", "2026-10-10"}  # make-up days
    bad = await crew["admin"].call("POST", "/api/workorder-categories", {
        "code": f"c_{uuid.uuid4().hex[:8]}", "name": "x", "sla_hours": 2, "sla_calendar": "office"}, expect=422)
    assert "sla_calendar" in bad["error"]["details"]["fields"]


async def test_regions_and_who_an_order_can_be_assigned_to(crew) -> None:
    regions = await crew["field"].call("GET", "/api/regions")
    assert {"code": "huaqiao", "name": "花桥经济开发区"} in regions["items"]
    members = await crew["handler"].call("GET", f"/api/departments/{crew['repair']['id']}/members")
    assert {m["id"] for m in members["items"]} == {crew[name].user["id"] for name in ("handler", "field", "field2")}
    await crew["field"].call("GET", f"/api/departments/{crew['repair']['id']}/members", expect=403)
    await crew["agent"].call("GET", "/api/departments/999999/members", expect=404)


async def test_the_survey_page_is_public_and_locked_down(running_hub) -> None:
    async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{running_hub.url}/survey?t=abc") as response:
        assert response.status == 200
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]


async def notices_once_settled(staff, order_id: int) -> list[dict]:
    """The order's notices once none is waiting to be sent any more."""
    for _ in range(100):
        notices = (await staff.call("GET", f"/api/workorders/{order_id}"))["notices"]
        if notices and all(n["delivery"] not in {"queued", "sending"} for n in notices):
            return notices
        await asyncio.sleep(0.1)
    raise AssertionError(f"notices still pending: {notices}")


async def test_what_residents_were_told_and_whether_it_arrived_is_on_the_order(crew, running_hub, http) -> None:
    resident = await Resident(http, running_hub.url).connect()
    said = await resident.says("小区停水了")
    order = await crew["agent"].call("POST", "/api/workorders", {
        "category": "no_water", "title": "小区停水", "description": "整个小区没有水",
        "custom_fields": {"scope": "小区"}, "conversation_id": said["conversation_id"]}, expect=201)
    [notice] = await notices_once_settled(crew["agent"], order["id"])
    assert (notice["channel"], notice["delivery"], notice["last_error"]) == ("webchat", "sent", None)
    assert notice["text"] == (await resident.hears("system"))["text"]
    await resident.close()

    # A resident on a channel this hub does not run (SMS not enabled here): the notice fails, and says why.
    texted = await running_hub.hub.ingest(InboundMessage(
        channel="sms", external_id="+8613800000000", channel_message_id=str(uuid.uuid4()), text="我家停水了"))
    by_sms = await crew["agent"].call("POST", "/api/workorders", {
        "category": "no_water", "title": "停水", "description": "家里停水", "custom_fields": {"scope": "单户"},
        "conversation_id": texted.conversation_id}, expect=201)
    [failed] = await notices_once_settled(crew["agent"], by_sms["id"])
    assert (failed["channel"], failed["delivery"]) == ("sms", "failed")
    assert failed["last_error"] == "channel sms is not enabled"


async def test_no_member_of_staff_can_read_a_usable_survey_link(crew, running_hub, http) -> None:
    listening = await running_hub.staff(Role.SUPERVISOR)
    resident, order, token = await completed_with_survey(crew, running_hub, http, "已更换水表接头")
    path, chat = f"/api/workorders/{order['id']}", f"/api/conversations/{order['conversation_id']}/messages"
    reads = [await crew["field"].call("GET", path), await crew["field"].call("GET", "/api/workorders"),
             await crew["handler"].call("GET", path), await crew["agent"].call("GET", path),
             await crew["supervisor"].call("GET", path), await crew["supervisor"].call("GET", chat),
             await crew["agent"].call("GET", chat),
             await listening.sees(lambda e: e["type"] == "message" and (e["message"]["payload"] or {}).get("survey"))]
    await crew["field"].call("GET", chat, expect=403)
    seen = json.dumps(reads, ensure_ascii=False)
    assert token not in seen
    for candidate in set(re.findall(r"[A-Za-z0-9_\-]{20,64}", seen)):  # nothing staff read opens the survey
        async with http.get(f"{running_hub.url}/api/surveys", params={"token": candidate}) as response:
            assert response.status in {404, 422}, candidate
    notice = next(n for n in reads[0]["notices"] if "评价" in (n["text"] or ""))
    assert notice["text"].endswith("请您为本次服务评价:〔评价链接〕"), notice["text"]  # where the link went

    again = await Resident(http, running_hub.url, token=resident.token).connect()  # a reload keeps a working link
    [shown] = [m for m in again.hello["messages"] if (m["payload"] or {}).get("survey")]
    assert token_of(shown) == token and shown["text"].endswith(shown["payload"]["survey"]["url"])
    async with http.post(f"{running_hub.url}/api/surveys", json={"token": token, "score": 5, "resolved": True},
                         ) as response:
        assert response.status == 200, await response.text()
    for person in (again, resident, listening):
        await person.close()

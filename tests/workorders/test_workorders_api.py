"""Work orders through the API: a repair's whole life, numbering under load, and every refusal."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from tests.support.actors import Resident
from tests.workorders.conftest import LEAK, act
from workorders.workflow import STANDARD_WORKFLOW, parse_workflow

NUMBER = re.compile(r"^GD\d{8}-\d{4,}$")


async def test_a_repair_from_report_to_close(crew, running_hub, http) -> None:
    resident = await Resident(http, running_hub.url).connect()
    said = await resident.says("楼下马路在冒水")
    order = await crew["agent"].call("POST", "/api/workorders", {**LEAK, "conversation_id": said["conversation_id"]},
                                     expect=201)
    chat = said["conversation_id"]
    assert NUMBER.match(order["number"]) and order["state"] == "new" and order["priority"] == 1
    assert order["conversation_id"] == chat and order["sla_due_at"]
    linked = await crew["agent"].call("GET", f"/api/workorders?conversation_id={chat}")
    assert [o["id"] for o in linked["items"]] == [order["id"]]  # the conversation finds its orders
    heard = await resident.hears("system")
    assert heard["text"] == f"您反映的问题已受理,工单号 {order['number']}(漏水报修),我们会尽快处理。"
    assert "dispatch" in order["actions"]

    order_id = order["id"]
    await act(crew["agent"], order_id, action="dispatch", department_id=crew["repair"]["id"])
    await act(crew["handler"], order_id, action="assign", assignee_id=crew["field"].user["id"])
    await act(crew["field"], order_id, action="start")
    await act(crew["field"], order_id, action="complete", comment="更换DN100阀门,已恢复供水")
    await act(crew["agent"], order_id, action="visit", satisfaction=4, comment="居民满意")
    closed = await act(crew["agent"], order_id, action="close")

    assert closed["state"] == "closed" and closed["state_label"] == "已办结" and closed["satisfaction"] == 4
    assert closed["closed_at"] and closed["completed_at"] and closed["actions"] == []
    timeline = [(e["action"], e["from_state"], e["to_state"]) for e in closed["timeline"]]
    assert timeline == [("create", None, "new"), ("dispatch", "new", "dispatched"),
                        ("assign", "dispatched", "assigned"), ("start", "assigned", "in_progress"),
                        ("complete", "in_progress", "completed"), ("visit", "completed", "visited"),
                        ("close", "visited", "closed")]
    assert closed["timeline"][1]["data"]["department"] == crew["repair"]["name"]
    assert closed["timeline"][2]["actor_name"] == crew["handler"].user["display_name"]
    assert closed["timeline"][4]["comment"] == "更换DN100阀门,已恢复供水"
    # The resident heard of every step they should hear of, in the web chat, in order.
    updates = [(await resident.hears("system"))["text"] for _ in range(5)]
    assert updates == [
        f"工单 {order['number']} 已派至{crew['repair']['name']}处理。",
        f"工单 {order['number']} 已安排{crew['field'].user['display_name']}负责处理,请保持电话畅通。",
        f"工单 {order['number']}:维修人员已到场处理。",
        f"工单 {order['number']} 已处理完毕:更换DN100阀门,已恢复供水。如仍有问题请直接回复。",
        f"工单 {order['number']} 已办结,感谢您对供水服务的支持。",
    ]
    await resident.close()


async def test_residents_of_merged_reports_hear_the_master_orders_news(crew, running_hub, http) -> None:
    first, second = [await Resident(http, running_hub.url).connect() for _ in range(2)]
    orders = []
    for resident in (first, second):
        said = await resident.says("路口爆管了")
        orders.append(await crew["agent"].call(
            "POST", "/api/workorders", {**LEAK, "conversation_id": said["conversation_id"]}, expect=201))
        await resident.hears("system")
    master, duplicate = orders
    await act(crew["agent"], duplicate["id"], action="merge", master_id=master["id"])
    assert master["number"] in (await second.hears("system"))["text"]
    await act(crew["agent"], master["id"], action="dispatch", department_id=crew["repair"]["id"])
    for resident in (first, second):
        assert (await resident.hears("system"))["text"].startswith(f"工单 {master['number']} 已派至")
        await resident.close()


async def test_admins_edit_the_notices_and_bad_placeholders_are_refused(crew, running_hub, http) -> None:
    admin = crew["admin"]
    templates = await admin.call("PUT", "/api/message-templates",
                                 {"key": "workorder.create", "text": "【清源水务】已受理,单号{number}"})
    assert next(t for t in templates["items"] if t["key"] == "workorder.create")["customised"] is True
    try:
        resident = await Resident(http, running_hub.url).connect()
        said = await resident.says("水表不走了")
        order = await crew["agent"].call("POST", "/api/workorders", {
            **LEAK, "category": "meter", "custom_fields": {"problem": "停走"},
            "conversation_id": said["conversation_id"]}, expect=201)
        assert (await resident.hears("system"))["text"] == f"【清源水务】已受理,单号{order['number']}"
        await resident.close()
        bad = await admin.call("PUT", "/api/message-templates", {"key": "workorder.create", "text": "单号{numbr}"},
                               expect=422)
        assert "numbr" in bad["error"]["details"]["fields"]["text"]
        await crew["agent"].call("GET", "/api/message-templates", expect=403)
    finally:
        await admin.call("PUT", "/api/message-templates", {"key": "workorder.create", "text": None})


async def test_fifty_concurrent_creations_get_fifty_numbers(crew) -> None:
    orders = await asyncio.gather(*(crew["agent"].call("POST", "/api/workorders", LEAK, expect=201)
                                    for _ in range(50)))
    numbers = [o["number"] for o in orders]
    assert len(set(numbers)) == 50 and all(NUMBER.match(n) for n in numbers)
    day = {n[2:10] for n in numbers}
    assert len(day) == 1  # one local day: consecutive sequence numbers
    sequence = sorted(int(n.split("-")[1]) for n in numbers)
    assert sequence == list(range(sequence[0], sequence[0] + 50))


async def test_an_invalid_transition_is_409_with_the_reason_and_what_is_allowed(crew) -> None:
    order = await crew["agent"].call("POST", "/api/workorders", LEAK, expect=201)
    body = await act(crew["agent"], order["id"], expect=409, action="close")
    assert body["error"]["code"] == "invalid_transition" and "新建" in body["error"]["message"]
    assert body["error"]["details"]["allowed"] == ["dispatch", "reject", "escalate", "cancel", "merge"]
    body = await act(crew["agent"], order["id"], expect=409, action="teleport")
    assert body["error"]["code"] == "invalid_transition"
    missing = await act(crew["agent"], order["id"], expect=422, action="dispatch")
    assert missing["error"]["details"]["fields"] == {"department_id": "required"}


@pytest.mark.parametrize(("fields", "errors"), [
    ({}, {"custom_fields.leak_location"}),
    ({"leak_location": "天上"}, {"custom_fields.leak_location"}),
    ({"leak_location": "路面", "severity": 3, "colour": "红"}, {"custom_fields.severity", "custom_fields.colour"}),
])
async def test_bad_custom_fields_are_422_field_by_field(crew, fields, errors) -> None:
    body = await crew["agent"].call("POST", "/api/workorders", {**LEAK, "custom_fields": fields}, expect=422)
    assert body["error"]["code"] == "invalid_custom_fields"
    assert set(body["error"]["details"]["fields"]) == errors


async def test_roles_and_departments_are_enforced(crew) -> None:
    order = await crew["agent"].call("POST", "/api/workorders", LEAK, expect=201)
    body = await act(crew["field"], order["id"], expect=403, action="dispatch", department_id=crew["repair"]["id"])
    assert body["error"]["code"] == "not_your_order"  # a field crew does not even see unassigned orders
    await act(crew["agent"], order["id"], action="dispatch", department_id=crew["repair"]["id"])
    body = await act(crew["agent"], order["id"], expect=403, action="assign", assignee_id=crew["field"].user["id"])
    assert body["error"]["code"] == "role_forbidden"  # assigning people is the department's job
    other = await act(crew["billing_handler"], order["id"], expect=403, action="assign",
                      assignee_id=crew["field"].user["id"])
    assert other["error"]["code"] == "not_your_order"
    # A field crew sees only their own orders; the other department's handler not even this one.
    await crew["field2"].call("GET", f"/api/workorders/{order['id']}", expect=403)
    await crew["billing_handler"].call("GET", f"/api/workorders/{order['id']}", expect=403)
    await crew["handler"].call("GET", f"/api/workorders/{order['id']}")
    await act(crew["handler"], order["id"], action="assign", assignee_id=crew["field2"].user["id"])
    await act(crew["field"], order["id"], expect=403, action="start")
    mine = await crew["field2"].call("GET", "/api/workorders?state=assigned")
    assert order["id"] in [o["id"] for o in mine["items"]]
    assert all(o["assignee"]["id"] == crew["field2"].user["id"] for o in mine["items"])
    wrong_crew = await act(crew["handler"], order["id"], expect=422, action="reassign",
                           assignee_id=crew["billing_handler"].user["id"], reason="换人")
    assert wrong_crew["error"]["code"] == "unknown_assignee"


async def test_return_escalate_cancel_and_merge(crew) -> None:
    master = await crew["agent"].call("POST", "/api/workorders", LEAK, expect=201)
    second = await crew["agent"].call("POST", "/api/workorders", LEAK, expect=201)
    merged = await act(crew["agent"], second["id"], action="merge", master_id=master["id"])
    assert merged["state"] == "merged" and merged["master_id"] == master["id"]
    escalated = await act(crew["supervisor"], master["id"], action="escalate", reason="超时未派单")
    assert escalated["state"] == "new" and escalated["timeline"][-1]["data"]["priority"] == {"from": 1, "to": 1}
    await act(crew["agent"], master["id"], action="dispatch", department_id=crew["repair"]["id"])
    returned = await act(crew["handler"], master["id"], action="return", reason="不属于本部门管辖")
    assert returned["state"] == "new" and returned["department"] is None
    cancelled = await act(crew["agent"], master["id"], action="cancel", reason="居民已自行修复")
    assert cancelled["state"] == "cancelled" and cancelled["actions"] == []


async def test_list_filters(crew) -> None:
    created = await crew["agent"].call("POST", "/api/workorders",
                                       {**LEAK, "category": "meter", "custom_fields": {"problem": "停走"}}, expect=201)
    listed = await crew["agent"].call("GET", "/api/workorders?category=meter&state=new&overdue=false")
    assert created["id"] in [o["id"] for o in listed["items"]]
    assert all(o["category"]["code"] == "meter" and o["state"] == "new" for o in listed["items"])
    overdue = await crew["agent"].call("GET", "/api/workorders?overdue=true")
    assert created["id"] not in [o["id"] for o in overdue["items"]]
    page = await crew["agent"].call("GET", f"/api/workorders?limit=2&before_id={created['id']}")
    assert len(page["items"]) == 2 and all(o["id"] < created["id"] for o in page["items"])


async def test_imports_are_idempotent_by_external_ref(crew) -> None:
    ref = f"12345-{uuid.uuid4().hex[:10]}"
    first = await crew["agent"].call("POST", "/api/workorders", {**LEAK, "source": "12345", "external_ref": ref},
                                     expect=201)
    again = await crew["agent"].call("POST", "/api/workorders", {**LEAK, "source": "12345", "external_ref": ref},
                                     expect=409)
    assert again["error"]["details"]["number"] == first["number"]


async def test_admins_configure_categories_and_bad_definitions_are_refused(crew) -> None:
    admin = crew["admin"]
    code = f"hydrant_{uuid.uuid4().hex[:6]}"
    schema = {"type": "object", "properties": {"hydrant_no": {"type": "string", "minLength": 3}},
              "required": ["hydrant_no"]}
    created = await admin.call("POST", "/api/workorder-categories",
                               {"code": code, "name": "消防栓", "fields_schema": schema, "sla_hours": 12}, expect=201)
    assert created["workflow"]["initial"] == "new"
    order = await crew["agent"].call("POST", "/api/workorders", {**LEAK, "category": code,
                                                                 "custom_fields": {"hydrant_no": "XF-021"}}, expect=201)
    assert order["category"]["name"] == "消防栓"
    bad_schema = await admin.call("POST", "/api/workorder-categories",
                                  {"code": code + "x", "name": "x", "sla_hours": 1,
                                   "fields_schema": {"type": "object", "properties": {"a": {"type": "nope"}}}},
                                  expect=422)
    assert "fields_schema" in bad_schema["error"]["details"]["fields"]
    workflow = {**created["workflow"], "transitions": [{"action": "close", "label": "办结", "from": ["closed"],
                                                        "to": "nowhere", "roles": ["agent"]}]}
    bad_flow = await admin.call("POST", "/api/workorder-categories",
                                {"code": code + "y", "name": "y", "sla_hours": 1, "workflow": workflow}, expect=422)
    assert "nowhere" in bad_flow["error"]["details"]["fields"]["workflow"]
    await crew["agent"].call("POST", "/api/workorder-categories",
                             {"code": code + "z", "name": "z", "sla_hours": 1}, expect=403)


async def test_dispatch_by_category_and_region_and_duplicate_bursts(crew, running_hub, http) -> None:
    """Two residents report the same burst in 花桥 minutes apart: both go to 花桥's crew, the second is
    suggested as a duplicate, merged, and its resident then hears the master order's news."""
    admin, agent = crew["admin"], crew["agent"]
    code = f"burst_{uuid.uuid4().hex[:6]}"
    await admin.call("POST", "/api/workorder-categories", {"code": code, "name": "爆管", "sla_hours": 2,
                                                            "default_priority": 1}, expect=201)
    await admin.call("POST", "/api/dispatch-rules", {"category_code": code, "department_id": crew["billing"]["id"]},
                     expect=201)
    await admin.call("POST", "/api/dispatch-rules", {"category_code": code, "region_code": "huaqiao",
                                                      "department_id": crew["repair"]["id"]}, expect=201)
    again = await admin.call("POST", "/api/dispatch-rules", {"category_code": code, "region_code": "huaqiao",
                                                              "department_id": crew["repair"]["id"]}, expect=409)
    assert again["error"]["code"] == "rule_exists"
    bad = await admin.call("POST", "/api/dispatch-rules", {"region_code": "atlantis", "department_id": 999999},
                           expect=422)
    assert set(bad["error"]["details"]["fields"]) == {"region_code", "department_id"}

    residents = [await Resident(http, running_hub.url).connect() for _ in range(2)]
    # Both carry a WeChat location, 50 m apart; the addresses are written the way residents write them.
    first_said = await residents[0].says("花桥绿地大道爆管了")
    first = await agent.call("POST", "/api/workorders", {
        "category": code, "title": "爆管", "description": "马路中间水往上喷", "address": "花桥镇绿地大道 靠近地铁站",
        "lat": 31.3035, "lng": 121.1010, "conversation_id": first_said["conversation_id"]}, expect=201)
    second_said = await residents[1].says("绿地大道水管爆了")
    second = await agent.call("POST", "/api/workorders", {
        "category": code, "title": "爆管", "description": "地铁口往东一直在冒水", "address": "绿地大道地铁口往东",
        "lat": 31.3039, "lng": 121.1012, "conversation_id": second_said["conversation_id"]}, expect=201)
    for order in (first, second):
        assert order["region_code"] == "huaqiao"
        assert (order["state"], order["department"]["id"]) == ("dispatched", crew["repair"]["id"])
        assert order["timeline"][-1]["actor_name"] == "系统派单"
    assert first["suggested_master_id"] is None and second["suggested_master_id"] == first["id"]
    suggestion = next(e for e in second["timeline"] if e["action"] == "suggest_master")
    assert suggestion["data"]["master"] == first["number"] and 30 < suggestion["data"]["distance_m"] < 80

    elsewhere = await agent.call("POST", "/api/workorders", {
        "category": code, "title": "爆管", "description": "另一处", "address": "周庄镇全福路"}, expect=201)
    assert elsewhere["region_code"] == "zhouzhuang" and elsewhere["department"]["id"] == crew["billing"]["id"]
    assert elsewhere["suggested_master_id"] is None

    await act(agent, second["id"], action="merge", master_id=first["id"])
    for resident in residents:
        texts = [(await resident.hears("system"))["text"] for _ in range(2)]
        assert "已受理" in texts[0] and "已派至" in texts[1]
    assert first["number"] in (await residents[1].hears("system"))["text"]  # the merge notice
    await act(crew["handler"], first["id"], action="assign", assignee_id=crew["field"].user["id"])
    for resident in residents:
        assert (await resident.hears("system"))["text"].startswith(f"工单 {first['number']} 已安排")
        await resident.close()


async def test_orders_from_the_12345_hotline_import_once_from_json_and_csv(crew) -> None:
    agent = crew["agent"]
    tag = uuid.uuid4().hex[:8]
    batch = {"source": "12345", "orders": [
        {"external_ref": f"{tag}-1", "category": "no_water", "title": "市民反映家中停水",
         "description": "12345转办:周庄镇全福路小区整栋无水", "address": "周庄镇全福路",
         "custom_fields": {"scope": "整栋"}},
        {"external_ref": f"{tag}-2", "category": "no_water", "title": "缺少必填字段", "description": "无范围"},
        {"category": "consultation", "title": "没有外部编号", "description": "x"},
    ]}
    first = await agent.call("POST", "/api/workorders/import", batch)
    assert len(first["created"]) == 1 and first["existing"] == []
    assert [(e["row"], e["code"]) for e in first["errors"]] == [(2, "invalid_custom_fields"),
                                                               (3, "missing_external_ref")]
    again = await agent.call("POST", "/api/workorders/import", batch)
    assert again["created"] == [] and again["existing"] == first["created"]

    rows = ("external_ref,category,title,description,address,custom_fields\n"
            f'{tag}-3,meter,水表停走,12345转办,花桥镇绿地大道,"{{""problem"": ""停走""}}"\n'
            f"{tag}-4,meter,坐标错误,x,,\n")
    async with agent.http.post(f"{agent.base_url}/api/workorders/import?source=12345", data=rows.encode(),
                               headers={"Content-Type": "text/csv", "X-CSRF-Token": agent.csrf}) as response:
        body = await response.json()
    assert response.status == 200 and len(body["created"]) == 1
    assert body["errors"][0]["row"] == 2 and "custom_fields.problem" in body["errors"][0]["fields"]
    imported = await agent.call("GET", "/api/workorders?category=meter&limit=5")
    order = next(o for o in imported["items"] if o["number"] == body["created"][0])
    assert (order["source"], order["external_ref"], order["region_code"]) == ("12345", f"{tag}-3", "huaqiao")
    async with agent.http.post(f"{agent.base_url}/api/workorders/import", data=b"<xml/>",
                               headers={"Content-Type": "application/xml", "X-CSRF-Token": agent.csrf}) as response:
        assert response.status == 415


def test_the_standard_workflow_is_valid() -> None:
    assert parse_workflow(STANDARD_WORKFLOW).actions_from("new") == ["dispatch", "reject", "escalate", "cancel",
                                                                      "merge"]


async def test_orders_by_number_and_by_the_resident_of_a_conversation(crew, running_hub, http) -> None:
    resident = await Resident(http, running_hub.url).connect()
    first_chat = (await resident.says("水表不走了"))["conversation_id"]
    first = await crew["agent"].call("POST", "/api/workorders", {
        **LEAK, "category": "meter", "custom_fields": {"problem": "停走"}, "conversation_id": first_chat}, expect=201)
    by_number = await crew["agent"].call("GET", f"/api/workorders?number={first['number']}")
    assert [o["id"] for o in by_number["items"]] == [first["id"]]
    await crew["agent"].call("GET", "/api/workorders?number=12345", expect=422)
    mine = await crew["agent"].call("GET", f"/api/workorders?resident_of={first_chat}&limit=1")
    assert [o["id"] for o in mine["items"]] == [first["id"]]
    stranger = await Resident(http, running_hub.url).connect()
    other_chat = (await stranger.says("你好"))["conversation_id"]
    assert (await crew["agent"].call("GET", f"/api/workorders?resident_of={other_chat}"))["items"] == []
    await resident.close()
    await stranger.close()

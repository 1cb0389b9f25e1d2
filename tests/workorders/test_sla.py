"""Deadlines: a reminder at 80 % of the time allowed, an escalation when it is up, also across a restart."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from sqlalchemy.exc import OperationalError

from router.models import Role
from tests.conftest import PASSWORD, start_hub
from tests.support.actors import Staff
from tests.support.hubproc import HubProcess
from workorders.api import WORKORDERS

SECONDS = 1 / 3600


async def wait_for_event(staff: Staff, order_id: int, action: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order = await staff.call("GET", f"/api/workorders/{order_id}")
        if any(e["action"] == action for e in order["timeline"]):
            return order
        await asyncio.sleep(0.25)
    raise AssertionError(f"no {action} on order {order_id}: {order['timeline']}")


async def quick_category(admin: Staff, seconds: float) -> str:
    code = f"quick_{uuid.uuid4().hex[:6]}"
    await admin.call("POST", "/api/workorder-categories",
                     {"code": code, "name": "限时", "sla_hours": seconds * SECONDS, "default_priority": 3}, expect=201)
    return code


ORDER = {"title": "测试时限", "description": "测试"}


async def test_reminder_then_escalation(running_hub) -> None:
    admin = await running_hub.staff(Role.ADMIN, listen=False)
    try:
        code = await quick_category(admin, 3)
        order = await admin.call("POST", "/api/workorders", {**ORDER, "category": code}, expect=201)
        reminded = await wait_for_event(admin, order["id"], "sla_reminder")
        assert reminded["priority"] == 3 and not any(e["action"] == "sla_escalated" for e in reminded["timeline"])
        escalated = await wait_for_event(admin, order["id"], "sla_escalated")
        assert escalated["priority"] == 2 and escalated["overdue"] is True
        assert [e["action"] for e in escalated["timeline"]] == ["create", "sla_reminder", "sla_escalated"]
        late = await admin.call("GET", f"/api/workorders?category={code}&state=new,closed&overdue=true")
        assert [o["id"] for o in late["items"]] == [order["id"]]
        stopped = await admin.call("GET", f"/api/workorders?category={code}&state=closed,completed&overdue=true")
        assert stopped["items"] == []  # an order whose clock stopped is never overdue

        finished = await admin.call("POST", "/api/workorders", {**ORDER, "category": code}, expect=201)
        await admin.call("POST", f"/api/workorders/{finished['id']}/transitions",
                         {"action": "cancel", "reason": "居民撤回"})
        await asyncio.sleep(4)  # its timers were removed: nothing happens to a cancelled order
        timeline = (await admin.call("GET", f"/api/workorders/{finished['id']}"))["timeline"]
        assert [e["action"] for e in timeline] == ["create", "cancel"]
    finally:
        await admin.close()


async def test_an_escalation_scheduled_before_a_restart_fires_after_it(fresh_database_url, tmp_path) -> None:
    env = {"HUB_DATABASE_URL": fresh_database_url, "HUB_FIRST_ADMIN_PASSWORD": PASSWORD, "HUB_SECRET_KEY": "s" * 40}
    hub = HubProcess(env, tmp_path / "var").start()
    try:
        admin = await Staff(hub.url).login("admin", PASSWORD)
        code = await quick_category(admin, 4)
        order = await admin.call("POST", "/api/workorders", {**ORDER, "category": code}, expect=201)
        await admin.close()
    finally:
        hub.kill()  # SIGKILL before either timer fired
    await asyncio.sleep(5)  # both deadlines pass while no hub is running

    restarted = HubProcess(env, tmp_path / "var").start()
    try:
        admin = await Staff(restarted.url).login("admin", PASSWORD)
        escalated = await wait_for_event(admin, order["id"], "sla_escalated")
        actions = [e["action"] for e in escalated["timeline"]]
        assert actions.count("sla_escalated") == 1 and actions.count("sla_reminder") == 1
        assert escalated["priority"] == 2
        await admin.close()
    finally:
        restarted.kill()


async def test_deadlines_still_fire_after_the_job_store_failed_in_the_middle_of_a_pass(own_settings,
                                                                                       monkeypatch) -> None:
    """The database going away between the scheduler's queries (here, the next run time) used to end its
    thread: no deadline fired again until the hub restarted."""
    running = await start_hub(own_settings())
    admin = await running.staff(Role.ADMIN, listen=False)
    try:
        scheduler = running.runner.app[WORKORDERS].clock._scheduler
        scheduler.jobstore_retry_interval = 0.2
        store = scheduler._lookup_jobstore("default")
        failed = threading.Event()
        next_run_time = store.get_next_run_time

        def fails_once() -> object:
            if not failed.is_set():
                failed.set()
                raise OperationalError("SELECT next_run_time", {}, ConnectionRefusedError("connection refused"))
            return next_run_time()

        monkeypatch.setattr(store, "get_next_run_time", fails_once)
        scheduler.wakeup()
        assert await asyncio.to_thread(failed.wait, 10)
        code = await quick_category(admin, 2)
        order = await admin.call("POST", "/api/workorders", {**ORDER, "category": code}, expect=201)
        await wait_for_event(admin, order["id"], "sla_escalated")
    finally:
        await admin.close()
        await running.runner.cleanup()

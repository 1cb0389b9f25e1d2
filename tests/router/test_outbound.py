"""Outbound messages are stored first and sent by a worker: retried, never lost, never doubled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from channels.base import ChannelSendError, DeliveryResult, InboundMessage, OutboundMessage
from channels.webchat import WebChatAdapter
from router.models import Author, Conversation, Delivery, Message, utcnow
from router.outbound import OutboundWorker, backoff_seconds, new_outbound
from tests.conftest import start_hub
from tests.support.hubproc import ROOT
from tests.support.outbound_proc import HANG_MARK

pytestmark = pytest.mark.timing  # leases of a second and sends of 0.3 s


async def queue_messages(hub, external_id: str, texts: list[str]) -> list[int]:
    result = await hub.ingest(InboundMessage(channel="webchat", external_id=external_id,
                                             channel_message_id=f"{external_id}-in", text="你好"))
    async with hub.sessions.begin() as session:
        conversation = await session.get(Conversation, result.conversation_id)
        messages = [new_outbound(conversation, author=Author.SYSTEM, text=text) for text in texts]
        session.add_all(messages)
        await session.flush()
        return [m.id for m in messages]


async def deliveries(hub, ids: list[int]) -> dict[int, Message]:
    async with hub.sessions() as session:
        rows = await session.scalars(select(Message).where(Message.id.in_(ids)))
        return {m.id: m for m in rows.unique()}


def test_backoff_grows_and_is_capped() -> None:
    assert 0.5 <= backoff_seconds(1, 1, 300) <= 1
    assert 4 <= backoff_seconds(4, 1, 300) <= 8
    assert 150 <= backoff_seconds(30, 1, 300) <= 300


async def test_failed_sends_are_retried_then_marked_failed(own_settings) -> None:
    running = await start_hub(own_settings(outbound_backoff_base_seconds=0.05, outbound_max_attempts=3))
    hub = running.hub
    calls: list[int] = []

    class FlakyWebChat(WebChatAdapter):
        async def send(self, message: OutboundMessage) -> DeliveryResult:
            calls.append(message.message_id)
            if message.text == "总是失败" or calls.count(message.message_id) < 2:
                raise ChannelSendError("provider returned 503")
            return await super().send(message)

    hub.adapters["webchat"] = FlakyWebChat(hub)
    try:
        ok_id, bad_id = await queue_messages(hub, "flaky-visitor", ["第二次成功", "总是失败"])
        hub.worker.wake()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = await deliveries(hub, [ok_id, bad_id])
            if rows[ok_id].delivery == Delivery.SENT and rows[bad_id].delivery == Delivery.FAILED:
                break
            await asyncio.sleep(0.05)
        rows = await deliveries(hub, [ok_id, bad_id])
        assert rows[ok_id].delivery == Delivery.SENT and rows[ok_id].attempts == 2
        assert rows[bad_id].delivery == Delivery.FAILED and rows[bad_id].attempts == 3
        assert rows[bad_id].last_error == "provider returned 503"
        assert calls.count(bad_id) == 3
    finally:
        await running.runner.cleanup()


async def quiet(running) -> None:
    """Stop the in-process hub's own writers: its outbound worker would race the worker process, and its
    ACD sweep would keep taking SQLite's write lock."""
    await running.hub.worker.stop()
    await running.hub.distributor.stop()


async def _start_worker(record: Path, settings_env: dict[str, str], **extra: str) -> subprocess.Popen[str]:
    """The worker process, once it says it is ready. Its start-up is awaited off the event loop: the in-process
    hub must be able to finish a transaction it has open, or SQLite's write lock keeps the worker waiting."""
    return await asyncio.to_thread(_worker_process, record, settings_env, extra)


def _worker_process(record: Path, settings_env: dict[str, str], extra: dict[str, str]) -> subprocess.Popen[str]:
    env = {**os.environ, **settings_env, **extra}
    process = subprocess.Popen([sys.executable, "-m", "tests.support.outbound_proc", str(record)], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "ready", line + process.stdout.read()
    return process


def _records(record: Path) -> list[dict]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


async def _wait_for(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


def second_worker(hub, adapter) -> OutboundWorker:
    """Another process's worker on the same database, sending through ``adapter``."""
    async def unchanged(ids: list[int]) -> None:
        return None

    return OutboundWorker(hub.sessions, {"webchat": adapter}, hub.settings, hub.secret_key, unchanged)


async def test_a_batch_that_outlasts_its_lease_is_not_taken_over_while_it_sends(own_settings) -> None:
    """Eight sends of 0.3 s one after another outlast a one-second lease: the holder renews it while it sends,
    so the worker that polls meanwhile finds nothing to take over and each message goes out once."""
    running = await start_hub(own_settings(outbound_lease_seconds=1.0))
    await quiet(running)
    hub = running.hub
    sends: list[int] = []
    sending = asyncio.Event()

    class SlowWebChat(WebChatAdapter):
        async def send(self, message: OutboundMessage) -> DeliveryResult:
            sends.append(message.message_id)
            sending.set()
            await asyncio.sleep(0.3)
            return await super().send(message)

    adapter = SlowWebChat(hub)
    holder, poller = second_worker(hub, adapter), second_worker(hub, adapter)
    try:
        ids = await queue_messages(hub, "slow-batch", [f"第{n}条" for n in range(1, 9)])
        batch = asyncio.create_task(holder.drain_once())
        await asyncio.wait_for(sending.wait(), 5)  # the holder has claimed the batch
        while not batch.done():
            await poller.drain_once()
            await asyncio.sleep(0.1)
        assert await batch == 8
        assert sorted(sends) == ids  # each once
        rows = await deliveries(hub, ids)
        assert all(rows[i].delivery == Delivery.SENT and rows[i].attempts == 1 for i in ids)
    finally:
        await running.runner.cleanup()


async def test_a_worker_that_lost_its_lease_cannot_record_the_outcome(own_settings) -> None:
    """A worker stalls past its lease; another takes the message over. The stale worker's outcome (a failure)
    is refused, and the outcome of the send that holds the message stands."""
    running = await start_hub(own_settings())
    await quiet(running)
    hub = running.hub

    class GatedWebChat(WebChatAdapter):
        def __init__(self, fails: bool) -> None:
            super().__init__(hub)
            self.entered, self.release, self.fails = asyncio.Event(), asyncio.Event(), fails

        async def send(self, message: OutboundMessage) -> DeliveryResult:
            self.entered.set()
            await self.release.wait()
            if self.fails:
                raise ChannelSendError("recipient unknown", retryable=False)
            return await super().send(message)

    stale_adapter, taker_adapter = GatedWebChat(fails=True), GatedWebChat(fails=False)
    stale, taker = second_worker(hub, stale_adapter), second_worker(hub, taker_adapter)
    try:
        [message_id] = await queue_messages(hub, "stale-holder", ["只应记录一次结果"])
        stale_pass = asyncio.create_task(stale.drain_once())
        await asyncio.wait_for(stale_adapter.entered.wait(), 5)
        async with hub.sessions.begin() as session:  # the stale worker's lease runs out while it is stalled
            await session.execute(update(Message).where(Message.id == message_id)
                                  .values(lease_until=utcnow() - timedelta(seconds=1)))
        taker_pass = asyncio.create_task(taker.drain_once())
        await asyncio.wait_for(taker_adapter.entered.wait(), 5)

        stale_adapter.release.set()
        await stale_pass
        row = (await deliveries(hub, [message_id]))[message_id]
        assert row.delivery == Delivery.SENDING and row.last_error is None  # the stale outcome was refused

        taker_adapter.release.set()
        await taker_pass
        row = (await deliveries(hub, [message_id]))[message_id]
        assert row.delivery == Delivery.SENT and row.attempts == 2
    finally:
        await running.runner.cleanup()


async def test_no_send_starts_when_less_than_a_third_of_the_lease_is_left(own_settings) -> None:
    """A worker whose renewals do not get through (the database out of its reach meanwhile) releases the sends it
    has not started once its lease runs low, instead of starting them with too little of it left."""
    # The first send starts with the lease whole (a loaded machine may take seconds to get there) and takes 80 %
    # of it: what is left is under a third.
    running = await start_hub(own_settings(outbound_lease_seconds=4.0))
    await quiet(running)
    hub = running.hub
    sends: list[int] = []

    class SlowWebChat(WebChatAdapter):
        async def send(self, message: OutboundMessage) -> DeliveryResult:
            sends.append(message.message_id)
            await asyncio.sleep(3.2)
            return await super().send(message)

    worker = second_worker(hub, SlowWebChat(hub))

    async def renewals_that_fail(lease) -> None:
        await asyncio.Event().wait()

    worker._renew = renewals_that_fail
    try:
        first, *rest = await queue_messages(hub, "unrenewed", ["第一条", "第二条", "第三条"])
        await worker.drain_once()
        assert sends == [first]
        rows = await deliveries(hub, [first, *rest])
        assert rows[first].delivery == Delivery.SENT
        assert all(rows[i].delivery == Delivery.QUEUED and rows[i].attempts == 0 for i in rest)
    finally:
        await running.runner.cleanup()


async def test_a_send_whose_outcome_meets_the_database_away_is_recorded_once_it_is_back(own_settings) -> None:
    """The database is away for a moment just after a send: the outcome is recorded when it is back, so the
    finished send does not look unfinished (and go out again once the lease expires)."""
    running = await start_hub(own_settings())
    await quiet(running)
    hub = running.hub

    class BlinkingSessions:
        """The hub's sessions, but the next ``outages`` transactions find the database away."""

        def __init__(self) -> None:
            self.outages = 0

        def begin(self):
            if self.outages:
                self.outages -= 1
                raise OperationalError("UPDATE message", {}, ConnectionRefusedError("database away"))
            return hub.sessions.begin()

    sessions = BlinkingSessions()
    sends: list[int] = []

    class WebChatThenBlink(WebChatAdapter):
        async def send(self, message: OutboundMessage) -> DeliveryResult:
            sends.append(message.message_id)
            sessions.outages = 2
            return await super().send(message)

    async def unchanged(ids: list[int]) -> None:
        return None

    worker = OutboundWorker(sessions, {"webchat": WebChatThenBlink(hub)}, hub.settings, hub.secret_key, unchanged)
    try:
        [message_id] = await queue_messages(hub, "database-blinks", ["数据库短暂断开"])
        assert await worker.drain_once() == 1
        row = (await deliveries(hub, [message_id]))[message_id]
        assert row.delivery == Delivery.SENT and row.lease_id is None and sends == [message_id]
    finally:
        await running.runner.cleanup()


async def test_worker_killed_mid_send_resends_after_restart_without_duplicates(
    own_settings, fresh_database_url, tmp_path
) -> None:
    settings = own_settings()
    env = {"HUB_DATABASE_URL": fresh_database_url, "HUB_VAR_DIR": str(settings.var_dir),
           "HUB_SECRET_KEY": "k" * 32, "HUB_OUTBOUND_LEASE_SECONDS": "2", "HUB_OUTBOUND_POLL_SECONDS": "0.2"}
    record = tmp_path / "sent.jsonl"
    running = await start_hub(settings)  # used only to migrate and queue the messages
    await quiet(running)
    ids = await queue_messages(running.hub, "killed-worker", ["第一条", "第二条", f"第三条 {HANG_MARK}"])

    worker = await _start_worker(record, env, HUB_TEST_HANG="1")
    try:
        async def third_on_the_wire() -> bool:
            return any(r["id"] == ids[2] for r in _records(record))

        await _wait_for(third_on_the_wire)
        rows = await deliveries(running.hub, ids)
        assert [rows[i].delivery for i in ids] == [Delivery.SENT, Delivery.SENT, Delivery.SENDING]
    finally:
        worker.kill()  # SIGKILL: no chance to record anything
        worker.wait()

    restarted = await _start_worker(record, env)
    try:
        async def all_sent() -> bool:
            rows = await deliveries(running.hub, ids)
            return all(rows[i].delivery == Delivery.SENT for i in ids)

        await _wait_for(all_sent)
    finally:
        restarted.terminate()
        restarted.wait(timeout=20)
        await running.runner.cleanup()

    sends = _records(record)
    by_message = {i: [s for s in sends if s["id"] == i] for i in ids}
    assert len(by_message[ids[0]]) == 1 and len(by_message[ids[1]]) == 1  # finished sends are not repeated
    assert len(by_message[ids[2]]) == 2  # the interrupted one is sent again ...
    assert by_message[ids[2]][0]["key"] == by_message[ids[2]][1]["key"]  # ... under the same idempotency key
    assert by_message[ids[2]][0]["pid"] != by_message[ids[2]][1]["pid"]
    assert len({s["key"] for s in sends}) == 3  # a receiver de-duplicating on the key sees three messages


async def test_graceful_shutdown_finishes_the_send_under_way(own_settings, fresh_database_url, tmp_path) -> None:
    settings = own_settings()
    env = {"HUB_DATABASE_URL": fresh_database_url, "HUB_VAR_DIR": str(settings.var_dir),
           "HUB_SECRET_KEY": "k" * 32, "HUB_OUTBOUND_POLL_SECONDS": "0.2"}
    record = tmp_path / "sent.jsonl"
    running = await start_hub(settings)
    await quiet(running)
    [message_id] = await queue_messages(running.hub, "graceful", ["慢慢发送"])
    worker = await _start_worker(record, env, HUB_TEST_SEND_DELAY="1.5")
    try:
        async def claimed() -> bool:
            return (await deliveries(running.hub, [message_id]))[message_id].delivery == Delivery.SENDING

        await _wait_for(claimed)
        worker.terminate()  # SIGTERM while the send is under way
        output, _ = worker.communicate(timeout=20)
        assert worker.returncode == 0 and "stopped" in output
        row = (await deliveries(running.hub, [message_id]))[message_id]
        assert row.delivery == Delivery.SENT
        assert [r["id"] for r in _records(record)] == [message_id]
    finally:
        worker.kill()
        await running.runner.cleanup()


async def test_a_worker_stuck_on_the_database_stops_within_the_grace_period(own_settings) -> None:
    """A pass waiting for the database (SQLite's write lock held elsewhere, say) when the hub stops is cancelled
    after the grace period: the hub's shutdown goes on instead of failing."""
    hub = await start_hub(own_settings(shutdown_grace_seconds=0.5))
    try:
        worker = second_worker(hub.hub, hub.hub.adapters["webchat"])
        stuck = asyncio.Event()

        async def waits_for_ever() -> int:
            stuck.set()
            await asyncio.Event().wait()
            return 0

        worker.drain_once = waits_for_ever  # type: ignore[method-assign]
        worker.start()
        await asyncio.wait_for(stuck.wait(), 5)
        started = time.monotonic()
        await worker.stop()
        assert time.monotonic() - started < 3
    finally:
        await hub.runner.cleanup()

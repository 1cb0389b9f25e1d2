"""Outbound messages are stored first and sent by a worker: retried, never lost, never doubled."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from channels.base import ChannelSendError, DeliveryResult, InboundMessage, OutboundMessage
from channels.webchat import WebChatAdapter
from router.models import Author, Conversation, Delivery, Message
from router.outbound import backoff_seconds, new_outbound
from tests.conftest import start_hub
from tests.support.hubproc import ROOT
from tests.support.outbound_proc import HANG_MARK


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
    ACD sweep could hold SQLite's write lock while ``_start_worker`` blocks this event loop."""
    await running.hub.worker.stop()
    await running.hub.distributor.stop()


def _start_worker(record: Path, settings_env: dict[str, str], **extra: str) -> subprocess.Popen[str]:
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

    worker = _start_worker(record, env, HUB_TEST_HANG="1")
    try:
        async def third_on_the_wire() -> bool:
            return any(r["id"] == ids[2] for r in _records(record))

        await _wait_for(third_on_the_wire)
        rows = await deliveries(running.hub, ids)
        assert [rows[i].delivery for i in ids] == [Delivery.SENT, Delivery.SENT, Delivery.SENDING]
    finally:
        worker.kill()  # SIGKILL: no chance to record anything
        worker.wait()

    restarted = _start_worker(record, env)
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
    worker = _start_worker(record, env, HUB_TEST_SEND_DELAY="1.5")
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

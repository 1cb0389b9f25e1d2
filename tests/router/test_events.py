"""The Redis event bus: events published together travel together, in order, and arrive without Redis too."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from router.events import RedisEventBus
from tests.support.services import REDIS_URL


async def test_concurrent_events_reach_subscribers_in_order_in_few_round_trips() -> None:
    bus = RedisEventBus(REDIS_URL, f"test-{secrets.token_hex(4)}")
    received: list[int] = []
    everything = asyncio.Event()

    async def handler(event: dict[str, Any]) -> None:
        received.append(event["n"])
        if len(received) == 200:
            everything.set()

    bus.subscribe("conversations", handler)
    pipelines = 0
    make_pipeline = bus._redis.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        nonlocal pipelines
        pipelines += 1
        return make_pipeline(*args, **kwargs)

    bus._redis.pipeline = counting_pipeline  # type: ignore[method-assign]
    await bus.start()
    try:
        await asyncio.gather(*(bus.publish("conversations", {"n": n}) for n in range(200)))
        await asyncio.wait_for(everything.wait(), timeout=10)
    finally:
        await bus.stop()
    assert received == list(range(200))
    assert pipelines <= 5, f"{pipelines} round trips for 200 events published at once"


async def test_without_redis_events_are_still_delivered_in_this_process() -> None:
    bus = RedisEventBus("redis://127.0.0.1:1/0", "test-down")
    received: list[int] = []

    async def handler(event: dict[str, Any]) -> None:
        received.append(event["n"])

    bus.subscribe("conversations", handler)
    try:
        await asyncio.gather(*(bus.publish("conversations", {"n": n}) for n in range(20)))
    finally:
        await bus.stop()
    assert received == list(range(20))

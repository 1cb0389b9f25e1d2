"""The event bus: in-process, or Redis pub/sub when several hub processes share events.

Subscribers are local coroutines (a WebSocket's forwarder, a channel adapter). With Redis every
event goes through Redis, also to the publishing process, so all processes see the same order; if
Redis is unreachable the event is still delivered to this process's subscribers. Events published
while the previous ones are on their way to Redis go together in one pipeline (one round trip), in
the order they were published: a burst of new conversations publishes two events each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from router.logs import get_logger

log = get_logger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class EventBus:
    """In-process fan-out; the base of the Redis bus."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        self._handlers[topic].append(handler)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._handlers[topic].remove(handler)

        return unsubscribe

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        await self._dispatch(topic, event)

    async def _dispatch(self, topic: str, event: dict[str, Any]) -> None:
        for handler in list(self._handlers.get(topic, ())):
            try:
                await handler(event)
            except Exception:
                log.exception("event handler failed", topic=topic, event_type=event.get("type"))

    async def start(self) -> None:
        """Nothing to connect in-process."""

    async def stop(self) -> None:
        """Nothing to close in-process."""

    async def healthy(self) -> bool:
        return True


class RedisEventBus(EventBus):
    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        self._prefix = f"{prefix}:events:"
        self._redis = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=3)
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._outbox: list[tuple[str, str, dict[str, Any], asyncio.Future[None]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="redis-event-listener")
        # Wait briefly so events published right after start are not missed; go on without Redis.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=5)

    async def stop(self) -> None:
        if self._sender is not None:
            await self._sender
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._redis.aclose()

    async def healthy(self) -> bool:
        """Redis answers and this process is subscribed (so it receives other processes' events)."""
        try:
            return bool(await self._redis.ping()) and self._subscribed.is_set()
        except (RedisError, OSError):
            return False

    async def publish(self, topic: str, event: dict[str, Any]) -> None:
        """Returns when Redis has the event (or, without Redis, this process's subscribers had it)."""
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outbox.append((topic, json.dumps(event, ensure_ascii=False, default=str), event, sent))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send(), name="redis-event-sender")
        await asyncio.shield(sent)

    async def _send(self) -> None:
        while self._outbox:
            items, self._outbox = self._outbox, []
            pipeline = self._redis.pipeline(transaction=False)
            for topic, data, _, _ in items:
                pipeline.publish(self._prefix + topic, data)
            try:
                await pipeline.execute()
            except (RedisError, OSError) as exc:
                log.warning("redis publish failed; delivering locally only", events=len(items), error=str(exc))
                for topic, _, event, _ in items:
                    await self._dispatch(topic, event)
            finally:
                for *_, sent in items:
                    if not sent.done():
                        sent.set_result(None)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._prefix + "*")
                self._subscribed.set()
                delay = 0.5
                while True:
                    item = await pubsub.get_message(timeout=30)
                    if item is None:
                        continue
                    topic = item["channel"].decode()[len(self._prefix):]
                    await self._dispatch(topic, json.loads(item["data"]))
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                self._subscribed.clear()
                log.warning("redis subscription lost; reconnecting", error=str(exc), retry_in=delay)
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)


def create_event_bus(redis_url: str, prefix: str) -> EventBus:
    return RedisEventBus(redis_url, prefix) if redis_url else EventBus()

"""The real bot beside a test hub: waiting for it, its processes, what Rasa made of a conversation."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from router.bot_secrets import rasa_token
from router.companions import COMPANIONS, Companions
from router.settings import PROJECT_ROOT
from tests.conftest import RunningHub

MODEL = PROJECT_ROOT / "bot" / "models" / "current.tar.gz"
READY_TIMEOUT = 240.0
# What a production hub is configured with, in its environment: none of it may reach the bot's processes.
HUB_SECRETS_IN_THE_ENVIRONMENT = {"HUB_SECRET_KEY": "the-hubs-secret-key-" + "k" * 24,
                                  "HUB_WECHAT_APP_SECRET": "the-wechat-app-secret-" + "w" * 16,
                                  "HUB_DATABASE_URL": "postgresql+asyncpg://hub:the-db-password@db/hub"}


async def wait_until_healthy(*urls: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for url in urls:
            while True:
                try:
                    async with http.get(url) as response:
                        if response.status == 200:
                            break
                except (aiohttp.ClientError, TimeoutError):
                    pass
                assert time.monotonic() < deadline, f"{url} not healthy after {READY_TIMEOUT:.0f} s"
                await asyncio.sleep(0.5)


def companions(hub: RunningHub) -> Companions:
    found = hub.runner.app[COMPANIONS]
    assert found is not None
    return found


async def rasa_tracker(hub: RunningHub, conversation_id: int) -> str:
    """What Rasa made of a conversation (intents, entities, slots, actions), for a failure's message."""
    url = f"http://127.0.0.1:{hub.hub.settings.rasa_port}/conversations/{conversation_id}/tracker"
    token = rasa_token(hub.hub.settings.rasa_token, hub.hub.secret_key)
    async with aiohttp.ClientSession() as http, http.get(url, params={"token": token}) as response:
        events = (await response.json())["events"]
    lines = []
    for event in events:
        if event["event"] == "user":
            parsed = event["parse_data"]
            entities = [(e["entity"], e["value"]) for e in parsed["entities"]]
            lines.append(f"user {event['text']!r} {parsed['intent']} {entities}")
        elif event["event"] in {"slot", "action"}:
            lines.append(f"  {event['event']} {event['name']} {event.get('value', '')}")
    return "\n".join(lines)

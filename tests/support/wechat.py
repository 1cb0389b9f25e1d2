"""The stand-in WeChat for tests: the account's values and a running stand-in API server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from channels.wechat.standin import StandInWeChat, serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wechat"
SAMPLE = json.loads((FIXTURES / "encryption_sample.json").read_text("utf-8"))
APP_ID, APP_SECRET = SAMPLE["app_id"], "standin-app-secret-0123456789abcdef"
TOKEN, AES_KEY = SAMPLE["token"], SAMPLE["encoding_aes_key"]


@asynccontextmanager
async def running_standin() -> AsyncIterator[tuple[StandInWeChat, str]]:
    """The stand-in WeChat API on a free port, and its URL."""
    standin, runner, url = await serve("127.0.0.1", 0, app_id=APP_ID, app_secret=APP_SECRET)
    try:
        yield standin, url
    finally:
        await runner.cleanup()


def wechat_settings(api_url: str) -> dict[str, Any]:
    """The hub's settings for the account the stand-in serves, in 兼容模式 (plaintext and encrypted posts)."""
    return {"wechat_mode": "compatible", "wechat_app_id": APP_ID, "wechat_app_secret": APP_SECRET,
            "wechat_token": TOKEN, "wechat_encoding_aes_key": AES_KEY, "wechat_api_base_url": api_url,
            "wechat_oauth_base_url": api_url}

"""The hub's REST API as the bot's actions use it, with the service token the hub gave them.

``HUB_URL`` (default ``http://127.0.0.1:8080``) and ``HUB_ACTIONS_TOKEN`` come from the environment the
hub starts the action server with. Any failure to reach the hub is :class:`HubUnavailable`: the action
apologises and hands the resident to a person.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=5)


class HubUnavailable(Exception):
    pass


class HubClient:
    def __init__(self, base_url: str | None = None, token: str | None = None) -> None:
        self._base = (base_url or os.environ.get("HUB_URL", "http://127.0.0.1:8080")).rstrip("/")
        self._headers = {"Authorization": f"Bearer {token or os.environ.get('HUB_ACTIONS_TOKEN', '')}"}

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None) -> Any:
        try:
            async with aiohttp.ClientSession(timeout=TIMEOUT, headers=self._headers) as http, \
                    http.request(method, self._base + path, params=params, json=body) as response:
                payload = await response.json(content_type=None)
                if response.status >= 400:
                    raise HubUnavailable(f"{method} {path}: HTTP {response.status} {payload}")
                return payload
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HubUnavailable(f"{method} {path}: {type(exc).__name__}") from exc

    async def create_order(self, order: dict[str, Any]) -> dict[str, Any]:
        return await self._call("POST", "/api/workorders", body=order)

    async def notices(self, **filters: str) -> dict[str, Any]:
        return await self._call("GET", "/api/notices", params=filters)

    async def account_lookup(self, conversation_id: int, number: str,
                             phone_last4: str | None = None) -> dict[str, Any]:
        """``{found, verified, blocked, account}``: the hub shows the account only to the resident it belongs to."""
        return await self._call("POST", "/api/bot/account-lookup", body=_lookup(conversation_id, number, phone_last4))

    async def order_lookup(self, conversation_id: int, number: str | None = None,
                           phone_last4: str | None = None) -> dict[str, Any]:
        """``{found, verified, blocked, order}``; without a number, the resident's latest order."""
        return await self._call("POST", "/api/bot/order-lookup", body=_lookup(conversation_id, number, phone_last4))


def _lookup(conversation_id: int, number: str | None, phone_last4: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"conversation_id": conversation_id}
    if number is not None:
        body["number"] = number
    if phone_last4 is not None:
        body["phone_last4"] = phone_last4
    return body

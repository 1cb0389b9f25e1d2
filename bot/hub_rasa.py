"""Rasa as the hub runs it: ``python -m hub_rasa run …`` (in bot/, on Rasa's own Python).

Rasa's ``--auth-token`` guards its HTTP API (``/status``, ``/conversations/…``) but not its channels'
webhooks, where the hub sends residents' messages. Two things are added here, both keyed on
``HUB_RASA_TOKEN`` from the environment:

- the REST channel (``credentials.yml``) answers only calls with ``Authorization: Bearer <token>``;
- the token reaches ``--auth-token`` inside this process, so it does not show in ``ps`` as it would
  on the command line.
"""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from rasa.core.channels.rest import RestInput
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

TOKEN_VARIABLE = "HUB_RASA_TOKEN"  # noqa: S105  (the variable's name)


def configured_token() -> str:
    token = os.environ.get(TOKEN_VARIABLE, "")
    if not token:
        raise SystemExit(f"{TOKEN_VARIABLE} is not set: Rasa does not run for the hub without its token")
    return token


class HubRestInput(RestInput):
    """Rasa's REST channel (``POST /webhooks/rest/webhook``) for callers holding the hub's token."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    @classmethod
    def name(cls) -> str:
        return "rest"  # the webhook keeps its address

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> HubRestInput:
        return cls(configured_token())

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = super().blueprint(on_new_message)

        @webhook.middleware("request")
        async def require_token(request: Request) -> HTTPResponse | None:
            provided = request.headers.get("Authorization", "").encode()
            if hmac.compare_digest(provided, self._expected):
                return None
            return response.json({"error": "unauthorised"}, status=401)

        return webhook


def main() -> None:
    from rasa.__main__ import main as rasa_main

    sys.argv = ["rasa", *sys.argv[1:], "--auth-token", configured_token()]
    rasa_main()


if __name__ == "__main__":
    main()

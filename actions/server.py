"""The action server as the hub runs it: rasa_sdk's app on one address, answering only Rasa.

``python -m rasa_sdk`` listens on every address and runs any action for whoever reaches its port, and the
actions act with the hub's service token (they file work orders, read a resident's orders). Here the
server binds ``HUB_ACTIONS_HOST`` (default 127.0.0.1) and every call but ``/health`` must carry
``Authorization: Bearer <HUB_ACTIONS_SECRET>``, which Rasa sends from the ``headers`` of its
``action_endpoint``.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
from functools import partial

from rasa_sdk import utils
from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.worker.loader import AppLoader

OPEN_PATHS = frozenset({"/health"})  # the supervisor's health check says nothing about residents


def carries_secret(authorization: str, secret: str) -> bool:
    """Whether an ``Authorization`` header holds the secret, compared in constant time."""
    return hmac.compare_digest(authorization.encode(), f"Bearer {secret}".encode())


def create_guarded_app(executor: ActionExecutor, secret: str) -> Sanic:
    """rasa_sdk's app (no cross-origin access: only Rasa calls it) behind the secret check."""
    app = create_app_for_serve(executor, cors_origins="")

    @app.on_request
    async def require_secret(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS or carries_secret(request.headers.get("authorization", ""), secret):
            return None
        return response.json({"error": "unauthorised"}, status=401)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m actions.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args(argv)
    secret = os.environ.get("HUB_ACTIONS_SECRET", "")
    if not secret:
        sys.exit("HUB_ACTIONS_SECRET is not set: the action server does not run without its secret")
    host = os.environ.get("HUB_ACTIONS_HOST") or "127.0.0.1"

    utils.configure_colored_logging("INFO")
    utils.update_sanic_log_level()
    executor = ActionExecutor()
    executor.register_package("actions")
    loader = AppLoader(factory=partial(create_guarded_app, executor, secret))
    app = loader.load()
    app.prepare(host=host, port=args.port, workers=1, access_log=False)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()

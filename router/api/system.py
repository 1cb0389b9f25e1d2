"""Liveness, readiness and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from router.api import api
from router.api.spec import HUB, OPENAPI, Call


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


@api.endpoint("GET", "/healthz", summary="The process is alive", roles=None, response=Health, tag="system")
async def healthz(call: Call) -> Health:
    return Health(status="ok")


@api.endpoint("GET", "/readyz", summary="Database, event bus and channel platforms reachable", roles=None,
              response=Readiness, tag="system", errors=(503,))
async def readyz(call: Call) -> web.Response:
    checks = await call.request.app[HUB].ready()
    # The event bus (Redis) degrades to local delivery and a channel's platform (Asterisk) takes down only that
    # channel; only the database makes the hub unready.
    status = 200 if checks["database"] else 503
    body = Readiness(status="ready" if status == 200 else "unavailable", checks=checks)
    return web.json_response(body.model_dump(), status=status)


@api.endpoint("GET", "/api/openapi.json", summary="This document", roles=None, tag="system")
async def openapi_document(call: Call) -> dict:
    return call.request.app[OPENAPI]

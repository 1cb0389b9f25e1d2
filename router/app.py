"""The aiohttp application: middlewares, the API, staff pages and every enabled channel's routes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from channels.voice.runtime import attach_ivr
from router.api import api
from router.api import audit as _audit  # noqa: F401  (registers endpoints)
from router.api import auth as _auth  # noqa: F401
from router.api import bot as _bot  # noqa: F401
from router.api import callbacks as _callbacks  # noqa: F401
from router.api import calls as _calls  # noqa: F401
from router.api import campaigns as _campaigns  # noqa: F401
from router.api import contacts as _contacts  # noqa: F401
from router.api import conversations as _conversations  # noqa: F401
from router.api import desk as _desk  # noqa: F401
from router.api import files as _files  # noqa: F401
from router.api import ivr as _ivr  # noqa: F401
from router.api import routing as _routing  # noqa: F401
from router.api import system as _system  # noqa: F401
from router.api import users as _users  # noqa: F401
from router.api.billing import BILLING
from router.api.spec import HUB, OPENAPI
from router.api.staff_ws import staff_socket
from router.billing import load_billing
from router.companions import COMPANIONS, Companions
from router.hub import Hub
from router.middleware import auth_middleware, errors_middleware, security_headers
from router.ratelimit import rate_limit_middleware
from router.settings import Settings
from router.web import STATIC
from router.web import pages as staff_pages
from workorders import importer as _importer  # noqa: F401  (registers the import endpoint)
from workorders.api import WORKORDERS
from workorders.bulletin import notices_page, notices_script
from workorders.geo import GazetteerGeocoder
from workorders.service import WorkOrderService
from workorders.sla import SlaClock

VERSION = "0.1.0"


def page(name: str) -> Callable[[web.Request], Awaitable[web.FileResponse]]:
    async def serve(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-cache"})

    return serve


def create_app(settings: Settings, hub: Hub | None = None) -> web.Application:
    hub = hub or Hub(settings)
    app = web.Application(
        # Rate limits outside the JSON errors: they count the answers (refused WeChat posts, for one).
        middlewares=[rate_limit_middleware(settings), errors_middleware, auth_middleware],
        client_max_size=settings.upload_max_bytes + 256 * 1024,
    )
    app[HUB] = hub
    softphones = (settings.effective_sip_ws_url,) if "voice" in settings.channels.split(",") else ()
    app.on_response_prepare.append(security_headers(settings.is_https, softphones))
    clock = SlaClock(settings.effective_database_url, hub.sessions, hub.publish)
    app[WORKORDERS] = WorkOrderService(hub.sessions, settings, GazetteerGeocoder(settings.gazetteer_path), hub.publish,
                                        hub.worker.wake, clock, hub.files, hub.secret_key)
    app[BILLING] = load_billing(settings)
    ivr = attach_ivr(hub, app[BILLING], app[WORKORDERS])
    app[OPENAPI] = api.openapi("Shuiwu Hub API", VERSION)
    api.add_routes(app)
    app.router.add_get("/api/ws", staff_socket)
    app.router.add_get("/app/login", page("login.html"))
    staff_pages.add_routes(app)
    app.router.add_get("/app/agent", _redirect_to_inbox)  # the address of earlier releases
    app.router.add_get("/app", _redirect_to_inbox)
    app.router.add_get("/app/field", page("field.html"))
    app.router.add_get("/notices", notices_page)
    app.router.add_get("/notices.js", notices_script)
    app.router.add_get("/survey", page("survey.html"))
    app.router.add_get("/my/orders", page("my-orders.html"))
    app.router.add_get("/my/callback", page("my-callback.html"))
    app.router.add_static("/app/static", STATIC, append_version=False)
    cross_origin: list[str] = []
    for adapter in hub.adapters.values():
        app.router.add_routes(adapter.routes())
        cross_origin.extend(adapter.cross_origin_paths)
    app.middlewares.insert(0, cors_middleware(tuple(cross_origin)))

    companions = Companions(settings, hub.secret_key) if settings.bot_autostart else None
    app[COMPANIONS] = companions

    async def on_startup(_app: web.Application) -> None:
        await hub.start()
        clock.start()  # after the migrations: its table is one of them
        if companions is not None:
            await companions.start(hub.sessions)
        if ivr is not None:
            ivr.start_warming()  # the menu's prompts rendered before the first caller needs them

    async def on_shutdown(_app: web.Application) -> None:
        for ws in list(hub.staff_sockets):
            await ws.close(code=1001, message=b"server shutdown")
        for adapter in hub.adapters.values():
            await adapter.disconnect()

    async def on_cleanup(_app: web.Application) -> None:
        if ivr is not None:
            await ivr.stop()
        if companions is not None:
            await companions.stop()
        await clock.stop()
        await hub.stop()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def cors_middleware(prefixes: tuple[str, ...]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """CORS for the channel paths that an embedding site calls (the widget on the utility's own site)."""

    @web.middleware
    async def cors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                   ) -> web.StreamResponse:
        if not request.path.startswith(prefixes):
            return await handler(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Visitor-Token"
            response.headers["Access-Control-Max-Age"] = "86400"
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    return cors


async def _redirect_to_inbox(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/app/inbox")

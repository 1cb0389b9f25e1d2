"""Command line: ``python -m router run | migrate | create-user | create-token``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import socket
import sys

from aiohttp import web
from pydantic import SecretStr

from channels.wechat.standin import DEMO_ACCOUNT, DEMO_OPENID
from channels.wechat.standin import serve as serve_standin
from router.accounts import create_api_token, create_user
from router.app import create_app
from router.db import create_engine, migrate, session_factory
from router.errors import HubError
from router.hub import Hub
from router.logs import configure_logging, get_logger
from router.models import Role
from router.provisioning import ensure_demo_staff, ensure_first_admin
from router.settings import Settings

log = get_logger("router")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(settings: Settings, args: argparse.Namespace) -> None:
    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    demo_wechat = settings.demo and not settings.wechat_app_id and "wechat" not in settings.channels
    if demo_wechat:  # the demo's official account talks to the stand-in WeChat, run in this process
        standin_port = _free_port()
        standin_url = f"http://127.0.0.1:{standin_port}"
        demo_secrets = {key: value if key == "wechat_app_id" else SecretStr(value)
                        for key, value in DEMO_ACCOUNT.items()}
        settings = settings.model_copy(update={
            **demo_secrets, "channels": f"{settings.channels},wechat", "wechat_api_base_url": standin_url,
            "wechat_oauth_base_url": standin_url})
    hub = Hub(settings)
    app = create_app(settings, hub)
    if demo_wechat:
        async def start_standin(_app: web.Application) -> None:
            _, runner, _url = await serve_standin("127.0.0.1", standin_port, browser_openid=DEMO_OPENID)
            app.on_cleanup.append(lambda _app: runner.cleanup())

        app.on_startup.insert(0, start_standin)

    async def provision(_app: web.Application) -> None:
        admin = await ensure_first_admin(hub)
        demo = await ensure_demo_staff(hub) if settings.demo else []
        base = settings.base_url
        lines = [
            "",
            "Shuiwu Hub is running",
            f"  居民网页客服 (web chat demo):  {base}/",
            f"  坐席工作台 (agent page):       {base}/app/inbox",
            f"  工单中心 (order desk):         {base}/app/orders",
            f"  现场维修 (field crew, phone):  {base}/app/field",
            f"  监控大屏 (supervisors):        {base}/app/wallboard",
            f"  停水公告 (public notices):     {base}/notices",
            f"  API document:                  {base}/api/openapi.json",
        ]
        if demo_wechat:
            lines += [f"  微信公众号 (stand-in WeChat):   {standin_url}  — write as a resident:",
                      f"    python -m channels.wechat.standin say --hub {base} --wechat {standin_url} '我家停水了'",
                      f"    我的工单 of that resident:    {base}/wechat/orders"]
        if admin is not None:
            lines.append(f"  first admin: {admin.username} / {admin.password}  ({admin.note})")
        lines += [f"  demo {c.role}: {c.username} / {c.password}  ({c.note})" for c in demo]
        # Credentials go to the console once, never into the structured log.
        print("\n".join(lines), flush=True)

    app.on_startup.append(provision)
    web.run_app(app, host=host, port=port, access_log=None, print=None,
                shutdown_timeout=settings.shutdown_grace_seconds)


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.effective_database_url)
    await migrate(engine)
    await engine.dispose()


async def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    password = os.environ.get("HUB_NEW_USER_PASSWORD") or getpass.getpass("password: ")
    engine = create_engine(settings.effective_database_url)
    await migrate(engine)
    try:
        async with session_factory(engine).begin() as session:
            user = await create_user(session, username=args.username, password=password, role=Role(args.role),
                                     display_name=args.display_name, team_names=args.team)
            print(f"created {user.role} {user.username} (id {user.id})")
    finally:
        await engine.dispose()


async def _create_token(settings: Settings, args: argparse.Namespace) -> None:
    engine = create_engine(settings.effective_database_url)
    await migrate(engine)
    try:
        async with session_factory(engine).begin() as session:
            token = await create_api_token(session, args.name, Role(args.role))
        print(token)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m router", description="Shuiwu Hub")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the hub")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    commands.add_parser("migrate", help="apply database migrations")
    user = commands.add_parser("create-user", help="create a staff account (password from a prompt or "
                                                   "HUB_NEW_USER_PASSWORD)")
    user.add_argument("username")
    user.add_argument("--role", choices=[r.value for r in Role], required=True)
    user.add_argument("--display-name")
    user.add_argument("--team", action="append", default=[], help="team name (repeatable)")
    token = commands.add_parser("create-token", help="create a service bearer token and print it once")
    token.add_argument("name")
    token.add_argument("--role", choices=[r.value for r in Role], required=True)
    args = parser.parse_args(argv)

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    try:
        if args.command == "run":
            _run(settings, args)
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "create-user":
            asyncio.run(_create_user(settings, args))
        elif args.command == "create-token":
            asyncio.run(_create_token(settings, args))
    except HubError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

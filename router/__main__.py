"""Command line: ``python -m router run | migrate | create-user | create-token | restore-token``."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import getpass
import os
import sys

from aiohttp import web

from channels.voice.menus import ensure_default_menu
from router.accounts import create_api_token, create_user, restore_api_token
from router.app import create_app
from router.audit import record
from router.db import create_engine, migrate, session_factory
from router.demo import demo_standins
from router.errors import HubError
from router.hub import Hub
from router.logs import configure_logging, get_logger
from router.models import Role
from router.passwords import check_policy
from router.provisioning import ensure_demo_staff, ensure_first_admin
from router.settings import Settings

log = get_logger("router")


def _run(settings: Settings, args: argparse.Namespace) -> None:
    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    standins = demo_standins(settings)
    for standin in standins:
        settings = standin.configure(settings)
    hub = Hub(settings)
    app = create_app(settings, hub)
    for standin in standins:
        standin.serve_with(app)

    async def provision(_app: web.Application) -> None:
        admin = await ensure_first_admin(hub)
        await ensure_default_menu(hub.sessions)
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
        for standin in standins:
            lines += standin.console_lines(base)
        if admin is not None:
            lines.append(f"  first admin: {admin.username} / {admin.password}  ({admin.note})")
        lines += [f"  demo {c.role}: {c.username} / {c.password}  ({c.note})" for c in demo]
        # Credentials go to the console once, never into the structured log.
        print("\n".join(lines), flush=True)

    async def watch_the_stop(_app: web.Application) -> None:
        # A stop that hangs (a thread that never ends, a stuck connection) must not keep a supervisor waiting
        # for ever: past twice the grace period every thread's stack goes to stderr and the process exits.
        faulthandler.dump_traceback_later(2 * settings.shutdown_grace_seconds + 10, exit=True)

    app.on_startup.append(provision)
    app.on_shutdown.insert(0, watch_the_stop)
    web.run_app(app, host=host, port=port, access_log=None, print=None,
                shutdown_timeout=settings.shutdown_grace_seconds)


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings.effective_database_url)
    await migrate(engine)
    await engine.dispose()


async def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    password = os.environ.get("HUB_NEW_USER_PASSWORD") or getpass.getpass("password: ")
    check_policy(password, user_inputs=[args.username, args.display_name or ""])
    engine = create_engine(settings.effective_database_url)
    await migrate(engine)
    try:
        async with session_factory(engine).begin() as session:
            user = await create_user(session, username=args.username, password=password, role=Role(args.role),
                                     display_name=args.display_name, team_names=args.team)
            print(f"created {user.role} {user.username} (id {user.id})")
    finally:
        await engine.dispose()


async def _restore_token(settings: Settings, args: argparse.Namespace) -> None:
    engine = create_engine(settings.effective_database_url)
    await migrate(engine)
    try:
        async with session_factory(engine).begin() as session:
            if not await restore_api_token(session, args.name):
                raise HubError(f"no service token named {args.name}")
            record(session, "system", "token.restore", target_type="api_token", target_id=args.name,
                   details={"via": "command line"})
        print(f"restored token {args.name}; restart the hub for its companions to use it")
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
    restore = commands.add_parser("restore-token", help="lift the revocation of a service token (such as the "
                                                        "bot's action server's, 智能客服)")
    restore.add_argument("name")
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
        elif args.command == "restore-token":
            asyncio.run(_restore_token(settings, args))
    except HubError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

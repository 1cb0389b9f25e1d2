"""Demo mode (HUB_DEMO, which `make run` turns on): what it adds to a hub on this machine only.

The demo's official account talks to the stand-in WeChat (channels/wechat/standin.py) and its SMS channel to the
stand-in SMSC (channels/sms/smpp_standin.py), both served by the hub's own process on free loopback ports, so a
new user can write and text as a resident without a real account. The production command line knows nothing of
the stand-ins: it asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

from channels.sms.smpp_standin import DEMO_PASSWORD, DEMO_SYSTEM_ID, StandInSmsc, control_app
from channels.wechat.standin import DEMO_ACCOUNT, DEMO_OPENID
from channels.wechat.standin import serve as serve_standin
from router.errors import HubError
from router.net import free_port
from router.settings import Settings

DEMO_REFUSED = (
    "demo mode (HUB_DEMO, which `make run` turns on) creates staff accounts with a published password and a "
    "WeChat account whose token is in the source, so it runs only on this machine (HUB_HOST a loopback address, "
    "HUB_PUBLIC_URL empty or local). For production: unset HUB_DEMO, set HUB_SECRET_KEY, HUB_PUBLIC_URL and "
    "HUB_FIRST_ADMIN_PASSWORD, and start with `python -m router run` behind a reverse proxy (see README.md)")


@dataclass(frozen=True, slots=True)
class DemoWeChat:
    """The stand-in WeChat the demo's official account talks to."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def configure(self, settings: Settings) -> Settings:
        """The hub's settings with the demo account's secrets and the stand-in's address."""
        secrets = {key: value if key == "wechat_app_id" else SecretStr(value) for key, value in DEMO_ACCOUNT.items()}
        return settings.model_copy(update={
            **secrets, "channels": f"{settings.channels},wechat", "wechat_api_base_url": self.url,
            "wechat_oauth_base_url": self.url})

    def serve_with(self, app: web.Application) -> None:
        """Start the stand-in before the hub starts (the adapter fetches its token) and stop it with the hub."""

        async def start(_app: web.Application) -> None:
            _, runner, _url = await serve_standin("127.0.0.1", self.port, browser_openid=DEMO_OPENID)
            app.on_cleanup.append(lambda _app: runner.cleanup())

        app.on_startup.insert(0, start)

    def console_lines(self, base_url: str) -> list[str]:
        return [f"  微信公众号 (stand-in WeChat):   {self.url}  — write as a resident:",
                f"    python -m channels.wechat.standin say --hub {base_url} --wechat {self.url} '我家停水了'",
                f"    我的工单 of that resident:    {base_url}/wechat/orders"]


@dataclass(frozen=True, slots=True)
class DemoSms:
    """The stand-in SMSC the demo's SMS channel binds to, and its control port (residents' texts)."""

    smpp_port: int
    control_port: int

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"

    def configure(self, settings: Settings) -> Settings:
        return settings.model_copy(update={
            "channels": f"{settings.channels},sms", "sms_smpp_host": "127.0.0.1", "sms_smpp_port": self.smpp_port,
            "sms_smpp_system_id": DEMO_SYSTEM_ID, "sms_smpp_password": SecretStr(DEMO_PASSWORD),
            "sms_service_number": settings.sms_service_number or "962740"})

    def serve_with(self, app: web.Application) -> None:
        async def start(_app: web.Application) -> None:
            smsc = await StandInSmsc(DEMO_SYSTEM_ID, DEMO_PASSWORD).start("127.0.0.1", self.smpp_port)
            runner = web.AppRunner(control_app(smsc), access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.control_port).start()

            async def stop(_app: web.Application) -> None:
                await runner.cleanup()
                await smsc.stop()

            app.on_cleanup.append(stop)

        app.on_startup.insert(0, start)

    def console_lines(self, base_url: str) -> list[str]:
        return [f"  短信 (stand-in SMSC):          smpp://127.0.0.1:{self.smpp_port}  — text as a resident:",
                f"    python -m channels.sms.smpp_standin say --smsc {self.control_url} '我家停水了'"]


def demo_standins(settings: Settings) -> list[DemoWeChat | DemoSms]:
    """The stand-ins of the channels the demo has no account of its own for; refuses a demo off this machine."""
    if not settings.demo:
        return []
    if not settings.is_local:
        raise HubError(DEMO_REFUSED)
    standins: list[DemoWeChat | DemoSms] = []
    if not settings.wechat_app_id and "wechat" not in settings.channels:
        standins.append(DemoWeChat(free_port()))
    if "sms" not in settings.channels:
        standins.append(DemoSms(free_port(), free_port()))
    return standins

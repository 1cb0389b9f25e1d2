"""Demo mode (HUB_DEMO, which `make run` turns on): what it adds to a hub on this machine only.

The demo's official account talks to the stand-in WeChat (channels/wechat/standin.py), served by the hub's own
process on a free loopback port, so a new user can write as a resident without a real account. The production
command line knows nothing of the stand-in: it asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

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


def demo_wechat(settings: Settings) -> DemoWeChat | None:
    """The stand-in WeChat when the demo runs without an official account of its own; refuses a demo off this
    machine."""
    if not settings.demo:
        return None
    if not settings.is_local:
        raise HubError(DEMO_REFUSED)
    if settings.wechat_app_id or "wechat" in settings.channels:
        return None
    return DemoWeChat(free_port())

"""One hub with the real bot (trained model, action server) and WeChat's stand-in, shared by the bot's tests
of a database backend: starting Rasa takes most of a minute."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from channels.wechat.standin import StandInWeChat
from router.net import free_port
from tests.conftest import RunningHub, start_hub
from tests.support.bot import HUB_SECRETS_IN_THE_ENVIRONMENT, MODEL, companions, wait_until_healthy
from tests.support.wechat import running_standin, wechat_settings


@pytest.fixture(scope="package")
async def wechat_api() -> AsyncIterator[tuple[StandInWeChat, str]]:
    async with running_standin() as running:
        yield running


# Package-scoped, not session-scoped: a hub left running would go on routing and sending for the other tests'
# hubs on the same database.
@pytest.fixture(scope="package")
async def bot_hub(make_settings, wechat_api) -> AsyncIterator[RunningHub]:
    """A hub that starts the real bot beside itself (tracker store in the hub's database), with WeChat on."""
    assert MODEL.exists(), "no trained bot: run scripts/bot-train.sh (make test does)"
    settings = make_settings(bot_autostart=True, rasa_port=free_port(), actions_port=free_port(),
                             bot_timeout_seconds=10.0, bot_model_path=MODEL, message_max_chars=5000,
                             channels="webchat,wechat", **wechat_settings(wechat_api[1]))
    with pytest.MonkeyPatch.context() as environment:
        for name, value in HUB_SECRETS_IN_THE_ENVIRONMENT.items():
            environment.setenv(name, value)
        running = await start_hub(settings)
    try:
        bot = companions(running)
        await wait_until_healthy(bot.rasa.health_url, bot.actions.health_url)
        yield running
    finally:
        await running.runner.cleanup()


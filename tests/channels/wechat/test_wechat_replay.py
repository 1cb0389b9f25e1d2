"""Callbacks that cannot be replayed: a signed query is good once and only near the time it was signed, and in
safe mode only encrypted messages are taken."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from router.nonces import UsedNonce
from router.settings import Settings
from tests.channels.wechat.conftest import WeChatWorld
from tests.channels.wechat.test_wechat import new_openid
from tests.support.services import REDIS_URL


async def deliver(wechat: WeChatWorld, query: dict[str, str], envelope: str) -> tuple[int, str]:
    async with wechat.http.post(f"{wechat.hub.url}/wechat?{urlencode(query)}", data=envelope.encode(),
                                headers={"Content-Type": "text/xml"}) as response:
        return response.status, await response.text()


@pytest.mark.parametrize("mode", ["plain", "compat"])
async def test_a_captured_query_does_not_carry_a_message_of_the_attackers(wechat: WeChatWorld, mode: str) -> None:
    """Plaintext signatures cover only timestamp and nonce: whoever saw one post could sign any message with it."""
    simulator = wechat.simulator(mode)
    resident, victim = new_openid(), new_openid()
    query, envelope = simulator._signed_query(simulator.xml(resident, "text", {"Content": "我家停水了"},
                                                            msg_id=secrets.randbits(63)))
    assert await deliver(wechat, query, envelope) == (200, "success")
    forged = simulator.xml(victim, "text", {"Content": "我要投诉"}, msg_id=secrets.randbits(63))
    plain_query = {k: v for k, v in query.items() if k not in {"encrypt_type", "msg_signature"}}
    assert await deliver(wechat, plain_query, forged) == (200, "success")  # acknowledged like a retry …
    assert await wechat.messages_of(victim) == []  # … and nothing of it stored
    assert len(await wechat.messages_of(resident, "resident")) == 1


@pytest.mark.parametrize("wechat", [{"wechat_mode": "safe"}], indirect=True)
async def test_a_replayed_encrypted_post_is_not_processed_again(wechat: WeChatWorld) -> None:
    simulator = wechat.simulator("safe")
    resident = new_openid()
    query, envelope = simulator._signed_query(simulator.xml(resident, "event", {"Event": "subscribe"}))
    status, first = await deliver(wechat, query, envelope)
    assert status == 200 and first.startswith("<xml>")  # the welcome
    assert await deliver(wechat, query, envelope) == (200, "success")  # no second welcome


@pytest.mark.parametrize("minutes", [-10, 10])
async def test_a_post_signed_far_from_now_is_refused(wechat: WeChatWorld, minutes: int) -> None:
    simulator = wechat.simulator("compat")
    resident = new_openid()
    query, envelope = simulator._signed_query(
        simulator.xml(resident, "text", {"Content": "旧消息"}, msg_id=secrets.randbits(63)),
        at=time.time() + minutes * 60)
    status, body = await deliver(wechat, query, envelope)
    assert status == 403 and '"stale_signature"' in body
    assert await wechat.messages_of(resident) == []


@pytest.mark.parametrize("signature", ["签名" * 20, "", "0" * 40])
async def test_a_malformed_signature_is_refused_not_an_error(wechat: WeChatWorld, signature: str) -> None:
    simulator = wechat.simulator("plain")
    query, envelope = simulator._signed_query(simulator.xml(new_openid(), "text", {"Content": "x"}, msg_id=1))
    status, body = await deliver(wechat, {**query, "signature": signature}, envelope)
    assert status == 403 and '"bad_signature"' in body


@pytest.mark.parametrize("wechat", [{"wechat_mode": "safe"}], indirect=True)
async def test_safe_mode_refuses_plaintext(wechat: WeChatWorld) -> None:
    resident = new_openid()
    simulator = wechat.simulator("plain")  # signs with the right token, but sends plaintext
    with pytest.raises(AssertionError, match="HTTP 403"):
        await simulator.post(simulator.xml(resident, "text", {"Content": "明文"}, msg_id=secrets.randbits(63)))
    assert await wechat.messages_of(resident) == []
    encrypted = wechat.simulator("safe")
    assert await encrypted.post(encrypted.xml(resident, "text", {"Content": "密文"},
                                              msg_id=secrets.randbits(63))) == "success"
    assert len(await wechat.messages_of(resident, "resident")) == 1


async def test_a_retry_that_reuses_its_nonce_is_answered_and_stored_once(wechat: WeChatWorld) -> None:
    """Should WeChat retry with the query it sent first, the retry is acknowledged like any retry."""
    simulator = wechat.simulator("safe")
    resident = new_openid()
    query, envelope = simulator._signed_query(simulator.xml(resident, "text", {"Content": "水压很低"},
                                                            msg_id=secrets.randbits(63)))
    for _ in range(3):
        assert await deliver(wechat, query, envelope) == (200, "success")
    assert len(await wechat.messages_of(resident, "resident")) == 1


@pytest.mark.parametrize("wechat", [{"wechat_mode": "compatible", "redis_url": REDIS_URL}],
                         indirect=True)
async def test_nonces_are_shared_through_redis_when_it_is_configured(wechat: WeChatWorld) -> None:
    simulator = wechat.simulator("plain")
    resident, victim = new_openid(), new_openid()
    query, envelope = simulator._signed_query(simulator.xml(resident, "text", {"Content": "你好"},
                                                            msg_id=secrets.randbits(63)))
    assert await deliver(wechat, query, envelope) == (200, "success")
    forged = simulator.xml(victim, "text", {"Content": "冒充"}, msg_id=secrets.randbits(63))
    assert await deliver(wechat, query, forged) == (200, "success")
    assert await wechat.messages_of(victim) == []
    async with wechat.hub.hub.sessions() as session:
        assert await session.get(UsedNonce, f"wechat:{query['timestamp']}:{query['nonce']}") is None  # in Redis


def test_the_mode_is_safe_by_default_with_an_aes_key_and_safe_needs_one() -> None:
    assert Settings(wechat_encoding_aes_key="k" * 43).wechat_mode == "safe"
    assert Settings().wechat_mode == "plain"
    with pytest.raises(ValueError, match="HUB_WECHAT_ENCODING_AES_KEY"):
        Settings(wechat_mode="safe")


async def test_nonces_past_their_lifetime_are_swept(wechat: WeChatWorld) -> None:
    hub = wechat.hub.hub
    assert await hub.first_use("test:short-lived", timedelta(milliseconds=1))
    assert not await hub.first_use("test:short-lived", timedelta(minutes=10))
    await asyncio.sleep(0.01)
    assert await hub.nonces.sweep() >= 1
    assert await hub.first_use("test:short-lived", timedelta(minutes=10))  # forgotten, so new again

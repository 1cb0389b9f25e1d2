"""The callback reads WeChat's post whole however it arrives, and refuses one past the limit with 413."""

from __future__ import annotations

import secrets
import uuid
from urllib.parse import urlencode

import pytest

from channels.wechat.adapter import MAX_BODY
from tests.channels.wechat.conftest import WeChatWorld
from tests.support.slow_body import post_slowly


@pytest.mark.parametrize("chunked", [pytest.param(False, id="content-length"), pytest.param(True, id="chunked")])
async def test_a_callback_that_arrives_in_pieces_is_stored_whole(wechat: WeChatWorld, chunked: bool) -> None:
    openid = "o" + uuid.uuid4().hex[:27]
    simulator = wechat.simulator("safe")
    text = "我家停水了,南城街道鸿福路106号3单元,已经两天了"
    query, envelope = simulator._signed_query(simulator.xml(openid, "text", {"Content": text},
                                                            msg_id=secrets.randbits(63)))
    response = await post_slowly(f"{wechat.hub.url}/wechat?{urlencode(query)}", envelope.encode(),
                                 {"Content-Type": "text/xml"}, chunked=chunked)
    assert response.status == 200 and response.body == b"success", response.body
    assert [m.text for m in await wechat.messages_of(openid, "resident")] == [text]


@pytest.mark.parametrize("chunked", [pytest.param(False, id="content-length"), pytest.param(True, id="chunked")])
async def test_an_oversized_callback_is_refused_with_413(wechat: WeChatWorld, chunked: bool) -> None:
    simulator = wechat.simulator("plain")
    xml = simulator.xml("o" + uuid.uuid4().hex[:27], "text", {"Content": "水" * MAX_BODY}, msg_id=1)
    query, body = simulator._signed_query(xml)
    response = await post_slowly(f"{wechat.hub.url}/wechat?{urlencode(query)}", body.encode(),
                                 {"Content-Type": "text/xml"}, piece=16384, pause=0, chunked=chunked)
    assert response.status == 413 and response.json()["error"]["code"] == "too_large"

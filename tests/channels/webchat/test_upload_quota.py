"""A web chat visitor's daily upload quota: so many files and so many megabytes a day, then a clear refusal the
widget shows; uploads sent all at once cannot slip past it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import RunningHub, start_hub
from tests.support.files import png_bytes
from tests.support.files import visitor_upload as upload


@pytest.fixture
async def quota_hub(own_settings: Callable[..., Any]) -> AsyncIterator[RunningHub]:
    running = await start_hub(own_settings(upload_files_per_day=3, upload_megabytes_per_day=1))
    yield running
    await running.runner.cleanup()


async def new_visitor(http: aiohttp.ClientSession, hub: RunningHub) -> str:
    async with http.post(f"{hub.url}/webchat/visitors", json={}) as response:
        return (await response.json())["token"]


def document(kilobytes: int) -> bytes:
    return b"%PDF-1.4\n" + os.urandom(kilobytes * 1024)


async def test_files_beyond_the_daily_number_are_refused(quota_hub: RunningHub, http: aiohttp.ClientSession) -> None:
    token = await new_visitor(http, quota_hub)
    for n in range(3):
        status, _ = await upload(http, quota_hub.url, token, f"漏水{n}.png", png_bytes(n + 1, 1))
        assert status == 201
    status, body = await upload(http, quota_hub.url, token, "漏水4.png", png_bytes(9, 1))
    assert status == 429 and body["error"]["code"] == "upload_quota"
    assert "明天再试" in body["error"]["message"]
    other = await new_visitor(http, quota_hub)  # the quota is each visitor's own
    assert (await upload(http, quota_hub.url, other, "水表.png", png_bytes()))[0] == 201


async def test_bytes_beyond_the_daily_size_are_refused(quota_hub: RunningHub, http: aiohttp.ClientSession) -> None:
    token = await new_visitor(http, quota_hub)
    assert (await upload(http, quota_hub.url, token, "账单1.pdf", document(600)))[0] == 201
    status, body = await upload(http, quota_hub.url, token, "账单2.pdf", document(600))
    assert status == 413 and body["error"]["code"] == "upload_quota" and "1 MB" in body["error"]["message"]


async def test_uploads_sent_at_once_cannot_exceed_the_quota(quota_hub: RunningHub,
                                                           http: aiohttp.ClientSession) -> None:
    token = await new_visitor(http, quota_hub)
    results = await asyncio.gather(*(upload(http, quota_hub.url, token, f"图{n}.png", png_bytes(n + 1, 2))
                                     for n in range(8)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 3 + [429] * 5

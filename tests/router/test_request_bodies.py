"""Request bodies are read whole however they arrive: in small pieces with pauses, with or without a length."""

from __future__ import annotations

import uuid

import pytest

from router.models import Role
from tests.support.slow_body import post_slowly

FRAMINGS = [pytest.param(False, id="content-length"), pytest.param(True, id="chunked")]


@pytest.mark.parametrize("chunked", FRAMINGS)
async def test_a_json_body_that_arrives_in_pieces_is_read_whole(running_hub, chunked: bool) -> None:
    token = await running_hub.token(Role.ADMIN)
    name = f"慢速网络下新建的部门-{uuid.uuid4().hex[:8]}"
    body = f'{{"name": "{name}"}}'.encode()
    response = await post_slowly(f"{running_hub.url}/api/departments", body, {
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"}, piece=8, chunked=chunked)
    assert response.status == 201, response.body
    assert response.json()["name"] == name


@pytest.mark.parametrize("chunked", FRAMINGS)
async def test_a_csv_import_that_arrives_in_pieces_imports_every_row(running_hub, chunked: bool) -> None:
    token = await running_hub.token(Role.AGENT)
    tag = uuid.uuid4().hex[:8]
    rows = "external_ref,category,title,description,address,custom_fields\n" + "".join(
        f'{tag}-{n},meter,水表停走第{n}户,12345转办,花桥镇绿地大道{n}号,"{{""problem"": ""停走""}}"\n'
        for n in range(1, 6))
    response = await post_slowly(f"{running_hub.url}/api/workorders/import?source=12345", rows.encode(), {
        "Content-Type": "text/csv", "Authorization": f"Bearer {token}"}, chunked=chunked)
    assert response.status == 200, response.body
    result = response.json()
    assert result["errors"] == [] and len(result["created"]) == 5


async def test_a_body_past_the_limit_without_a_length_is_refused(running_hub) -> None:
    token = await running_hub.token(Role.ADMIN)
    body = b'{"name": "' + b"x" * 70_000 + b'"}'
    response = await post_slowly(f"{running_hub.url}/api/departments", body, {
        "Content-Type": "application/json", "Authorization": f"Bearer {token}"}, piece=8192, pause=0,
        chunked=True)
    assert response.status == 413 and response.json()["error"]["code"] == "too_large"

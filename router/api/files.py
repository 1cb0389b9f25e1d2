"""Every stored file, by one address: for staff who may see its owner, or by a resident's signed link."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from router.access import can_fetch_file
from router.api import api
from router.api.spec import HUB, UUID_PATTERN, Call
from router.errors import NotFound
from router.filelinks import PATH, link_opens
from router.uploads import file_response


class FileQuery(BaseModel):
    s: str | None = Field(None, max_length=300, description="a resident's signed link to this one file")


@api.endpoint("GET", PATH + "{file_id:" + UUID_PATTERN + "}", summary="A stored file (photo, document, voice)",
              roles=None, query=FileQuery, tag="files", errors=(404,))
async def get_file(call: Call) -> web.FileResponse:
    hub = call.request.app[HUB]
    file_id = call.path["file_id"]
    missing = NotFound("文件不存在或链接已过期", code="file_not_found")  # the same answer whether it exists or not
    found = await hub.open_file(file_id)
    if found is None:
        raise missing
    info, path = found
    allowed = call.query.s is not None and link_opens(hub.secret_key, file_id, call.query.s)
    if not allowed and call.principal is not None:
        async with hub.sessions() as session:
            allowed = await can_fetch_file(session, call.principal, info.owner_channel, info.owner_external_id,
                                           hub.settings.default_team)
    if not allowed:
        raise missing
    return file_response(info.name, info.content_type, path)

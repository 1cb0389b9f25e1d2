"""Reading a request body whole, within a limit, and JSON from outside that the database can hold.

``StreamReader.read(n)`` answers with what has arrived so far (at most ``n`` bytes), not with ``n`` bytes: a body
that reaches the hub in several packets would be cut to its first ones. :func:`read_body` reads to the end.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from router.errors import BadRequest, TooLarge


async def read_body(request: web.Request, limit: int, too_large: str | None = None) -> bytes:
    """The whole body; 413 ``too_large`` (with ``too_large`` as its message) once it exceeds ``limit`` bytes."""
    message = too_large or f"请求体超过 {limit} 字节"
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge(message)
    body = bytearray()
    # One byte past the limit is enough to know the body is too large; nothing more is buffered.
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise TooLarge(message)
    return bytes(body)


def loads_strict(raw: str | bytes) -> Any:
    """JSON from outside, refusing what cannot be stored: malformed text, lone UTF-16 surrogates, NUL."""
    try:
        value = json.loads(raw)
        # json accepts "\ud800" escapes that no UTF-8 database column can hold.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise BadRequest("请求体不是有效的 JSON", code="malformed_json") from exc
    if has_nul(value):
        raise BadRequest("文本中不能含有 NUL 字符", code="nul_character")
    return value


def has_nul(value: Any) -> bool:
    """NUL ("\u0000") is valid JSON but PostgreSQL text cannot hold it."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False

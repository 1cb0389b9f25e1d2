"""A client that sends a request body the way a slow network delivers it: in small pieces, with pauses.

A server that reads the body with one ``StreamReader.read(n)`` gets only the pieces that arrived so far;
:func:`post_slowly` makes that visible. The body goes with a ``Content-Length``, or in HTTP/1.1 chunked
transfer encoding (``chunked=True``), which announces no length at all.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class SlowResponse:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def post_slowly(url: str, body: bytes, headers: dict[str, str], *, piece: int = 32, pause: float = 0.02,
                      chunked: bool = False) -> SlowResponse:
    """POST ``body`` to ``url`` ``piece`` bytes at a time, ``pause`` seconds apart; the response."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(body))}
        head = {"Host": parts.netloc, "Connection": "close", **headers, **framing}
        writer.write(f"POST {target} HTTP/1.1\r\n".encode()
                     + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode("utf-8") + b"\r\n")
        await writer.drain()
        for start in range(0, len(body), piece):
            await asyncio.sleep(pause)
            data = body[start:start + piece]
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        raw = await reader.read()  # Connection: close, so the response ends with the connection
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in header_block.lower():
        payload = _unchunk(payload)
    return SlowResponse(int(status_line.split()[1]), payload)


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return bytes(out)

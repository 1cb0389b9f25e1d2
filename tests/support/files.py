"""Small real files for upload tests."""

from __future__ import annotations

import io
import struct
import zlib

import aiohttp


def png_bytes(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG of the given size (red pixels)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


async def visitor_upload(http: aiohttp.ClientSession, url: str, token: str | None, name: str, data: bytes,
                         ) -> tuple[int, dict]:
    """A web-chat visitor's upload, as the widget sends it: status and JSON body."""
    form = aiohttp.FormData(quote_fields=False)  # as browsers send it: the UTF-8 name unquoted
    form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    headers = {"X-Visitor-Token": token} if token else {}
    async with http.post(f"{url}/webchat/upload", data=form, headers=headers) as response:
        return response.status, await response.json()

"""Files sent to the hub (a resident's upload in the widget, a field crew's photo of a repair).

What a file is gets decided by its content, not its name; the multipart reading stops at the size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
import zlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, unquote

import filetype
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import StoredFileInfo
from router.db import take_turns
from router.errors import BadRequest, TooLarge, TooManyRequests, UnsupportedMediaType
from router.models import StoredFile, utcnow

# Kinds by their content signature; a name's extension is never trusted on its own.
ALLOWED_KINDS = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/gif": "image",
    "image/webp": "image",
    "application/pdf": "file",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "file",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "file",
}


@dataclass(frozen=True, slots=True)
class UploadKind:
    content_type: str
    message_type: str  # "image" or "file"


@dataclass(frozen=True, slots=True)
class Upload:
    name: str  # safe to show: no path parts, no control characters
    data: bytes
    kind: UploadKind


def classify(data: bytes, name: str) -> UploadKind | None:
    """The upload's real type, or None if it is not one residents may send."""
    kind = filetype.guess(data)
    if kind is not None:
        message_type = ALLOWED_KINDS.get(kind.mime)
        return UploadKind(kind.mime, message_type) if message_type else None
    if name.lower().endswith(".txt") and b"\x00" not in data:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return UploadKind("text/plain; charset=utf-8", "file")
    return None


def _decoded(name: str) -> str:
    """Browsers send a UTF-8 file name as is; some clients (aiohttp, curl scripts) percent-encode it."""
    if not (name.isascii() and "%" in name):
        return name
    try:
        return unquote(name, errors="strict")
    except UnicodeDecodeError:
        return name


def safe_name(name: str) -> str:
    """A display name without path parts or control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable()).strip()
    return cleaned[:200] or "file"


async def read_file_part(request: web.Request, limit: int) -> tuple[str, bytes]:
    """The safe name and the bytes of the ``file`` part of a multipart/form-data request, at most ``limit``
    bytes and not empty (4xx otherwise); what the bytes are is for the caller to check."""
    too_large = TooLarge(f"文件不能超过 {limit // (1024 * 1024)} MB")
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise too_large
    if not request.content_type.startswith("multipart/form-data"):
        raise UnsupportedMediaType("请以 multipart/form-data 上传", code="unsupported_media_type")
    try:
        reader = await request.multipart()
        part = await reader.next()
        if not isinstance(part, BodyPartReader) or part.name != "file":
            raise BadRequest("缺少 file 字段", code="missing_file")
        data = bytearray()
        while chunk := await part.read_chunk(64 * 1024):
            data.extend(chunk)
            if len(data) > limit:
                raise too_large
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        # aiohttp's parser refuses malformed boundaries and part headers with these.
        raise BadRequest("上传内容格式错误", code="malformed_multipart") from exc
    if not data:
        raise BadRequest("文件为空", code="empty_file")
    return safe_name(_decoded(part.filename or "file")), bytes(data)


async def read_upload(request: web.Request, limit: int, *, images_only: bool = False) -> Upload:
    """The ``file`` part of a multipart/form-data request, checked for size and kind (4xx otherwise)."""
    name, data = await read_file_part(request, limit)
    kind = classify(data, name)
    if images_only and (kind is None or kind.message_type != "image"):
        raise UnsupportedMediaType("仅支持图片(JPEG/PNG/GIF/WebP)")
    if kind is None:
        raise UnsupportedMediaType("仅支持图片(JPEG/PNG/GIF/WebP)、PDF、Word、Excel 和文本文件")
    return Upload(name=name, data=data, kind=kind)


def file_response(name: str, content_type: str, path: Path) -> web.FileResponse:
    """A stored file, sent so that a browser cannot be made to run it: images inline, the rest as downloads."""
    disposition = "inline" if content_type.startswith("image/") else "attachment"
    return web.FileResponse(path, headers={
        "Content-Type": content_type,
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, max-age=86400",
    })


FILES_LOCK_KEY = 962740_0014  # uploads share it while they add bytes; removing unused bytes takes it alone
QUOTA_LOCK_KEY = 962740_0014_0000  # + a hash of the owner: one owner's uploads are counted one at a time


@dataclass(frozen=True, slots=True)
class UploadQuota:
    """What one owner (a web chat visitor) may upload in a rolling day."""

    files: int
    megabytes: int
    period: timedelta = timedelta(days=1)

    async def check(self, session: AsyncSession, owner: str, owner_id: str, size: int) -> None:
        """Raise unless one more file of ``size`` bytes fits; holds the owner's turn until the caller commits."""
        await take_turns(session, QUOTA_LOCK_KEY + zlib.crc32(f"{owner}:{owner_id}".encode()) % 10_000)
        count, total = (await session.execute(
            select(func.count(StoredFile.id), func.coalesce(func.sum(StoredFile.size), 0)).where(
                StoredFile.owner_channel == owner, StoredFile.owner_external_id == owner_id,
                StoredFile.created_at > utcnow() - self.period))).one()
        if count >= self.files:
            raise TooManyRequests(f"今天已发送 {count} 个文件,达到上限,请明天再试或直接文字描述",
                                  code="upload_quota", details={"files": self.files})
        if total + size > self.megabytes * 1024 * 1024:
            raise TooLarge(f"今天发送的文件已达 {self.megabytes} MB 上限,请明天再试或直接文字描述",
                           code="upload_quota", details={"megabytes": self.megabytes})


class FileStore:
    """Bytes on disk under their SHA-256 (stored once however often they are sent), a row per upload.

    A file belongs to an owner: a resident (channel + their address) or a work order ("workorder", its id).
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], root: Path) -> None:
        self._sessions = sessions
        self._root = root

    async def store(self, owner: str, owner_id: str, name: str, content_type: str, data: bytes,
                    quota: UploadQuota | None = None) -> StoredFileInfo:
        """Keep ``data`` for ``owner``; within ``quota``, if one is given, or not at all."""
        async with self._sessions.begin() as session:
            return await self.store_in(session, owner, owner_id, name, content_type, data, quota)

    async def store_in(self, session: AsyncSession, owner: str, owner_id: str, name: str, content_type: str,
                       data: bytes, quota: UploadQuota | None = None) -> StoredFileInfo:
        """:meth:`store` in the caller's transaction (the file is theirs only if it commits)."""
        digest = hashlib.sha256(data).hexdigest()
        await _share_files_lock(session)  # the retention job does not remove bytes this row will need
        if quota is not None:
            await quota.check(session, owner, owner_id, len(data))
        path = self.path_of(digest)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            await asyncio.to_thread(tmp.write_bytes, data)
            tmp.replace(path)
        stored = StoredFile(id=str(uuid.uuid4()), owner_channel=owner, owner_external_id=owner_id, name=name,
                            content_type=content_type, size=len(data), sha256=digest, created_at=utcnow())
        session.add(stored)
        return _info(stored)

    async def read_in(self, session: AsyncSession, file_id: str) -> tuple[StoredFileInfo, bytes] | None:
        """A stored file and its bytes, read in the caller's transaction; None if either is gone."""
        with contextlib.suppress(ValueError):
            uuid.UUID(file_id)
            stored = await session.get(StoredFile, file_id)
            if stored is not None:
                with contextlib.suppress(FileNotFoundError):
                    return _info(stored), await asyncio.to_thread(self.path_of(stored.sha256).read_bytes)
        return None

    async def open(self, file_id: str) -> tuple[StoredFileInfo, Path] | None:
        with contextlib.suppress(ValueError):
            uuid.UUID(file_id)
            async with self._sessions() as session:
                stored = await session.get(StoredFile, file_id)
            if stored is not None:
                return _info(stored), self.path_of(stored.sha256)
        return None

    async def owned_by(self, owner: str, owner_id: str) -> list[StoredFile]:
        async with self._sessions() as session:
            return list(await session.scalars(select(StoredFile).where(
                StoredFile.owner_channel == owner, StoredFile.owner_external_id == owner_id,
            ).order_by(StoredFile.created_at, StoredFile.id)))

    async def forget(self, digests: set[str]) -> int:
        """Remove the bytes of ``digests`` that no stored file refers to any more; how many were removed.

        Runs alone (an exclusive lock that every upload shares while it writes bytes and adds its row), so an
        upload of the same bytes either is seen here or writes them anew.
        """
        if not digests:
            return 0
        removed = 0
        async with self._sessions.begin() as session:
            await take_turns(session, FILES_LOCK_KEY)
            used = set(await session.scalars(select(StoredFile.sha256).where(StoredFile.sha256.in_(digests))))
            for digest in digests - used:
                with contextlib.suppress(FileNotFoundError):
                    self.path_of(digest).unlink()
                    removed += 1
        return removed

    def path_of(self, digest: str) -> Path:
        """Where the bytes of ``digest`` are kept."""
        return self._root / digest[:2] / digest


async def _share_files_lock(session: AsyncSession) -> None:
    if session.bind.dialect.name == "postgresql":  # SQLite's one writer orders these transactions already
        await session.execute(text("SELECT pg_advisory_xact_lock_shared(:key)"), {"key": FILES_LOCK_KEY})


def _info(stored: StoredFile) -> StoredFileInfo:
    return StoredFileInfo(file_id=stored.id, name=stored.name, content_type=stored.content_type, size=stored.size,
                          owner_channel=stored.owner_channel, owner_external_id=stored.owner_external_id)

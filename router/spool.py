"""A small append-only journal on local disk: what must not be lost while the database is away.

Records are JSON objects, each written as a 4-byte length, a 4-byte CRC-32 and the JSON bytes, and flushed
to the disk (``fsync``) before :meth:`Spool.append` returns. They go into numbered segment files; a cursor
file says how far they were replayed, and a segment the cursor has passed is deleted. A record cut short by a
crash (the tail of the last segment) was never acknowledged to anyone and is dropped when the spool opens.

Each hub process claims a spool directory of its own (``<HUB_SPOOL_DIR>/<n>``, held with a file lock), so
several processes on one machine never write one file; a process that starts after another one died claims
the free directory, with what was left in it, and replays it.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HEADER = struct.Struct(">II")  # length of the JSON bytes, their CRC-32
SEGMENT_BYTES = 4 * 1024 * 1024
CURSOR = "cursor"
LOCK = "lock"
MAX_SLOTS = 64


class SpoolFull(Exception):
    """The spool holds ``HUB_SPOOL_MAX_MEGABYTES`` of records not yet replayed: nothing more is accepted."""


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """Just after a record: the segment's number and the offset in it."""

    segment: int
    offset: int


class Spool:
    """One process's spool directory; its methods block on the disk (call them from a thread)."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock: IO[bytes] | None = None
        self._writer: IO[bytes] | None = None
        self._cursor = Position(1, 0)
        self._end = Position(1, 0)

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def claim(cls, root: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> Spool:
        """Open the first spool directory under ``root`` that no other process holds."""
        root.mkdir(parents=True, exist_ok=True)
        for slot in range(MAX_SLOTS):
            spool = cls(root / str(slot), max_bytes, segment_bytes)
            if spool._try_lock():
                spool._recover()
                return spool
        raise RuntimeError(f"all {MAX_SLOTS} spool directories under {root} are in use")

    def _try_lock(self) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = (self.directory / LOCK).open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock = handle
        return True

    def _recover(self) -> None:
        """Read the cursor, drop a torn record at the end, and open the last segment for appending."""
        cursor_path = self.directory / CURSOR
        if cursor_path.exists():
            saved = json.loads(cursor_path.read_text())
            self._cursor = Position(saved["segment"], saved["offset"])
        segments = self._segments()
        for number in segments:
            if number < self._cursor.segment:  # replayed; the crash came before it was deleted
                self._segment_path(number).unlink()
        last = segments[-1] if segments and segments[-1] >= self._cursor.segment else self._cursor.segment
        path = self._segment_path(last)
        path.touch()
        good = _valid_length(path)
        if good < path.stat().st_size:
            with path.open("r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        self._end = Position(last, good)
        if self._end < self._cursor:  # a cursor ahead of what is on disk: everything was replayed
            self._cursor = self._end
        self._writer = path.open("ab")

    def close(self) -> None:
        for handle in (self._writer, self._lock):
            if handle is not None:
                handle.close()
        self._writer = self._lock = None

    # -- writing ----------------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` durably; raises :class:`SpoolFull` when the spool is at its limit."""
        assert self._writer is not None, "spool not open"
        data = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
        size = HEADER.size + len(data)
        if self.size_bytes + size > self.max_bytes:
            raise SpoolFull(f"spool holds {self.size_bytes} bytes, at most {self.max_bytes}")
        if self._end.offset and self._end.offset + size > self.segment_bytes:
            self._start_segment(self._end.segment + 1)
        self._writer.write(HEADER.pack(len(data), zlib.crc32(data)) + data)
        self._writer.flush()
        os.fsync(self._writer.fileno())
        self._end = Position(self._end.segment, self._end.offset + size)

    def _start_segment(self, number: int) -> None:
        assert self._writer is not None
        self._writer.close()
        self._writer = self._segment_path(number).open("ab")
        _fsync_directory(self.directory)
        self._end = Position(number, 0)

    # -- reading and replaying --------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return self._cursor >= self._end

    @property
    def size_bytes(self) -> int:
        """Bytes of records not yet replayed."""
        if self._cursor.segment == self._end.segment:
            return self._end.offset - self._cursor.offset
        total = self._end.offset
        for number in range(self._cursor.segment, self._end.segment):
            path = self._segment_path(number)
            if path.exists():
                total += path.stat().st_size - (self._cursor.offset if number == self._cursor.segment else 0)
        return total

    def read(self, limit: int) -> list[tuple[Position, dict[str, Any]]]:
        """Up to ``limit`` records after the cursor, in the order they were appended, each with its end."""
        records: list[tuple[Position, dict[str, Any]]] = []
        at = self._cursor
        while len(records) < limit and at < self._end:
            path = self._segment_path(at.segment)
            end = self._end.offset if at.segment == self._end.segment else path.stat().st_size
            if at.offset >= end:
                at = Position(at.segment + 1, 0)
                continue
            with path.open("rb") as handle:
                handle.seek(at.offset)
                while len(records) < limit and at.offset < end:
                    length, _crc = HEADER.unpack(handle.read(HEADER.size))
                    at = Position(at.segment, at.offset + HEADER.size + length)
                    records.append((at, json.loads(handle.read(length))))
        return records

    def advance(self, position: Position) -> None:
        """Everything up to ``position`` was replayed: remember it durably and delete the segments passed."""
        if position <= self._cursor:
            return
        temporary = self.directory / f"{CURSOR}.tmp"
        with temporary.open("w") as handle:
            json.dump({"segment": position.segment, "offset": position.offset}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.directory / CURSOR)
        _fsync_directory(self.directory)
        for number in range(self._cursor.segment, position.segment):
            self._segment_path(number).unlink(missing_ok=True)
        self._cursor = position

    # -- files ------------------------------------------------------------------------------------

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"{number:08d}.seg"


def _valid_length(path: Path) -> int:
    """How many bytes at the start of ``path`` are whole records whose checksums match."""
    good = 0
    with path.open("rb") as handle:
        while header := handle.read(HEADER.size):
            if len(header) < HEADER.size:
                break
            length, crc = HEADER.unpack(header)
            data = handle.read(length)
            if len(data) < length or zlib.crc32(data) != crc:
                break
            good += HEADER.size + length
    return good


def _fsync_directory(directory: Path) -> None:
    """Make a created, renamed or deleted file in ``directory`` survive a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

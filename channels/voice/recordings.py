"""Recorded prompts: an admin replaces the synthesised voice of a menu prompt with a studio recording.

A recording belongs to one prompt text in one language, under the key the prompt directory uses for that text
(:func:`channels.voice.prompts.prompt_key`). When the text changes in the menu the recording no longer says
what the menu says, so it stops applying and the new text is synthesised until a recording of it is uploaded;
put the old text back and the old recording applies again.

An upload must be a WAV file (PCM, 8 to 48 kHz, mono or stereo) of 0.5 to 120 seconds. It is converted to what
Asterisk plays (8 kHz, mono, 16 bit) and the converted file is kept in the hub's file store; every process
places it in the prompt directory the first time a call needs it.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import ForeignKey, Integer, String, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from channels.voice.prompts import RENDER_TIMEOUT, PromptError
from router.models import Base, StoredFile, utcnow
from router.uploads import FileStore

OWNER = "ivr"  # the file store's owner of recorded prompts
MIN_SECONDS, MAX_SECONDS = 0.5, 120.0
MAX_BYTES = 48_000 * 2 * 3 * int(MAX_SECONDS) + 64 * 1024  # the longest accepted WAV: 48 kHz, stereo, 24 bit
RATES = range(8_000, 48_001)


class RecordingInvalid(ValueError):
    """An upload that is not a usable prompt recording; the message says why, for the admin."""


class IvrRecording(Base):
    __tablename__ = "ivr_recording"
    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_key: Mapped[str] = mapped_column(String(64), unique=True)
    language: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    file_id: Mapped[str] = mapped_column(ForeignKey("stored_file.id"))
    name: Mapped[str] = mapped_column(String(200))  # the uploaded file's name, for the admin
    duration_ms: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


@dataclass(frozen=True, slots=True)
class Converted:
    wav: bytes  # 8 kHz, mono, 16-bit PCM
    duration_ms: int


def convert(data: bytes) -> Converted:
    """Check an uploaded recording and convert it for the phone line (blocking: run it in a thread)."""
    try:
        with wave.open(io.BytesIO(data)) as source:
            channels, width, rate = source.getnchannels(), source.getsampwidth(), source.getframerate()
            # What is there, not what the header claims: a cut-off upload is as long as what arrived.
            frames = len(source.readframes(source.getnframes())) // max(1, channels * width)
    except (wave.Error, EOFError) as exc:
        raise RecordingInvalid("录音须为 WAV 格式(PCM 编码)") from exc
    if channels not in (1, 2) or width not in (1, 2, 3) or rate not in RATES:
        raise RecordingInvalid("录音须为单声道或立体声、8–48 kHz、8/16/24 位的 WAV")
    seconds = frames / rate
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise RecordingInvalid(f"录音长度须在 {MIN_SECONDS:g} 到 {MAX_SECONDS:g} 秒之间(此文件 {seconds:.1f} 秒)")
    sox = shutil.which("sox")
    if sox is None:
        raise PromptError("sox must be installed")
    with tempfile.TemporaryDirectory(prefix="recording-") as work:
        source_path, target_path = Path(work) / "upload.wav", Path(work) / "prompt.wav"
        source_path.write_bytes(data)
        try:
            subprocess.run([sox, str(source_path), "-r", "8000", "-c", "1", "-b", "16", "-e",  # noqa: S603
                            "signed-integer", str(target_path)], check=True, capture_output=True,
                           timeout=RENDER_TIMEOUT)
        except subprocess.CalledProcessError as exc:
            raise RecordingInvalid("录音文件已损坏,无法转换") from exc
        except subprocess.TimeoutExpired as exc:
            raise PromptError("converting a recording took too long") from exc
        wav = target_path.read_bytes()
    return Converted(wav, round(seconds * 1000))


async def recordings_in_force(sessions: async_sessionmaker[AsyncSession], files: FileStore) -> dict[str, Path]:
    """Every recorded prompt: its prompt key and where the file store keeps the converted WAV."""
    async with sessions() as session:
        rows = await session.execute(select(IvrRecording.prompt_key, StoredFile.sha256)
                                     .join(StoredFile, StoredFile.id == IvrRecording.file_id))
        return {key: files.path_of(digest) for key, digest in rows}


async def recordings_by_key(session: AsyncSession) -> dict[str, IvrRecording]:
    return {r.prompt_key: r for r in await session.scalars(select(IvrRecording))}


async def replace_recording(session: AsyncSession, files: FileStore, *, key: str, language: str, text: str,
                            name: str, converted: Converted, uploaded_by: str) -> tuple[IvrRecording, str | None]:
    """Store ``converted`` as the recording of the prompt ``key``, in the caller's transaction; the recording
    and the digest of the file it replaced (to :meth:`FileStore.forget` once committed), if any."""
    stored = await files.store_in(session, OWNER, key, name, "audio/wav", converted.wav)
    recording = await session.scalar(select(IvrRecording).where(IvrRecording.prompt_key == key))
    previous = recording.file_id if recording is not None else None
    if recording is None:
        recording = IvrRecording(prompt_key=key)
        session.add(recording)
    recording.language, recording.text, recording.file_id, recording.name = language, text, stored.file_id, name
    recording.duration_ms, recording.uploaded_by, recording.uploaded_at = converted.duration_ms, uploaded_by, utcnow()
    await session.flush()
    return recording, await _drop_file(session, previous) if previous is not None else None


async def remove_recording(session: AsyncSession, key: str) -> str | None:
    """Remove the recording of the prompt ``key`` (its text is synthesised again); the digest of its file."""
    recording = await session.scalar(select(IvrRecording).where(IvrRecording.prompt_key == key))
    if recording is None:
        return None
    await session.delete(recording)
    await session.flush()
    return await _drop_file(session, recording.file_id)


async def _drop_file(session: AsyncSession, file_id: str) -> str | None:
    """Delete a stored file's row; its digest, whose bytes the caller forgets once no row needs them."""
    stored = await session.get(StoredFile, file_id)
    if stored is None:
        return None
    await session.execute(delete(StoredFile).where(StoredFile.id == file_id))
    return stored.sha256

"""Call records written through the hub's call log as the voice adapter writes them, for tests of what is
read from them: a finished call with its path, keys, work order and a stored WAV as recording."""

from __future__ import annotations

import io
import random
import uuid
import wave
from datetime import UTC, datetime, timedelta

from router.models import CallEventKind
from tests.conftest import RunningHub


def wav_bytes(seconds: float = 0.5) -> bytes:
    """A silent 8 kHz mono WAV, what Asterisk records."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * int(8000 * seconds))
    return buffer.getvalue()


def new_number() -> str:
    return "+86138" + "".join(random.choices("0123456789", k=8))


TIMEOUT, INVALID = CallEventKind.TIMEOUT, CallEventKind.INVALID


async def record_call(hub: RunningHub, caller: str, started: datetime, path: list[tuple[str, list[str]]], *,
                      outcome: str | None = "self_service", conversation_id: int | None = None,
                      order_number: str | None = None, recording: bool = True) -> int:
    """A finished call: ``path`` is the nodes walked with the keys pressed at each (``TIMEOUT`` and ``INVALID``
    among them: a question missed there)."""
    calls = hub.hub.calls
    call_id = await calls.open(f"test-{uuid.uuid4()}", caller, "962740", started)
    await calls.update(call_id, answered_at=started + timedelta(seconds=1), conversation_id=conversation_id)
    at = started + timedelta(seconds=1)
    for node, keys in path:
        at += timedelta(seconds=1)
        await calls.event(call_id, CallEventKind.NODE, node=node, at=at)
        for key in keys:
            at += timedelta(seconds=1)
            if key in (TIMEOUT, INVALID):
                await calls.event(call_id, key, node=node, at=at)
            else:
                await calls.event(call_id, CallEventKind.KEY, node=node, key=key, at=at)
    if order_number is not None:
        await calls.event(call_id, CallEventKind.WORK_ORDER, node=path[-1][0],
                          detail={"number": order_number, "file_id": None}, at=at + timedelta(seconds=1))
    if recording:
        stored = await hub.hub.store_file("voice", caller, f"call-{call_id}.wav", "audio/wav", wav_bytes())
        await calls.update(call_id, recording_file_id=stored.file_id)
    if outcome is not None:
        await calls.update(call_id, outcome=outcome)
    await calls.close(call_id, ended_at=at + timedelta(seconds=5), cause=16, cause_text="Normal Clearing",
                      side="caller")
    return call_id


def far_day() -> datetime:
    """A day of its own, so counts over a range see only this test's calls (the hub is shared)."""
    return datetime(2031, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(0, 3000))

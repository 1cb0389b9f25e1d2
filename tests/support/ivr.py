"""Menus for the IVR tests."""

from __future__ import annotations

import io
import math
import wave

# Two menus that only lead to each other (nodes at the indentation of a menu file's ``nodes``): a loop without
# exit, which a menu must not contain.
DEAD_LOOP = """  loop_a:
    kind: menu
    prompt: {zh: 甲, en: A}
    keys: {"1": loop_b}
    fallback: agent
  loop_b:
    kind: menu
    prompt: {zh: 乙, en: B}
    keys: {"1": loop_a}
    fallback: agent
"""


def tone_wav(seconds: float, *, rate: int = 44_100, channels: int = 2, width: int = 2, hz: float = 440.0) -> bytes:
    """A studio-style recording: a sine tone as PCM WAV (by default CD quality, stereo)."""
    frames = int(seconds * rate)
    peak = (1 << (8 * width - 1)) - 1
    samples = bytearray()
    for index in range(frames):
        value = int(peak * 0.5 * math.sin(2 * math.pi * hz * index / rate))
        sample = (value + 128).to_bytes(1, "little") if width == 1 else value.to_bytes(width, "little", signed=True)
        samples += sample * channels
    out = io.BytesIO()
    with wave.open(out, "wb") as target:
        target.setnchannels(channels)
        target.setsampwidth(width)
        target.setframerate(rate)
        target.writeframes(bytes(samples))
    return out.getvalue()


def wav_facts(data: bytes) -> tuple[int, int, int, float]:
    """Channels, sample width, rate and length in seconds of a WAV."""
    with wave.open(io.BytesIO(data)) as source:
        return (source.getnchannels(), source.getsampwidth(), source.getframerate(),
                source.getnframes() / source.getframerate())

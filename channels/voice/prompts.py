"""Spoken prompts: text rendered offline by espeak-ng into the WAV Asterisk plays (8 kHz, mono, 16 bit).

A prompt is kept under a sha256 of its voice and text, ``<prompt dir>/<hash>.wav``, and rendered only
once. The prompt directory is Asterisk's ``sounds/shuiwu`` (shared with the Asterisk host or container), so
Asterisk plays it as ``sound:shuiwu/<hash>``. Rendering runs in a thread, off the event loop; concurrent
requests for one prompt render it once.

A prompt with a recording (channels/voice/recordings.py) plays the recording instead: its converted WAV is
placed in the prompt directory as ``rec-<sha256 of the file>.wav`` the first time it is needed.

A prompt with numbers filled in during the call (the caller's place in the queue) is played as its pieces one
after another, the words between the numbers and each number rendered once: a sentence per combination would
keep espeak-ng busy on every move of a busy queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import string
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

VOICES = {"zh": "cmn", "en": "en"}  # the hub's language → espeak-ng voice
SOUND_PREFIX = "shuiwu"  # the prompt directory's name under Asterisk's sounds directory
RENDER_TIMEOUT = 30.0
MAX_TEXT = 2000
HOLD_MUSIC = "hold-music-1"  # the name of the music callers hear while they wait (bump when the tune changes)
# The tune: a pentatonic melody (宫商角徵羽), note (Hz) and length (s), played twice: about 20 seconds.
_TUNE = [(523.25, .5), (587.33, .5), (659.25, 1.0), (783.99, .5), (659.25, .5), (587.33, 1.0), (523.25, .5),
         (587.33, .5), (659.25, .5), (783.99, .5), (880.0, 1.5), (783.99, .5), (659.25, .5), (587.33, .5),
         (523.25, 1.5)] * 2


class PromptError(Exception):
    """A prompt that could not be rendered (no espeak-ng or sox, or they failed)."""


def prompt_key(voice: str, text: str) -> str:
    return hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()


def _spoken(text: str, language: str) -> tuple[str, str]:
    """The voice for ``language`` and the text as it is spoken (runs of white space as one)."""
    voice = VOICES.get(language)
    if voice is None:
        raise ValueError(f"no voice for language {language!r}")
    text = " ".join(text.split())
    if not text or len(text) > MAX_TEXT:
        raise ValueError("a prompt's text must be 1 to 2000 characters")
    return voice, text


def media_of(key: str) -> str:
    """The ARI media URI of a rendered prompt."""
    return f"sound:{SOUND_PREFIX}/{key}"


class Prompts:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._rendering: dict[str, asyncio.Future[str]] = {}
        self._recorded: dict[str, Path] = {}

    def use_recordings(self, recordings: Mapping[str, Path]) -> None:
        """From now on, play these recordings (prompt key → converted WAV) instead of their texts' TTS."""
        self._recorded = dict(recordings)

    def path_of(self, key: str) -> Path:
        return self.directory / f"{key}.wav"

    def file_of(self, text: str, language: str = "zh") -> Path:
        """Where ``text`` spoken in ``language`` is kept once rendered."""
        return self.path_of(prompt_key(*_spoken(text, language)))

    async def media(self, text: str, language: str = "zh") -> str:
        """The ``sound:`` URI of ``text`` spoken in ``language`` (``zh`` or ``en``), rendered if need be."""
        voice, text = _spoken(text, language)
        key = prompt_key(voice, text)
        recording = self._recorded.get(key)
        if recording is not None:
            with contextlib.suppress(FileNotFoundError):  # gone from the file store: the text is spoken instead
                return media_of(await self._placed(recording))
        if self.path_of(key).exists():
            return media_of(key)
        pending = self._rendering.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._rendering[key] = pending
            try:
                await asyncio.to_thread(self._render, voice, text, self.path_of(key))
                pending.set_result(key)
            except Exception as exc:
                pending.set_exception(exc)
            finally:
                del self._rendering[key]
                if not pending.done():
                    pending.cancel()
        return media_of(await asyncio.shield(pending))

    async def composed(self, template: str, values: Mapping[str, int], language: str = "zh") -> str:
        """The media (comma separated ``sound:`` URIs, played in turn) of ``template`` with ``{name}`` fields
        filled in from ``values``: its words and its numbers as pieces rendered once each."""
        _spoken(template.format_map(values), language)  # the whole as a prompt: a known voice, 1 to 2000 characters
        pieces: list[str] = []
        for words, field, _, _ in string.Formatter().parse(template):
            if words.strip():
                pieces.append(words)
            if field is not None:
                pieces.append(str(int(values[field])))
        return ",".join(await asyncio.gather(*(self.media(piece, language) for piece in pieces)))

    async def hold_music(self) -> str:
        """The ``sound:`` URI of the music callers hear while they wait for an agent, rendered once."""
        if not self.path_of(HOLD_MUSIC).exists():
            await asyncio.to_thread(self._render_music, self.path_of(HOLD_MUSIC))
        return media_of(HOLD_MUSIC)

    async def file_for(self, text: str, language: str = "zh") -> Path:
        """The WAV a caller hears for ``text``: its recording or its TTS rendering."""
        return self.path_of((await self.media(text, language)).rsplit("/", 1)[1])

    async def _placed(self, recording: Path) -> str:
        """The name in the prompt directory of a recording from the file store, copied there if need be."""
        name = f"rec-{recording.name}"
        if not self.path_of(name).exists():
            await asyncio.to_thread(self._put, recording, self.path_of(name))
        return name

    def _put(self, source: Path, target: Path) -> None:
        """Copy into place in one step: Asterisk never reads half a file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(source, partial)
        os.chmod(partial, 0o644)
        os.replace(partial, target)

    def _render_music(self, target: Path) -> None:
        sox = shutil.which("sox")
        if sox is None:
            raise PromptError("sox must be installed")
        with tempfile.TemporaryDirectory(prefix="music-") as work:
            notes: dict[tuple[float, float], Path] = {}
            for pitch, length in _TUNE:
                if (pitch, length) not in notes:
                    notes[pitch, length] = note = Path(work) / f"{pitch}-{length}.wav"
                    self._run([sox, "-n", "-r", "8000", "-c", "1", "-b", "16", str(note), "synth", str(length),
                               "pluck", str(pitch), "fade", "0", str(length), str(min(.3, length / 2)), "vol", "0.4"])
            music = Path(work) / "music.wav"
            self._run([sox, *(str(notes[note]) for note in _TUNE), str(music)])
            self._put(music, target)

    @staticmethod
    def _run(command: list[str]) -> None:
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=RENDER_TIMEOUT)  # noqa: S603
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise PromptError(f"rendering a prompt failed: {exc}") from exc

    def _render(self, voice: str, text: str, target: Path) -> None:
        espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
        if espeak is None or sox is None:
            raise PromptError("espeak-ng and sox must be installed")
        with tempfile.TemporaryDirectory(prefix="prompt-") as work:
            spoken, converted = Path(work) / "spoken.wav", Path(work) / "prompt.wav"
            # The text goes as one argument after "--", never through a shell.
            self._run([espeak, "-v", voice, "-w", str(spoken), "--", text])
            self._run([sox, str(spoken), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(converted)])
            self._put(converted, target)

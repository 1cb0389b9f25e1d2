"""One live phone call as the IVR drives it: play prompts, collect keys and digits, take a voicemail, hang up.

The caller's channel sits alone in a mixing bridge of its own (``call-<channel id>``) from answer to hang-up;
the bridge is recorded whole, and prompts are played to the bridge so that the recording holds both sides.
Keys pressed at any time wait in a queue (type-ahead), so a key pressed during a prompt is not lost; a prompt
played ``interruptible`` stops at the first key. Once the caller has hung up every method raises
:class:`CallEnded`, so a script unwinds at its next step.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from channels.base import Attachment, CallLog
from channels.voice.ari import AriClient, AriError
from channels.voice.prompts import Prompts
from router.logs import get_logger
from router.models import CallEventKind, CallSide, utcnow
from router.tasks import first_done

log = get_logger(__name__)

MEDIA_SCHEMES = ("sound:", "recording:", "tone:", "digits:", "number:", "characters:")
HANGUP_REASONS = frozenset({"normal", "busy", "congestion", "no_answer", "timeout", "rejected", "unallocated",
                            "normal_unspecified", "failure"})
BEEP = "sound:beep"
HANGUP_SETTLE = 1.0  # seconds a failed playback waits to learn whether the caller hung up
RECORDING_GRACE = 10.0  # seconds to wait for Asterisk to close a recording that was stopped

StoreRecording = Callable[[str, str], Awaitable[Attachment | None]]  # (recording name, file name) → stored file


class CallEnded(Exception):
    """The caller hung up (or the call was ended): the IVR stops where it is."""


class LiveCall:
    """The per-call object the IVR runtime drives (see the module docstring)."""

    def __init__(self, *, ari: AriClient, prompts: Prompts, calls: CallLog, store_recording: StoreRecording,
                 call_id: int, channel_id: str, caller: str | None, did: str | None, language: str = "zh",
                 max_voicemail_seconds: int = 120, resumed: bool = False) -> None:
        self.call_id, self.channel_id, self.caller, self.did = call_id, channel_id, caller, did
        self.language = language
        self.resumed = resumed  # taken up again after the hub lost and regained Asterisk mid-call
        # Taken up while talking to an agent: their leg still in the bridge (None: the agent hung up meanwhile),
        # the agent's id, since when.
        self.talking: tuple[str | None, int, datetime] | None = None
        self.agent_left_noted = False  # taken up: the agents' hang-up is in the call's events already
        # Taken up while waiting in the queue for an agent: since when, and the team it waits for.
        self.waiting: tuple[datetime, str | None] | None = None
        self.last_node: str | None = None  # taken up: the IVR node the caller had entered last
        self.node: str | None = None  # the IVR node the caller is at, recorded with each key
        self.conversation_id: int | None = None
        self.bridge_id = f"call-{channel_id}"
        self.recording_name = f"call-{channel_id}"
        self.hangup_side = CallSide.CALLER
        self.ended = asyncio.Event()
        self.ended_at: datetime | None = None  # when the hub learned the call ended: the record's end time
        self.closed = asyncio.Event()  # the call's record is closed (its end time kept)
        self._ari, self._prompts, self._calls = ari, prompts, calls
        self._store_recording = store_recording
        self._max_voicemail = max_voicemail_seconds
        self._keys: deque[str] = deque()
        self._key_arrived = asyncio.Event()
        self._playbacks: dict[str, asyncio.Future[str]] = {}
        self._recordings: dict[str, asyncio.Future[str]] = {}
        self._voicemails = 0

    @property
    def external_id(self) -> str:
        """The resident's address on the voice channel: the caller's number, or this call for a withheld one."""
        return self.caller or f"anonymous-{self.channel_id}"

    @property
    def phone(self) -> str | None:
        """The caller's number where it reads as a phone number (E.164), for the contact and work orders."""
        return self.caller if self.caller and self.caller.startswith("+") else None

    # -- what the IVR calls ---------------------------------------------------------------------

    async def play(self, prompt: str, *, interruptible: bool = True, language: str | None = None,
                   values: Mapping[str, int] | None = None) -> str | None:
        """Play a prompt (text to speak, or an ARI media URI such as ``sound:…``) and wait until it ends.
        With ``values`` the text is a template whose ``{name}`` fields are those numbers.

        Returns the key that interrupted it (still waiting in the queue for ``collect_*``), else None.
        """
        self._check_live()
        is_media = prompt.startswith(MEDIA_SCHEMES)
        language = language or self.language
        if is_media:
            media = prompt
        elif values is not None:
            media, prompt = await self._prompts.composed(prompt, values, language), prompt.format_map(values)
        else:
            media = await self._prompts.media(prompt, language)
        started = utcnow()
        self._key_arrived.clear()  # from here on, a key interrupts (one pressed before is already queued)
        if interruptible and self._keys:
            await self._log_prompt(prompt, media, started, "skipped", is_media)
            return self._keys[0]
        playback_id = str(uuid.uuid4())
        finished = asyncio.get_running_loop().create_future()
        self._playbacks[playback_id] = finished
        try:
            await self._ari.play(f"bridges/{self.bridge_id}", media, playback_id)
            await first_done(finished, self.ended.wait(), *([self._key_arrived.wait()] if interruptible else []))
        except AriError as exc:
            self._check_live()
            raise CallEnded(f"prompt not played: {exc}") from exc
        except asyncio.CancelledError:
            # Cut short by the script (music stopped: the caller is put through): the bridge falls silent too.
            with contextlib.suppress(AriError):
                await self._ari.stop_playback(playback_id)
            await self._log_prompt(prompt, media, started, "stopped", is_media)
            raise
        finally:
            self._playbacks.pop(playback_id, None)
        if finished.done():
            outcome = finished.result()
            if outcome != "done":
                # A playback cut short by the caller hanging up ends before the channel's StasisEnd is heard.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.ended.wait(), HANGUP_SETTLE)
                outcome = "hangup" if self.ended.is_set() else outcome
        elif self.ended.is_set():
            outcome = "hangup"
        else:
            outcome = "interrupted"
            with contextlib.suppress(AriError):
                await self._ari.stop_playback(playback_id)
        await self._log_prompt(prompt, media, started, outcome, is_media)
        self._check_live()
        return self._keys[0] if outcome == "interrupted" and self._keys else None

    async def collect_key(self, timeout: float) -> str | None:  # noqa: ASYNC109  (the IVR's contract)
        """The next key the caller presses (or pressed already), or None after ``timeout`` seconds."""
        self._check_live()
        return await self._next_key(timeout)

    async def collect_digits(self, max_len: int, terminator: str = "#",
                             timeout: float = 5.0) -> str:  # noqa: ASYNC109  (the IVR's contract)
        """What the caller typed up to ``terminator`` (kept at the end, so that the terminator alone is told from
        silence) or until ``timeout`` seconds for the whole entry (as :class:`channels.voice.walk.CollectDigits`
        has it). Past ``max_len`` keys the rest of the entry up to the terminator is dropped: a number too long
        is refused as one, and its tail is not taken for the answer to the next question."""
        if max_len < 1:
            raise ValueError("max_len must be at least 1")
        self._check_live()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        digits = ""
        while (key := await self._next_key(max(0.0, deadline - loop.time()))) is not None:
            if key == terminator:
                return digits + key
            if len(digits) < max_len:
                digits += key
        return digits

    async def record_voicemail(self, max_seconds: int | None = None) -> Attachment | None:
        """A beep, then the caller's message until ``#``, the time limit or hang-up; the stored WAV.

        None when nothing was recorded (Asterisk refused, or the file did not come back).
        """
        self._check_live()
        limit = min(max_seconds or self._max_voicemail, self._max_voicemail)
        await self.play(BEEP, interruptible=False)
        self.discard_keys()  # keys pressed before the beep do not end the message
        self._voicemails += 1
        name = f"voicemail-{self.channel_id}-{self._voicemails}"
        started = utcnow()
        done = self.expect_recording(name)
        try:
            await self._ari.record(f"bridges/{self.bridge_id}", name, max_seconds=limit)
        except AriError as exc:
            self._recordings.pop(name, None)
            log.warning("voicemail not recorded", call_id=self.call_id, error=exc.message)
            self._check_live()
            return None
        # ``#`` raises CallEnded when the caller hung up instead: handled below, like any end.
        await first_done(done, self._until_key("#"), self.ended.wait())
        if not done.done():
            with contextlib.suppress(AriError):
                await self._ari.stop_recording(name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), RECORDING_GRACE)
        stored = await self._store_recording(name, f"voicemail-{self.call_id}-{self._voicemails}.wav")
        await self._calls.event(self.call_id, CallEventKind.VOICEMAIL, node=self.node, at=started, detail={
            "file_id": stored.file_id if stored else None, "size": stored.size if stored else 0,
            "max_seconds": limit})
        return stored

    async def hangup(self, cause: str = "normal") -> None:
        """End the call from the hub's side (``cause`` is one of ARI's hang-up reasons)."""
        if cause not in HANGUP_REASONS:
            raise ValueError(f"unknown hang-up reason {cause!r}")
        if self.ended.is_set():
            return
        self.hangup_side = CallSide.HUB
        with contextlib.suppress(AriError):  # gone already: the caller was quicker
            await self._ari.hangup(self.channel_id, cause)

    async def enter(self, node: str) -> None:
        """The caller reached IVR node ``node`` (kept in the call's path; later keys are recorded with it)."""
        self.node = node
        await self._calls.event(self.call_id, CallEventKind.NODE, node=node)

    async def note(self, kind: str, detail: dict[str, Any] | None = None, **fields: Any) -> None:
        """Record something else that happened (``lookup``: a self-service query and its result…), with the
        facts of the call it sets (``connected_at``…: see :meth:`record`) in the same write."""
        await self._calls.event(self.call_id, kind, node=self.node, detail=detail, fields=fields)

    async def set_outcome(self, outcome: str) -> None:
        await self._calls.update(self.call_id, outcome=outcome[:32])

    async def record(self, **fields: Any) -> None:
        """Keep facts of the call on its record (``queued_at``, ``agent_id``, ``connected_at``, ``survey_score``)."""
        await self._calls.update(self.call_id, **fields)

    # -- what the adapter calls -----------------------------------------------------------------

    def discard_keys(self) -> None:
        """Forget the keys pressed so far: the next question's answer is pressed after it."""
        self._keys.clear()

    async def key_pressed(self, digit: str, at: datetime) -> None:
        self._keys.append(digit)
        self._key_arrived.set()
        await self._calls.event(self.call_id, CallEventKind.KEY, node=self.node, key=digit, at=at)

    def playback_finished(self, playback_id: str, state: str) -> bool:
        waiter = self._playbacks.get(playback_id)
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_result(state)
        return True

    def expect_recording(self, name: str) -> asyncio.Future[str]:
        """A future that gets the recording's final state (``done``, ``failed``…) when Asterisk closes it."""
        waiter = self._recordings.get(name)
        if waiter is None:
            waiter = self._recordings[name] = asyncio.get_running_loop().create_future()
        return waiter

    def recording_finished(self, name: str, state: str) -> bool:
        waiter = self._recordings.get(name)
        if waiter is None:
            return False
        if not waiter.done():
            waiter.set_result(state)
        return True

    def live_recordings(self) -> list[str]:
        return [name for name, waiter in self._recordings.items() if not waiter.done()]

    def end(self) -> None:
        if self.ended_at is None:
            self.ended_at = utcnow()
        self.ended.set()
        self._key_arrived.set()

    # -- inside ---------------------------------------------------------------------------------

    def _check_live(self) -> None:
        if self.ended.is_set():
            raise CallEnded(self.channel_id)

    async def _next_key(self, timeout: float | None) -> str | None:  # noqa: ASYNC109
        """The oldest key not yet taken, waiting up to ``timeout`` seconds for one (raises once the call ended)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._keys:
            self._check_live()
            self._key_arrived.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._key_arrived.wait(), remaining)
        return self._keys.popleft()

    async def _until_key(self, wanted: str) -> None:
        while await self._next_key(None) != wanted:
            pass

    async def _log_prompt(self, prompt: str, media: str, started: datetime, outcome: str, is_media: bool) -> None:
        detail = {"media": media, "outcome": outcome, "ms": int((utcnow() - started).total_seconds() * 1000)}
        if not is_media:
            detail["text"] = prompt[:200]
        await self._calls.event(self.call_id, CallEventKind.PROMPT, node=self.node, at=started, detail=detail)

"""The phone channel: Asterisk hands every inbound call to the Stasis application, driven here over ARI.

On ``StasisStart`` a call is answered, put alone in a mixing bridge that is recorded from then to hang-up,
recorded in the ``call`` table and opened as a conversation on channel ``voice`` (the caller's number, in
E.164 where it reads as one, is the resident's address and phone: the contact of an SMS from the same
number), and handed to the call script: the IVR runtime, or, until one is plugged in, the welcome prompt.
Key presses are kept as call events, in order. On hang-up the call record is closed with the cause and the
side that ended it, and the recording is fetched over ARI into the hub's file store and linked to the call.

A phone call carries no text: ``send`` refuses for good, so that the outbound queue does not retry it.

The ARI WebSocket reconnects with back-off; after each connection the agents' phones are pushed to Asterisk
(channels/voice/phones.py), the calls still up in Asterisk are taken up again (the per-call object is rebuilt
around the open call record) and call records whose channel is gone are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from http import HTTPStatus
from typing import Any, ClassVar

from aiohttp import web

from channels.base import (
    Attachment,
    Capability,
    ChannelAdapter,
    ChannelSendError,
    DeliveryResult,
    InboundMessage,
    Journaled,
    OutboundMessage,
    RouterPort,
)
from channels.voice.agents import (
    AGENT_LEG,
    AGENT_LEG_PREFIX,
    CONVERSATION_TOPIC,
    SNOOP,
    CallControlRefused,
    Outside,
    PutThrough,
)
from channels.voice.ari import AriClient, AriError, Event
from channels.voice.call import RECORDING_GRACE, CallEnded, LiveCall
from channels.voice.campaigns import CAMPAIGN, CampaignDialer
from channels.voice.outbound import DialOut, ResidentLine
from channels.voice.phones import PHONES_TOPIC, PhoneBook
from channels.voice.prompts import Prompts
from router.acd.calls import AgentOnPhone
from router.db import unreachable
from router.logs import get_logger, mask_phone
from router.models import CallEventKind, CallSide, utcnow
from router.phones import normalized_phone
from router.spool import SpoolFull
from router.tasks import TaskSet

log = get_logger(__name__)

CHANNEL = "voice"
DESTROYED_WAIT = 5.0  # after StasisEnd, how long the channel's ChannelDestroyed (with the cause) is awaited
SCRIPT_END_GRACE = 10.0  # after the call's script, how long its channel's end is awaited before it is looked up

CallScript = Callable[[LiveCall], Awaitable[None]]


class VoiceAdapter(ChannelAdapter):
    name = CHANNEL
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.VOICE})

    def __init__(self, router: RouterPort) -> None:
        super().__init__(router)
        settings = router.settings
        self._settings = settings
        self.prompts = Prompts(settings.effective_prompt_dir)
        self.ari = AriClient(settings.voice_ari_url, settings.voice_ari_username,
                             settings.voice_ari_password.get_secret_value(), settings.voice_app,
                             on_resync=self._resync, backoff_max=settings.voice_reconnect_max_seconds)
        # What a call runs once answered (one coroutine per call, returning when the call is over for it): the
        # IVR (channels/voice/runtime.py), set when the application is put together.
        self.script: CallScript | None = None
        self.phones = PhoneBook(self.ari, router.calls.agent_phones, settings.voice_sip_realm)
        self.agents = PutThrough(self.ari, router.call_desk, self.prompts, settings.voice_ring_seconds)
        self.line = ResidentLine(router, self.ari,
                                 lambda call_id, channel_id, number, did: self._live_call(
                                     call_id, channel_id, number, did, resumed=False),
                                 lambda call: self.calls.pop(call.channel_id, None))
        self.outbound = DialOut(router, self.agents, self.line)
        self.campaigns = CampaignDialer(router, self.ari, self.line)
        self._unsubscribe: list[Callable[[], None]] = []
        self.calls: dict[str, LiveCall] = {}  # Asterisk channel id → live call
        self._destroyed: dict[str, asyncio.Future[tuple[int | None, str | None]]] = {}
        self._tasks = TaskSet()
        for event_type, handler in (("StasisStart", self._on_start), ("ChannelDtmfReceived", self._on_dtmf),
                                    ("PlaybackFinished", self._on_playback), ("RecordingFinished", self._on_recording),
                                    ("RecordingFailed", self._on_recording), ("StasisEnd", self._on_end),
                                    ("ChannelDestroyed", self._on_destroyed)):
            self.ari.on(event_type, handler)

    # -- ChannelAdapter -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        return []  # Asterisk is reached over ARI; nothing calls the hub

    def parse(self, raw: Any, external_id: str) -> InboundMessage:
        raise ValueError("电话渠道不接收文字消息")

    async def send(self, message: OutboundMessage) -> DeliveryResult:
        raise ChannelSendError("电话渠道无法发送文字消息,请回拨居民", retryable=False)

    async def start(self) -> None:
        self.prompts.directory.mkdir(parents=True, exist_ok=True)
        self._unsubscribe = [self.router.subscribe(PHONES_TOPIC, self._on_phones_changed),
                             self.router.subscribe(CONVERSATION_TOPIC, self.agents.on_conversation)]
        await self.ari.start()
        self._tasks.spawn(self.campaigns.run())

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        await self.campaigns.stop()
        await self._tasks.cancel()
        await self.ari.stop()

    @property
    def connected(self) -> bool:
        """Whether the hub hears Asterisk now (the events WebSocket is open)."""
        return self.ari.connected.is_set()

    def healthy(self) -> bool:
        return self.connected

    # -- agents on a call (the hub API) ---------------------------------------------------------------

    def agents_on_call(self, call_id: int) -> list[int]:
        """The agents talking on (or consulted about) a call put through in this process; [] otherwise."""
        return self.agents.on_call(call_id)

    async def control_call(self, call_id: int, action: str, actor_id: int | None, *,
                           consult_agent_id: int | None = None, consult_number: str | None = None,
                           team: str | None = None) -> dict[str, Any]:
        """An agent's hold, resume, consult (an agent, or a number outside: E.164), transfer, conference, cancel,
        send to ``team``'s queue or hang-up (channels/voice/agents.py)."""
        consult: AgentOnPhone | Outside | None = None
        if consult_number is not None:
            consult = self.line.outside(consult_number)
        elif consult_agent_id is not None:
            consult = await self.router.call_desk.agent_phone(consult_agent_id)
        return await self.agents.control(call_id, action, actor_id, consult, team)

    async def monitor_call(self, call_id: int, supervisor_id: int, mode: str) -> dict[str, Any]:
        """A supervisor listens, whispers or barges in on their own phone (channels/voice/agents.py)."""
        return await self.agents.monitor(call_id, await self._own_phone(supervisor_id), mode)

    async def call_resident(self, agent_id: int, number: str) -> int:
        """An agent's call to a resident (channels/voice/outbound.py): their phone rings first; the call's id."""
        return await self.outbound.call(await self._own_phone(agent_id), number)

    async def _own_phone(self, user_id: int) -> AgentOnPhone:
        """The phone of the staff member asking to be rung, or a refusal telling them to get one."""
        phone = await self.router.call_desk.agent_phone(user_id)
        if phone is None:
            raise CallControlRefused("请先为您的账号设置分机或软电话", "no_phone")
        return phone

    # -- a call begins ----------------------------------------------------------------------------

    async def _on_start(self, event: Event) -> None:
        channel = _channel(event)
        if channel is not None and channel["id"] in self.calls:
            self.line.answered(channel["id"])  # a resident called by an agent or a campaign answered
            return
        if channel is None or self.agents.leg_answered(channel["id"]):
            return
        channel_id = channel["id"]
        args = event.get("args")
        if isinstance(args, list) and args[:1] == [SNOOP]:
            self.agents.snoop_started(channel_id)  # a supervisor's snoop: the agents' side bridges it
            return
        if isinstance(args, list) and args[:1] in ([AGENT_LEG], [CAMPAIGN]):
            # An agent's phone answered a call this process no longer puts through (it restarted meanwhile), or a
            # resident a campaign call whose target was settled meanwhile.
            with contextlib.suppress(AriError):
                await self.ari.hangup(channel_id)
            return
        caller = _caller((channel.get("caller") or {}).get("number"))
        did = _number((channel.get("dialplan") or {}).get("exten"))
        call_id = await self.router.calls.open(channel_id, caller, did, _time(channel.get("creationtime")))
        call = self._live_call(call_id, channel_id, caller, did, resumed=False)
        log.info("call started", call_id=call_id, caller=mask_phone(caller) if caller else None, did=did)
        try:
            await self.ari.subscribe_channel(channel_id)
            await self.ari.answer(channel_id)
            answered = utcnow()
            await self.router.calls.update(call_id, answered_at=answered)
            await self.router.calls.event(call_id, CallEventKind.ANSWER, at=answered)
            await self.ari.create_bridge(call.bridge_id)
            await self.ari.add_to_bridge(call.bridge_id, channel_id)
            call.expect_recording(call.recording_name)
            await self.ari.record(f"bridges/{call.bridge_id}", call.recording_name)
        except AriError as exc:
            # Gone before it was set up (a caller who hung up at once): StasisEnd closes the record.
            log.warning("call not set up", call_id=call_id, error=exc.message)
            return
        await self._open_conversation(call)
        self._tasks.spawn(self._run_script(call))

    async def _open_conversation(self, call: LiveCall) -> None:
        inbound = InboundMessage(
            channel=CHANNEL, external_id=call.external_id,
            channel_message_id=f"call-{call.channel_id}", type="event",
            text=f"来电(拨打 {call.did})" if call.did else "来电",
            payload={"call": {"id": call.call_id, "did": call.did}},
            phone=call.phone)
        try:
            result = await self.router.ingest_or_journal(inbound)
        except SpoolFull:
            log.error("call not added to a conversation: database unreachable and the spool full",
                      call_id=call.call_id)
            return
        if not isinstance(result, Journaled):
            call.conversation_id = result.conversation_id
            await self.router.calls.update(call.call_id, conversation_id=result.conversation_id)

    def _live_call(self, call_id: int, channel_id: str, caller: str | None, did: str | None, *,
                   resumed: bool) -> LiveCall:
        call = LiveCall(ari=self.ari, prompts=self.prompts, calls=self.router.calls, call_id=call_id,
                        channel_id=channel_id, caller=caller, did=did,
                        store_recording=lambda name, file_name: self._store_recording(call, name, file_name),
                        max_voicemail_seconds=self._settings.voice_max_voicemail_seconds, resumed=resumed)
        self.calls[channel_id] = call
        return call

    async def _run_script(self, call: LiveCall) -> None:
        if self.script is None:
            log.error("no call script: hanging up", call_id=call.call_id)
            await call.hangup("congestion")
            return
        try:
            await self.script(call)
        except CallEnded:
            pass
        except Exception:
            log.exception("call script failed; hanging up", call_id=call.call_id)
            await call.hangup("normal")
        await self._closed_after_script(call)

    async def _closed_after_script(self, call: LiveCall) -> None:
        """Once the script is over the channel's end closes the call's record (StasisEnd). When the channel is
        gone without that event (it ended in the moments a restarted hub was taking the call up), close it
        here, as if the end had been heard, rather than leave the call talking on the wallboard for ever."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.ended.wait(), SCRIPT_END_GRACE)
            return
        try:
            await self.ari.request("GET", f"/channels/{call.channel_id}")
            return  # still up (put through to a number outside, say): its end will be heard
        except AriError as exc:
            if exc.status != HTTPStatus.NOT_FOUND or call.ended.is_set():
                return
        log.warning("call's channel gone unheard; closing its record", call_id=call.call_id)
        self._gone_unheard(call)

    # -- during the call --------------------------------------------------------------------------

    async def _on_dtmf(self, event: Event) -> None:
        channel, digit = _channel(event), event.get("digit")
        call = self.calls.get(channel["id"]) if channel is not None else None
        if call is None or not isinstance(digit, str) or len(digit) != 1:
            return
        await call.key_pressed(digit, _time(event.get("timestamp")))

    async def _on_playback(self, event: Event) -> None:
        playback = event.get("playback")
        if not isinstance(playback, dict) or not isinstance(playback.get("id"), str):
            log.warning("malformed ARI event dropped", type=event["type"], reason="no playback id")
            return
        for call in list(self.calls.values()):
            if call.playback_finished(playback["id"], str(playback.get("state", "done"))):
                return

    async def _on_recording(self, event: Event) -> None:
        recording = event.get("recording")
        if not isinstance(recording, dict) or not isinstance(recording.get("name"), str):
            log.warning("malformed ARI event dropped", type=event["type"], reason="no recording name")
            return
        state = str(recording.get("state", "failed"))
        for call in list(self.calls.values()):
            if call.recording_finished(recording["name"], state):
                return

    # -- the call ends ----------------------------------------------------------------------------

    async def _on_end(self, event: Event) -> None:
        channel = _channel(event)
        if channel is not None and self.agents.leg_gone(channel["id"], None):
            return
        call = self.calls.get(channel["id"]) if channel is not None else None
        if call is None:
            return
        destroyed = self._destroyed.setdefault(call.channel_id, asyncio.get_running_loop().create_future())
        call.end()
        self._tasks.spawn(self._finish(call, destroyed))

    async def _on_destroyed(self, event: Event) -> None:
        channel = _channel(event)
        cause = event.get("cause")
        code = cause if isinstance(cause, int) else None
        if channel is None or self.line.gone(channel["id"], code) or self.agents.leg_gone(channel["id"], code):
            return
        if channel["id"] not in self.calls and channel["id"] not in self._destroyed:
            return  # not a call of this process (an agent's leg the hub hung up itself)
        waiter = self._destroyed.setdefault(channel["id"], asyncio.get_running_loop().create_future())
        if not waiter.done():
            waiter.set_result((code, _text(event.get("cause_txt"))))

    def _gone_unheard(self, call: LiveCall) -> None:
        """Close ``call``, whose channel ended unheard: no StasisEnd nor ChannelDestroyed will come."""
        destroyed = self._destroyed.setdefault(call.channel_id, asyncio.get_running_loop().create_future())
        if not destroyed.done():
            destroyed.set_result((None, None))
        call.end()
        self._tasks.spawn(self._finish(call, destroyed))

    async def _finish(self, call: LiveCall, destroyed: asyncio.Future[tuple[int | None, str | None]]) -> None:
        """Close the call record with the cause, stop the recordings, and keep the call's recording."""
        try:
            cause, cause_text = await asyncio.wait_for(asyncio.shield(destroyed), DESTROYED_WAIT)
        except TimeoutError:
            cause, cause_text = None, None
        finally:
            self._destroyed.pop(call.channel_id, None)
        # The end as it was heard, not after the wait for its cause: the record's times are the call's own.
        await self.router.calls.close(call.call_id, ended_at=call.ended_at or utcnow(), cause=cause,
                                      cause_text=cause_text, side=call.hangup_side)
        call.closed.set()
        await self.router.calls.event(call.call_id, CallEventKind.HANGUP,
                                      detail={"cause": cause, "cause_text": cause_text, "side": call.hangup_side})
        log.info("call ended", call_id=call.call_id, cause=cause, side=call.hangup_side)
        for name in call.live_recordings():
            try:
                await self.ari.stop_recording(name)
            except AriError:
                call.recording_finished(name, "gone")  # not live in Asterisk (it restarted): no event will come
        with contextlib.suppress(AriError):
            await self.ari.destroy_bridge(call.bridge_id)
        stored = await self._store_recording(call, call.recording_name, f"call-{call.call_id}.wav")
        if stored is not None:
            await self.router.calls.update(call.call_id, recording_file_id=stored.file_id)
        self.calls.pop(call.channel_id, None)

    async def _store_recording(self, call: LiveCall, name: str, file_name: str) -> Attachment | None:
        """Wait for Asterisk to close recording ``name``, fetch it into the file store, and delete it there."""
        waiter = call.expect_recording(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), RECORDING_GRACE)
        try:
            data = await self.ari.recording_file(name)
        except AriError as exc:
            log.warning("recording not fetched", call_id=call.call_id, recording=name, error=exc.message)
            return None
        external_id = call.caller or f"anonymous-{call.channel_id}"
        stored = await self.router.store_file(CHANNEL, external_id, file_name, "audio/wav", data)
        with contextlib.suppress(AriError):
            await self.ari.delete_recording(name)
        return stored

    # -- after a (re)connection -------------------------------------------------------------------

    async def _on_phones_changed(self, event: dict[str, Any]) -> None:
        if self.connected:  # else the next connection pushes every phone
            await self._sync_phones(self.phones.sync)

    async def _sync_phones(self, sync: Callable[[], Awaitable[None]]) -> None:
        try:
            await sync()
        except AriError as exc:
            log.warning("agent phones not synced with Asterisk; again at the next connection", error=exc.message)
        except Exception as exc:
            if not unreachable(exc):
                raise
            log.warning("agent phones not synced: database unreachable; again at the next connection")

    async def _resync(self, channels: list[dict[str, Any]]) -> None:
        """Push the agents' phones (Asterisk may have restarted); take up calls that are up in Asterisk but not
        known here; close records of calls that are gone."""
        await self._sync_phones(self.phones.push_all)
        live = {c["id"]: c for c in channels if isinstance(c.get("id"), str)}
        for channel_id, call in list(self.calls.items()):
            if channel_id not in live and not call.ended.is_set():
                self._gone_unheard(call)  # ended while the events were not heard
        records = await self.router.calls.open_calls()
        for channel_id, record in records.items():
            if channel_id in self.calls:
                continue
            call_id, channel = record.call_id, live.get(channel_id)
            if channel is None:
                await self.router.calls.close(call_id, ended_at=utcnow(), cause=None, cause_text=None,
                                              side=CallSide.CALLER)
                continue
            caller = _caller((channel.get("caller") or {}).get("number"))
            call = self._live_call(call_id, channel_id, caller, _number((channel.get("dialplan") or {}).get("exten")),
                                   resumed=True)
            call.conversation_id = record.conversation_id
            call.expect_recording(call.recording_name)
            with contextlib.suppress(AriError):
                await self.ari.subscribe_channel(channel_id)
            if channel_id.startswith(f"{CAMPAIGN}-"):
                log.info("campaign call taken up again", call_id=call_id)
                await self.campaigns.take_up(call)
                continue
            call.talking = await self._agent_leg(call)
            waiting = await self.router.calls.waiting(call_id) if call.talking is None else None
            if waiting is not None:
                call.waiting = waiting
            elif call.talking is None:
                call.last_node = await self.router.calls.last_node(call_id)
            log.info("call taken up again", call_id=call_id, with_agent=call.talking is not None,
                     waiting=waiting is not None)
            self._tasks.spawn(self._run_script(call))
        await self.campaigns.settle(set(live))

    async def _agent_leg(self, call: LiveCall) -> tuple[str | None, int, datetime] | None:
        """The agent's leg of a call taken up after a restart, when it was talking to one (still in its bridge,
        else None: the agent hung up meanwhile); any further leg (a conference) is hung up: the hub no longer knows
        whose it is."""
        talking = await self.router.calls.talking(call.call_id)
        if talking is None:
            return None
        try:
            bridge = await self.ari.request("GET", f"/bridges/{call.bridge_id}")
        except AriError:
            bridge = {}
        legs = [c for c in bridge.get("channels", []) if isinstance(c, str) and c.startswith(AGENT_LEG_PREFIX)]
        for extra in legs[1:]:
            with contextlib.suppress(AriError):
                await self.ari.hangup(extra)
        agent_id, connected, left = talking
        call.agent_left_noted = left
        return (legs[0] if legs else None, agent_id, connected)


def _channel(event: Event) -> dict[str, Any] | None:
    channel = event.get("channel")
    if not isinstance(channel, dict) or not isinstance(channel.get("id"), str) or not channel["id"]:
        log.warning("malformed ARI event dropped", type=event.get("type"), reason="no channel id")
        return None
    return channel


def _number(value: Any) -> str | None:
    """A phone number as Asterisk gave it, or None when absent or not a number (withheld, ``s``)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and len(value) <= 32 and value.lstrip("+").isdigit() else None


def _caller(value: Any) -> str | None:
    """The caller's number in E.164 where it reads as a phone number, else as Asterisk gave it (or None)."""
    number = _number(value)
    return (normalized_phone(number) or number) if number is not None else None


def _text(value: Any) -> str | None:
    return value[:64] if isinstance(value, str) else None


def _time(value: Any) -> datetime:
    """An ARI timestamp (``2026-12-06T03:20:10.617+0000``), or now when absent or unreadable."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
    return utcnow()

"""An agent calls a resident (click to call): the hub rings the agent's phone first, then the resident through
the carrier's trunk, and puts both in a recorded bridge, as for a call that came in.

The resident's number is dialled at ``HUB_VOICE_OUTBOUND_URI`` (``sip:{number}@<carrier>``; ``{number}`` is the
national number, digits only), through the trunk endpoint ``callers``, showing ``HUB_VOICE_OUTBOUND_CALLER_ID``.
The call is a ``call`` row like any other (``did`` ``outbound``; its ``caller`` is the resident's number) in the
resident's conversation on channel ``voice``, which goes to the agent; its events are those of an inbound call
put through (``ring``, ``connect``, ``agent_hangup``) and ``dial`` for the resident's side. No survey follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from channels.base import InboundMessage, Journaled, RouterPort
from channels.voice.agents import CallControlRefused, LegLost, Outside, PutThrough
from channels.voice.ari import AriClient, AriError
from channels.voice.call import CallEnded, LiveCall
from router.acd.calls import AgentOnPhone
from router.logs import get_logger, mask_phone
from router.models import CallEventKind, utcnow
from router.tasks import TaskSet, first_done

log = get_logger(__name__)

OUTBOUND = "outbound"  # the ``did`` of an outbound call's record, and the resident's leg's application argument
TRUNK = "callers"  # the PJSIP endpoint of the carrier's trunk (docker/asterisk, tests/support/asterisk.py)
ANSWER_SLACK_SECONDS = 5.0


@dataclass(frozen=True)
class Ring:
    """How ringing a resident ended: answered (their leg is in the application now), or not, with the Q.850 cause
    Asterisk gave (17 busy, 19 no answer…; None when it said none)."""

    answered: bool
    cause: int | None = None


class ResidentLine:
    """Calls residents through the carrier's trunk (``HUB_VOICE_OUTBOUND_URI``): places the call's record, rings,
    connects the answered leg to its recorded bridge, or closes the record of a call nobody answered. The adapter
    tells it when a ringing leg answers (``StasisStart``) or is gone (``ChannelDestroyed``)."""

    def __init__(self, router: RouterPort, ari: AriClient, new_call: Callable[[int, str, str, str], LiveCall],
                 forget: Callable[[LiveCall], None]) -> None:
        """``new_call(call_id, channel_id, number, did)`` makes the live call the adapter follows (its end, its
        recording); ``forget`` drops one that never got that far."""
        self._router, self._ari, self._new_call, self._forget = router, ari, new_call, forget
        self._ringing: dict[str, tuple[asyncio.Event, asyncio.Future[int | None]]] = {}

    def answered(self, channel_id: str) -> bool:
        waiting = self._ringing.get(channel_id)
        if waiting is not None:
            waiting[0].set()
        return waiting is not None

    def gone(self, channel_id: str, cause: int | None) -> bool:
        """A ringing leg went without answering; whether it was one of this line's."""
        waiting = self._ringing.get(channel_id)
        if waiting is None or waiting[0].is_set():
            return False
        if not waiting[1].done():
            waiting[1].set_result(cause)
        return True

    def endpoint(self, number: str) -> str:
        """How Asterisk dials ``number`` (E.164) through the trunk, or a refusal when no trunk is configured."""
        uri = self._router.settings.voice_outbound_uri
        if not uri:
            raise CallControlRefused("未配置外呼线路(HUB_VOICE_OUTBOUND_URI)", "no_trunk")
        return f"PJSIP/{TRUNK}/{uri.replace('{number}', _national(number))}"

    def outside(self, number: str) -> Outside:
        """``number`` (E.164) as a party an agent consults or transfers a caller to."""
        return Outside(number, self.endpoint(number), self._router.settings.voice_outbound_caller_id or None)

    async def place(self, number: str, did: str) -> LiveCall:
        """The record and live call of a call about to go out to ``number``; ``did`` tells what it is for."""
        channel_id = f"{did}-{uuid.uuid4()}"
        call_id = await self._router.calls.open(channel_id, number, did, utcnow())
        return self._new_call(call_id, channel_id, number, did)

    async def ring(self, call: LiveCall, endpoint: str, ring_seconds: int) -> Ring:
        """Ring ``endpoint`` as the call's channel for up to ``ring_seconds``; hung up if it is still ringing then."""
        answered = asyncio.Event()
        gone: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._ringing[call.channel_id] = (answered, gone)
        try:
            await call.note(CallEventKind.DIAL, {"number": mask_phone(call.caller or "")})
            await self._ari.originate(endpoint, call.channel_id, app_args=call.did or OUTBOUND,
                                      ring_seconds=ring_seconds,
                                      caller_id=self._router.settings.voice_outbound_caller_id or None)
            await first_done(call.ended.wait(), answered.wait(), gone, timeout=ring_seconds + ANSWER_SLACK_SECONDS)
        except AriError as exc:
            log.warning("resident not dialled", call_id=call.call_id, error=exc.message)
        finally:
            self._ringing.pop(call.channel_id, None)
        if answered.is_set() and not call.ended.is_set():
            return Ring(answered=True)
        if not gone.done() and not call.ended.is_set():  # no word from Asterisk: make sure it stops ringing
            await call.hangup("normal")
        return Ring(answered=False, cause=gone.result() if gone.done() else None)

    async def connect(self, call: LiveCall) -> None:
        """The answered resident's leg into the call's bridge, recorded from here."""
        with contextlib.suppress(AriError):  # its ChannelDestroyed (the hang-up cause) after it leaves the app
            await self._ari.subscribe_channel(call.channel_id)
        await self._ari.create_bridge(call.bridge_id)
        await self._ari.add_to_bridge(call.bridge_id, call.channel_id)
        call.expect_recording(call.recording_name)
        await self._ari.record(f"bridges/{call.bridge_id}", call.recording_name)
        await call.record(answered_at=utcnow())

    async def close_unanswered(self, call: LiveCall, outcome: str, cause_text: str, cause: int | None = None) -> None:
        """Close the record of a call that was never answered (no ``StasisEnd`` will come to close it)."""
        await call.set_outcome(outcome)
        await self._router.calls.close(call.call_id, ended_at=utcnow(), cause=cause, cause_text=cause_text,
                                       side="hub")
        call.closed.set()
        call.end()
        self._forget(call)


class DialOut:
    """Places agents' calls to residents."""

    def __init__(self, router: RouterPort, agents: PutThrough, line: ResidentLine) -> None:
        self._router, self._agents, self._line = router, agents, line
        self._tasks = TaskSet()

    async def call(self, agent: AgentOnPhone, number: str) -> int:
        """Start a call from ``agent`` to ``number`` (E.164); its call id. The agent's phone rings first."""
        endpoint = self._line.endpoint(number)
        call = await self._line.place(number, OUTBOUND)
        self._tasks.spawn(self._run(call, agent, endpoint))
        return call.call_id

    async def _run(self, call: LiveCall, agent: AgentOnPhone, endpoint: str) -> None:
        try:
            leg, cause = await self._agents.dial(call, agent)
            if leg is None:
                await call.note(CallEventKind.MISSED, {"agent_id": agent.agent_id, "cause": cause})
                await self._line.close_unanswered(call, "agent_missed", cause)
                return
            ring = await self._line.ring(call, endpoint, self._router.settings.voice_outbound_ring_seconds)
            if not ring.answered:
                await self._line.close_unanswered(call, "no_answer", "no answer", ring.cause)
                await self._agents.hang_up(leg)
                return
            await self._line.connect(call)
            await self._open_conversation(call, agent)
            await self._agents.talk(call, leg)
            await call.hangup("normal")  # the agent hung up: so does the resident's side
        except CallEnded:
            pass
        except (AriError, CallControlRefused, LegLost) as exc:
            log.warning("outbound call failed", call_id=call.call_id, error=str(exc))
            await call.hangup("normal")

    async def _open_conversation(self, call: LiveCall, agent: AgentOnPhone) -> None:
        result = await self._router.ingest_or_journal(InboundMessage(
            channel="voice", external_id=call.external_id, channel_message_id=f"call-{call.channel_id}", type="event",
            text=f"坐席外呼({agent.name})", payload={"call": {"id": call.call_id, "outbound": True}},
            phone=call.phone))
        if isinstance(result, Journaled):
            return
        call.conversation_id = result.conversation_id
        await self._router.calls.update(call.call_id, conversation_id=result.conversation_id)
        await self._router.call_desk.hand_over(result.conversation_id, agent.agent_id)


def _national(number: str) -> str:
    """The number as the carrier is dialled: digits, without China's country code."""
    digits = number.lstrip("+")
    return digits[2:] if number.startswith("+86") else digits

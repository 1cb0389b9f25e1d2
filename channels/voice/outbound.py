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
import uuid
from collections.abc import Callable

from channels.base import InboundMessage, Journaled, RouterPort
from channels.voice.agents import CallControlRefused, PutThrough
from channels.voice.ari import AriClient, AriError
from channels.voice.call import CallEnded, LiveCall
from router.acd.calls import AgentOnPhone
from router.logs import get_logger, mask_phone
from router.models import CallEventKind, utcnow

log = get_logger(__name__)

OUTBOUND = "outbound"  # the ``did`` of an outbound call's record, and the resident's leg's application argument
ANSWER_SLACK_SECONDS = 5.0


class DialOut:
    """Places agents' calls to residents; the adapter tells it when a resident's leg answers or goes."""

    def __init__(self, router: RouterPort, ari: AriClient, agents: PutThrough,
                 new_call: Callable[[int, str, str], LiveCall], forget: Callable[[LiveCall], None]) -> None:
        """``new_call(call_id, channel_id, number)`` makes the live call the adapter follows (its end, its
        recording) for the resident's leg; ``forget`` drops one that never got that far."""
        self._router, self._ari, self._agents = router, ari, agents
        self._new_call, self._forget = new_call, forget
        self._answered: dict[str, asyncio.Event] = {}  # the resident's leg → answered
        self._tasks: set[asyncio.Task[None]] = set()

    def answered(self, channel_id: str) -> bool:
        waiter = self._answered.get(channel_id)
        if waiter is not None:
            waiter.set()
        return waiter is not None

    async def call(self, agent: AgentOnPhone, number: str) -> int:
        """Start a call from ``agent`` to ``number`` (E.164); its call id. The agent's phone rings first."""
        uri = self._router.settings.voice_outbound_uri
        if not uri:
            raise CallControlRefused("未配置外呼线路(HUB_VOICE_OUTBOUND_URI)", "no_trunk")
        channel_id = f"{OUTBOUND}-{uuid.uuid4()}"
        call_id = await self._router.calls.open(channel_id, number, OUTBOUND, utcnow())
        call = self._new_call(call_id, channel_id, number)
        task = asyncio.create_task(self._run(call, agent, uri.replace("{number}", _national(number))))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call_id

    async def _run(self, call: LiveCall, agent: AgentOnPhone, uri: str) -> None:
        try:
            leg, cause = await self._agents.dial(call, agent)
            if leg is None:
                await call.note(CallEventKind.MISSED, {"agent_id": agent.agent_id, "cause": cause})
                await self._close_unanswered(call, "agent_missed", cause)
                return
            if not await self._dial_resident(call, uri):
                await self._agents.hang_up(leg)
                return
            await self._ari.create_bridge(call.bridge_id)
            await self._ari.add_to_bridge(call.bridge_id, call.channel_id)
            call.expect_recording(call.recording_name)
            await self._ari.record(f"bridges/{call.bridge_id}", call.recording_name)
            await call.record(answered_at=utcnow())
            await self._open_conversation(call, agent)
            await self._agents.talk(call, leg)
            await call.hangup("normal")  # the agent hung up: so does the resident's side
        except CallEnded:
            pass
        except (AriError, CallControlRefused) as exc:
            log.warning("outbound call failed", call_id=call.call_id, error=str(exc))
            await call.hangup("normal")

    async def _dial_resident(self, call: LiveCall, uri: str) -> bool:
        answered = self._answered[call.channel_id] = asyncio.Event()
        ring = self._router.settings.voice_outbound_ring_seconds
        try:
            await call.note(CallEventKind.DIAL, {"number": mask_phone(call.caller or "")})
            await self._ari.originate(f"PJSIP/callers/{uri}", call.channel_id, app_args=OUTBOUND, ring_seconds=ring,
                                      caller_id=self._router.settings.voice_outbound_caller_id or None)
            ended = asyncio.ensure_future(call.ended.wait())
            told = asyncio.ensure_future(answered.wait())
            await asyncio.wait([ended, told], timeout=ring + ANSWER_SLACK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            told.cancel()
        except AriError as exc:
            log.warning("resident not dialled", call_id=call.call_id, error=exc.message)
        finally:
            self._answered.pop(call.channel_id, None)
        if answered.is_set() and not call.ended.is_set():
            return True
        if not call.ended.is_set():  # never answered: no StasisEnd will close the record
            await call.hangup("normal")
        await self._close_unanswered(call, "no_answer", "no answer")
        return False

    async def _close_unanswered(self, call: LiveCall, outcome: str, cause: str) -> None:
        await call.set_outcome(outcome)
        await self._router.calls.close(call.call_id, ended_at=utcnow(), cause=None, cause_text=cause, side="hub")
        call.end()
        self._forget(call)

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

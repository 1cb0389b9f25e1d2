"""A caller put through to an agent: queued through the ACD, music and their place while they wait, the chosen
agent's phone rung, both talking in the call's recorded bridge.

The call's conversation is queued like a chat (router/acd/calls.py); the distributor assigns it to a ready
agent with a phone and nothing else open. The hub hears of the assignment on the conversation topic (and looks
every few seconds besides, so a lost event delays nobody for long), then originates a channel to the agent's
phone (``PJSIP/<extension>``) into this application. Answered, that channel enters the call's mixing bridge,
which has been recorded since the call was answered, so the recording holds the whole call. Not answered within
``HUB_VOICE_RING_SECONDS`` (or busy, or not registered), the call waits again in its place, the agent is set
away, and the ACD picks the next agent. Meanwhile the caller hears their place in the queue and the expected
wait, then music, over and over.

A caller who hangs up before an agent answers is counted as abandoned (with the wait) and put on the callback
list. When the caller hangs up while talking, the agent's phone is hung up; when the agent hangs up first, the
caller stays on the line for the survey (channels/voice/runtime.py).

Besides another agent, an agent may consult an outside number (a district office, another utility's line) rung
through the carrier's trunk, then transfer the caller there or bring it into a conference; a caller transferred
out talks with that party, recorded, until either hangs up (no survey: nobody of the hotline was on the line at
the end). An agent may also send the caller back to a team's queue (a blind transfer): the caller waits there,
with music and their place, for the next agent the ACD picks.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any

from channels.base import CallDesk
from channels.voice.ari import AriClient, AriError
from channels.voice.call import CallEnded, LiveCall
from channels.voice.prompts import Prompts
from router.acd.calls import AgentOnPhone
from router.logs import get_logger, mask_phone
from router.models import CallEventKind, utcnow
from router.tasks import TaskSet, first_done

log = get_logger(__name__)

CONVERSATION_TOPIC = "conversation"  # the hub's conversation events: an assignment puts a caller through
AGENT_LEG = "agent"  # the first application argument of a channel rung to an agent's phone
AGENT_LEG_PREFIX = "agent-"  # of the channel ids of agents' legs (and supervisors')
SNOOP = "snoop"  # the first application argument of a supervisor's snoop on a call
# How a supervisor joins a call: what their snoop hears (spy) and whom their voice reaches (whisper); a barge
# joins the call's bridge itself.
MONITOR_MODES = {"listen": ("caller", "both", "none"), "whisper": ("agent", "both", "out"), "barge": None,
                 "takeover": None}
CONVERSATION_HEADER, CALL_HEADER = "X-Hub-Conversation", "X-Hub-Call"  # on the INVITE to an agent's phone
LOOK_AGAIN_SECONDS = 3.0  # how often a waiting call asks whether it was assigned, besides the events
RING_SLACK_SECONDS = 5.0  # past the ring time, how long to wait for Asterisk to report the unanswered leg
SNOOP_START_SECONDS = 5.0  # how long a snoop may take to enter the application (it can be bridged only then)
# Q.850 causes of an agent's phone not taking a call, as the reason kept with the missed ring.
MISSED_CAUSES = {17: "busy", 18: "no_response", 19: "no_answer", 20: "unregistered", 21: "rejected"}


@dataclass(frozen=True)
class Outside:
    """A number outside the hotline an agent consults or transfers to, rung through the carrier's trunk."""

    number: str  # E.164
    endpoint: str  # how Asterisk dials it (``PJSIP/callers/sip:…``)
    caller_id: str | None  # the number the called party sees


@dataclass
class AgentLeg:
    """The channel rung to an agent's phone (or, with ``outside``, to a number outside): answered (it entered the
    application) or gone (with the cause)."""

    channel_id: str
    agent: AgentOnPhone
    answered: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    gone: asyncio.Future[int | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    outside: Outside | None = None

    @property
    def party(self) -> dict[str, Any]:
        """Who is on this leg, as call events record it."""
        return _party(self.outside or self.agent)


def _party(who: AgentOnPhone | Outside) -> dict[str, Any]:
    """An agent or a number outside, as call events record them (the number masked)."""
    return {"number": mask_phone(who.number)} if isinstance(who, Outside) else {"agent_id": who.agent_id}


OUTSIDE_AGENT = AgentOnPhone(0, "外线", "")  # the stand-in agent of a leg to an outside number


class Requeued(Exception):
    """An agent sent the caller back to a team's queue (``team``: its name)."""

    def __init__(self, team: str) -> None:
        super().__init__(team)
        self.team = team


class LegLost(Exception):
    """The agent's phone answered, then was gone before it joined the caller (the agent hung up at once)."""


@dataclass(frozen=True)
class QueueTexts:
    """What the caller hears while waiting, in their language: ``position`` has ``{ahead}`` and ``{minutes}``."""

    position: str
    language: str


class CallNotHere(Exception):
    """The call is not talking to agents in this hub process."""


class CallControlRefused(Exception):
    """An agent's request the call's state does not allow; ``message`` is for the agent."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message, self.code = message, code


@dataclass
class Monitor:
    """A supervisor on a call: their leg, and for listen and whisper the snoop and the bridge joining them."""

    leg: AgentLeg
    mode: str
    snoop_id: str | None = None
    bridge_id: str | None = None


@dataclass
class Talk:
    """A caller put through: the agents on the call, the one consulted aside, and the music while on hold."""

    call: LiveCall
    legs: dict[int, AgentLeg]  # agent id → their leg, talking with the caller (or aside while on hold)
    consulted: AgentLeg | None = None  # an agent (or an outside number) asked aside while the caller is on hold
    outside: AgentLeg | None = None  # an outside number on the call, after a transfer or conference
    requeue_team: str | None = None  # the team's queue an agent sent the caller back to
    may_requeue: bool = False  # a caller who came through the IVR (not one taken up after a restart, nor called)
    music: asyncio.Task[None] | None = None  # while the caller is on hold
    aside_made: bool = False  # the bridge the agents step aside into exists
    monitors: dict[int, Monitor] = field(default_factory=dict)  # supervisor id → how they are on the call
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def aside_bridge(self) -> str:
        return f"aside-{self.call.channel_id}"

    @property
    def parties(self) -> list[AgentLeg]:
        """Everybody on the call with the caller: the agents and an outside number."""
        return [*self.legs.values(), *filter(None, [self.outside])]

    def state(self) -> dict[str, Any]:
        consulted = self.consulted.party if self.consulted else {}
        return {"call_id": self.call.call_id, "agents": list(self.legs), "held": self.music is not None,
                "consulted": consulted.get("agent_id"), "consulted_number": consulted.get("number"),
                "outside": self.outside.party["number"] if self.outside else None,
                "monitors": {str(supervisor): m.mode for supervisor, m in self.monitors.items()
                             if not m.leg.gone.done()}}


def _hangup_kind(leg: AgentLeg) -> CallEventKind:
    return CallEventKind.OUTSIDE_HANGUP if leg.outside is not None else CallEventKind.AGENT_HANGUP


class PutThrough:
    """Puts callers through to agents; one per voice adapter. The adapter passes it the events of agents' legs."""

    def __init__(self, ari: AriClient, desk: CallDesk, prompts: Prompts, ring_seconds: int) -> None:
        self._ari, self._desk, self._prompts, self._ring_seconds = ari, desk, prompts, ring_seconds
        self._legs: dict[str, AgentLeg] = {}
        self._assigned: dict[int, asyncio.Event] = {}  # conversation id of a waiting call → "look again"
        self._talks: dict[int, Talk] = {}  # call id → the call put through
        self._monitoring = TaskSet()  # each supervisor on a call, until they hang up
        self._snoops: dict[str, asyncio.Future[None]] = {}  # snoop channel id → set once it is in the application

    # -- events the adapter passes on ------------------------------------------------------------------

    async def on_conversation(self, event: dict[str, Any]) -> None:
        """A conversation changed: a waiting call whose conversation was assigned looks at once."""
        conversation = event.get("conversation") if event.get("type") == "conversation" else None
        if isinstance(conversation, dict) and conversation.get("state") == "assigned":
            waiting = self._assigned.get(conversation.get("id"))  # type: ignore[arg-type]
            if waiting is not None:
                waiting.set()

    def leg_answered(self, channel_id: str) -> bool:
        """The agent's phone answered (the leg entered the application); False when it is not an agent's leg."""
        return self._settle(channel_id, "answered", None)

    def snoop_started(self, channel_id: str) -> None:
        """A supervisor's snoop entered the application: it may be bridged now."""
        started = self._snoops.get(channel_id)
        if started is not None and not started.done():
            started.set_result(None)

    def leg_gone(self, channel_id: str, cause: int | None) -> bool:
        """The agent's leg left the application or was destroyed; False when it is not an agent's leg."""
        return self._settle(channel_id, "gone", cause)

    def _settle(self, channel_id: str, outcome: str, value: int | None) -> bool:
        leg = self._legs.get(channel_id)
        if leg is None:
            return False
        future: asyncio.Future[Any] = getattr(leg, outcome)
        if not future.done():
            future.set_result(value)
        return True

    # -- a caller who asked for a person ------------------------------------------------------------------

    async def __call__(self, call: LiveCall, *, team: str | None, texts: QueueTexts,
                       since: datetime | None = None) -> datetime | None:
        """Queue the call and put it through (``since``: it waits in the queue since then already, taken up after
        a restart: it keeps its place). When the agent hung up first and the caller is still there (the survey
        follows): when they were put through; None when nobody could be assigned the call (the database is
        away). Raises :class:`CallEnded` when the caller hung up, waiting or talking."""
        conversation_id = call.conversation_id
        if conversation_id is None:
            return None
        look = self._assigned.setdefault(conversation_id, asyncio.Event())
        queued = since or utcnow()
        await self._desk.enqueue(conversation_id, team=team)
        if since is None:
            await call.note(CallEventKind.QUEUED, {"team": team}, queued_at=queued)
        leg: AgentLeg | None = None
        hold: asyncio.Task[None] | None = None
        try:
            while True:
                hold = asyncio.create_task(self._hold(call, conversation_id, texts))
                while leg is None:
                    agent = await self._next_agent(call, conversation_id, look)
                    leg = await self._ring(call, conversation_id, agent)
                # The music stops while the agent joins: the agent's phone is not kept waiting for the music's
                # last words to be recorded.
                hold.cancel()
                try:
                    return await self._talk(call, leg, may_requeue=True)
                except Requeued as requeued:  # back in a queue: the wait starts again
                    leg, queued = None, utcnow()
                    await self._desk.requeue(conversation_id, team=requeued.team)
                except LegLost:  # as if the phone had not answered: back in the queue in its place
                    lost, leg = leg, None
                    await self._hang_up_leg(lost)
                    await call.note(CallEventKind.MISSED, {"agent_id": lost.agent.agent_id, "cause": "gone"})
                    await self._desk.ring_missed(conversation_id, lost.agent.agent_id, "gone")
                finally:
                    await asyncio.gather(hold, return_exceptions=True)
        except CallEnded:
            if leg is None or not leg.answered.done():
                waited = round((utcnow() - queued).total_seconds(), 1)
                await call.note(CallEventKind.ABANDON, {"waited_seconds": waited}, outcome="abandoned")
                await self._desk.abandon(conversation_id, phone=call.phone)
                log.info("caller hung up waiting for an agent", call_id=call.call_id, waited_seconds=waited)
            raise
        except asyncio.CancelledError:
            leg = None  # the hub is stopping: the call goes on in Asterisk for the next process to take up
            raise
        finally:
            if hold is not None:
                hold.cancel()
                await asyncio.gather(hold, return_exceptions=True)
            self._assigned.pop(conversation_id, None)
            if leg is not None:
                await self._hang_up_leg(leg)

    async def _hold(self, call: LiveCall, conversation_id: int, texts: QueueTexts) -> None:
        """The caller's place and expected wait, then music; again and again until cancelled."""
        music = await self._prompts.hold_music()
        while True:
            try:
                standing = await self._desk.standing(conversation_id)
            except Exception as exc:  # the database is away: music alone until it is back
                log.warning("queue position not known", call_id=call.call_id, error=str(exc))
            else:
                await call.note(CallEventKind.ANNOUNCE, {"ahead": standing.ahead, "minutes": standing.minutes})
                await call.play(texts.position, values={"ahead": standing.ahead, "minutes": standing.minutes},
                                interruptible=False, language=texts.language)
            await call.play(music, interruptible=False)

    async def _next_agent(self, call: LiveCall, conversation_id: int, look: asyncio.Event) -> AgentOnPhone:
        while True:
            if call.ended.is_set():
                raise CallEnded(call.channel_id)
            look.clear()
            agent = await self._desk.assigned_agent(conversation_id)
            if agent is not None:
                return agent
            await first_done(call.ended.wait(), look.wait(), timeout=LOOK_AGAIN_SECONDS)

    async def _ring(self, call: LiveCall, conversation_id: int, agent: AgentOnPhone) -> AgentLeg | None:
        """Ring the agent the ACD chose; the answered leg, or None (the call back in the queue) when it was not."""
        leg, cause = await self.dial(call, agent)
        if leg is not None:
            return leg
        await call.note(CallEventKind.MISSED, {"agent_id": agent.agent_id, "cause": cause})
        await self._desk.ring_missed(conversation_id, agent.agent_id, cause)
        return None

    async def dial(self, call: LiveCall, agent: AgentOnPhone) -> tuple[AgentLeg | None, str]:
        """Ring an agent's phone for the call; the answered leg, or None and why it was not answered."""
        leg = AgentLeg(channel_id=f"{AGENT_LEG_PREFIX}{uuid.uuid4()}", agent=agent)
        await call.note(CallEventKind.RING, {"agent_id": agent.agent_id, "extension": agent.extension})
        return await self._ring_leg(call, leg, f"PJSIP/{agent.extension}", call.caller, {
            # The inbox's softphone opens the caller's conversation (screen pop).
            f"PJSIP_HEADER(add,{CONVERSATION_HEADER})": str(call.conversation_id or ""),
            f"PJSIP_HEADER(add,{CALL_HEADER})": str(call.call_id)})

    async def dial_outside(self, call: LiveCall, outside: Outside) -> tuple[AgentLeg | None, str]:
        """Ring a number outside the hotline for the call, through the carrier's trunk."""
        leg = AgentLeg(channel_id=f"{AGENT_LEG_PREFIX}{uuid.uuid4()}", agent=OUTSIDE_AGENT, outside=outside)
        await call.note(CallEventKind.DIAL, leg.party)
        return await self._ring_leg(call, leg, outside.endpoint, outside.caller_id, {})

    async def _ring_leg(self, call: LiveCall, leg: AgentLeg, endpoint: str, caller_id: str | None,
                        variables: dict[str, str]) -> tuple[AgentLeg | None, str]:
        self._legs[leg.channel_id] = leg
        cause: str
        try:
            await self._ari.originate(endpoint, leg.channel_id, app_args=f"{AGENT_LEG},{call.channel_id}",
                                      ring_seconds=self._ring_seconds, caller_id=caller_id, variables=variables)
            await first_done(leg.answered, leg.gone, call.ended.wait(), timeout=self._ring_seconds + RING_SLACK_SECONDS)
            if leg.answered.done() and not leg.gone.done():
                return leg, "answered"
            if call.ended.is_set():
                await self._hang_up_leg(leg)
                raise CallEnded(call.channel_id)
            code = leg.gone.result() if leg.gone.done() else None
            cause = MISSED_CAUSES.get(code or 0, "no_answer" if code is None else f"cause_{code}")
        except AriError as exc:  # Asterisk refused to place it (the endpoint is gone)
            cause = "unavailable"
            log.warning("phone not rung", call_id=call.call_id, endpoint=endpoint.split("/")[1], error=exc.message)
        await self._hang_up_leg(leg)
        return None, cause

    async def take_up(self, call: LiveCall, channel_id: str | None, agent: AgentOnPhone, connected: datetime,
                      ) -> datetime:
        """After a hub restart: the caller was talking to ``agent`` on leg ``channel_id`` (still in the call's
        bridge, in Asterisk); the talk goes on as if nothing happened. Returns or raises as :meth:`__call__`.
        Without a leg the agent hung up while no hub was there: the caller goes on to the survey."""
        if channel_id is None:
            if not call.agent_left_noted:
                await self._agent_left(call, agent.agent_id)
            return connected
        leg = AgentLeg(channel_id=channel_id, agent=agent)
        leg.answered.set_result(None)
        self._legs[channel_id] = leg
        try:  # its end is heard from here on; one that came while the call was being taken up was not
            await self._ari.request("GET", f"/channels/{channel_id}")
        except AriError as exc:
            if exc.status == HTTPStatus.NOT_FOUND:
                self._settle(channel_id, "gone", None)
        log.info("call with an agent taken up again", call_id=call.call_id, agent_id=agent.agent_id)
        return await self._talk(call, leg, connected)

    async def _talk(self, call: LiveCall, leg: AgentLeg, connected: datetime | None = None, *,
                    may_requeue: bool = False) -> datetime:
        """Caller and agent talk until the caller hangs up (raises :class:`CallEnded`) or the last agent on the call
        does (returns when the caller was put through); meanwhile agents hold, consult, transfer and conference
        through :meth:`control`. ``connected``: the talk began before a hub restart, the leg is in the bridge.
        Raises :class:`Requeued` when an agent sent the caller to a queue (only with ``may_requeue``)."""
        if connected is None:
            try:
                await self._ari.add_to_bridge(call.bridge_id, leg.channel_id)
            except AriError as exc:
                if call.ended.is_set():
                    raise CallEnded(call.channel_id) from exc
                raise LegLost(leg.channel_id) from exc
            connected = utcnow()
            await call.note(CallEventKind.CONNECT, {"agent_id": leg.agent.agent_id},
                            agent_id=leg.agent.agent_id, connected_at=connected, outcome="agent")
            log.info("caller put through to an agent", call_id=call.call_id, agent_id=leg.agent.agent_id)
        talk = Talk(call, {leg.agent.agent_id: leg}, may_requeue=may_requeue)
        self._talks[call.call_id] = talk
        try:
            while True:
                for agent_id, on_call in list(talk.legs.items()):
                    if on_call.gone.done():
                        del talk.legs[agent_id]
                        await self._agent_left(call, agent_id)
                if talk.consulted is not None and talk.consulted.gone.done():
                    await call.note(_hangup_kind(talk.consulted), talk.consulted.party)
                    talk.consulted = None
                if talk.outside is not None and talk.outside.gone.done():
                    await call.note(CallEventKind.OUTSIDE_HANGUP, talk.outside.party)
                    talk.outside = None
                    if not talk.legs:  # transferred out, and the party there hung up: the call is over
                        await call.hangup("normal")
                if call.ended.is_set():
                    raise CallEnded(call.channel_id)
                if talk.requeue_team is not None:
                    raise Requeued(talk.requeue_team)
                if not talk.legs and talk.outside is None:
                    if talk.consulted is None:
                        return connected
                    async with talk.lock:  # the agent who consulted hung up: the caller goes to the consulted
                        await self._transfer(talk)
                    continue
                talk.changed.clear()
                gone = [on_call.gone for on_call in [*talk.parties, *filter(None, [talk.consulted])]]
                await first_done(call.ended.wait(), talk.changed.wait(), *gone)
        except asyncio.CancelledError:
            self._talks.pop(call.call_id, None)
            talk.legs, talk.consulted, talk.outside = {}, None, None  # the hub is stopping: it goes on in Asterisk
            raise
        finally:
            self._talks.pop(call.call_id, None)
            for monitor in list(talk.monitors.values()):
                await self._end_monitor(monitor)
            await self._stop_music(talk)
            for on_call in [*talk.parties, *filter(None, [talk.consulted])]:
                await self._hang_up_leg(on_call)
            with contextlib.suppress(AriError):
                await self._ari.destroy_bridge(talk.aside_bridge)

    async def _agent_left(self, call: LiveCall, agent_id: int) -> None:
        """An agent's part of the call is over: noted, and their after-call work begins (no call rings them
        until its timer has run out)."""
        await call.note(CallEventKind.AGENT_HANGUP, {"agent_id": agent_id})
        await self._desk.after_call(agent_id)

    # -- what agents do on a call (the hub API) -----------------------------------------------------------

    def on_call(self, call_id: int) -> list[int]:
        """The agents on a live call (talking, or consulted), or [] when the call is not put through here."""
        talk = self._talks.get(call_id)
        if talk is None:
            return []
        consulted = talk.consulted.party.get("agent_id") if talk.consulted else None
        return [*talk.legs, *([consulted] if consulted is not None else [])]

    async def control(self, call_id: int, action: str, actor_id: int | None,
                      consult: AgentOnPhone | Outside | None = None, team: str | None = None) -> dict[str, Any]:
        """Carry out ``action`` on call ``call_id`` for agent ``actor_id`` (None: a supervisor) and return the
        call's state. ``hold`` and ``resume`` the caller; ``consult`` another agent or an outside number (the
        caller on hold) and then ``transfer`` the caller to them, ``conference`` all three, or ``cancel`` the
        consultation; ``queue``: send the caller to ``team``'s queue; ``hangup`` the actor's leg; ``release``
        (supervisors) the whole call. Raises :class:`CallNotHere` or :class:`CallControlRefused`."""
        talk = self._talks.get(call_id)
        if talk is None:
            raise CallNotHere(call_id)
        async with talk.lock:
            try:
                await self._carry_out(talk, action, actor_id, consult, team)
            except AriError as exc:  # the caller or an agent hung up meanwhile, or Asterisk went away
                log.warning("call control failed", call_id=call_id, action=action, error=exc.message)
                raise CallControlRefused("电话系统未能完成操作,请重试", "voice_failed") from exc
            talk.changed.set()
            return talk.state()

    async def _carry_out(self, talk: Talk, action: str, actor_id: int | None, consult: AgentOnPhone | Outside | None,
                         team: str | None) -> None:
        if action == "hold":
            await self._hold_caller(talk)
        elif action == "resume":
            await self._end_consultation(talk)
            await self._resume(talk)
        elif action == "consult":
            await self._consult(talk, consult, actor_id)
        elif action in ("transfer", "conference"):
            if talk.consulted is None:
                raise CallControlRefused("请先征询一位坐席", "not_consulting")
            if action == "transfer":
                await self._transfer(talk)
            else:
                await self._conference(talk)
        elif action == "cancel":
            await self._end_consultation(talk)
        elif action == "queue":
            await self._send_to_queue(talk, team, actor_id)
        elif action == "release":  # a supervisor ends the call for everybody on it
            await talk.call.note(CallEventKind.RELEASE)
            await talk.call.hangup("normal")
        elif action == "hangup":
            for agent_id in [actor_id] if actor_id is not None else list(talk.legs):
                if agent_id in talk.legs:
                    await self._hang_up_leg(talk.legs.pop(agent_id))
                    await self._agent_left(talk.call, agent_id)
        else:
            raise CallControlRefused(f"未知操作 {action}", "unknown_action")

    async def monitor(self, call_id: int, supervisor: AgentOnPhone, mode: str) -> dict[str, Any]:
        """Ring the supervisor's phone and, answered, let them ``listen`` to the call, ``whisper`` to the agent
        (heard by the agent alone) or ``barge`` in (heard by all); they leave by hanging up. ``takeover``: the
        supervisor has the caller (and the conversation) from then on, the agents leave."""
        talk = self._talks.get(call_id)
        if talk is None:
            raise CallNotHere(call_id)
        if mode not in MONITOR_MODES:
            raise CallControlRefused(f"未知方式 {mode}", "unknown_mode")
        async with talk.lock:
            if supervisor.agent_id in talk.legs or (
                    supervisor.agent_id in talk.monitors and not talk.monitors[supervisor.agent_id].leg.gone.done()):
                raise CallControlRefused("您已在这通电话中", "already_on_call")
            call = talk.call
            leg, cause = await self.dial(call, supervisor)
            if leg is None:
                raise CallControlRefused(f"您的话机未接听({cause})", "supervisor_not_answered")
            if mode == "takeover":
                await self._take_over(talk, leg)
                return talk.state()
            monitor = Monitor(leg, mode)
            talk.monitors[supervisor.agent_id] = monitor
            try:
                await self._join(talk, monitor)
            except (AriError, TimeoutError) as exc:
                await self._end_monitor(monitor)
                raise CallControlRefused("电话系统未能完成操作,请重试", "voice_failed") from exc
            await call.note(CallEventKind.MONITOR, {"agent_id": supervisor.agent_id, "mode": mode})
            self._monitoring.spawn(self._until_left(monitor))
            return talk.state()

    async def _take_over(self, talk: Talk, leg: AgentLeg) -> None:
        """The supervisor on ``leg`` replaces the agents on the call (a consultation ends; the caller on hold comes
        back to the supervisor)."""
        await self._end_consultation(talk)
        leaving, talk.legs = talk.legs, {leg.agent.agent_id: leg}  # before any wait: the talk never looks empty
        for agent_id, on_call in leaving.items():
            await self._hang_up_leg(on_call)
            await self._agent_left(talk.call, agent_id)
        await self._ari.add_to_bridge(talk.aside_bridge if talk.music is not None else talk.call.bridge_id,
                                      leg.channel_id)
        await self._resume(talk)
        await talk.call.note(CallEventKind.MONITOR, {"agent_id": leg.agent.agent_id, "mode": "takeover"})
        await self._handed_to(talk, leg.agent, CallEventKind.TRANSFER)

    async def _join(self, talk: Talk, monitor: Monitor) -> None:
        how = MONITOR_MODES[monitor.mode]
        if how is None:  # barge: into the call's own bridge
            await self._ari.add_to_bridge(talk.call.bridge_id, monitor.leg.channel_id)
            return
        target, spy, whisper = how
        channel = talk.call.channel_id if target == "caller" else next(iter(talk.legs.values())).channel_id
        monitor.snoop_id, monitor.bridge_id = f"snoop-{uuid.uuid4()}", f"monitor-{uuid.uuid4()}"
        started = self._snoops[monitor.snoop_id] = asyncio.get_running_loop().create_future()
        try:
            await self._ari.request("POST", f"/channels/{channel}/snoop", {
                "spy": spy, "whisper": whisper, "app": self._ari.app, "appArgs": SNOOP, "snoopId": monitor.snoop_id})
            # Asterisk answers before the snoop is in the application, and a channel outside it cannot be bridged.
            await asyncio.wait_for(started, SNOOP_START_SECONDS)
        finally:
            self._snoops.pop(monitor.snoop_id, None)
        await self._ari.create_bridge(monitor.bridge_id, "mixing")
        await self._ari.add_to_bridge(monitor.bridge_id, monitor.snoop_id)
        await self._ari.add_to_bridge(monitor.bridge_id, monitor.leg.channel_id)

    async def _until_left(self, monitor: Monitor) -> None:
        await asyncio.shield(monitor.leg.gone)
        await self._end_monitor(monitor)

    async def _end_monitor(self, monitor: Monitor) -> None:
        await self._hang_up_leg(monitor.leg)
        with contextlib.suppress(AriError):
            if monitor.snoop_id is not None:
                await self._ari.hangup(monitor.snoop_id)
        with contextlib.suppress(AriError):
            if monitor.bridge_id is not None:
                await self._ari.destroy_bridge(monitor.bridge_id)
        monitor.snoop_id = monitor.bridge_id = None

    async def _consult(self, talk: Talk, party: AgentOnPhone | Outside | None, actor_id: int | None) -> None:
        """The caller on hold, another agent's phone (or a number outside) rings; answered, they talk aside with
        the agents."""
        call = talk.call
        if isinstance(party, Outside):
            if talk.outside is not None:
                raise CallControlRefused("已有一路外线在通话中", "outside_on_call")
        elif party is None or party.agent_id in self.on_call(call.call_id):
            raise CallControlRefused("请选择不在本通话中、已设置分机的坐席", "bad_consult")
        if talk.consulted is not None:
            raise CallControlRefused("正在征询另一位坐席", "consulting")
        await self._hold_caller(talk)
        if isinstance(party, Outside):
            name = f"外线 {mask_phone(party.number)}"
            leg, cause = await self.dial_outside(call, party)
        else:
            name = party.name
            leg, cause = await self.dial(call, party)
        if leg is None:
            await call.note(CallEventKind.MISSED, {**_party(party), "cause": cause})
            raise CallControlRefused(f"{name} 未接听({cause})", "consult_not_answered")
        await self._ari.add_to_bridge(talk.aside_bridge, leg.channel_id)
        talk.consulted = leg
        await call.note(CallEventKind.CONSULT, {**leg.party, "by": actor_id})

    async def _hold_caller(self, talk: Talk) -> None:
        """The agents step aside (into a bridge of their own) and the caller hears music."""
        if talk.music is not None:
            return
        if not talk.aside_made:
            await self._ari.create_bridge(talk.aside_bridge, "mixing")
            talk.aside_made = True
        for leg in talk.parties:
            await self._ari.remove_from_bridge(talk.call.bridge_id, leg.channel_id)
            await self._ari.add_to_bridge(talk.aside_bridge, leg.channel_id)
        talk.music = asyncio.create_task(self._music(talk.call))
        await talk.call.note(CallEventKind.HOLD)

    async def _resume(self, talk: Talk) -> None:
        """The agents aside come back to the caller; the music stops."""
        if talk.music is None:
            return
        await self._stop_music(talk)
        for leg in talk.parties:
            await self._ari.remove_from_bridge(talk.aside_bridge, leg.channel_id)
            await self._ari.add_to_bridge(talk.call.bridge_id, leg.channel_id)
        await talk.call.note(CallEventKind.RESUME)

    async def _transfer(self, talk: Talk) -> None:
        """The agents who consulted leave; the consulted agent (or number outside) has the caller now, and an
        agent the conversation too."""
        consulted = talk.consulted
        assert consulted is not None
        leaving = list(talk.legs.values())
        # The call's parties change before any wait, so that the talk never looks empty meanwhile.
        talk.consulted = None
        if consulted.outside is not None:
            talk.legs, talk.outside = {}, consulted
        else:
            talk.legs = {consulted.agent.agent_id: consulted}
        for leg in leaving:
            await self._hang_up_leg(leg)
        await self._resume(talk)
        if consulted.outside is not None:
            await talk.call.note(CallEventKind.TRANSFER, consulted.party)
        else:
            await self._handed_to(talk, consulted.agent, CallEventKind.TRANSFER)

    async def _conference(self, talk: Talk) -> None:
        """Caller, agents and the consulted agent (or number outside) all together."""
        consulted = talk.consulted
        assert consulted is not None
        if consulted.outside is not None:
            talk.outside = consulted
        else:
            talk.legs[consulted.agent.agent_id] = consulted
        talk.consulted = None
        await self._resume(talk)
        await talk.call.note(CallEventKind.CONFERENCE, {"agents": list(talk.legs), **(
            talk.outside.party if talk.outside is not None else {})})

    async def _send_to_queue(self, talk: Talk, team: str | None, actor_id: int | None) -> None:
        """A blind transfer to a team: everybody on the call leaves, the caller waits in that team's queue."""
        if not talk.may_requeue:
            raise CallControlRefused("只有呼入后转人工的电话可以转回队列", "not_queueable")
        if team is None:
            raise CallControlRefused("请选择要转入的技能组", "team_required")
        await self._end_consultation(talk)
        leaving = talk.parties
        talk.legs, talk.outside, talk.requeue_team = {}, None, team  # before any wait, as in a transfer
        await talk.call.note(CallEventKind.REQUEUE, {"team": team, "by": actor_id})
        for leg in leaving:
            await self._hang_up_leg(leg)

    async def _end_consultation(self, talk: Talk) -> None:
        if talk.consulted is not None:
            await self._hang_up_leg(talk.consulted)
            talk.consulted = None

    async def _handed_to(self, talk: Talk, agent: AgentOnPhone, kind: CallEventKind) -> None:
        call = talk.call
        await call.note(kind, {"agent_id": agent.agent_id}, agent_id=agent.agent_id)
        if call.conversation_id is not None:
            await self._desk.hand_over(call.conversation_id, agent.agent_id)

    async def _music(self, call: LiveCall) -> None:
        music = await self._prompts.hold_music()
        while True:
            await call.play(music, interruptible=False)

    async def _stop_music(self, talk: Talk) -> None:
        if talk.music is not None:
            talk.music.cancel()
            await asyncio.gather(talk.music, return_exceptions=True)
            talk.music = None

    async def talk(self, call: LiveCall, leg: AgentLeg) -> datetime:
        """Caller (or the resident called) and the agent on ``leg`` talk, as a caller put through does."""
        return await self._talk(call, leg)

    async def hang_up(self, leg: AgentLeg) -> None:
        await self._hang_up_leg(leg)

    async def _hang_up_leg(self, leg: AgentLeg) -> None:
        self._legs.pop(leg.channel_id, None)
        if not leg.gone.done():
            with contextlib.suppress(AriError):  # gone already
                await self._ari.hangup(leg.channel_id)
            if not leg.gone.done():
                leg.gone.set_result(None)

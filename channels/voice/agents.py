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
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.base import CallDesk
from channels.voice.ari import AriClient, AriError
from channels.voice.call import CallEnded, LiveCall
from channels.voice.prompts import Prompts
from router.acd.calls import AgentOnPhone
from router.logs import get_logger
from router.models import CallEventKind, utcnow

log = get_logger(__name__)

CONVERSATION_TOPIC = "conversation"  # the hub's conversation events: an assignment puts a caller through
AGENT_LEG = "agent"  # the first application argument of a channel rung to an agent's phone
AGENT_LEG_PREFIX = "agent-"  # of the channel ids of agents' legs (and supervisors')
SNOOP = "snoop"  # the first application argument of a supervisor's snoop on a call
# How a supervisor joins a call: what their snoop hears (spy) and whom their voice reaches (whisper); a barge
# joins the call's bridge itself.
MONITOR_MODES = {"listen": ("caller", "both", "none"), "whisper": ("agent", "both", "out"), "barge": None}
CONVERSATION_HEADER, CALL_HEADER = "X-Hub-Conversation", "X-Hub-Call"  # on the INVITE to an agent's phone
LOOK_AGAIN_SECONDS = 3.0  # how often a waiting call asks whether it was assigned, besides the events
RING_SLACK_SECONDS = 5.0  # past the ring time, how long to wait for Asterisk to report the unanswered leg
# Q.850 causes of an agent's phone not taking a call, as the reason kept with the missed ring.
MISSED_CAUSES = {17: "busy", 18: "no_response", 19: "no_answer", 20: "unregistered", 21: "rejected"}


@dataclass
class AgentLeg:
    """The channel rung to an agent's phone: answered (it entered the application) or gone (with the cause)."""

    channel_id: str
    agent: AgentOnPhone
    answered: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    gone: asyncio.Future[int | None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


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
    consulted: AgentLeg | None = None  # an agent asked aside while the caller is on hold
    music: asyncio.Task[None] | None = None  # while the caller is on hold
    aside_made: bool = False  # the bridge the agents step aside into exists
    monitors: dict[int, Monitor] = field(default_factory=dict)  # supervisor id → how they are on the call
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def aside_bridge(self) -> str:
        return f"aside-{self.call.channel_id}"

    def state(self) -> dict[str, Any]:
        return {"call_id": self.call.call_id, "agents": list(self.legs), "held": self.music is not None,
                "consulted": self.consulted.agent.agent_id if self.consulted else None,
                "monitors": {str(supervisor): m.mode for supervisor, m in self.monitors.items()
                             if not m.leg.gone.done()}}


class PutThrough:
    """Puts callers through to agents; one per voice adapter. The adapter passes it the events of agents' legs."""

    def __init__(self, ari: AriClient, desk: CallDesk, prompts: Prompts, ring_seconds: int) -> None:
        self._ari, self._desk, self._prompts, self._ring_seconds = ari, desk, prompts, ring_seconds
        self._legs: dict[str, AgentLeg] = {}
        self._assigned: dict[int, asyncio.Event] = {}  # conversation id of a waiting call → "look again"
        self._talks: dict[int, Talk] = {}  # call id → the call put through
        self._monitoring: set[asyncio.Task[None]] = set()  # each supervisor on a call, until they hang up

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

    async def __call__(self, call: LiveCall, *, team: str | None, texts: QueueTexts) -> datetime | None:
        """Queue the call and put it through. When the agent hung up first and the caller is still there (the
        survey follows): when they were put through; None when nobody could be assigned the call (the database
        is away). Raises :class:`CallEnded` when the caller hung up, waiting or talking."""
        conversation_id = call.conversation_id
        if conversation_id is None:
            return None
        look = self._assigned.setdefault(conversation_id, asyncio.Event())
        queued = utcnow()
        await self._desk.enqueue(conversation_id, team=team)
        await call.record(queued_at=queued)
        await call.note(CallEventKind.QUEUED, {"team": team})
        hold = asyncio.create_task(self._hold(call, conversation_id, texts))
        leg: AgentLeg | None = None
        try:
            while leg is None:
                agent = await self._next_agent(call, conversation_id, look)
                leg = await self._ring(call, conversation_id, agent)
            hold.cancel()
            await asyncio.gather(hold, return_exceptions=True)
            return await self._talk(call, leg)
        except CallEnded:
            if leg is None or not leg.answered.done():
                waited = round((utcnow() - queued).total_seconds(), 1)
                await call.note(CallEventKind.ABANDON, {"waited_seconds": waited})
                await call.set_outcome("abandoned")
                await self._desk.abandon(conversation_id, phone=call.phone)
                log.info("caller hung up waiting for an agent", call_id=call.call_id, waited_seconds=waited)
            raise
        except asyncio.CancelledError:
            leg = None  # the hub is stopping: the call goes on in Asterisk for the next process to take up
            raise
        finally:
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
                await call.play(texts.position.format(ahead=standing.ahead, minutes=standing.minutes),
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
            ended = asyncio.ensure_future(call.ended.wait())
            told = asyncio.ensure_future(look.wait())
            await asyncio.wait([ended, told], timeout=LOOK_AGAIN_SECONDS, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            told.cancel()

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
        self._legs[leg.channel_id] = leg
        await call.note(CallEventKind.RING, {"agent_id": agent.agent_id, "extension": agent.extension})
        cause: str
        try:
            await self._ari.originate(f"PJSIP/{agent.extension}", leg.channel_id,
                                      app_args=f"{AGENT_LEG},{call.channel_id}", ring_seconds=self._ring_seconds,
                                      caller_id=call.caller, variables={
                                          # The inbox's softphone opens the caller's conversation (screen pop).
                                          f"PJSIP_HEADER(add,{CONVERSATION_HEADER})": str(call.conversation_id or ""),
                                          f"PJSIP_HEADER(add,{CALL_HEADER})": str(call.call_id)})
            ended = asyncio.ensure_future(call.ended.wait())
            await asyncio.wait([leg.answered, leg.gone, ended], timeout=self._ring_seconds + RING_SLACK_SECONDS,
                               return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            if leg.answered.done() and not leg.gone.done():
                return leg, "answered"
            if call.ended.is_set():
                await self._hang_up_leg(leg)
                raise CallEnded(call.channel_id)
            code = leg.gone.result() if leg.gone.done() else None
            cause = MISSED_CAUSES.get(code or 0, "no_answer" if code is None else f"cause_{code}")
        except AriError as exc:  # Asterisk refused to place it (the endpoint is gone)
            cause = "unavailable"
            log.warning("agent's phone not rung", call_id=call.call_id, extension=agent.extension, error=exc.message)
        await self._hang_up_leg(leg)
        return None, cause

    async def take_up(self, call: LiveCall, channel_id: str, agent: AgentOnPhone, connected: datetime) -> datetime:
        """After a hub restart: the caller was talking to ``agent`` on leg ``channel_id`` (still in the call's
        bridge, in Asterisk); the talk goes on as if nothing happened. Returns or raises as :meth:`__call__`."""
        leg = AgentLeg(channel_id=channel_id, agent=agent)
        leg.answered.set_result(None)
        self._legs[channel_id] = leg
        log.info("call with an agent taken up again", call_id=call.call_id, agent_id=agent.agent_id)
        return await self._talk(call, leg, connected)

    async def _talk(self, call: LiveCall, leg: AgentLeg, connected: datetime | None = None) -> datetime:
        """Caller and agent talk until the caller hangs up (raises :class:`CallEnded`) or the last agent on the call
        does (returns when the caller was put through); meanwhile agents hold, consult, transfer and conference
        through :meth:`control`. ``connected``: the talk began before a hub restart, the leg is in the bridge."""
        if connected is None:
            await self._ari.add_to_bridge(call.bridge_id, leg.channel_id)
            connected = utcnow()
            await call.record(agent_id=leg.agent.agent_id, connected_at=connected)
            await call.set_outcome("agent")
            await call.note(CallEventKind.CONNECT, {"agent_id": leg.agent.agent_id})
            log.info("caller put through to an agent", call_id=call.call_id, agent_id=leg.agent.agent_id)
        talk = Talk(call, {leg.agent.agent_id: leg})
        self._talks[call.call_id] = talk
        try:
            while True:
                for agent_id, on_call in list(talk.legs.items()):
                    if on_call.gone.done():
                        del talk.legs[agent_id]
                        await call.note(CallEventKind.AGENT_HANGUP, {"agent_id": agent_id})
                if talk.consulted is not None and talk.consulted.gone.done():
                    await call.note(CallEventKind.AGENT_HANGUP, {"agent_id": talk.consulted.agent.agent_id})
                    talk.consulted = None
                if call.ended.is_set():
                    raise CallEnded(call.channel_id)
                if not talk.legs:
                    if talk.consulted is None:
                        return connected
                    async with talk.lock:  # the agent who consulted hung up: the caller goes to the consulted
                        await self._transfer(talk)
                    continue
                talk.changed.clear()
                waits = [asyncio.ensure_future(call.ended.wait()), asyncio.ensure_future(talk.changed.wait())]
                gone = [on_call.gone for on_call in [*talk.legs.values(), *filter(None, [talk.consulted])]]
                await asyncio.wait([*waits, *gone], return_when=asyncio.FIRST_COMPLETED)
                for waiter in waits:
                    waiter.cancel()
        except asyncio.CancelledError:
            self._talks.pop(call.call_id, None)
            talk.legs, talk.consulted = {}, None  # the hub is stopping: the talk goes on in Asterisk
            raise
        finally:
            self._talks.pop(call.call_id, None)
            for monitor in list(talk.monitors.values()):
                await self._end_monitor(monitor)
            await self._stop_music(talk)
            for on_call in [*talk.legs.values(), *filter(None, [talk.consulted])]:
                await self._hang_up_leg(on_call)
            with contextlib.suppress(AriError):
                await self._ari.destroy_bridge(talk.aside_bridge)

    # -- what agents do on a call (the hub API) -----------------------------------------------------------

    def on_call(self, call_id: int) -> list[int]:
        """The agents on a live call (talking, or consulted), or [] when the call is not put through here."""
        talk = self._talks.get(call_id)
        if talk is None:
            return []
        return [*talk.legs, *([talk.consulted.agent.agent_id] if talk.consulted else [])]

    async def control(self, call_id: int, action: str, actor_id: int | None,
                      consult: AgentOnPhone | None = None) -> dict[str, Any]:
        """Carry out ``action`` on call ``call_id`` for agent ``actor_id`` (None: a supervisor) and return the
        call's state. ``hold`` and ``resume`` the caller; ``consult`` another agent (the caller on hold) and
        then ``transfer`` the caller to them, ``conference`` all three, or ``cancel`` the consultation;
        ``hangup`` the actor's leg. Raises :class:`CallNotHere` or :class:`CallControlRefused`."""
        talk = self._talks.get(call_id)
        if talk is None:
            raise CallNotHere(call_id)
        async with talk.lock:
            try:
                await self._carry_out(talk, action, actor_id, consult)
            except AriError as exc:  # the caller or an agent hung up meanwhile, or Asterisk went away
                log.warning("call control failed", call_id=call_id, action=action, error=exc.message)
                raise CallControlRefused("电话系统未能完成操作,请重试", "voice_failed") from exc
            talk.changed.set()
            return talk.state()

    async def _carry_out(self, talk: Talk, action: str, actor_id: int | None, consult: AgentOnPhone | None) -> None:
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
        elif action == "hangup":
            for agent_id in [actor_id] if actor_id is not None else list(talk.legs):
                if agent_id in talk.legs:
                    await self._hang_up_leg(talk.legs.pop(agent_id))
                    await talk.call.note(CallEventKind.AGENT_HANGUP, {"agent_id": agent_id})
        else:
            raise CallControlRefused(f"未知操作 {action}", "unknown_action")

    async def monitor(self, call_id: int, supervisor: AgentOnPhone, mode: str) -> dict[str, Any]:
        """Ring the supervisor's phone and, answered, let them ``listen`` to the call, ``whisper`` to the agent
        (heard by the agent alone) or ``barge`` in (heard by all); they leave by hanging up."""
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
            monitor = Monitor(leg, mode)
            talk.monitors[supervisor.agent_id] = monitor
            try:
                await self._join(talk, monitor)
            except AriError as exc:
                await self._end_monitor(monitor)
                raise CallControlRefused("电话系统未能完成操作,请重试", "voice_failed") from exc
            await call.note(CallEventKind.MONITOR, {"agent_id": supervisor.agent_id, "mode": mode})
            task = asyncio.create_task(self._until_left(monitor))
            self._monitoring.add(task)
            task.add_done_callback(self._monitoring.discard)
            return talk.state()

    async def _join(self, talk: Talk, monitor: Monitor) -> None:
        how = MONITOR_MODES[monitor.mode]
        if how is None:  # barge: into the call's own bridge
            await self._ari.add_to_bridge(talk.call.bridge_id, monitor.leg.channel_id)
            return
        target, spy, whisper = how
        channel = talk.call.channel_id if target == "caller" else next(iter(talk.legs.values())).channel_id
        monitor.snoop_id, monitor.bridge_id = f"snoop-{uuid.uuid4()}", f"monitor-{uuid.uuid4()}"
        await self._ari.request("POST", f"/channels/{channel}/snoop", {
            "spy": spy, "whisper": whisper, "app": self._ari.app, "appArgs": SNOOP, "snoopId": monitor.snoop_id})
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

    async def _consult(self, talk: Talk, agent: AgentOnPhone | None, actor_id: int | None) -> None:
        """The caller on hold, another agent's phone rings; answered, they talk aside with the agents."""
        call = talk.call
        if agent is None or agent.agent_id in self.on_call(call.call_id):
            raise CallControlRefused("请选择不在本通话中、已设置分机的坐席", "bad_consult")
        if talk.consulted is not None:
            raise CallControlRefused("正在征询另一位坐席", "consulting")
        await self._hold_caller(talk)
        leg, cause = await self.dial(call, agent)
        if leg is None:
            await call.note(CallEventKind.MISSED, {"agent_id": agent.agent_id, "cause": cause})
            raise CallControlRefused(f"{agent.name} 未接听({cause})", "consult_not_answered")
        await self._ari.add_to_bridge(talk.aside_bridge, leg.channel_id)
        talk.consulted = leg
        await call.note(CallEventKind.CONSULT, {"agent_id": agent.agent_id, "by": actor_id})

    async def _hold_caller(self, talk: Talk) -> None:
        """The agents step aside (into a bridge of their own) and the caller hears music."""
        if talk.music is not None:
            return
        if not talk.aside_made:
            await self._ari.create_bridge(talk.aside_bridge, "mixing")
            talk.aside_made = True
        for leg in talk.legs.values():
            await self._ari.remove_from_bridge(talk.call.bridge_id, leg.channel_id)
            await self._ari.add_to_bridge(talk.aside_bridge, leg.channel_id)
        talk.music = asyncio.create_task(self._music(talk.call))
        await talk.call.note(CallEventKind.HOLD)

    async def _resume(self, talk: Talk) -> None:
        """The agents aside come back to the caller; the music stops."""
        if talk.music is None:
            return
        await self._stop_music(talk)
        for leg in talk.legs.values():
            await self._ari.remove_from_bridge(talk.aside_bridge, leg.channel_id)
            await self._ari.add_to_bridge(talk.call.bridge_id, leg.channel_id)
        await talk.call.note(CallEventKind.RESUME)

    async def _transfer(self, talk: Talk) -> None:
        """The agents who consulted leave; the consulted agent has the caller (and the conversation)."""
        consulted = talk.consulted
        assert consulted is not None
        for leg in list(talk.legs.values()):
            await self._hang_up_leg(leg)
        talk.legs = {consulted.agent.agent_id: consulted}
        talk.consulted = None
        await self._resume(talk)
        await self._handed_to(talk, consulted.agent, CallEventKind.TRANSFER)

    async def _conference(self, talk: Talk) -> None:
        """Caller, agents and the consulted agent all together."""
        consulted = talk.consulted
        assert consulted is not None
        talk.legs[consulted.agent.agent_id] = consulted
        talk.consulted = None
        await self._resume(talk)
        await talk.call.note(CallEventKind.CONFERENCE, {"agents": list(talk.legs)})

    async def _end_consultation(self, talk: Talk) -> None:
        if talk.consulted is not None:
            await self._hang_up_leg(talk.consulted)
            talk.consulted = None

    async def _handed_to(self, talk: Talk, agent: AgentOnPhone, kind: CallEventKind) -> None:
        call = talk.call
        await call.record(agent_id=agent.agent_id)
        await call.note(kind, {"agent_id": agent.agent_id})
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

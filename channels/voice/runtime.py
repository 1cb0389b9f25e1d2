"""The IVR on a live call: the walk decides (channels/voice/walk.py), the call carries it out
(channels/voice/call.py), self-service answers lookups, and a voicemail becomes a work order.

Each call reads the current menu and the prompts' recordings, so a menu saved or a prompt recorded at /app/ivr
applies from the next call on. The caller's
facts (hours, blacklist, VIP, district, notices in force) are read when the call arrives. Every node the
caller enters is kept in the call's path (key presses are kept by the adapter with the node they were pressed
at), every lookup as a call event, and the walk's end as the call's outcome.

A voicemail is stored twice over in the hub's terms: as a voice message in the call's conversation (the agent
page plays it) and as the recording attached to a new work order (source ``voicemail``) of the menu branch's
category, filed once per recording even when a hub restarts meanwhile (its external reference is the call's).
Required choices of the category that a recording cannot answer are set to 其他 for the desk to correct.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.base import Attachment, InboundMessage, Journaled, RouterPort
from channels.voice.adapter import VoiceAdapter
from channels.voice.agents import PutThrough, QueueTexts
from channels.voice.call import LiveCall
from channels.voice.caller import LineHours, caller_context
from channels.voice.ivr import CommonPrompts
from channels.voice.menus import CurrentMenu, current_menu
from channels.voice.prompts import PromptError, Prompts
from channels.voice.recordings import recordings_in_force
from channels.voice.selfservice import Caller, SelfService
from channels.voice.speech import Language
from channels.voice.walk import (
    CollectDigits,
    CollectKey,
    Hangup,
    IvrWalk,
    Lookup,
    LookupOutcome,
    Play,
    Step,
    ToAgent,
    Voicemail,
)
from router.access import Principal
from router.acd.calls import AgentOnPhone
from router.billing import BillingBackend
from router.errors import HubError, Invalid
from router.hub import Hub
from router.logs import get_logger
from router.models import CallEventKind, Role, utcnow
from router.tasks import TaskSet
from router.uploads import FileStore
from workorders.models import WorkOrderCategory
from workorders.service import NewOrder, WorkOrderService

log = get_logger(__name__)

# The IVR files voicemail orders for any caller's conversation: it acts with an overseer's view, as a service.
IVR_PRINCIPAL = Principal(role=Role.SUPERVISOR, username="voice-ivr", display_name="语音导航")
UNKNOWN_CHOICE = "其他"
FALLBACK_CATEGORY = "consultation"

AgentsAvailable = Callable[[], Awaitable[bool]]
SURVEY_SECONDS = 8.0  # how long the caller has to key a score after the survey question


class IvrRuntime:
    """The call script of the voice adapter: one :meth:`__call__` per call, until the walk ends."""

    def __init__(self, router: RouterPort, sessions: async_sessionmaker[AsyncSession], hours: LineHours,
                 selfservice: SelfService, workorders: WorkOrderService, agents_available: AgentsAvailable,
                 put_through: PutThrough, prompts: Prompts, files: FileStore) -> None:
        self._router = router
        self._prompts = prompts
        self._files = files
        self._warmed: set[int] = set()  # menu versions whose fixed prompts are rendered (or being rendered)
        self._warming = TaskSet()
        self._sessions = sessions
        self._hours = hours
        self._selfservice = selfservice
        self._workorders = workorders
        self._agents_available = agents_available
        self._put_through = put_through

    async def warm(self) -> None:
        """Render the current menu's fixed prompts ahead of the calls that need them (at start, after a save)."""
        current = await self._current_menu()
        if current.version in self._warmed:
            return
        self._warmed.add(current.version)
        for text, language in sorted(current.menu.fixed_prompts()):
            try:
                await self._prompts.media(text, language)
            except (PromptError, ValueError) as exc:
                log.error("prompt not rendered", version=current.version, language=language, error=str(exc))

    def start_warming(self) -> None:
        self._warming.spawn(self.warm())

    async def stop(self) -> None:
        await self._warming.cancel()

    async def _current_menu(self) -> CurrentMenu:
        """The menu to play, with the recordings of its prompts put in force."""
        current = await current_menu(self._sessions)
        self._prompts.use_recordings(await recordings_in_force(self._sessions, self._files))
        return current

    async def __call__(self, call: LiveCall) -> None:
        if call.talking is not None:  # taken up after a restart while talking to an agent: the talk goes on
            await self._after_agent(call, walk=None, connected=await self._take_up(call, *call.talking))
            return
        current = await self._current_menu()
        if current.version not in self._warmed:  # a menu saved since: the rest of its prompts, while this call runs
            self.start_warming()
        context = await caller_context(self._sessions, call.caller or "", utcnow(), self._hours,
                                       agents_available=await self._agents_available())
        walk = IvrWalk(current.menu, context)
        await call.note(CallEventKind.MENU, {"version": current.version})
        if call.waiting is not None:  # taken up after a restart while waiting for an agent: it keeps its place
            await self._to_agent(call, walk, call.waiting[1], since=call.waiting[0])
            return
        steps = walk.resume(call.last_node) if call.resumed else walk.start()
        recorded = [0, 0]  # misses and nodes recorded so far
        while steps:
            await self._follow(call, walk, recorded)
            steps = await self._carry_out(call, walk, steps)
        await self._follow(call, walk, recorded)
        if walk.end is not None:
            await call.set_outcome(walk.end)

    @staticmethod
    async def _follow(call: LiveCall, walk: IvrWalk, recorded: list[int]) -> None:
        """Record what the walk did since last time: the questions missed (at the node the caller is still at),
        then the nodes entered. ``recorded`` counts both so far and is brought up to date."""
        misses, nodes = recorded
        for miss in walk.misses[misses:]:
            await call.note(CallEventKind(miss.kind))
        for node in walk.path[nodes:]:
            await call.enter(node)
        recorded[:] = [len(walk.misses), len(walk.path)]

    async def _carry_out(self, call: LiveCall, walk: IvrWalk, steps: list[Step]) -> list[Step]:
        """Carry out one answer of the walk; returns its next answer (empty: the walk is over)."""
        for index, step in enumerate(steps):
            match step:
                case Play(text=text, language=language):
                    # The last words before the hub hangs up (goodbye, thanks, the blacklist's) are heard whole:
                    # a key has nothing left to choose there, and would only cut them short.
                    closing = index + 1 < len(steps) and isinstance(steps[index + 1], Hangup)
                    await call.play(text, language=language, interruptible=not closing)
                case CollectKey(timeout=timeout):
                    key = await call.collect_key(timeout)
                    return walk.key(key) if key is not None else walk.timeout()
                case CollectDigits(max_len=max_len, terminator=terminator, timeout=timeout):
                    typed = await call.collect_digits(max_len, terminator, timeout)
                    return walk.digits(typed) if typed else walk.timeout()
                case Lookup():
                    outcome = await self._look_up(call, step, walk)
                    await call.note(CallEventKind.LOOKUP, {"kind": step.kind, "found": outcome.found})
                    return walk.result(outcome)
                case Voicemail(category=category, max_seconds=max_seconds):
                    await self._voicemail(call, walk, category, max_seconds)
                case ToAgent(skill=skill, vip=vip):
                    await call.note(CallEventKind.TO_AGENT, {"skill": skill, "vip": vip})
                    await self._to_agent(call, walk, skill)
                    return []
                case Hangup():
                    await call.hangup("normal")
                    return []
        return []

    async def _to_agent(self, call: LiveCall, walk: IvrWalk, team: str | None, since: datetime | None = None) -> None:
        """Put the caller through to an agent; when the agent hangs up first, the survey; then goodbye."""
        prompts, language = walk.menu.prompts, walk.language
        connected = await self._put_through(call, team=team, since=since,
                                            texts=QueueTexts(prompts.text("queue_position", language), language))
        await self._after_agent(call, walk, connected)

    async def _take_up(self, call: LiveCall, leg: str | None, agent_id: int, connected: datetime) -> datetime:
        agent = await self._router.call_desk.agent_phone(agent_id) or AgentOnPhone(agent_id, "", "")
        return await self._put_through.take_up(call, leg, agent, connected)

    async def _after_agent(self, call: LiveCall, walk: IvrWalk | None, connected: datetime | None) -> None:
        """The agent hung up first: the survey (``connected`` None: nobody could be assigned the call, as while
        the database is away); then goodbye."""
        menu = walk.menu if walk is not None else (await self._current_menu()).menu
        language = walk.language if walk is not None else next(
            (known for known in menu.languages if known == call.language), menu.default_language)
        if connected is not None:
            await self._survey(call, menu.prompts, language, connected)
        else:
            await call.play(menu.prompts.goodbye[language], interruptible=False, language=language)
        await call.hangup("normal")

    async def _survey(self, call: LiveCall, prompts: CommonPrompts, language: Language, connected: datetime) -> None:
        """The caller scores the service 1-5 on the keypad; the score goes on the call and on the orders filed
        while they talked."""
        call.discard_keys()  # keys pressed while talking are not a score
        await call.play(prompts.text("survey", language), language=language)
        key = await call.collect_key(SURVEY_SECONDS)
        score = int(key) if key is not None and key in "12345" else None
        await call.note(CallEventKind.SURVEY, {"score": score}, survey_score=score)
        if score is None:
            await call.play(prompts.goodbye[language], interruptible=False, language=language)
            return
        if call.conversation_id is not None:
            await self._workorders.rate_from_call(call.conversation_id, connected, score)
        await call.play(prompts.text("survey_thanks", language), interruptible=False, language=language)

    async def _look_up(self, call: LiveCall, lookup: Lookup, walk: IvrWalk) -> LookupOutcome:
        """The self-service answer; nothing found while the database or the billing system is away (the walk
        then asks again and, past its retries, offers its fallback)."""
        if call.conversation_id is None:  # the call's conversation waits in the journal: the database is away
            return LookupOutcome(found=False)
        try:
            return await self._selfservice.answer(lookup, Caller(call.conversation_id, call.caller), walk.language)
        except (HubError, SQLAlchemyError, OSError) as exc:
            log.warning("self-service lookup failed", call_id=call.call_id, kind=lookup.kind, error=str(exc))
            return LookupOutcome(found=False)

    async def _voicemail(self, call: LiveCall, walk: IvrWalk, category: str, max_seconds: int) -> None:
        recording = await call.record_voicemail(max_seconds)
        if recording is None or recording.file_id is None or call.conversation_id is None:
            return
        message_id = await self._message(call, recording)
        try:
            number = await self._order(call, walk, category, recording, message_id)
        except HubError as exc:
            log.error("voicemail kept but no order filed", call_id=call.call_id, error=exc.message)
            return
        await call.note(CallEventKind.WORK_ORDER, {"number": number, "file_id": recording.file_id})

    async def _message(self, call: LiveCall, recording: Attachment) -> int | None:
        """The voicemail as a voice message of the call's conversation (None while the database is away)."""
        result = await self._router.ingest_or_journal(InboundMessage(
            channel="voice", external_id=call.external_id, channel_message_id=f"voicemail-{recording.file_id}",
            type="voice", text="电话留言", attachment=recording, payload={"call": {"id": call.call_id}},
            phone=call.phone))
        return None if isinstance(result, Journaled) else result.message.get("id")

    async def _order(self, call: LiveCall, walk: IvrWalk, category: str, recording: Attachment,
                     message_id: int | None) -> str:
        path = " → ".join(walk.path)
        order = NewOrder(
            category=category, title="电话留言", source="voicemail", external_ref=f"voicemail-{recording.file_id}",
            description=f"来电留言,录音见附件。语音导航路径:{path}"[:5000], conversation_id=call.conversation_id,
            contact_phone=call.phone, custom_fields=await self._unknown_choices(category))
        try:
            detail = await self._workorders.create(IVR_PRINCIPAL, order, attach_file_ids=[recording.file_id])
        except Invalid as exc:  # the menu names a category an admin has since retired or changed
            if exc.code not in {"unknown_category", "invalid_custom_fields"}:
                raise
            order = order.model_copy(update={"category": FALLBACK_CATEGORY, "custom_fields": {}})
            detail = await self._workorders.create(IVR_PRINCIPAL, order, attach_file_ids=[recording.file_id])
        log.info("voicemail filed as a work order", call_id=call.call_id, number=detail.number,
                 message_id=message_id)
        return detail.number

    async def _unknown_choices(self, category: str) -> dict[str, Any]:
        async with self._sessions() as session:
            schema = await session.scalar(select(WorkOrderCategory.fields_schema).where(
                WorkOrderCategory.code == category, WorkOrderCategory.active))
        if schema is None:
            return {}
        values: dict[str, Any] = {}
        for name in schema.get("required", []):
            options = schema.get("properties", {}).get(name, {}).get("enum", [])
            if UNKNOWN_CHOICE in options:
                values[name] = UNKNOWN_CHOICE
        return values


def attach_ivr(router: Hub, billing: BillingBackend, workorders: WorkOrderService) -> IvrRuntime | None:
    """Make the IVR the call script of the voice channel, when it is enabled; the runtime, to warm at start."""
    voice = router.adapters.get("voice")
    if not isinstance(voice, VoiceAdapter):
        return None
    runtime = IvrRuntime(router, router.sessions, LineHours(router.settings),
                         SelfService(router.sessions, billing, workorders), workorders,
                         router.call_desk.agents_on_duty, voice.agents, voice.prompts, router.files)
    voice.script = runtime
    return runtime

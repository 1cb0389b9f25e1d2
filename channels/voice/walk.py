"""One caller's way through an IVR menu, decided without any I/O.

The runtime (the ARI side) feeds what happened on the line — a key, a silence, digits typed, the answer of a
lookup — to an :class:`IvrWalk` and executes the steps it gets back, in order. Each answer ends with what the
walk waits for: :class:`CollectKey` or :class:`CollectDigits` (call :meth:`IvrWalk.key`, :meth:`IvrWalk.digits`
or :meth:`IvrWalk.timeout` next), :class:`Lookup` (call :meth:`IvrWalk.result`), or the end of the walk
(:class:`ToAgent` or :class:`Hangup`; a :class:`Voicemail` step comes just before its ``Hangup``). Events that
arrive when the walk does not wait for them (a late key after the end) give no steps.

The walk never asks the same thing forever: invalid keys, silences, numbers of the wrong length or not found
and denied read-backs are counted per question, and past the node's ``retries`` the caller goes to its
``fallback`` (voicemail, a person or a goodbye). ``0`` reaches the operator from anywhere; when nobody can
answer (after hours, or no agent on duty) every request for a person goes to the menu's ``after_hours`` node.
``path`` and ``keys`` record the way for the call record and the key statistics per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from channels.voice import speech
from channels.voice.ivr import (
    BACK_KEY,
    OPERATOR_KEY,
    REPLAY_KEY,
    AgentNode,
    AnyNode,
    HangupNode,
    IvrMenu,
    LanguageNode,
    MenuNode,
    Prompt,
    SelfServiceNode,
    VoicemailNode,
)
from channels.voice.speech import Language

LookupKind = Literal["bill", "work_order", "outage", "application"]
CONFIRM, REENTER = "1", "2"


@dataclass(frozen=True, slots=True)
class Play:
    text: str
    language: Language


@dataclass(frozen=True, slots=True)
class CollectKey:
    timeout: int  # seconds


@dataclass(frozen=True, slots=True)
class CollectDigits:
    """Digits up to the terminator. ``max_len`` (terminator not counted) is one more than the longest valid
    number, so that a number too long is heard whole and refused instead of cut short."""

    max_len: int
    terminator: str
    timeout: int  # seconds for the whole entry


@dataclass(frozen=True, slots=True)
class Lookup:
    kind: LookupKind
    value: str | None  # the number typed; for outage notices the caller's district (None: not known)


@dataclass(frozen=True, slots=True)
class Voicemail:
    category: str  # the work order's category code
    max_seconds: int


@dataclass(frozen=True, slots=True)
class ToAgent:
    skill: str
    vip: bool


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str  # blacklisted, voicemail, goodbye, no_result, …


Step = Play | CollectKey | CollectDigits | Lookup | Voicemail | ToAgent | Hangup


@dataclass(frozen=True, slots=True)
class Notice:
    """A current outage notice; ``districts`` empty: for the whole service area."""

    text: str
    districts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallerContext:
    """What the hub knows about the caller and the hotline when the call arrives."""

    open_now: bool = True  # within working hours and not a holiday
    agents_available: bool = True  # somebody is signed in to take calls
    blacklisted: bool = False
    vip: bool = False
    district: str | None = None
    language: Language | None = None  # None: the menu's first language
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True, slots=True)
class LookupOutcome:
    """The runtime's answer to a :class:`Lookup`: ``text`` is what to say when something was found."""

    found: bool
    text: str = ""


@dataclass(frozen=True, slots=True)
class KeyPress:
    node: str
    key: str  # one key, or the digits typed at a self-service node


@dataclass(frozen=True, slots=True)
class Miss:
    """A question not answered: ``timeout`` (nothing pressed in time) or ``invalid`` (a key or number the node
    does not take), at ``node``."""

    node: str
    kind: Literal["timeout", "invalid"]


@dataclass(frozen=True, slots=True)
class LookupRecord:
    node: str
    kind: LookupKind
    value: str | None
    found: bool


Phase = Literal["idle", "key", "digits", "confirm", "lookup", "ended"]


@dataclass
class IvrWalk:
    menu: IvrMenu
    context: CallerContext = field(default_factory=CallerContext)
    path: list[str] = field(default_factory=list)  # every node entered, in order
    keys: list[KeyPress] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    lookups: list[LookupRecord] = field(default_factory=list)
    end: str | None = None  # the reason of the Hangup, or "agent"

    def __post_init__(self) -> None:
        self.language: Language = self.context.language if self.context.language in self.menu.languages \
            else self.menu.default_language
        self._node = ""
        self._phase: Phase = "idle"
        self._failures = 0  # at the current question
        self._back: list[str] = []  # menus to return to with #
        self._entered: str | None = None  # digits waiting for their read-back to be confirmed

    @property
    def node(self) -> str:
        return self._node

    @property
    def can_reach_agent(self) -> bool:
        return self.context.open_now and self.context.agents_available

    # -- events ---------------------------------------------------------------------------------------------

    def start(self) -> list[Step]:
        if self._phase != "idle":
            return []
        if self.context.blacklisted:
            return self._finish([self._say(self.menu.prompts.blacklisted)], "blacklisted")
        steps = [self._say(self.menu.prompts.welcome)]
        notices = self._notices()
        if notices:
            template = self.menu.prompts.hot_topics[self.language]
            steps.append(Play(template.replace("{notices}", " ".join(notices)), self.language))
        if not self.can_reach_agent:
            steps.append(self._say(self.menu.prompts.closed))
        return steps + self._enter(self.menu.start)

    def resume(self, last_node: str | None = None) -> list[Step]:
        """A call taken up again after the hub restarted mid-call: no welcome or notices a second time; a caller
        who had chosen a person (``last_node``, the node entered last, is an agent node) goes on to one, any
        other caller is back at the start menu (where in a menu they were is lost)."""
        if self._phase != "idle":
            return []
        if last_node is not None and isinstance(self.menu.nodes.get(last_node), AgentNode):
            return self._enter(last_node)
        return self._enter(self.menu.start)

    def key(self, key: str) -> list[Step]:
        if self._phase == "digits":
            return self.digits(key)
        if self._phase not in ("key", "confirm"):
            return []
        self.keys.append(KeyPress(self._node, key))
        if key == OPERATOR_KEY and self.menu.operator:
            return self._operator()
        if key == REPLAY_KEY:
            return self._ask()
        if key == BACK_KEY:
            return self._go_back()
        node = self._current()
        if self._phase == "confirm":
            assert isinstance(node, SelfServiceNode) and self._entered is not None
            if key == CONFIRM:
                return self._lookup(node, self._entered)
            if key == REENTER:
                return self._retry(node, None, ask_digits=True)
            return self._missed(node, "invalid", self.menu.prompts.invalid)
        assert isinstance(node, MenuNode)
        if key in node.keys:
            return self._go(node.keys[key])
        return self._missed(node, "invalid", self.menu.prompts.invalid)

    def timeout(self) -> list[Step]:
        if self._phase not in ("key", "digits", "confirm"):
            return []
        node = self._current()
        assert isinstance(node, MenuNode | SelfServiceNode)
        return self._missed(node, "timeout", self.menu.prompts.no_input)

    def digits(self, entered: str) -> list[Step]:
        """The digits typed at a self-service node, with or without the terminator. ``*`` alone replays, ``#``
        alone goes back, ``0`` alone reaches the operator."""
        if self._phase != "digits":
            return []
        node = self._current()
        assert isinstance(node, SelfServiceNode) and node.digits is not None
        if entered == "":
            return self.timeout()
        terminator = node.digits.terminator
        value = entered[:-1] if entered.endswith(terminator) else entered
        self.keys.append(KeyPress(self._node, entered))
        if entered == terminator or value == BACK_KEY:
            return self._go_back()
        if value == REPLAY_KEY:
            return self._ask()
        if value == OPERATOR_KEY and self.menu.operator:
            return self._operator()
        if not (value.isascii() and value.isdigit()
                and node.digits.min_length <= len(value) <= node.digits.max_length):
            return self._missed(node, "invalid", node.invalid or self.menu.prompts.invalid)
        if node.confirm is not None:
            self._entered = value
            self._phase = "confirm"
            spoken = speech.digits(value, self.language)
            return [Play(node.confirm[self.language].replace("{value}", spoken), self.language),
                    CollectKey(node.timeout)]
        return self._lookup(node, value)

    def result(self, outcome: LookupOutcome) -> list[Step]:
        if self._phase != "lookup":
            return []
        node = self._current()
        assert isinstance(node, SelfServiceNode)
        self.lookups.append(LookupRecord(self._node, node.kind, self._entered, outcome.found))
        if outcome.found:
            return [*([Play(outcome.text, self.language)] if outcome.text else []), *self._after(node)]
        if node.digits is None:  # no outage notice for the district: nothing to type again
            return [self._say(node.not_found), *self._after(node)]
        return self._retry(node, node.not_found, ask_digits=True)

    # -- moves ----------------------------------------------------------------------------------------------

    def _current(self) -> AnyNode:
        return self.menu.nodes[self._node]

    def _say(self, prompt: Prompt) -> Play:
        return Play(prompt[self.language], self.language)

    def _notices(self) -> list[str]:
        district = self.context.district
        mine = [n.text for n in self.context.notices if district is None or not n.districts or district in n.districts]
        return mine[:self.menu.hot_topics_max]

    def _lookup(self, node: SelfServiceNode, value: str) -> list[Step]:
        self._phase = "lookup"
        self._entered = value
        return [Lookup(node.kind, value)]

    def _finish(self, steps: list[Step], reason: str) -> list[Step]:
        self._phase = "ended"
        self.end = reason
        return [*steps, Hangup(reason)]

    def _go(self, name: str) -> list[Step]:
        """A move by choice: the menu being left is where ``#`` returns to."""
        if isinstance(self._current(), MenuNode) and name != self._node:
            self._back.append(self._node)
        return self._enter(name)

    def _go_back(self) -> list[Step]:
        if not self._back:
            return self._ask()  # at the top already: the question again
        return self._enter(self._back.pop())

    def _operator(self) -> list[Step]:
        assert self.menu.operator is not None
        return self._enter(self.menu.operator)

    def _after(self, node: SelfServiceNode) -> list[Step]:
        """Where a caller goes after an answer: the node's ``then``, else back, else goodbye."""
        if node.then:
            self._back.clear()
            return self._enter(node.then)
        if self._back:
            return self._enter(self._back.pop())
        return self._finish([self._say(self.menu.prompts.goodbye)], "goodbye")

    def _enter(self, name: str) -> list[Step]:
        node = self.menu.nodes[name]
        if isinstance(node, AgentNode) and not self.can_reach_agent:
            assert self.menu.after_hours is not None  # checked by parse_menu
            name, node = self.menu.after_hours, self.menu.nodes[self.menu.after_hours]
        self._node = name
        self._failures = 0
        self._entered = None
        self.path.append(name)
        if isinstance(node, MenuNode):
            self._phase = "key"
            return self._ask()
        if isinstance(node, SelfServiceNode):
            if node.digits is None:
                prompt = [self._say(node.prompt)] if node.prompt else []
                self._phase = "lookup"
                self._entered = self.context.district
                return [*prompt, Lookup(node.kind, self.context.district)]
            self._phase = "digits"
            return self._ask()
        if isinstance(node, LanguageNode):
            self.language = node.language
            return [*([self._say(node.prompt)] if node.prompt else []), *self._enter(node.then)]
        if isinstance(node, VoicemailNode):
            return self._finish([self._say(node.prompt), Voicemail(node.category, node.max_seconds),
                                 self._say(node.thanks)], "voicemail")
        if isinstance(node, AgentNode):
            self._phase = "ended"
            self.end = "agent"
            return [self._say(node.prompt), ToAgent(node.skill, self.context.vip)]
        assert isinstance(node, HangupNode)
        return self._finish([self._say(node.prompt or self.menu.prompts.goodbye)], "goodbye")

    def _ask(self) -> list[Step]:
        """The current question (again)."""
        node = self._current()
        if self._phase == "confirm":
            assert isinstance(node, SelfServiceNode) and node.confirm is not None and self._entered is not None
            spoken = speech.digits(self._entered, self.language)
            return [Play(node.confirm[self.language].replace("{value}", spoken), self.language),
                    CollectKey(node.timeout)]
        if isinstance(node, MenuNode):
            closed = node.closed_prompt if not self.can_reach_agent else None
            return [self._say(closed or node.prompt), CollectKey(node.timeout)]
        assert isinstance(node, SelfServiceNode) and node.digits is not None and node.prompt is not None
        return [self._say(node.prompt),
                CollectDigits(node.digits.max_length + 1, node.digits.terminator, node.timeout)]

    def _missed(self, node: MenuNode | SelfServiceNode, kind: Literal["timeout", "invalid"], why: Prompt) -> list[Step]:
        self.misses.append(Miss(self._node, kind))
        return self._retry(node, why)

    def _retry(self, node: MenuNode | SelfServiceNode, why: Prompt | None, *, ask_digits: bool = False) -> list[Step]:
        """One more failure at this question: ask again (after saying ``why``), or past the retries fall back."""
        self._failures += 1
        said = [self._say(why)] if why is not None else []
        if self._failures > node.retries:
            return [*said, *self._enter(node.fallback)]
        if ask_digits:
            self._phase = "digits"
            self._entered = None
        return [*said, *self._ask()]

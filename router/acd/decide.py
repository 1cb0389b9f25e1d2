"""ACD decisions: which agent gets which waiting conversation. No I/O here, so a decision is cheap to test and
to measure; :mod:`router.acd.distributor` loads the floor from the database and writes the plan back.

An agent is a candidate for a waiting item when they are ready, have room (``load < capacity``), belong to
the item's team (an item without a team is everyone's) and have its skill, if it needs one. A phone call
needs an agent with a phone and nothing else open, and fills their whole capacity. Among the candidates the
team's policy decides:

* region binding: when agents of the item's district are signed in, only they are considered (the item
  waits for them rather than going to another district); when none is, any agent of the team will do, so a
  resident is never stranded by a district without staff on shift;
* sticky: the agent who last served the resident, if they are a candidate;
* then the team's strategy: least busy (fewest chats, then longest since their last assignment), longest
  idle (longest since their last assignment), or round robin (the next agent by id after the last one).

Items are taken in order (VIP first, then priority, then longest waiting); an item with no candidate is
skipped, so it does not hold back the items behind it that other agents can take.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from router.models import RoutingStrategy

EVERYONE = None  # the team key of items without a team


@dataclass(slots=True)
class AgentSlot:
    """A signed-in agent as the ACD sees them."""

    id: int
    capacity: int
    load: int
    ready: bool
    team_ids: frozenset[int]
    skill_ids: frozenset[int] = frozenset()
    region_id: int | None = None
    last_assigned_at: float = 0.0  # seconds since the epoch; 0 when never assigned
    phone: bool = False  # has a phone (an extension) to take calls on

    @property
    def free(self) -> bool:
        return self.ready and self.load < self.capacity


@dataclass(frozen=True, slots=True)
class Policy:
    strategy: RoutingStrategy = RoutingStrategy.LEAST_BUSY
    prefer_last_agent: bool = False
    bind_region: bool = False
    rr_cursor: int | None = None


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Item:
    conversation_id: int
    team_id: int | None
    skill_id: int | None = None
    region_id: int | None = None
    last_agent_id: int | None = None  # who served this resident last
    call: bool = False  # a phone call: needs an agent with a phone and nothing else open


@dataclass(frozen=True, slots=True)
class Assignment:
    conversation_id: int
    agent_id: int


@dataclass
class Floor:
    """The signed-in agents, indexed by team, with how many of each team can take an item right now."""

    agents: list[AgentSlot]
    now: float
    _members: dict[int | None, list[AgentSlot]] = field(init=False)
    _free: dict[int | None, int] = field(init=False)

    def __post_init__(self) -> None:
        self._members = defaultdict(list)
        for agent in sorted(self.agents, key=lambda a: a.id):
            self._members[EVERYONE].append(agent)
            for team_id in agent.team_ids:
                self._members[team_id].append(agent)
        self._free = {team: sum(a.free for a in members) for team, members in self._members.items()}

    def members(self, team_id: int | None) -> list[AgentSlot]:
        return self._members.get(team_id, [])

    def anyone_free(self, team_id: int | None) -> bool:
        return self._free.get(team_id, 0) > 0

    def take(self, agent: AgentSlot, *, whole: bool = False) -> None:
        """Count one more chat for ``agent`` (``whole``: a call, which fills them up); a team loses a free agent
        when this one fills up."""
        agent.load = agent.capacity if whole else agent.load + 1
        agent.last_assigned_at = self.now
        if not agent.free:
            for team in (EVERYONE, *agent.team_ids):
                self._free[team] -= 1


def candidates(item: Item, policy: Policy, floor: Floor) -> list[AgentSlot]:
    members = floor.members(item.team_id)
    if item.skill_id is not None:
        members = [a for a in members if item.skill_id in a.skill_ids]
    if policy.bind_region and item.region_id is not None:
        local = [a for a in members if a.region_id == item.region_id]
        if local:
            members = local
    if item.call:
        return [a for a in members if a.free and a.phone and a.load == 0]
    return [a for a in members if a.free]


def choose(item: Item, policy: Policy, floor: Floor) -> AgentSlot | None:
    """The agent ``item`` should go to now, or None when nobody can take it."""
    if not floor.anyone_free(item.team_id):
        return None
    free = candidates(item, policy, floor)
    if not free:
        return None
    if policy.prefer_last_agent and item.last_agent_id is not None:
        for agent in free:
            if agent.id == item.last_agent_id:
                return agent
    if policy.strategy == RoutingStrategy.ROUND_ROBIN:
        cursor = policy.rr_cursor or 0
        return next((a for a in free if a.id > cursor), free[0])  # ``free`` is in id order
    if policy.strategy == RoutingStrategy.LONGEST_IDLE:
        return min(free, key=lambda a: (a.last_assigned_at, a.load, a.id))
    return min(free, key=lambda a: (a.load, a.last_assigned_at, a.id))


@dataclass(frozen=True, slots=True)
class Plan:
    assignments: list[Assignment]
    rr_cursors: dict[int | None, int]  # per team: the agent round robin chose last


def plan(items: Iterable[Item], policies: dict[int | None, Policy], floor: Floor) -> Plan:
    """Assign as many of ``items`` (in the order given) as the floor has room for."""
    assignments = []
    cursors: dict[int | None, int] = {}
    for item in items:
        policy = policies.get(item.team_id, DEFAULT_POLICY)
        if item.team_id in cursors:
            policy = replace(policy, rr_cursor=cursors[item.team_id])
        agent = choose(item, policy, floor)
        if agent is None:
            continue
        floor.take(agent, whole=item.call)
        if policy.strategy == RoutingStrategy.ROUND_ROBIN:
            cursors[item.team_id] = agent.id
        assignments.append(Assignment(item.conversation_id, agent.id))
    return Plan(assignments, cursors)

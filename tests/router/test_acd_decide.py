"""The ACD's decisions on their own: strategies, capacity, skills, region binding, sticky agents, order."""

from __future__ import annotations

from collections import Counter

from router.acd.decide import AgentSlot, Floor, Item, Policy, choose, plan
from router.models import RoutingStrategy

TEAM, OTHER = 1, 2


def agent(agent_id: int, *, load: int = 0, capacity: int = 5, ready: bool = True, teams=(TEAM,), skills=(),
          region: int | None = None, last: float = 0.0) -> AgentSlot:
    return AgentSlot(agent_id, capacity, load, ready, frozenset(teams), frozenset(skills), region, last)


def items(count: int, team: int | None = TEAM, **fields) -> list[Item]:
    return [Item(1000 + n, team, **fields) for n in range(count)]


def spread(strategy: RoutingStrategy, agents: list[AgentSlot], count: int) -> Counter[int]:
    decided = plan(items(count), {TEAM: Policy(strategy)}, Floor(agents, now=100.0))
    return Counter(a.agent_id for a in decided.assignments)


def test_least_busy_and_round_robin_spread_evenly_and_keep_to_capacity() -> None:
    for strategy in (RoutingStrategy.LEAST_BUSY, RoutingStrategy.ROUND_ROBIN):
        counts = spread(strategy, [agent(i, capacity=20) for i in (3, 1, 2)], 30)
        assert sorted(counts.values()) == [10, 10, 10], strategy
    # Least busy evens out what agents already have; nobody gets more than their capacity.
    counts = spread(RoutingStrategy.LEAST_BUSY, [agent(1, load=4), agent(2, load=0), agent(3, load=1)], 20)
    assert counts == {1: 1, 2: 5, 3: 4}


def test_round_robin_continues_after_the_last_agent_chosen() -> None:
    floor = Floor([agent(i) for i in (1, 2, 3)], now=1.0)
    decided = plan(items(4), {TEAM: Policy(RoutingStrategy.ROUND_ROBIN, rr_cursor=2)}, floor)
    assert [a.agent_id for a in decided.assignments] == [3, 1, 2, 3]
    assert decided.rr_cursors == {TEAM: 3}


def test_longest_idle_prefers_whoever_waited_longest_since_their_last_chat() -> None:
    floor = Floor([agent(1, last=50.0), agent(2, last=10.0, load=3), agent(3, last=30.0)], now=100.0)
    decided = plan(items(3), {TEAM: Policy(RoutingStrategy.LONGEST_IDLE)}, floor)
    assert [a.agent_id for a in decided.assignments] == [2, 3, 1]


def test_only_ready_agents_with_room_in_the_team_and_with_the_skill_get_items() -> None:
    floor = Floor([agent(1, ready=False), agent(2, load=5), agent(3, teams=(OTHER,)), agent(4, skills=(7,)),
                   agent(5)], now=1.0)
    assert choose(Item(1, TEAM, skill_id=7), Policy(), floor).id == 4
    assert choose(Item(2, TEAM), Policy(), floor).id in {4, 5}
    nobody = Floor([agent(1, ready=False), agent(2, load=5)], now=1.0)
    assert choose(Item(3, TEAM), Policy(), nobody) is None
    assert plan(items(3), {}, nobody).assignments == []
    # An item without a team is everyone's.
    assert choose(Item(4, None), Policy(), Floor([agent(9, teams=(OTHER,))], now=1.0)).id == 9


def test_sticky_goes_back_to_the_last_agent_when_they_can_take_it() -> None:
    sticky = Policy(RoutingStrategy.LEAST_BUSY, prefer_last_agent=True)
    floor = Floor([agent(1), agent(2, load=3)], now=1.0)
    assert choose(Item(1, TEAM, last_agent_id=2), sticky, floor).id == 2
    assert choose(Item(1, TEAM, last_agent_id=2), Policy(), floor).id == 1  # not sticky: least busy
    full = Floor([agent(1), agent(2, load=5)], now=1.0)
    assert choose(Item(1, TEAM, last_agent_id=2), sticky, full).id == 1  # the last agent is full: anyone


def test_region_binding_waits_for_district_agents_but_never_strands_a_district_without_staff() -> None:
    bound = Policy(bind_region=True)
    floor = Floor([agent(1, region=10), agent(2, region=20, load=5), agent(3, region=None)], now=1.0)
    assert choose(Item(1, TEAM, region_id=10), bound, floor).id == 1
    assert choose(Item(1, TEAM, region_id=20), bound, floor) is None  # district 20's agent is on shift but full
    assert choose(Item(1, TEAM, region_id=30), bound, floor).id in {1, 3}  # nobody of district 30 signed in
    assert choose(Item(1, TEAM, region_id=20), Policy(), floor).id in {1, 3}  # not bound: anyone


def test_an_item_nobody_can_take_does_not_hold_back_the_ones_behind_it() -> None:
    floor = Floor([agent(1)], now=1.0)
    decided = plan([Item(1, TEAM, skill_id=9), Item(2, TEAM)], {}, floor)
    assert [a.conversation_id for a in decided.assignments] == [2]


def test_a_call_goes_to_an_agent_with_a_phone_and_nothing_open_and_fills_them_up() -> None:
    chatting = AgentSlot(1, 5, 1, True, frozenset({TEAM}), phone=True)
    phoneless = AgentSlot(2, 5, 0, True, frozenset({TEAM}))
    free = AgentSlot(3, 5, 0, True, frozenset({TEAM}), phone=True)
    floor = Floor([chatting, phoneless, free], now=1.0)
    calls, chats = items(2, call=True), [Item(2000, TEAM), Item(2001, TEAM)]
    decided = plan([*calls, *chats], {TEAM: Policy()}, floor)
    # One call for the only free agent with a phone; the other call waits; the chats go to the others, and
    # none to the agent on the call.
    assert [(a.conversation_id, a.agent_id) for a in decided.assignments] == [(1000, 3), (2000, 2), (2001, 1)]
    assert free.load == free.capacity

"""``python -m bench.acd``: the ACD's figures.

1. Decisions alone (:mod:`router.acd.decide`): 1,000 signed-in agents and 10,000 waiting items, every
   item decided against the floor (sticky and region binding on), per strategy; once with 20 teams of 50
   agents, once with a single team of 1,000 (the worst case: every decision looks at every agent).
2. A pass through the database (:class:`router.acd.distributor.Distributor`) on PostgreSQL: 1,000 ready
   agents with one seat each and 10,000 waiting conversations, generated in the database; the pass loads
   the floor and the queue, decides, and writes 1,000 assignments with their events. Then a pass with
   everyone busy and 9,000 still waiting: what the sweep costs every second on a full floor.
3. Push latency under load: a hub process on PostgreSQL, 50 agents ready (10 seats each) with their inbox
   socket open, 400 residents writing their first message at 50 per second; measured from the resident's
   send to the assignment event on the agent's socket.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from bench.clients import Recorder, Resident, Staff
from bench.hubproc import ROOT, HubProcess, open_database
from bench.report import machine_facts, write_section
from bench.stats import Distribution
from router.acd.decide import AgentSlot, Floor, Item, Policy, choose, plan
from router.acd.distributor import Distributor
from router.db import create_engine, migrate, session_factory
from router.models import RoutingStrategy
from router.settings import Settings

DOC = ROOT / "docs" / "benchmarks.md"
MARKERS = ("<!-- acd:begin -->", "<!-- acd:end -->")
AGENTS, ITEMS = 1_000, 10_000
DECISION_TARGET_MS = 5.0
DEFAULT_TEAM = Settings.model_fields["default_team"].default  # where web-chat residents queue


def _floor(teams: int, rng: random.Random) -> Floor:
    agents = [
        AgentSlot(id=n, capacity=5, load=rng.randint(0, 4), ready=rng.random() < 0.8,
                  team_ids=frozenset({n % teams}), skill_ids=frozenset({rng.randint(0, 3)}),
                  region_id=rng.randint(0, 10), last_assigned_at=rng.random() * 1000)
        for n in range(1, AGENTS + 1)
    ]
    return Floor(agents, now=2000.0)


def _items(teams: int, rng: random.Random) -> list[Item]:
    return [Item(n, n % teams, skill_id=rng.choice([None, None, rng.randint(0, 3)]), region_id=rng.randint(0, 12),
                 last_agent_id=rng.choice([None, rng.randint(1, AGENTS)])) for n in range(ITEMS)]


def measure_decisions() -> list[dict[str, Any]]:
    rows = []
    for teams in (20, 1):
        for strategy in RoutingStrategy:
            rng = random.Random(962740)
            floor, items = _floor(teams, rng), _items(teams, rng)
            policies = {t: Policy(strategy, prefer_last_agent=True, bind_region=True) for t in range(teams)}
            times = []
            for item in items:
                started = time.perf_counter()
                choose(item, policies[item.team_id], floor)
                times.append(time.perf_counter() - started)
            started = time.perf_counter()
            decided = plan(items, policies, floor)
            whole = time.perf_counter() - started
            rows.append({"teams": teams, "strategy": strategy.value, "decision": Distribution.of(times),
                         "plan_seconds": whole, "assigned": len(decided.assignments)})
    return rows


SEED_SQL = [
    "INSERT INTO team (id, name, created_at, strategy, prefer_last_agent, bind_region, service_level_seconds) "
    "VALUES (1000, 'bench', now(), 'least_busy', true, false, 20)",
    "INSERT INTO staff_user (id, username, display_name, role, password_hash, active, max_chats, created_at) "
    "SELECT 1000 + g, 'bench' || g, '坐席' || g, 'agent', 'x', true, 1, now() FROM generate_series(1, {agents}) g",
    "INSERT INTO user_team (user_id, team_id) SELECT 1000 + g, 1000 FROM generate_series(1, {agents}) g",
    "INSERT INTO agent_presence (user_id, state, since, seen_at) "
    "SELECT 1000 + g, 'ready', now(), now() FROM generate_series(1, {agents}) g",
    "INSERT INTO contact (id, display_name, vip, blacklisted, created_at) "
    "SELECT 1000 + g, '居民' || g, g % 50 = 0, false, now() FROM generate_series(1, {items}) g",
    "INSERT INTO conversation (channel, external_id, contact_id, state, team_id, priority, reopen_count, "
    "created_at, updated_at, queued_at, queue_entered_at) "
    "SELECT 'webchat', 'bench-' || g, 1000 + g, 'queued', 1000, 0, 0, now(), now(), "
    "now() - (g || ' milliseconds')::interval, now() FROM generate_series(1, {items}) g",
]


async def measure_pass(database_url: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    await migrate(engine)
    async with engine.begin() as connection:
        for statement in SEED_SQL:
            await connection.execute(text(statement.format(agents=AGENTS, items=ITEMS)))
        await connection.execute(text("ANALYZE"))
    settings = Settings(database_url=database_url, _env_file=None)

    async def publish(_result: Any) -> None:
        """The pass's events are not published here: only the pass itself is measured."""

    distributor = Distributor(session_factory(engine), settings, publish)
    started = time.perf_counter()
    busy = await distributor.run_pass(sweep=True)
    assigning = time.perf_counter() - started
    idle_times = []
    for _ in range(5):
        started = time.perf_counter()
        idle = await distributor.run_pass(sweep=True)
        idle_times.append(time.perf_counter() - started)
        assert not idle.assigned
    await engine.dispose()
    return {"assigned": len(busy.assigned), "assign_seconds": assigning, "idle": Distribution.of(idle_times)}


class _Arrivals:
    """When each conversation's assignment reached an agent's socket; ``complete`` once all ``expected`` did."""

    def __init__(self, expected: int) -> None:
        self.at: dict[int, float] = {}
        self.expected = expected
        self.complete = asyncio.Event()

    def note(self, conversation_id: int, at: float) -> None:
        self.at.setdefault(conversation_id, at)
        if len(self.at) >= self.expected:
            self.complete.set()


class _Agent(Staff):
    """A ready agent with the inbox socket open, noting when assignments arrive."""

    def __init__(self, base_url: str, recorder: Recorder, arrivals: _Arrivals) -> None:
        super().__init__(base_url, recorder)
        self.arrivals = arrivals

    def on_frame(self, data: dict[str, Any], at: float) -> None:
        if data.get("type") == "conversation" and data["conversation"]["state"] == "assigned":
            self.arrivals.note(data["conversation"]["id"], at)

    async def ready(self) -> None:
        async with self._http.put(f"{self._base_url}/api/presence", json={"state": "ready"},
                                  headers={"X-CSRF-Token": self._csrf}) as response:
            if response.status != 200:
                raise RuntimeError(f"PUT /api/presence answered {response.status}: {await response.text()}")


async def measure_push(hub: HubProcess, agents: int = 50, residents: int = 400, rate: float = 50.0
                       ) -> dict[str, Any]:
    arrivals = _Arrivals(residents)
    recorder = Recorder()
    admin = Staff(hub.url, recorder)
    await admin.login("admin", hub.admin_password)
    desks: list[_Agent] = []
    for n in range(agents):
        status, body = await admin._post("/api/users", {
            "username": f"acd{n}", "password": "bench-password", "role": "agent", "display_name": f"坐席{n}",
            "max_chats": 10, "teams": [DEFAULT_TEAM]})
        assert status == 201, body
        desk = _Agent(hub.url, recorder, arrivals)
        await desk.login(f"acd{n}", "bench-password")
        await desk.listen()
        await desk.ready()
        desks.append(desk)
    # One open socket per resident: no cap on the session's connections (aiohttp's default is 100).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        people = [Resident(http, hub.url, recorder) for _ in range(residents)]
        for person in people:
            await person.connect()
        started = time.perf_counter()
        for n, person in enumerate(people):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            await person.send(f"bench-acd-{n:06d}", f"第{n}位居民求助")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.complete.wait(), timeout=30)
        sent = {person.conversation_id: recorder.ledger.sent[f"bench-acd-{n:06d}"]
                for n, person in enumerate(people) if person.conversation_id is not None}
        for person in people:
            await person.close()
    for desk in [*desks, admin]:
        await desk.close()
    latencies = [arrivals.at[c] - sent[c] for c in sent if c in arrivals.at]
    return {"agents": agents, "residents": residents, "rate": rate, "assigned": len(latencies),
            "latency": Distribution.of(latencies)}


def render(decisions: list[dict[str, Any]], passed: dict[str, Any], push: dict[str, Any],
           command: str) -> str:
    m = machine_facts()
    worst = max(row["decision"].p99 for row in decisions)
    lines = [
        "<!-- acd:begin -->",
        "## ACD: decisions, a pass through the database, assignment push",
        "",
        f"Measured {m.date} with `{command}`.",
        "",
        f"**Machine.** {m.cpus} CPUs, {m.cpu_model}, {m.memory_gib:.1f} GiB RAM, {m.kernel}; Python {m.python}; "
        "PostgreSQL on the same machine. The hub, the clients and PostgreSQL share these cores.",
        "",
        f"**Decisions alone**, {AGENTS:,} signed-in agents (80 % ready, 5 seats, random loads, skills and districts), "
        f"{ITEMS:,} waiting items (sticky and region binding on). Goal: a decision ≤ {DECISION_TARGET_MS:g} ms.",
        "",
        "| Teams | Strategy | Decision p50 | p99 | max | Whole plan of 10,000 items | Assigned |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in decisions:
        d = row["decision"]
        lines.append(f"| {row['teams']} | {row['strategy']} | {d.p50:.3f} ms | {d.p99:.3f} ms | {d.max:.2f} ms | "
                     f"{row['plan_seconds'] * 1000:.0f} ms | {row['assigned']:,} |")
    lines += [
        "",
        f"Worst p99 of a decision: **{worst:.3f} ms** (goal ≤ {DECISION_TARGET_MS:g} ms: "
        f"{'met' if worst <= DECISION_TARGET_MS else 'NOT met'}).",
        "",
        f"**A pass through PostgreSQL**, {AGENTS:,} ready agents with one seat each, {ITEMS:,} waiting conversations: "
        f"the pass (advisory lock, floor, queue in rounds of 500, sticky look-up, decisions, {passed['assigned']:,} "
        f"assignments with their events, commit) took **{passed['assign_seconds'] * 1000:.0f} ms** "
        f"({passed['assign_seconds'] * 1000 / max(1, passed['assigned']):.2f} ms per assignment). "
        f"With everyone busy and {ITEMS - passed['assigned']:,} still waiting, a sweep pass costs "
        f"p50 {passed['idle'].p50:.1f} ms · max {passed['idle'].max:.1f} ms.",
        "",
        f"**Assignment push under load**, hub process on PostgreSQL, {push['agents']} agents ready with their inbox "
        f"socket open (10 seats each), {push['residents']} residents writing their first message at "
        f"{push['rate']:g}/s: from the resident's send to the assignment event on the agent's socket, "
        f"p50 {push['latency'].p50:.1f} ms · p95 {push['latency'].p95:.1f} ms · **p99 {push['latency'].p99:.1f} ms** · "
        f"max {push['latency'].max:.1f} ms ({push['assigned']} of {push['residents']} assigned).",
        "<!-- acd:end -->",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the ACD section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    print("decisions …", file=sys.stderr)
    decisions = measure_decisions()
    with tempfile.TemporaryDirectory(prefix="shuiwu-bench-acd-") as tmp:
        with open_database("postgresql", Path(tmp)) as database:
            print("a pass through PostgreSQL …", file=sys.stderr)
            passed = asyncio.run(measure_pass(database.url))
        with open_database("postgresql", Path(tmp)) as database, HubProcess(database, Path(tmp)) as hub:
            print("assignment push under load …", file=sys.stderr)
            push = asyncio.run(measure_push(hub))
    section = render(decisions, passed, push,
                     "python -m bench.acd" + (" --write" if args.write else ""))
    print(section)
    if args.write:
        write_section(DOC, section, MARKERS)


if __name__ == "__main__":
    main()

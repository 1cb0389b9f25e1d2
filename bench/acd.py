"""``python -m bench.acd``: the ACD's figures.

1. Decisions alone (:mod:`router.acd.decide`): 1,000 signed-in agents and 10,000 waiting items, every
   item decided against the floor (sticky and region binding on), per strategy; once with 20 teams of 50
   agents, once with a single team of 1,000 (the worst case: every decision looks at every agent).
2. A pass through the database (:class:`router.acd.distributor.Distributor`) on PostgreSQL: 1,000 ready
   agents with one seat each and 10,000 waiting conversations, generated in the database; the pass loads
   the floor and the queue, decides, and writes 1,000 assignments with their events. Then a pass with
   everyone busy and 9,000 still waiting: what the sweep costs every second on a full floor.
3. Push latency under load: a hub process on PostgreSQL driving a real Asterisk, 50 agents ready (10 seats
   each) with their inbox socket open, 400 residents writing their first message at 50 per second while 20
   callers dial in over the same seconds and press 0 for a person, taken by 10 more agents on sipp desk
   phones in a phone team of their own, which the IVR menu's agent node names (a call fills an agent's whole
   capacity, so the calls' agents take no chats); measured from the resident's send to the assignment
   event on the agent's socket, and for the calls from joining the queue to the agent's phone ringing.
   Three runs, each on a new hub, Asterisk and database: the tail of one run depends on how the hub,
   Asterisk, the clients and PostgreSQL happen to share the two cores. Where the time went, from the times
   the hub wrote on each conversation: send → stored and queued (``queued_at``), → assigned by a pass
   (``assigned_at``), → on the agent's socket (the pass's commit, its publication and the fan-out to every
   tab that may see the conversation).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from bench.clients import Recorder, Resident, Staff
from bench.hubproc import Database, HubProcess, open_database
from bench.report import machine_facts, publish
from bench.stats import Distribution, cpu_between, cpu_snapshot
from bench.voice import voice_hub
from router.acd.decide import AgentSlot, Floor, Item, Policy, choose, plan
from router.acd.distributor import Distributor
from router.db import create_engine, migrate, session_factory
from router.models import RoutingStrategy
from router.settings import Settings
from tests.support import sipp
from tests.support.asterisk import Asterisk, root_ready

MARKERS = ("<!-- acd:begin -->", "<!-- acd:end -->")
AGENTS, ITEMS = 1_000, 10_000
DECISION_TARGET_MS = 5.0
PUSH_RUNS, PUSH_TARGET_MS = 3, 100.0
PHONE_AGENTS, CALLERS, CALL_TALK_MS = 10, 20, 4000
DEFAULT_TEAM = Settings.model_fields["default_team"].default  # where web-chat residents queue
ACW_SECONDS = Settings.model_fields["acw_seconds"].default  # a phone agent's after-call work
PHONE_TEAM = "电话坐席"  # the calls' team: the IVR menu's agent node names it (a call needs an agent with nothing open)


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

    def __init__(self, base_url: str, recorder: Recorder, arrivals: _Arrivals, user_id: int) -> None:
        super().__init__(base_url, recorder)
        self.arrivals = arrivals
        self.user_id = user_id

    def on_frame(self, data: dict[str, Any], at: float) -> None:
        conversation = data.get("conversation") if data.get("type") == "conversation" else None
        if conversation and conversation["state"] == "assigned" and conversation["channel"] == "webchat":
            self.arrivals.note(conversation["id"], at)

    async def ready(self) -> None:
        status, body = await self._put("/api/presence", {"state": "ready"})
        if status != 200:
            raise RuntimeError(f"PUT /api/presence answered {status}: {body}")


async def _agent(admin: Staff, hub: HubProcess, recorder: Recorder, arrivals: _Arrivals, username: str,
                 extension: str | None = None) -> tuple[_Agent, str | None]:
    """A new agent (10 seats) signed in with the inbox socket open: in the chats' team, or with ``extension``
    in the phone team on a desk phone (its SIP password returned)."""
    status, body = await admin._post("/api/users", {
        "username": username, "password": "bench-password", "role": "agent", "display_name": username,
        "max_chats": 10, "teams": [DEFAULT_TEAM if extension is None else PHONE_TEAM]})
    assert status == 201, body
    password = None
    if extension is not None:
        status, phone = await admin._put(f"/api/users/{body['id']}/phone", {"extension": extension})
        assert status == 200, phone
        password = phone["password"]
    desk = _Agent(hub.url, recorder, arrivals, body["id"])
    await desk.login(username, "bench-password")
    await desk.listen()
    return desk, password


FINISHED_CALLS = (
    "SELECT DISTINCT v.id, v.assignee_id FROM conversation v JOIN call c ON c.conversation_id = v.id "
    "JOIN call_event e ON e.call_id = c.id AND e.kind = 'agent_hangup' WHERE v.channel = 'voice' "
    "AND v.state = 'assigned'")


async def _close_finished_calls(database: Database, phones: dict[int, _Agent]) -> None:
    """The phone agents close a call's conversation once they have hung up, as agents do: a call goes only to
    an agent with nothing open."""
    while True:
        for conversation_id, agent_id in await asyncio.to_thread(database.rows, FINISHED_CALLS):
            if int(agent_id) in phones:
                await phones[int(agent_id)]._post(f"/api/conversations/{conversation_id}/close", {})
        await asyncio.sleep(0.5)


async def measure_push(hub: HubProcess, asterisk: Asterisk, database: Database, agents: int = 50,
                       residents: int = 400, rate: float = 50.0) -> dict[str, Any]:
    arrivals = _Arrivals(residents)
    recorder = Recorder()
    admin = Staff(hub.url, recorder)
    await admin.login("admin", hub.admin_password)
    status, menu = await admin._get("/api/ivr/menu")
    assert status == 200, menu
    status, saved = await admin._put("/api/ivr/menu", {"yaml": re.sub(
        r"^(\s+skill: ).*$", rf"\g<1>{PHONE_TEAM}", menu["yaml"], flags=re.MULTILINE)})
    assert status == 200, saved
    desks = [(await _agent(admin, hub, recorder, arrivals, f"acd{n}"))[0] for n in range(agents)]
    callers = [f"139{random.randrange(10**8):08d}" for _ in range(CALLERS)]
    window = residents / rate  # the calls come in over the seconds the chats do
    phones: dict[int, _Agent] = {}
    async with contextlib.AsyncExitStack() as stack:
        for n in range(PHONE_AGENTS):
            desk, password = await _agent(admin, hub, recorder, arrivals, f"tel{n}", extension=str(300000 + n))
            assert password is not None
            await stack.enter_async_context(sipp.DeskPhone(asterisk.sip_port, str(300000 + n), password,
                                                           ring_ms=200, talk_ms=CALL_TALK_MS))
            phones[desk.user_id] = desk
        for desk in [*desks, *phones.values()]:
            await desk.ready()
        wrapping = asyncio.create_task(_close_finished_calls(database, phones))
        stack.callback(wrapping.cancel)

        async def call_in(n: int, number: str) -> sipp.CallResult:
            await asyncio.sleep(n * window / CALLERS)
            # The caller waits for an agent however long (the first ten agents are in after-call work before
            # they take a second call), talks, and lets the hub hang up after the survey.
            steps = [sipp.Pause(1000), *sipp.digits("0")]
            return await sipp.call(asterisk.sip_port, number, "962740", steps, wait_for_hangup=True, timeout=120)

        # One open socket per resident: no cap on the session's connections (aiohttp's default is 100).
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            people = [Resident(http, hub.url, recorder) for _ in range(residents)]
            for person in people:
                await person.connect()
            calls = [asyncio.create_task(call_in(n, number)) for n, number in enumerate(callers)]
            started = time.perf_counter()
            wall = time.time() - started  # the clients' clock to the hub's (one machine)
            before = cpu_snapshot(hub.pid)
            for n, person in enumerate(people):
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                await person.send(f"bench-acd-{n:06d}", f"第{n}位居民求助")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrivals.complete.wait(), timeout=30)
            cpu = cpu_between(before, cpu_snapshot(hub.pid))
            sent = {person.conversation_id: recorder.ledger.sent[f"bench-acd-{n:06d}"]
                    for n, person in enumerate(people) if person.conversation_id is not None}
            for person in people:
                await person.close()
            await asyncio.gather(*calls)
        await asyncio.sleep(3)  # the last call records are written after the hang-ups
    for desk in [*desks, *phones.values(), admin]:
        await desk.close()
    latencies = [arrivals.at[c] - sent[c] for c in sent if c in arrivals.at]
    ids = ",".join(str(int(c)) for c in sent if c in arrivals.at)
    stamps = {int(c): (float(queued), float(assigned)) for c, queued, assigned in database.rows(
        "SELECT id, extract(epoch FROM queued_at), extract(epoch FROM assigned_at) FROM conversation "  # noqa: S608
        f"WHERE id IN ({ids}) AND queued_at IS NOT NULL AND assigned_at IS NOT NULL")} if ids else {}
    numbers = ",".join(f"'+86{number}'" for number in callers)  # digits only
    # In the order they joined the queue: the first calls found an agent free, the others waited for one to
    # finish a call and its after-call work.
    rings = [float(seconds) for (seconds,) in database.rows(
        "SELECT extract(epoch FROM min(e.at) - c.queued_at) FROM call c JOIN call_event e ON e.call_id = c.id "  # noqa: S608
        f"AND e.kind = 'ring' WHERE c.caller IN ({numbers}) AND c.queued_at IS NOT NULL GROUP BY c.id, c.queued_at "
        "ORDER BY c.queued_at")]
    bridged = database.rows(f"SELECT count(*) FROM call WHERE caller IN ({numbers}) "  # noqa: S608
                            "AND connected_at IS NOT NULL")[0][0]
    return {"agents": agents, "residents": residents, "rate": rate, "assigned": len(latencies),
            "latency": Distribution.of(latencies), "calls": len(callers), "bridged": int(bridged),
            "cpu": cpu,
            "to_queue": Distribution.of(queued - wall - sent[c] for c, (queued, _) in stamps.items()),
            "to_pass": Distribution.of(assigned - queued for queued, assigned in stamps.values()),
            "to_socket": Distribution.of(arrivals.at[c] - (assigned - wall) for c, (_, assigned) in stamps.items()),
            "free_to_ring": Distribution.of(rings[:PHONE_AGENTS]),
            "busy_to_ring": Distribution.of(rings[PHONE_AGENTS:])}


def render(decisions: list[dict[str, Any]], passed: dict[str, Any], pushes: list[dict[str, Any]],
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
        f"**Assignment push under load, calls and chats together**, hub process on PostgreSQL driving Asterisk, "
        f"{pushes[0]['agents']} agents ready with their inbox socket open (10 seats each), {pushes[0]['residents']} "
        f"residents writing their first message at {pushes[0]['rate']:g}/s while {pushes[0]['calls']} callers dial "
        f"in over the same seconds and press 0, taken by {PHONE_AGENTS} more agents on sipp desk phones in a phone "
        "team of their own: from the "
        "resident's send to the assignment event on the agent's socket; for the calls, from joining the queue to "
        f"the agent's phone ringing: the first {PHONE_AGENTS} with an agent free, the others once an agent's call "
        f"and its {ACW_SECONDS:g} s of after-call work are over. {len(pushes)} runs (each a new "
        f"hub, Asterisk and database); goal for the chats' p99 ≤ {PUSH_TARGET_MS:g} ms.",
        "",
        "| Run | Chats p50 | p95 | p99 | max | Assigned | Calls bridged | Queue → ring, agent free: p50 · max "
        "| Agent busy: p50 · max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run, push in enumerate(pushes, 1):
        d, free, busy = push["latency"], push["free_to_ring"], push["busy_to_ring"]
        lines.append(f"| {run} | {d.p50:.1f} ms | {d.p95:.1f} ms | {d.p99:.1f} ms | {d.max:.1f} ms | "
                     f"{push['assigned']} of {push['residents']} | {push['bridged']} of {push['calls']} | "
                     f"{free.p50:.0f} · {free.max:.0f} ms | {busy.p50 / 1000:.1f} · {busy.max / 1000:.1f} s |")
    lines += [
        "",
        "Where the chats' time went, from the times the hub wrote on each conversation (p50 · p99): the send "
        "until the message was stored and the conversation queued; from there until a pass assigned it; from "
        "the assignment until the agent's socket had it (the pass's commit, its publication, the fan-out to "
        "every tab that may see the conversation).",
        "",
        "Beside them, the cores used while the chats came in and were assigned (the hub process; the "
        f"machine as a whole, of {m.cpus}) and those the hypervisor took from this virtual machine meanwhile "
        "(steal).",
        "",
        "| Run | Send → queued | Queued → assigned | Assigned → on the agent's socket | Hub | Machine | Stolen |",
        "|---|---|---|---|---|---|---|",
    ]
    for run, push in enumerate(pushes, 1):
        cpu = push["cpu"]
        lines.append(f"| {run} | " + " | ".join(f"{push[stage].p50:.0f} · {push[stage].p99:.0f} ms"
                                               for stage in ("to_queue", "to_pass", "to_socket"))
                     + f" | {cpu.hub:.2f} | {cpu.machine:.2f} | {cpu.stolen:.2f} |")
    p99s = sorted(push["latency"].p99 for push in pushes)
    median = p99s[len(p99s) // 2]
    lines += [
        "",
        f"Median p99: **{median:.1f} ms** (goal ≤ {PUSH_TARGET_MS:g} ms: "
        f"{'met' if median <= PUSH_TARGET_MS else 'NOT met'}).",
        "<!-- acd:end -->",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the ACD section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not root_ready():
        sys.exit("no Asterisk root: run scripts/asterisk-root.sh (make test does)")
    print("decisions …", file=sys.stderr)
    decisions = measure_decisions()
    with (tempfile.TemporaryDirectory(prefix="shuiwu-bench-acd-") as tmp,
          open_database("postgresql", Path(tmp)) as database):
        print("a pass through PostgreSQL …", file=sys.stderr)
        passed = asyncio.run(measure_pass(database.url))
    pushes = []
    for run in range(PUSH_RUNS):
        with voice_hub(f"acd{run}", CALLERS) as (_, asterisk, database, hub):
            print(f"assignment push under load, run {run + 1} …", file=sys.stderr)
            pushes.append(asyncio.run(measure_push(hub, asterisk, database)))
    section = render(decisions, passed, pushes,
                     "python -m bench.acd" + (" --write" if args.write else ""))
    publish(section, args.write, MARKERS)


if __name__ == "__main__":
    main()

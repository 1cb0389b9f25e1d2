"""``python -m bench.calls``: callers put through to agents' phones, through a real Asterisk and the hub's ACD.

A hub process on PostgreSQL with the voice channel connected to an Asterisk started from the cached root (as the
tests do). Each wave signs in as many new agents as it has callers, each with a desk phone played by sipp
(registered, answering after 200 ms, echoing the caller's audio), ready in the inbox. Then the wave's callers
(sipp, RTP) dial in together, press 0 at once, speak for ``--talk`` seconds and hang up; the ACD gives each call
to one agent, whose phone rings and answers; caller and agent talk in the call's mixing bridge, which Asterisk
records.

Measured from the call records the hub keeps (``call``): *calls bridged per second*, the wave's calls over the
time from the first call joining the queue to the last being put through; *queue → agent*, from the caller
joining the queue to the agent's phone answering (it includes the 200 ms the phone rings); *at once*, the most
calls talking at the same moment, and whether each of them was recorded whole (its recording at least as long
as the talk, less a second). Goal: 60 calls bridged and recorded at once on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
import time
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.hubproc import Database, HubProcess
from bench.report import Machine, machine_facts, publish
from bench.stats import Distribution, cpu_between, cpu_snapshot
from bench.voice import voice_hub
from router.settings import Settings
from tests.support import sipp
from tests.support.actors import Staff
from tests.support.asterisk import Asterisk, root_ready

MARKERS = ("<!-- calls:begin -->", "<!-- calls:end -->")
TARGET_AT_ONCE = 60
HOTLINE_TEAM = Settings.model_fields["default_team"].default  # the default IVR menu's agent node
PASSWORD = secrets.token_urlsafe(16)  # every bench agent's, new each run


@dataclass(frozen=True)
class Wave:
    calls: int
    bridged: int
    recorded_whole: int
    at_once: int
    per_second: float
    queue_to_agent: Distribution
    hub_cpu: float  # share of one core
    seconds: float


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace(" ", "T"))


def _seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


async def _agents(hub: HubProcess, admin: Staff, count: int, wave_no: int) -> list[tuple[Staff, str, str]]:
    """New agents, each signed in with a desk phone: the agent, the extension and its password."""
    agents = []
    for n in range(count):
        username, extension = f"w{wave_no}a{n}", str(100000 + wave_no * 1000 + n)
        created = await admin.call("POST", "/api/users", {
            "username": username, "password": PASSWORD, "role": "agent", "display_name": f"坐席{wave_no}-{n}",
            "max_chats": 3, "teams": [HOTLINE_TEAM]}, expect=201)
        phone = await admin.call("PUT", f"/api/users/{created['id']}/phone", {"extension": extension})
        agent = await (await Staff(hub.url).login(username, PASSWORD)).listen()
        agents.append((agent, extension, phone["password"]))
    return agents


async def run_wave(hub: HubProcess, asterisk: Asterisk, database: Database, admin: Staff, uploads: Path,
                   size: int, wave_no: int, talk_seconds: float) -> Wave:
    agents = await _agents(hub, admin, size, wave_no)
    callers = [f"139{secrets.randbelow(10**8):08d}" for _ in range(size)]
    async with contextlib.AsyncExitStack() as stack:
        for _, extension, password in agents:
            await stack.enter_async_context(sipp.DeskPhone(asterisk.sip_port, extension, password, ring_ms=200))
        for agent, _, _ in agents:
            await agent.becomes("ready")
        before, started = cpu_snapshot(hub.pid), time.monotonic()
        steps = [sipp.Pause(1500), *sipp.digits("0"), sipp.Pause(6000), sipp.Voice(int(talk_seconds * 1000))]
        results = await asyncio.gather(*(
            sipp.call(asterisk.sip_port, number, "962740", steps, timeout=120 + size) for number in callers))
        seconds, cpu = time.monotonic() - started, cpu_between(before, cpu_snapshot(hub.pid)).hub
        await asyncio.sleep(5)  # the last records and recordings are written after the hang-ups
    for agent, _, _ in agents:
        await agent.close()
    numbers = ",".join(f"'+86{number}'" for number in callers)  # digits only
    rows = database.rows(
        "SELECT c.queued_at, c.connected_at, c.ended_at, coalesce(f.sha256, '') FROM call c "  # noqa: S608
        "LEFT JOIN stored_file f ON f.id = c.recording_file_id "
        f"WHERE c.caller IN ({numbers}) AND c.connected_at IS NOT NULL AND c.ended_at IS NOT NULL")
    spans = [(_at(q), _at(c), _at(e), digest) for q, c, e, digest in rows]
    recorded = sum(1 for _, connected, ended, digest in spans
                   if digest and (uploads / digest[:2] / digest).exists()
                   and _seconds(uploads / digest[:2] / digest) >= (ended - connected).total_seconds() - 1)
    talking = at_once = 0
    for _, step in sorted([(c, 1) for _, c, _, _ in spans] + [(e, -1) for _, _, e, _ in spans]):
        talking += step
        at_once = max(at_once, talking)
    span = (max(c for _, c, _, _ in spans) - min(q for q, _, _, _ in spans)).total_seconds() if spans else 0.0
    outcomes = dict(database.rows(f"SELECT coalesce(outcome, 'none'), count(*) FROM call "  # noqa: S608
                                  f"WHERE caller IN ({numbers}) GROUP BY outcome"))
    print(f"  {sum(r.completed for r in results)} of {size} callers' scenarios completed; outcomes {outcomes}",
          flush=True)
    return Wave(calls=size, bridged=len(spans), recorded_whole=recorded, at_once=at_once,
                per_second=len(spans) / span if span else 0.0,
                queue_to_agent=Distribution.of([(c - q).total_seconds() for q, c, _, _ in spans]), hub_cpu=cpu,
                seconds=seconds)


def render(machine: Machine, waves: list[Wave], talk: float, command: str) -> str:
    best = max((w.at_once for w in waves if w.bridged == w.calls == w.recorded_whole), default=0)
    lines = [
        MARKERS[0],
        "## Voice: callers put through to agents' phones",
        "",
        f"Measured {machine.date} with `{command}`.",
        "",
        f"**Machine.** {machine.cpus} CPUs, {machine.cpu_model}, {machine.memory_gib:.1f} GiB RAM, "
        f"{machine.kernel}; Python {machine.python}. Asterisk 22 (Debian sid root) with PJSIP and ARI, one hub "
        "process on PostgreSQL; every caller and every agent's desk phone its own sipp process (RTP), all on this "
        f"machine. A wave's callers dial together, press 0 and talk {talk:.0f} s with as many ready agents, whose "
        "phones answer after 200 ms and echo the caller; every call is recorded (one mixing bridge per call).",
        "",
        "| Callers and agents | Bridged | Recorded whole | Talking at once | Bridged per second "
        "| Queue → agent answered (p50 · p95 · max) | Hub CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in waves:
        lines.append(
            f"| {w.calls} | {w.bridged} | {w.recorded_whole} | {w.at_once} | {w.per_second:.1f} "
            f"| {w.queue_to_agent.p50:.0f} · {w.queue_to_agent.p95:.0f} · {w.queue_to_agent.max:.0f} ms "
            f"| {w.hub_cpu:.0%} of a core |")
    met = "**met**" if best >= TARGET_AT_ONCE else "**NOT met**"
    lines += ["", f"Target: {TARGET_AT_ONCE} calls bridged and recorded at once: {met} (measured here: "
              f"**{best}**).", "", MARKERS[1]]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    if not root_ready():
        print("no Asterisk root: run scripts/asterisk-root.sh (make test does)", file=sys.stderr)
        return 2
    waves: list[Wave] = []
    with voice_hub("calls", max(args.waves)) as (work, asterisk, database, hub):
        admin = await Staff(hub.url).login("admin", hub.admin_password)
        for number, size in enumerate(args.waves):
            result = await run_wave(hub, asterisk, database, admin, work / "var" / "uploads", size, number,
                                    args.talk)
            waves.append(result)
            print(f"{size} callers: bridged {result.bridged}, recorded {result.recorded_whole}, at once "
                  f"{result.at_once}, {result.per_second:.1f}/s, p95 {result.queue_to_agent.p95:.0f} ms", flush=True)
        await admin.close()
    section = render(machine_facts(), waves, args.talk, "python -m bench.calls --write")
    publish(section, args.write, MARKERS)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.split("\n\n")[0])
    parser.add_argument("--waves", type=int, nargs="+", default=[20, 40, 60],
                        help="callers (and agents) in each wave, in order (default: 20 40 60)")
    parser.add_argument("--talk", type=float, default=12.0, help="seconds each caller talks (default 12)")
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()

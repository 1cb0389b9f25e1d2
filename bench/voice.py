"""``python -m bench.voice``: IVR calls at once, through a real Asterisk, driven by real SIP callers (sipp).

A hub process on PostgreSQL with the voice channel connected over ARI to an Asterisk started from the cached
root (as the tests do), the default IVR menu, and waves of simultaneous callers, each its own sipp process
with RTP and RFC 2833 DTMF. Every caller walks the same way a resident would, typing ahead of the prompts:
3 (outage notices), then 1 (bill), the account number 30001234 and ``#``, 1 to confirm the read-back, then
listens to the answer and hangs up. Twelve key presses a call.

Measured from the call records the hub keeps (``call``, ``call_event``): a key counts as recognised when it
is among the call's key events in the order pressed; *answer → first prompt* runs from the answer to the
hub's request to play the welcome; *key → prompt* from a key as Asterisk reported it to the request to play
the prompt it led to (a lookup's answer included, its text rendered by the speech synthesis on the spot).
Callers arrive five a second and stay on until the last of the wave has walked the menu, so that at the end the
whole wave is on the line at once. Goal: every digit recognised and every prompt started within 500 ms with 60
callers at once (the seats of the Shanghai 962740 centre); the waves grow until that fails, to find the ceiling
on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.hubproc import Database, HubProcess, open_database
from bench.report import Machine, machine_facts, publish
from bench.stats import Distribution, cpu_between, cpu_snapshot
from tests.support import sipp
from tests.support.asterisk import Asterisk, root_ready

MARKERS = ("<!-- voice:begin -->", "<!-- voice:end -->")
KEYS = "3" + "1" + "30001234#" + "1"
TARGET_CALLS, TARGET_PROMPT_MS = 60, 500.0
ARRIVALS_PER_SECOND = 5  # a hotline's busiest minutes bring a few calls a second, not all at one instant


def walk(stay_ms: int) -> list[sipp.Step]:
    """What one caller does: wait for the welcome to start, then type ahead, then listen for ``stay_ms`` and hang
    up."""
    return [sipp.Pause(2500), *sipp.digits("3", gap_ms=2500), *sipp.digits("1", gap_ms=1500),
            *sipp.digits("30001234#", gap_ms=250), sipp.Pause(2500), *sipp.digits("1", gap_ms=300), sipp.Pause(stay_ms)]


@dataclass(frozen=True)
class Wave:
    calls: int
    completed: int
    recognised: int  # calls whose every key arrived, in order
    keys_sent: int
    keys_seen: int
    first_prompt: Distribution
    key_to_prompt: Distribution
    hub_cpu: float  # share of one core
    seconds: float

    @property
    def clean(self) -> bool:
        return (self.completed == self.calls == self.recognised
                and self.key_to_prompt.max <= TARGET_PROMPT_MS and self.first_prompt.max <= TARGET_PROMPT_MS)


def _at(value: str) -> float:
    return datetime.fromisoformat(value.replace(" ", "T")).timestamp()


def _wave_result(database: Database, callers: list[str], results: list[sipp.CallResult], seconds: float,
                 hub_cpu: float) -> Wave:
    numbers = ",".join(f"'+86{number}'" for number in callers)  # digits only
    calls = dict(database.rows(f"SELECT id, answered_at FROM call WHERE caller IN ({numbers})"))  # noqa: S608
    events: dict[str, list[tuple[str, str, str]]] = {call_id: [] for call_id in calls}
    for call_id, kind, key, at in database.rows(
            "SELECT e.call_id, e.kind, coalesce(e.key, ''), e.at FROM call_event e JOIN call c ON c.id = e.call_id "  # noqa: S608
            f"WHERE c.caller IN ({numbers}) ORDER BY e.call_id, e.at, e.id"):
        events[call_id].append((kind, key, at))
    first_prompt, key_to_prompt = [], []
    recognised, keys_seen = 0, 0
    for call_id, answered_at in calls.items():
        keys = "".join(key for kind, key, _ in events[call_id] if kind == "key")
        keys_seen += len(keys)
        recognised += keys == KEYS
        prompts = [_at(at) for kind, _, at in events[call_id] if kind == "prompt"]
        if prompts and answered_at:
            first_prompt.append(prompts[0] - _at(answered_at))
        last_key = None
        for kind, _, at in events[call_id]:
            if kind == "key":
                last_key = _at(at)
            elif kind == "prompt" and last_key is not None:
                key_to_prompt.append(max(0.0, _at(at) - last_key))
                last_key = None
    return Wave(calls=len(callers), completed=sum(r.completed for r in results), recognised=recognised,
                keys_sent=len(KEYS) * len(callers), keys_seen=keys_seen, first_prompt=Distribution.of(first_prompt),
                key_to_prompt=Distribution.of(key_to_prompt), hub_cpu=hub_cpu, seconds=seconds)


async def run_wave(hub: HubProcess, asterisk: Asterisk, database: Database, size: int) -> Wave:
    callers = [f"139{secrets.randbelow(10**8):08d}" for _ in range(size)]
    before = cpu_snapshot(hub.pid)
    started = time.monotonic()

    async def caller(n: int, number: str) -> sipp.CallResult:
        # Callers arrive ARRIVALS_PER_SECOND apart and each stays on until the last has walked the menu: at the
        # end all ``size`` calls are up at once.
        await asyncio.sleep(n / ARRIVALS_PER_SECOND)
        stay = int((size - 1 - n) / ARRIVALS_PER_SECOND * 1000) + 6000
        return await sipp.call(asterisk.sip_port, number, "962740", walk(stay), timeout=90 + size / ARRIVALS_PER_SECOND)

    results = await asyncio.gather(*(caller(n, number) for n, number in enumerate(callers)))
    await asyncio.sleep(3)  # the last records and recordings are written after the hang-ups
    return _wave_result(database, callers, results, time.monotonic() - started,
                        cpu_between(before, cpu_snapshot(hub.pid)).hub)


def render(machine: Machine, waves: list[Wave], command: str) -> str:
    clean = [w.calls for w in waves if w.clean]
    ceiling = max(clean) if clean else 0
    lines = [
        MARKERS[0],
        "## Voice: IVR calls at once through Asterisk",
        "",
        f"Measured {machine.date} with `{command}`.",
        "",
        f"**Machine.** {machine.cpus} CPUs, {machine.cpu_model}, {machine.memory_gib:.1f} GiB RAM, "
        f"{machine.kernel}; Python {machine.python}. Asterisk 22 (Debian sid root, chroot) with PJSIP and "
        "ARI, one hub process on PostgreSQL, and every caller its own sipp process (RTP, RFC 2833 DTMF), all "
        "on this machine. Callers arrive five a second and stay on until the whole wave is on the line; each "
        "types 3, 1, 30001234#, 1 ahead of the prompts (12 keys) and listens to the answer.",
        "",
        "| Callers at once | Calls completed | Every key recognised | Answer → first prompt (p50 · p95 · max) "
        "| Key → prompt (p50 · p95 · max) | Hub CPU |",
        "|---|---|---|---|---|---|",
    ]
    for w in waves:
        lines.append(
            f"| {w.calls} | {w.completed} | {w.recognised} of {w.calls} ({w.keys_seen} of {w.keys_sent} keys) "
            f"| {w.first_prompt.p50:.0f} · {w.first_prompt.p95:.0f} · {w.first_prompt.max:.0f} ms "
            f"| {w.key_to_prompt.p50:.0f} · {w.key_to_prompt.p95:.0f} · {w.key_to_prompt.max:.0f} ms "
            f"| {w.hub_cpu:.0%} of a core |")
    met = "**met**" if ceiling >= TARGET_CALLS else "**NOT met**"
    lines += ["", f"Target: {TARGET_CALLS} callers at once with every key recognised and every prompt started "
              f"within {TARGET_PROMPT_MS:.0f} ms: {met}; the ceiling measured here: **{ceiling} callers at once**.",
              "", MARKERS[1]]
    return "\n".join(lines)


@contextlib.contextmanager
def voice_hub(name: str, most_calls: int) -> Iterator[tuple[Path, Asterisk, Database, HubProcess]]:
    """An Asterisk from the cached root with RTP ports for ``most_calls`` calls at once, and a hub process on
    PostgreSQL driving it (line open around the clock); their work folder with them."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        work = Path(folder)
        asterisk = Asterisk(f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}", rtp_ports=8 * most_calls + 40)
        asterisk.start()
        try:
            with open_database("postgresql", work) as database, HubProcess(database, work, {
                "HUB_CHANNELS": "webchat,voice", "HUB_VOICE_ARI_URL": asterisk.ari_url,
                "HUB_VOICE_ARI_USERNAME": asterisk.ari_user, "HUB_VOICE_ARI_PASSWORD": asterisk.ari_password,
                "HUB_VOICE_APP": asterisk.app, "HUB_VOICE_PROMPT_DIR": str(asterisk.prompt_dir),
                "HUB_VOICE_HOURS": "24x7",
            }) as hub:
                yield work, asterisk, database, hub
        finally:
            asterisk.cleanup()


async def main_async(args: argparse.Namespace) -> int:
    if not root_ready():
        print("no Asterisk root: run scripts/asterisk-root.sh (make test does)", file=sys.stderr)
        return 2
    waves: list[Wave] = []
    with voice_hub("voice", max(args.waves)) as (_, asterisk, database, hub):
        await run_wave(hub, asterisk, database, 1)  # the prompts of the walk rendered once
        for size in args.waves:
            wave = await run_wave(hub, asterisk, database, size)
            waves.append(wave)
            print(json.dumps({"callers": size, "clean": wave.clean, "recognised": wave.recognised,
                              "first_prompt_p95": round(wave.first_prompt.p95),
                              "key_to_prompt_p95": round(wave.key_to_prompt.p95),
                              "key_to_prompt_max": round(wave.key_to_prompt.max)}), flush=True)
            if not wave.clean and not args.all:
                break
    section = render(machine_facts(), waves, "python -m bench.voice --write")
    publish(section, args.write, MARKERS)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.voice", description=__doc__.split("\n\n")[0])
    parser.add_argument("--waves", type=int, nargs="+", default=[20, 40, 60, 80, 100, 120],
                        help="callers at once in each wave, in order (default: 20 40 60 80 100 120)")
    parser.add_argument("--all", action="store_true", help="run every wave even after one fails the goal")
    parser.add_argument("--write", action="store_true", help="write the results into docs/benchmarks.md")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()

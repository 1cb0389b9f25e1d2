"""``python -m bench.logins``: sign-in under attack while the inbox keeps working.

A hub process on PostgreSQL behind a (simulated) reverse proxy: for 20 s an attacker sends 50 wrong
sign-ins a second from 20 addresses, against 5 real usernames and a stream of made-up ones. Meanwhile
10 agents have their inbox socket open: two residents write 10 messages a second, which the hub pushes to
every agent, and each agent pings its socket four times a second. A colleague signs in from an address of
their own every two seconds. Reported: push and ping latency on the sockets, what the throttle answered,
that no wrong password got in, and how long the colleague's sign-in took. The same load without the attack,
on a hub of its own, is measured first: what the push and ping figures are to stay at.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from bench.clients import Recorder, Resident, Staff
from bench.hubproc import ADMIN_USERNAME, HubProcess, open_database
from bench.report import machine_facts, publish
from bench.stats import Distribution, background_load
from router.settings import Settings

MARKERS = ("<!-- logins:begin -->", "<!-- logins:end -->")
DEFAULT_TEAM = Settings.model_fields["default_team"].default
PASSWORD = "reservoir-gauge-heron-17"  # noqa: S105  (the benchmark's own throwaway accounts)
AGENTS, VICTIMS, ADDRESSES = 10, 5, 20
ATTACK_RATE, DURATION = 50.0, 20.0
MESSAGE_RATE, PING_INTERVAL, COLLEAGUE_INTERVAL = 10.0, 0.25, 2.0
COLLEAGUE_ADDRESS = "203.0.113.5"


class _Desk(Staff):
    """An agent's inbox socket that also times its pings."""

    def __init__(self, base_url: str, recorder: Recorder) -> None:
        super().__init__(base_url, recorder)
        self.pings: list[float] = []
        self._ping_sent = 0.0

    def on_frame(self, data: dict[str, Any], at: float) -> None:
        if data.get("type") == "pong" and self._ping_sent:
            self.pings.append(at - self._ping_sent)
            self._ping_sent = 0.0
        else:
            super().on_frame(data, at)

    async def ping_every(self, interval: float, until: float) -> None:
        while time.perf_counter() < until:
            if not self._ping_sent and self._ws is not None:
                self._ping_sent = time.perf_counter()
                await self._ws.send_str('{"type": "ping"}')
            await asyncio.sleep(interval)


async def _sign_in(http: aiohttp.ClientSession, url: str, username: str, password: str,
                   address: str) -> tuple[int, str, float]:
    started = time.perf_counter()
    async with http.post(f"{url}/api/auth/login", json={"username": username, "password": password},
                         headers={"X-Forwarded-For": address}) as response:
        body = await response.json()
    code = "ok" if response.status == 200 else body["error"]["code"]
    return response.status, code, time.perf_counter() - started


async def measure(hub: HubProcess, attack_rate: float = ATTACK_RATE) -> dict[str, Any]:
    recorder = Recorder()
    admin = Staff(hub.url, recorder)
    await admin.login(ADMIN_USERNAME, hub.admin_password)
    for name in [*(f"agent{n}" for n in range(AGENTS)), *(f"victim{n}" for n in range(VICTIMS)), "colleague"]:
        status, body = await admin._post("/api/users", {"username": name, "password": PASSWORD, "role": "agent",
                                                        "display_name": name, "teams": [DEFAULT_TEAM]})
        assert status == 201, body
    desks = []
    for n in range(AGENTS):
        desk = _Desk(hub.url, recorder)
        await desk.login(f"agent{n}", PASSWORD)
        await desk.listen()
        desks.append(desk)
    rng = random.Random(7)
    attempts: list[asyncio.Task[tuple[int, str, float]]] = []
    colleague: list[tuple[int, str, float]] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        residents = [Resident(http, hub.url, recorder) for _ in range(2)]
        for resident in residents:
            await resident.connect()
        started = time.perf_counter()
        until = started + DURATION

        async def attack() -> None:
            n = 0
            while (now := time.perf_counter()) < until and attack_rate > 0:
                username = f"victim{n % VICTIMS}" if n % 2 else f"guess{rng.randrange(10**6)}"
                address = f"198.51.100.{1 + n % ADDRESSES}"
                attempts.append(asyncio.create_task(_sign_in(http, hub.url, username, f"wrong-{n}", address)))
                n += 1
                await asyncio.sleep(max(0.0, started + n / attack_rate - now))

        async def write() -> None:
            n = 0
            while time.perf_counter() < until:
                await residents[n % 2].send(f"bench-login-{n:06d}", f"停水了吗 {n}")
                n += 1
                await asyncio.sleep(max(0.0, started + n / MESSAGE_RATE - time.perf_counter()))

        async def sign_in_colleague() -> None:
            while time.perf_counter() < until:
                colleague.append(await _sign_in(http, hub.url, "colleague", PASSWORD, COLLEAGUE_ADDRESS))
                await asyncio.sleep(COLLEAGUE_INTERVAL)

        await asyncio.gather(attack(), write(), sign_in_colleague(),
                             *(desk.ping_every(PING_INTERVAL, until) for desk in desks))
        answers = await asyncio.gather(*attempts)
        await asyncio.sleep(1.0)  # the last pushes
        for resident in residents:
            await resident.close()
    listed = {u["username"]: u for u in (await _get(admin, hub.url, "/api/users"))["items"]}
    for desk in [*desks, admin]:
        await desk.close()
    ledger = recorder.ledger
    pushes = [ledger.at_agent[key] - ledger.sent[key] for key in ledger.sent if key in ledger.at_agent]
    return {
        "attempts": len(answers),
        "answers": Counter(code for _, code, _ in answers),
        "admitted": sum(status == 200 for status, _, _ in answers),
        "locked": sum(bool(listed[f"victim{n}"]["locked_until"]) for n in range(VICTIMS)),
        "push": Distribution.of(pushes),
        "pushed": len(pushes),
        "sent": len(ledger.sent),
        "ping": Distribution.of([p for desk in desks for p in desk.pings]),
        "pings": sum(len(desk.pings) for desk in desks),
        "dropped": sum(desk.dropped for desk in desks),
        "colleague": Distribution.of([seconds for _, _, seconds in colleague]),
        "colleague_ok": sum(status == 200 for status, _, _ in colleague),
        "colleague_tries": len(colleague),
        "colleague_refusals": Counter(code for status, code, _ in colleague if status != 200),
    }


async def _get(staff: Staff, url: str, path: str) -> Any:
    async with staff._http.get(f"{url}{path}") as response:
        return await response.json()


def render(result: dict[str, Any], quiet: dict[str, Any] | None, background: float, command: str) -> str:
    m = machine_facts()
    answers = result["answers"]
    refused = answers["too_many_attempts"] + answers["account_locked"]
    held = result["admitted"] == 0 and result["locked"] == VICTIMS and result["dropped"] == 0
    return "\n".join([
        "<!-- logins:begin -->",
        "## Sign-in under attack: the throttle and the inbox sockets",
        "",
        f"Measured {m.date} with `{command}`.",
        "",
        f"**Machine.** {m.cpus} CPUs, {m.cpu_model}, {m.memory_gib:.1f} GiB RAM, {m.kernel}; Python {m.python}; "
        "PostgreSQL on the same machine. The hub, the clients and PostgreSQL share these cores; other processes "
        f"kept {background:.2f} cores busy just before the run.",
        "",
        f"**Load.** A hub process on PostgreSQL behind a reverse proxy (`HUB_TRUSTED_PROXIES=127.0.0.1`). For "
        f"{DURATION:g} s, {ATTACK_RATE:g} wrong sign-ins a second from {ADDRESSES} addresses, half against "
        f"{VICTIMS} real usernames, half against made-up ones; {AGENTS} agents with their inbox socket open, "
        f"two residents writing {MESSAGE_RATE:g} messages a second (pushed to every agent), every agent pinging "
        f"its socket every {PING_INTERVAL * 1000:.0f} ms; a colleague signing in every {COLLEAGUE_INTERVAL:g} s "
        "from an address of their own. Default limits: 5 failures lock a username for 15 minutes, an address "
        "waits after 10 failures.",
        "",
        "| | p50 | p95 | p99 | max | count |",
        "|---|---|---|---|---|---|",
        f"| Push: resident's message → agent's socket | {result['push'].p50:.1f} ms | {result['push'].p95:.1f} ms | "
        f"**{result['push'].p99:.1f} ms** | {result['push'].max:.1f} ms | {result['pushed']} of {result['sent']} |",
        f"| Ping → pong on an agent's socket | {result['ping'].p50:.1f} ms | {result['ping'].p95:.1f} ms | "
        f"**{result['ping'].p99:.1f} ms** | {result['ping'].max:.1f} ms | {result['pings']} |",
        *([] if quiet is None else [
            f"| Push without the attack | {quiet['push'].p50:.1f} ms | {quiet['push'].p95:.1f} ms | "
            f"{quiet['push'].p99:.1f} ms | {quiet['push'].max:.1f} ms | {quiet['pushed']} of {quiet['sent']} |",
            f"| Ping without the attack | {quiet['ping'].p50:.1f} ms | {quiet['ping'].p95:.1f} ms | "
            f"{quiet['ping'].p99:.1f} ms | {quiet['ping'].max:.1f} ms | {quiet['pings']} |"]),
        f"| The colleague's sign-in | {result['colleague'].p50:.1f} ms | {result['colleague'].p95:.1f} ms | "
        f"{result['colleague'].p99:.1f} ms | {result['colleague'].max:.1f} ms | "
        f"{result['colleague_ok']} of {result['colleague_tries']} signed in"
        + "".join(f", {n} × {code}" for code, n in result["colleague_refusals"].items()) + " |",
        "",
        f"**The throttle.** {result['attempts']:,} wrong attempts: {answers['bad_credentials']:,} had their password "
        f"checked (401), {refused:,} were refused before any check (429: {answers['too_many_attempts']:,} "
        f"waiting, {answers['account_locked']:,} locked), {answers['sign_in_busy']:,} found the password pool "
        f"full (503); {result['admitted']} got in; {result['locked']} of {VICTIMS} attacked usernames ended "
        f"locked; {result['dropped']} agent sockets dropped. Held: **{'yes' if held else 'NO'}**.",
        "<!-- logins:end -->",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the sign-in section of docs/benchmarks.md")
    parser.add_argument("--attack-rate", type=float, default=ATTACK_RATE,
                        help=f"wrong sign-ins per second (default {ATTACK_RATE:g}; 0: the sockets' load alone)")
    args = parser.parse_args(argv)
    background = background_load(3.0)

    def run(attack_rate: float) -> dict[str, Any]:
        with (tempfile.TemporaryDirectory(prefix="shuiwu-bench-logins-") as tmp,
              open_database("postgresql", Path(tmp)) as database,
              HubProcess(database, Path(tmp), {"HUB_TRUSTED_PROXIES": "127.0.0.1"}) as hub):
            return asyncio.run(measure(hub, attack_rate))

    quiet = None
    if args.attack_rate > 0:
        print("the inbox sockets without an attack …", file=sys.stderr)
        quiet = run(0.0)
    print(f"{args.attack_rate:g} wrong sign-ins a second beside live inbox sockets …", file=sys.stderr)
    result = run(args.attack_rate)
    section = render(result, quiet, background, "python -m bench.logins" + (" --write" if args.write else ""))
    publish(section, args.write, MARKERS)


if __name__ == "__main__":
    main()

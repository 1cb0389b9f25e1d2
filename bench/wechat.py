"""``python -m bench.wechat``: how fast the hub acknowledges WeChat's callbacks.

A hub process on PostgreSQL with the WeChat channel in safe mode (no bot: people answer, so every message
is acknowledged as soon as it is stored) and the stand-in WeChat API in this process. The simulator posts
signed, AES-encrypted text messages exactly as WeChat does, at a steady rate from a crowd of residents
(their first message opens their conversation); measured from the start of each POST to its answer.
Every callback's nonce is checked and remembered (router/nonces.py); the run is made twice, with the nonces
in Redis (``HUB_REDIS_URL``, as a deployment of several processes has it) and in the database (one process
without Redis). Goal: p99 ≤ 20 ms at 500 messages/s on 2 cores. ``--opening-only`` measures the first
messages alone (a main break: thousands of residents writing for the first time within minutes); goal ≥ 300 new
conversations/s acknowledged with p99 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.hubproc import HubProcess, open_database
from bench.report import machine_facts, publish
from bench.stats import Distribution
from channels.wechat.standin import Simulator, serve

REDIS_URL = os.environ.get("HUB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NONCE_STORES = {"Redis": {"HUB_REDIS_URL": REDIS_URL}, "the database": {}}
MARKERS = ("<!-- wechat:begin -->", "<!-- wechat:end -->")
TARGET_P99_MS = 20.0
TARGET_OPENING_RATE, TARGET_OPENING_P99_MS = 300, 1000.0
APP_ID, APP_SECRET, TOKEN = "wx2c2769f8efd9abc2", "bench-app-secret", "bench-token"
AES_KEY = secrets.token_urlsafe(32)[:43].replace("-", "a").replace("_", "b")


async def measure(hub: HubProcess, rate: float, seconds: float, residents: int,
                  opening_only: bool = False) -> dict[str, Any]:
    latencies: list[float] = []
    answers: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        simulator = Simulator(http, f"{hub.url}/wechat", TOKEN, app_id=APP_ID, encoding_aes_key=AES_KEY,
                              mode="safe", retries=0)
        openids = ["o" + secrets.token_hex(14)[:27] for _ in range(residents)]

        async def one(n: int) -> None:
            xml = simulator.xml(openids[n % residents], "text", {"Content": f"第{n}条:水表箱在漏水"},
                                msg_id=secrets.randbits(63))
            started = time.perf_counter()
            answer = await simulator.post(xml)
            latencies.append(time.perf_counter() - started)
            answers[answer] = answers.get(answer, 0) + 1

        # Warm-up: every resident's first message opens their conversation (measured apart, see below).
        first = time.perf_counter()
        for start in range(0, residents, 100):
            await asyncio.gather(*(one(n) for n in range(start, min(start + 100, residents))))
        opening = {"count": residents, "seconds": time.perf_counter() - first, "latency": Distribution.of(latencies),
                   "answers": dict(answers)}
        if opening_only:
            return {"opening": opening}
        latencies.clear()
        answers.clear()
        tasks = []
        total = int(rate * seconds)
        started = time.perf_counter()
        for n in range(total):
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(residents + n)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return {"rate": rate, "sent": total, "achieved": total / elapsed, "residents": residents,
            "latency": Distribution.of(latencies), "answers": answers, "opening": opening}


def render(results: dict[str, dict[str, Any]], command: str) -> str:
    m = machine_facts()
    lines = [
        "<!-- wechat:begin -->",
        "## WeChat: acknowledging callbacks",
        "",
        f"Measured {m.date} with `{command}`.",
        "",
        f"**Machine.** {m.cpus} CPUs, {m.cpu_model}, {m.memory_gib:.1f} GiB RAM, {m.kernel}; Python {m.python}; "
        "PostgreSQL and Redis on the same machine. The hub, the simulator and the stand-in WeChat API share these "
        "cores.",
        "",
        "Safe mode (signed, AES-encrypted XML), every callback's timestamp checked and its nonce remembered, no bot "
        "(every message is stored, queued for people and acknowledged with `success`).",
        "",
    ]
    for store, result in results.items():
        d, opening = result["latency"], result["opening"]
        verdict = "met" if d.p99 <= TARGET_P99_MS else "NOT met"
        lines += [
            f"- **Nonces in {store}.** First {opening['count']:,} residents each open their conversation, 100 at a "
            f"time ({opening['count'] / opening['seconds']:.0f} new conversations/s; acknowledged p50 "
            f"{opening['latency'].p50:.1f} ms · p99 {opening['latency'].p99:.1f} ms). Then {result['sent']:,} text "
            f"messages at {result['rate']:g}/s (achieved {result['achieved']:.0f}/s): from the start of WeChat's POST "
            f"to the hub's answer p50 {d.p50:.1f} ms · p95 {d.p95:.1f} ms · **p99 {d.p99:.1f} ms** · max "
            f"{d.max:.1f} ms. Answers: {', '.join(f'{k!r} × {v:,}' for k, v in result['answers'].items())}. "
            f"Goal p99 ≤ {TARGET_P99_MS:g} ms: **{verdict}**.",
        ]
    lines.append("<!-- wechat:end -->")
    return "\n".join(lines)


def render_opening(results: dict[str, dict[str, Any]]) -> str:
    """The new-conversation figures alone (``--opening-only``), for a reader to place beside the section."""
    lines = []
    for store, result in results.items():
        opening = result["opening"]
        rate, d = opening["count"] / opening["seconds"], opening["latency"]
        verdict = "met" if rate >= TARGET_OPENING_RATE and d.p99 <= TARGET_OPENING_P99_MS else "NOT met"
        lines.append(
            f"- Nonces in {store}: {opening['count']:,} residents each open their conversation, 100 at a time: "
            f"**{rate:.0f} new conversations/s**; acknowledged p50 {d.p50:.1f} ms · p95 {d.p95:.1f} ms · "
            f"**p99 {d.p99:.1f} ms** · max {d.max:.1f} ms. Answers: "
            f"{', '.join(f'{k!r} × {v:,}' for k, v in opening['answers'].items())}. Goal ≥ "
            f"{TARGET_OPENING_RATE}/s with p99 ≤ {TARGET_OPENING_P99_MS:g} ms: **{verdict}**.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500.0, help="messages per second (default 500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--residents", type=int, default=2000, help="distinct senders (default 2,000)")
    parser.add_argument("--write", action="store_true", help="replace the WeChat section of docs/benchmarks.md")
    parser.add_argument("--opening-only", action="store_true",
                        help="measure only the residents' first messages (new conversations); prints, never writes")
    args = parser.parse_args(argv)
    if args.opening_only and args.write:
        parser.error("--opening-only measures part of the section: it cannot replace it")

    async def run(nonce_store: dict[str, str]) -> dict[str, Any]:
        _, runner, api_url = await serve("127.0.0.1", 0, app_id=APP_ID, app_secret=APP_SECRET)
        try:
            with tempfile.TemporaryDirectory(prefix="shuiwu-bench-wechat-") as tmp, \
                    open_database("postgresql", Path(tmp)) as database, \
                    HubProcess(database, Path(tmp), {
                        "HUB_CHANNELS": "wechat", "HUB_WECHAT_APP_ID": APP_ID, "HUB_WECHAT_APP_SECRET": APP_SECRET,
                        "HUB_WECHAT_TOKEN": TOKEN, "HUB_WECHAT_ENCODING_AES_KEY": AES_KEY,
                        "HUB_WECHAT_API_BASE_URL": api_url, "HUB_REDIS_PREFIX": f"bench-{secrets.token_hex(4)}",
                        **nonce_store}) as hub:
                return await measure(hub, args.rate, args.seconds, args.residents, args.opening_only)
        finally:
            await runner.cleanup()

    results = {}
    for store, environment in NONCE_STORES.items():
        print(f"nonces in {store}: " + ("first messages only …" if args.opening_only else
                                         f"{args.rate:g} messages/s for {args.seconds:g} s …"), file=sys.stderr)
        results[store] = asyncio.run(run(environment))
    if args.opening_only:
        print(render_opening(results))
        return
    section = render(results, "python -m bench.wechat" + (" --write" if args.write else ""))
    publish(section, args.write, MARKERS)


if __name__ == "__main__":
    main()

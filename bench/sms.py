"""``python -m bench.sms``: how fast the hub's SMPP link submits texts to an SMSC.

The stand-in SMSC (channels/sms/smpp_standin.py) runs in a process of its own, its throttle off, asking for a
receipt of every part; this process binds to it with the hub's own link (channels/sms/smpp.py, one transceiver
session, window ``--window``) and submits ``--count`` short Chinese texts (one SMS each), ``--window`` at a time.
Measured: texts submitted per second (every ``submit_sm_resp`` in) and the time from a submit to its answer.
Goal ≥ 500 messages/s on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from bench.hubproc import ROOT
from bench.report import machine_facts, publish
from bench.stats import Distribution
from channels.sms.provider import Receipt, Texted
from channels.sms.smpp import SmppAccount, SmppLink
from channels.sms.smpp_standin import DEMO_PASSWORD, DEMO_SYSTEM_ID
from router.net import free_port

MARKERS = ("<!-- sms:begin -->", "<!-- sms:end -->")
TARGET_RATE = 500.0


@contextlib.contextmanager
def standin_smsc() -> Iterator[int]:
    """The stand-in SMSC in a process of its own, once it listens; its SMPP port."""
    port = free_port()
    smsc = subprocess.Popen([sys.executable, "-m", "channels.sms.smpp_standin", "serve", "--port", str(port),
                             "--control-port", str(free_port())], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert smsc.stdout is not None
        smsc.stdout.readline()  # "stand-in SMSC: …"
        yield port
    finally:
        smsc.terminate()
        smsc.wait(10)


async def measure(port: int, count: int, window: int) -> dict[str, Any]:
    receipts: list[Receipt] = []

    async def on_text(_texted: Texted) -> None:
        return None

    async def on_receipt(receipt: Receipt) -> None:
        receipts.append(receipt)

    link = SmppLink(SmppAccount("127.0.0.1", port, DEMO_SYSTEM_ID, DEMO_PASSWORD, "", "962740", window=window),
                    on_text, on_receipt)
    link.start()
    await asyncio.wait_for(link.bound.wait(), 10)
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def sender() -> None:
        while not queue.empty():
            n = queue.get_nowait()
            started = time.perf_counter()
            await link.submit(f"+86139{n:08d}", f"您好,您的工单{n}已受理,维修人员将尽快上门。", reference=n)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(2 * window)))  # more texts waiting than the window holds
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # the last receipts
    await link.stop()
    return {"count": count, "window": window, "seconds": elapsed, "rate": count / elapsed,
            "latency": Distribution.of(latencies), "receipts": len(receipts)}


def render(result: dict[str, Any], command: str) -> str:
    m = machine_facts()
    d = result["latency"]
    verdict = "met" if result["rate"] >= TARGET_RATE else "NOT met"
    return "\n".join([
        MARKERS[0],
        "## SMS: SMPP submit throughput",
        "",
        f"Measured {m.date} with `{command}`.",
        "",
        f"**Machine.** {m.cpus} CPUs, {m.cpu_model}, {m.memory_gib:.1f} GiB RAM, {m.kernel}; Python {m.python}. "
        "The stand-in SMSC runs in a process of its own on the same cores, its throttle off.",
        "",
        f"- {result['count']:,} one-part UCS-2 texts through the hub's SMPP link (one transceiver bind, "
        f"{result['window']} submits out at once, a receipt asked for each): **{result['rate']:,.0f} messages/s** "
        f"({result['seconds']:.1f} s); from a submit to its answer p50 {d.p50:.1f} ms · p95 {d.p95:.1f} ms · "
        f"p99 {d.p99:.1f} ms. Receipts back within a second of the last submit: {result['receipts']:,}. Goal "
        f"≥ {TARGET_RATE:g} messages/s: **{verdict}**.",
        MARKERS[1],
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="texts to submit (default 20,000)")
    parser.add_argument("--window", type=int, default=10, choices=range(1, 21), metavar="1-20",
                        help="submits out at once (default 10, the hub's; smpp34's client takes up to 20)")
    parser.add_argument("--write", action="store_true", help="replace the SMS section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    with standin_smsc() as port:
        result = asyncio.run(measure(port, args.count, args.window))
    section = render(result, "python -m bench.sms" + (" --write" if args.write else ""))
    publish(section, args.write, MARKERS)


if __name__ == "__main__":
    main()

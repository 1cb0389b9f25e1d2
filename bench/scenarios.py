"""The measured scenarios, run in order against one hub: throughput, latency at a fixed rate, agent replies."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from bench.clients import Ledger, Recorder, Refused, Resident, Staff
from bench.hubproc import ADMIN_USERNAME
from bench.stats import CpuUse, Distribution, cpu_between, cpu_snapshot

LATE_MS = 100.0  # the latency target: a message slower than this to the agent is counted late
ECHO_TIMEOUT = 30.0  # a closed-loop resident whose echo takes longer gives up (counted as stalled)
# After the last send, how long stragglers are awaited before they count as missing. Long, so that
# a hub that fell behind works off its backlog before the next scenario starts instead of during it.
GRACE = 60.0
# Every text starts with its scenario's tag (the database check selects on it) and a unique number.
OPEN_TAG, THROUGHPUT_TAG, FIXED_RATE_TAG, REPLY_TAG = "bench-open", "bench-tp", "bench-lat", "bench-reply"
RESIDENT_TEXT = "楼下马路在冒水,井盖边上一直往外涌,麻烦尽快派人来看看"
AGENT_TEXT = "您好,已派维修人员前往现场处理,请注意绕行"


@dataclass(frozen=True, slots=True)
class Options:
    residents: int
    duration: float
    warmup: float
    rate: float
    reply_rate: float
    reply_conversations: int


@dataclass(frozen=True, slots=True)
class Throughput:
    window: float
    completed: int  # messages echoed to their resident (so committed) inside the window
    round_trip: Distribution  # resident send → own echo, for the messages completed in the window
    sent: int
    refused: int  # answered with an error frame instead of being stored
    at_agent: int  # of all messages sent in the scenario, how many the agent's socket received
    stalled: int  # residents that gave up waiting for an echo
    cpu: CpuUse

    @property
    def rate(self) -> float:
        return self.completed / self.window


@dataclass(frozen=True, slots=True)
class FixedRate:
    offered: float
    sent: int
    to_agent: Distribution  # resident send → staff socket
    to_resident: Distribution  # resident send → own echo
    late: int
    refused: int  # answered with an error frame instead of being stored
    missing: int  # neither refused nor received by the agent within the grace period
    achieved: float  # messages/s that reached the agent, from the first send to the last arrival
    backlog: float  # seconds from the last send to the last arrival at the agent
    schedule_lag: Distribution  # how far behind its schedule the generator sent
    cpu: CpuUse

    @property
    def held(self) -> bool:
        """The hub kept up with the offered rate (it did not fall behind and lost nothing)."""
        return self.missing == 0 and self.refused == 0 and self.achieved >= 0.95 * self.offered


@dataclass(frozen=True, slots=True)
class Replies:
    offered: float
    sent: int
    conversations: int
    to_resident: Distribution  # POST start → resident socket
    post: Distribution  # the POST's own response time
    failed_posts: int
    missing: int
    cpu: CpuUse


@dataclass(frozen=True, slots=True)
class Measured:
    throughput: Throughput
    fixed_rate: FixedRate
    replies: Replies
    ledgers: dict[str, Ledger]  # per tag, for checking what the database stored
    dropped_residents: int
    staff_dropped: bool

    @property
    def repeats(self) -> int:
        return sum(ledger.repeats for ledger in self.ledgers.values())

    @property
    def refusals(self) -> Counter[str]:
        return sum((ledger.refusal_codes() for ledger in self.ledgers.values()), Counter())


def progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def _key() -> str:
    return str(uuid.uuid4())


async def _settle(ledger: Ledger, arrivals: dict[str, float], seconds: float) -> None:
    """Wait up to ``seconds`` for the stragglers; what has not arrived by then counts as missing."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await ledger.all_arrived(arrivals)


async def run_all(base_url: str, hub_pid: int, admin_password: str, options: Options) -> Measured:
    recorder = Recorder()
    staff = Staff(base_url, recorder)
    residents: list[Resident] = []
    # limit=0: the residents' sockets are long-lived connections, not a pool to cap.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        try:
            await staff.login(ADMIN_USERNAME, admin_password)
            await staff.listen()
            residents = await _connect(http, base_url, recorder, options.residents)
            opening = await _open_conversations(recorder, residents)
            progress(f"{len(residents)} residents connected, each with an open conversation")
            throughput, throughput_ledger = await _throughput(recorder, residents, hub_pid, options)
            progress(f"throughput: {throughput.rate:,.0f} messages/s")
            fixed_rate, fixed_rate_ledger = await _fixed_rate(recorder, residents, hub_pid, options)
            progress(f"fixed rate: p99 {fixed_rate.to_agent.p99:,.1f} ms, {fixed_rate.achieved:,.0f} messages/s")
            replies, replies_ledger = await _replies(recorder, residents, staff, hub_pid, options)
            progress(f"agent replies: p99 {replies.to_resident.p99:,.1f} ms")
        finally:
            await asyncio.gather(*(r.close() for r in residents), return_exceptions=True)
            await staff.close()
    return Measured(
        throughput=throughput,
        fixed_rate=fixed_rate,
        replies=replies,
        ledgers={OPEN_TAG: opening, THROUGHPUT_TAG: throughput_ledger, FIXED_RATE_TAG: fixed_rate_ledger,
                 REPLY_TAG: replies_ledger},
        dropped_residents=sum(r.dropped for r in residents),
        staff_dropped=staff.dropped,
    )


async def _connect(http: aiohttp.ClientSession, base_url: str, recorder: Recorder, count: int) -> list[Resident]:
    residents = [Resident(http, base_url, recorder) for _ in range(count)]
    gate = asyncio.Semaphore(50)

    async def connect(resident: Resident) -> None:
        async with gate:
            await resident.connect()

    await asyncio.gather(*(connect(r) for r in residents))
    return residents


async def _open_conversations(recorder: Recorder, residents: list[Resident]) -> Ledger:
    """Each resident's first message, which creates its conversation: kept out of every measurement."""
    ledger = recorder.ledger = Ledger()

    async def first(index: int, resident: Resident) -> None:
        key = _key()
        arrived = ledger.arrival_at_resident(key)
        await resident.send(key, f"{OPEN_TAG} {index} {RESIDENT_TEXT}")
        await asyncio.wait_for(arrived, ECHO_TIMEOUT)

    await asyncio.gather(*(first(i, r) for i, r in enumerate(residents)))
    await _settle(ledger, ledger.at_agent, GRACE)
    return ledger


async def _throughput(recorder: Recorder, residents: list[Resident], hub_pid: int,
                      options: Options) -> tuple[Throughput, Ledger]:
    """Closed loop: every resident sends its next message as soon as the previous one is echoed."""
    ledger = recorder.ledger = Ledger()
    start = time.perf_counter()
    window_start = start + options.warmup
    stop = window_start + options.duration

    async def converse(index: int, resident: Resident) -> bool:
        """Send until ``stop``; False if an echo never came."""
        number = 0
        while time.perf_counter() < stop:
            key = _key()
            arrived = ledger.arrival_at_resident(key)
            await resident.send(key, f"{THROUGHPUT_TAG} {index}-{number} {RESIDENT_TEXT}")
            try:
                await asyncio.wait_for(arrived, ECHO_TIMEOUT)
            except Refused:
                pass  # counted by the ledger; the resident goes on with its next message
            except TimeoutError:
                return False
            number += 1
        return True

    progress(f"throughput: {len(residents)} residents in closed loop, {options.warmup:g} s warm-up + "
             f"{options.duration:g} s measured")
    loops = asyncio.gather(*(converse(i, r) for i, r in enumerate(residents)))
    await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
    before = cpu_snapshot(hub_pid)
    await asyncio.sleep(max(0.0, stop - time.perf_counter()))
    after = cpu_snapshot(hub_pid)
    finished = await loops
    await _settle(ledger, ledger.at_agent, GRACE)
    in_window = [key for key, at in ledger.at_resident.items() if window_start <= at < stop]
    return Throughput(
        window=stop - window_start,
        completed=len(in_window),
        round_trip=Distribution.of(ledger.at_resident[k] - ledger.sent[k] for k in in_window),
        sent=len(ledger.sent),
        refused=len(ledger.refused),
        at_agent=len(ledger.at_agent),
        stalled=finished.count(False),
        cpu=cpu_between(before, after),
    ), ledger


async def _paced(rate: float, count: int, action: Callable[[int], Awaitable[None]]) -> list[float]:
    """Start ``action(i)`` at ``start + i / rate``: an open loop, where a slow hub does not slow the sender.

    Returns how late each start was against its schedule, in seconds, so that a generator that
    could not keep its own schedule is visible in the report.
    """
    start = time.perf_counter()
    lags = []
    for index in range(count):
        due = start + index / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        lags.append(time.perf_counter() - due)
        await action(index)
    return lags


async def _fixed_rate(recorder: Recorder, residents: list[Resident], hub_pid: int,
                      options: Options) -> tuple[FixedRate, Ledger]:
    """Open loop at ``options.rate`` messages/s in total, round-robin over the residents."""
    ledger = recorder.ledger = Ledger()
    count = round(options.rate * options.duration)

    async def send(index: int) -> None:
        await residents[index % len(residents)].send(_key(), f"{FIXED_RATE_TAG} {index} {RESIDENT_TEXT}")

    progress(f"fixed rate: {options.rate:g} messages/s for {options.duration:g} s")
    before = cpu_snapshot(hub_pid)
    lags = await _paced(options.rate, count, send)
    after = cpu_snapshot(hub_pid)
    await _settle(ledger, ledger.at_agent, GRACE)
    await _settle(ledger, ledger.at_resident, 1.0)
    to_agent = [ledger.at_agent[k] - ledger.sent[k] for k in ledger.at_agent]
    first_sent, last_sent = min(ledger.sent.values()), max(ledger.sent.values())
    last_arrival = max(ledger.at_agent.values(), default=first_sent)
    span = last_arrival - first_sent
    return FixedRate(
        offered=options.rate,
        sent=len(ledger.sent),
        to_agent=Distribution.of(to_agent),
        to_resident=Distribution.of(ledger.at_resident[k] - ledger.sent[k] for k in ledger.at_resident),
        late=sum(1 for seconds in to_agent if seconds * 1000 > LATE_MS),
        refused=len(ledger.refused),
        missing=len(ledger.sent) - len(ledger.at_agent) - len(ledger.refused),
        achieved=len(ledger.at_agent) / span if span > 0 else 0.0,
        backlog=max(0.0, last_arrival - last_sent),
        schedule_lag=Distribution.of(lags),
        cpu=cpu_between(before, after),
    ), ledger


async def _replies(recorder: Recorder, residents: list[Resident], staff: Staff, hub_pid: int,
                   options: Options) -> tuple[Replies, Ledger]:
    """Staff replies over REST at ``options.reply_rate``/s: store, outbound queue worker, resident socket."""
    claimed = [r.conversation_id for r in residents[:options.reply_conversations] if r.conversation_id is not None]
    for conversation_id in claimed:
        await staff.claim(conversation_id)
    ledger = recorder.ledger = Ledger()
    count = round(options.reply_rate * options.duration)
    posts: list[tuple[int, float]] = []
    under_way: list[asyncio.Task[None]] = []

    async def reply(index: int) -> None:
        posts.append(await staff.reply(claimed[index % len(claimed)], f"{REPLY_TAG} {index} {AGENT_TEXT}"))

    async def start_reply(index: int) -> None:
        under_way.append(asyncio.create_task(reply(index)))

    progress(f"agent replies: {options.reply_rate:g}/s over {len(claimed)} claimed conversations "
             f"for {options.duration:g} s")
    before = cpu_snapshot(hub_pid)
    await _paced(options.reply_rate, count, start_reply)
    after = cpu_snapshot(hub_pid)
    await asyncio.gather(*under_way)
    await _settle(ledger, ledger.at_resident, GRACE)
    return Replies(
        offered=options.reply_rate,
        sent=len(ledger.sent),
        conversations=len(claimed),
        to_resident=Distribution.of(ledger.at_resident[k] - ledger.sent[k] for k in ledger.at_resident),
        post=Distribution.of(seconds for _, seconds in posts),
        failed_posts=sum(1 for status, _ in posts if status != 201),
        missing=len(ledger.sent) - len(ledger.at_resident),
        cpu=cpu_between(before, after),
    ), ledger

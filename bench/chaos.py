"""``python -m bench.chaos``: nothing lost, nothing twice, while the hub's parts are killed under load.

Everything runs privately for the length of the run: a PostgreSQL cluster and a Redis of its own
(bench/services.py), the stand-in WeChat API (channels/wechat/standin.py) and two hub processes on that
database and Redis. Hub A runs Rasa and the action server as its companions (``HUB_BOT_AUTOSTART``, which
starts them again when they die); hub B asks the same Rasa. Default settings otherwise.

Load: residents on web chat and on WeChat, half of them starting on each hub. Each holds one short chat of up to
``CHAT_LENGTH`` numbered questions (``… #w12.3``: resident w12, its third message), each sent once the previous
one was answered, after a pause to think; a resident leaves when handed to people or left without an answer, and
a new one takes the place. A web chat resident resends an unconfirmed message (same client id) every
``RESEND_SECONDS``, after the hub's ``unavailable`` and after reconnecting, as the widget does, for up to
``SEND_PATIENCE`` seconds; its socket reconnects to whichever hub answers. A WeChat resident's message is posted
signed and encrypted (safe mode) to the hubs in turn, as through a load balancer, and tried again
``WECHAT_RETRIES`` times (at once after 5 s without an answer, one second after an error), as WeChat does;
then WeChat gives up.

Faults, on a random schedule fixed by ``--seed``, one of each kind at a random time in its own share of the run
(the others in a random order, Rasa last: see :func:`plan`): SIGKILL of Rasa and of the action server
(hub A's supervisor starts them again), SIGKILL of Redis and of hub B (each started again after a pause),
PostgreSQL stopped with ``pg_ctl stop -m immediate`` (started again after a pause). Then the load stops, the hub
gets up to ``DRAIN_SECONDS`` to empty its send queue, and the database and the residents' ends are counted:

- **sent**: numbered messages a resident sent at least once (resends and retries carry the same number);
  **confirmed**: the hub echoed it on the socket (web chat) or answered WeChat's POST with HTTP 200.
- **stored**: message rows carrying the number: exactly once, missing (lost), or more than once (duplicated);
  **out of order**: a stored message whose number is lower than one stored before it for the same resident.
- **answered**: a stored resident message followed in its conversation, before that resident's next message, by
  a bot or agent message or by the hand-off to people (the ``handoff`` event), or stored while the conversation
  was already with people (it waits in their queue). Anything else is **unanswered**: the conversation is still
  the bot's and nothing answered the message.
- **duplicated answers**: the same bot text stored more than once in one message's answer (its turn ran twice).
- **duplicated sends** (WeChat): customer-service messages and passive replies the stand-in gave a resident
  beyond the hub's outbound rows for that resident marked sent. On web chat the widget shows a message id once;
  a bot turn run twice shows as a duplicated answer.

Goal: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import shlex
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.bot import FAQ_TURN, RASA, wait_healthy
from bench.hubproc import ROOT, free_port
from bench.report import DOCUMENT, machine_facts, publish
from bench.services import PrivateRedis
from bench.stats import background_load
from bench.wechat import AES_KEY, APP_ID, APP_SECRET, TOKEN
from channels.wechat.standin import Simulator, StandInWeChat, serve
from router.botturns import HANDOFF_NOTICE
from tests.support.hubproc import HubProcess
from tests.support.pgcluster import PrivateCluster

MARKERS = ("<!-- chaos:begin -->", "<!-- chaos:end -->")
MODEL = ROOT / "bot" / "models" / "current.tar.gz"
QUESTIONS = (FAQ_TURN, "请问有哪些渠道能缴水费", "开户的时候要带哪些证件", "过户手续网上能办么")
TAG = re.compile(r"#([wx]\d+)\.(\d+)$")
PASSIVE_CONTENT = re.compile(r"<Content><!\[CDATA\[(.*?)\]\]></Content>", re.DOTALL)
CHAT_LENGTH = 4
THINK = (1.0, 3.0)  # seconds a resident pauses before the next question
ANSWER_WAIT = 15.0  # seconds a resident waits for an answer before leaving
RESEND_SECONDS = 5.0
SEND_PATIENCE = 30.0
WECHAT_RETRIES = 3
DRAIN_SECONDS = 45.0
KINDS = ("rasa", "actions", "redis", "postgresql", "hub")
COMPANION_MARKERS = {"rasa": b"hub_rasa", "actions": b"actions.server"}
PAUSE = (3.0, 8.0)  # seconds Redis, PostgreSQL and hub B stay down
BACK_WITHIN = 240.0  # seconds a killed part has to come back (Rasa loads its model for tens of seconds)


@dataclass
class Fault:
    kind: str
    planned_at: float  # seconds after the load started
    pause: float | None  # None: the hub's supervisor decides when to start it again
    killed_at: float | None = None
    back_after: float | None = None  # seconds from the kill until it answered its health check again


@dataclass
class Chat:
    """One resident's chat: what they sent and what reached them."""

    name: str  # the tag's resident part: w (web chat) or x (WeChat) and a number
    address: str = ""  # visitor id or openid: the conversation's external id
    sent: list[int] = field(default_factory=list)
    confirmed: set[int] = field(default_factory=set)
    received: int = 0  # answers that reached the resident (web chat frames; WeChat sends and passive replies)
    gave_up_at: list[float] = field(default_factory=list)  # when the resident stopped trying to send (monotonic)
    with_people: bool = False

    @property
    def channel(self) -> str:
        return "webchat" if self.name[0] == "w" else "wechat"

    def text(self, n: int, rng: random.Random) -> str:
        return f"{rng.choice(QUESTIONS)} #{self.name}.{n}"


def plan(rng: random.Random, seconds: float) -> list[Fault]:
    """One fault of each kind, each at a random time in its own share of the run; Rasa's share is the last.

    Rasa loads its model for a minute or more before it answers again, and while it is down every bot turn is a
    quick hand-off: killed earlier, it would leave the other faults no bot turn to interrupt.
    """
    kinds = [kind for kind in KINDS if kind != "rasa"]
    rng.shuffle(kinds)
    kinds.append("rasa")
    warmup, tail = 15.0, 15.0
    slot = (seconds - warmup - tail) / len(kinds)
    return [Fault(kind, round(warmup + i * slot + rng.uniform(0, slot / 2), 1),
                  None if kind in COMPANION_MARKERS else round(rng.uniform(*PAUSE), 1))
            for i, kind in enumerate(kinds)]


def child_pid(parent: int, marker: bytes) -> int | None:
    """The child of ``parent`` whose command line contains ``marker`` (a companion of the hub)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent and marker in (
                    stat.parent / "cmdline").read_bytes():
                return int(stat.parent.name)
    return None


class Cluster:
    """The private services and the two hubs, and how each is killed and brought back."""

    def __init__(self, workdir: Path, wechat_api: str) -> None:
        self.pg = PrivateCluster()
        self.redis = PrivateRedis(workdir)
        self.rasa_port, self.actions_port = free_port(), free_port()
        rasa_token = secrets.token_urlsafe(24)
        self.rasa_status = f"http://127.0.0.1:{self.rasa_port}/status?token={rasa_token}"
        self.actions_health = f"http://127.0.0.1:{self.actions_port}/health"
        common = {
            "HUB_DATABASE_URL": self.pg.url,
            "HUB_REDIS_URL": self.redis.url, "HUB_CHANNELS": "webchat,wechat", "HUB_HOST": "127.0.0.1",
            "HUB_SECRET_KEY": secrets.token_urlsafe(32),  # shared: a visitor's token is good on either hub
            "HUB_RASA_URL": f"http://127.0.0.1:{self.rasa_port}", "HUB_RASA_TOKEN": rasa_token,
            "HUB_WECHAT_APP_ID": APP_ID, "HUB_WECHAT_APP_SECRET": APP_SECRET, "HUB_WECHAT_TOKEN": TOKEN,
            "HUB_WECHAT_ENCODING_AES_KEY": AES_KEY, "HUB_WECHAT_API_BASE_URL": wechat_api,
            "HUB_DEMO": "false", "HUB_LOG_LEVEL": "WARNING", "HUB_LOG_JSON": "false",
        }
        self.hub_a = HubProcess({**common, "HUB_BOT_AUTOSTART": "1", "HUB_BOT_MODEL_PATH": str(MODEL),
                                 "HUB_RASA_PORT": str(self.rasa_port), "HUB_ACTIONS_PORT": str(self.actions_port)},
                                workdir / "hub-a", "hub-a")
        self.hub_b = HubProcess(common, workdir / "hub-b", "hub-b")
        self.urls = [self.hub_a.url, self.hub_b.url]
        self._companions: list[int] = []

    def start(self) -> None:
        self.pg.create()
        self.redis.start()
        self.hub_a.start(timeout=120)  # the first runs the migrations
        self.hub_b.start(timeout=120)

    async def inflict(self, fault: Fault) -> None:
        """Kill one part, bring it back (or let the hub do so) and wait until it answers again."""
        if fault.kind in COMPANION_MARKERS:
            assert self.hub_a.process is not None
            pid = child_pid(self.hub_a.process.pid, COMPANION_MARKERS[fault.kind])
            if pid is None:
                raise RuntimeError(f"no {fault.kind} process under hub A")
            os.killpg(pid, signal.SIGKILL)
            await asyncio.sleep(0.5)  # its port is closed: the next health check sees the new process
            await wait_healthy(self.rasa_status if fault.kind == "rasa" else self.actions_health, BACK_WITHIN)
            return
        assert fault.pause is not None
        kill, restore = {"redis": (self.redis.kill, self.redis.start),
                         "postgresql": (self.pg.crash, self.pg.start),
                         "hub": (self.hub_b.kill, lambda: self.hub_b.start(timeout=120))}[fault.kind]
        await asyncio.to_thread(kill)
        await asyncio.sleep(fault.pause)
        await asyncio.to_thread(restore)

    def note_companions(self) -> None:
        assert self.hub_a.process is not None
        self._companions = [pid for marker in COMPANION_MARKERS.values()
                            if (pid := child_pid(self.hub_a.process.pid, marker)) is not None]

    def stop(self) -> None:
        """Stop whatever still runs; every step is bounded and none is skipped because another failed."""
        if self.hub_a.process is not None:
            self.note_companions()
        for hub in (self.hub_b, self.hub_a):
            if hub.process is not None and hub.process.poll() is None:
                try:
                    hub.terminate(timeout=45)
                except AssertionError:
                    hub.kill()
        for pid in self._companions:  # left behind only if hub A had to be killed
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.redis.kill()
        with contextlib.suppress(Exception):
            self.pg.destroy()


async def either(*waits: Awaitable[Any], within: float) -> None:
    """Return when the first of ``waits`` is done or after ``within`` seconds."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()


async def until_true(check: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


class WebVisitor:
    """A web chat resident: one visitor token, a socket to whichever hub answers, the widget's resends."""

    def __init__(self, http: aiohttp.ClientSession, urls: list[str], chat: Chat) -> None:
        self._http = http
        self._urls = urls
        self._chat = chat
        self._token = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Event] = {}  # client id → confirmed
        self._resend = asyncio.Event()
        self._seen: set[int] = set()

    async def converse(self, until: float, rng: random.Random) -> None:
        self._token = await self._visitor_token()
        connection = asyncio.create_task(self._stay_connected(int(self._chat.name[1:])))
        try:
            for n in range(1, CHAT_LENGTH + 1):
                if time.monotonic() >= until:
                    break
                before = self._chat.received
                if not await self._send(n, self._chat.text(n, rng)):
                    break
                if not await until_true(lambda b=before: self._chat.received > b, ANSWER_WAIT):
                    break
                await asyncio.sleep(0.5)  # the rest of the turn (a hand-off notice follows its event)
                if self._chat.with_people:
                    break
                await asyncio.sleep(rng.uniform(*THINK))
        finally:
            connection.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connection

    async def _visitor_token(self) -> str:
        for attempt in range(60):
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError, ValueError):
                async with self._http.post(f"{self._urls[attempt % 2]}/webchat/visitors", json={}) as response:
                    return str((await response.json())["token"])
            await asyncio.sleep(0.5)
        raise RuntimeError("no hub gave a visitor token for 30 s")

    async def _stay_connected(self, first: int) -> None:
        for attempt in range(first, first + 100_000):
            url = self._urls[attempt % len(self._urls)].replace("http", "ws", 1)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, ConnectionError):
                async with self._http.ws_connect(f"{url}/webchat/ws", params={"token": self._token},
                                                 heartbeat=5) as ws:
                    self._ws = ws
                    async for frame in ws:
                        if frame.type == aiohttp.WSMsgType.TEXT:
                            await self._on_frame(ws, json.loads(frame.data))
            self._ws = None
            await asyncio.sleep(0.5)

    async def _on_frame(self, ws: aiohttp.ClientWebSocketResponse, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "hello":
            self._chat.address = data["visitor_id"]
            for message in data.get("messages") or []:
                self._message(message)
            self._resend.set()  # a message not yet confirmed goes again on the new socket
        elif kind == "message":
            if self._message(data["message"]):
                await ws.send_json({"type": "ack", "ids": [data["message"]["id"]]})
        elif kind == "error" and data.get("code") == "unavailable":
            asyncio.get_running_loop().call_later(1.0, self._resend.set)
        elif kind == "state" and (data.get("conversation") or {}).get("state") not in {None, "bot"}:
            self._chat.with_people = True

    def _message(self, message: dict[str, Any]) -> bool:
        """Note a message of the conversation; True for an answer seen for the first time."""
        if message.get("direction") == "in":
            confirmed = self._pending.get(message.get("client_id") or "")
            if confirmed is not None:
                confirmed.set()
            return False
        if message.get("direction") != "out" or message["id"] in self._seen:
            return False
        self._seen.add(message["id"])
        self._chat.received += 1
        if message.get("author") in {"system", "agent"}:
            self._chat.with_people = True
        return True

    async def _send(self, n: int, text: str) -> bool:
        client_id = f"chaos-{self._chat.name}-{n}-{secrets.token_hex(4)}"
        confirmed = self._pending[client_id] = asyncio.Event()
        frame = json.dumps({"type": "message", "client_id": client_id, "text": text}, ensure_ascii=False)
        self._chat.sent.append(n)
        deadline = time.monotonic() + SEND_PATIENCE
        while time.monotonic() < deadline:
            self._resend.clear()
            ws = self._ws
            if ws is not None and not ws.closed:
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    await ws.send_str(frame)
            await either(confirmed.wait(), self._resend.wait(), within=RESEND_SECONDS)
            if confirmed.is_set():
                self._chat.confirmed.add(n)
                return True
        self._chat.gave_up_at.append(time.monotonic())
        return False


class WeChatResident:
    """A WeChat follower: WeChat's server posts their messages; answers arrive at the stand-in API."""

    def __init__(self, simulators: list[Simulator], standin: StandInWeChat, chat: Chat) -> None:
        self._simulators = simulators
        self._standin = standin
        self._chat = chat
        chat.address = "o" + secrets.token_hex(14)[:27]
        self._passive: list[str] = []

    def sends(self) -> list[str]:
        """What reached the resident: customer-service texts and passive replies."""
        custom = [str((m.get("text") or {}).get("content", m.get("msgtype")))
                  for m in self._standin.sent if m.get("touser") == self._chat.address]
        return custom + self._passive

    async def converse(self, until: float, rng: random.Random) -> None:
        for n in range(1, CHAT_LENGTH + 1):
            if time.monotonic() >= until:
                break
            before = len(self.sends())
            if not await self._post(n, self._chat.text(n, rng)):
                break
            if not await until_true(lambda b=before: len(self.sends()) > b, ANSWER_WAIT):
                break
            await asyncio.sleep(0.5)
            if HANDOFF_NOTICE in self.sends():
                self._chat.with_people = True
                break
            await asyncio.sleep(rng.uniform(*THINK))

    async def _post(self, n: int, text: str) -> bool:
        first = self._simulators[0]
        xml = first.xml(self._chat.address, "text", {"Content": text}, msg_id=secrets.randbits(63))
        self._chat.sent.append(n)
        for attempt in range(1 + WECHAT_RETRIES):
            simulator = self._simulators[(int(self._chat.name[1:]) + attempt) % len(self._simulators)]
            try:
                answer = await simulator.post(xml)
            except (aiohttp.ClientError, AssertionError, ConnectionError):
                await asyncio.sleep(1.0)
                continue
            if answer == "":
                continue  # no answer within 5 s: WeChat posts again at once
            self._chat.confirmed.add(n)
            if answer.startswith("<xml>"):
                content = PASSIVE_CONTENT.search(answer)
                self._passive.append(content[1] if content else answer)
            return True
        self._chat.gave_up_at.append(time.monotonic())
        return False


async def load(cluster: Cluster, standin: StandInWeChat, until: float, per_channel: int,
               rng: random.Random) -> list[tuple[Chat, WeChatResident | None]]:
    chats: list[tuple[Chat, WeChatResident | None]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        simulators = [Simulator(http, f"{url}/wechat", TOKEN, app_id=APP_ID, encoding_aes_key=AES_KEY,
                                mode="safe", retries=0) for url in cluster.urls]

        async def lane(letter: str, lane_rng: random.Random) -> None:
            while time.monotonic() < until:
                chat = Chat(f"{letter}{len(chats) + 1}")
                if letter == "w":
                    chats.append((chat, None))
                    await WebVisitor(http, cluster.urls, chat).converse(until, lane_rng)
                else:
                    resident = WeChatResident(simulators, standin, chat)
                    chats.append((chat, resident))
                    await resident.converse(until, lane_rng)

        lanes = [lane(letter, random.Random(rng.random())) for letter in "wx" for _ in range(per_channel)]
        await asyncio.wait_for(asyncio.gather(*lanes), until - time.monotonic() + SEND_PATIENCE + ANSWER_WAIT + 10)
    return chats


async def inflict_all(cluster: Cluster, faults: list[Fault], started: float) -> None:
    """Each fault at its time, whether or not the part killed before is back (Rasa takes long to load)."""

    async def inflict(fault: Fault) -> None:
        await asyncio.sleep(max(0.0, started + fault.planned_at - time.monotonic()))
        fault.killed_at = time.monotonic() - started
        progress(f"{fault.killed_at:5.0f} s  kill {fault.kind}")
        try:
            await cluster.inflict(fault)
        except RuntimeError as exc:  # not back in time: reported, and the run goes on
            progress(f"{fault.kind}: {exc}")
            return
        fault.back_after = time.monotonic() - started - fault.killed_at
        progress(f"{time.monotonic() - started:5.0f} s  {fault.kind} back after {fault.back_after:.0f} s")

    await asyncio.gather(*(inflict(fault) for fault in faults))


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


ROWS = """
SELECT c.channel, c.external_id, m.direction, m.author, m.text, m.delivery, m.payload->>'event' AS event
FROM message m JOIN conversation c ON c.id = m.conversation_id ORDER BY c.id, m.id
"""
QUEUED = "SELECT count(*) FROM message WHERE delivery IN ('queued', 'sending')"


async def drain(database_url: str) -> tuple[float, int]:
    """Wait until the send queue is empty (at most DRAIN_SECONDS); seconds waited and rows still queued."""
    started = time.monotonic()
    await asyncio.sleep(3)  # bot turns in flight store their answers
    connection = await asyncpg.connect(database_url, timeout=10)
    try:
        for _ in range(int(DRAIN_SECONDS)):
            if not await connection.fetchval(QUEUED):
                break
            await asyncio.sleep(1)
        return time.monotonic() - started, await connection.fetchval(QUEUED)
    finally:
        await connection.close()


@dataclass
class Tally:
    """The counts of one channel."""

    residents: int = 0
    sent: int = 0
    confirmed: int = 0
    once: int = 0
    missing: int = 0
    missing_confirmed: int = 0
    duplicated: int = 0  # rows beyond the first
    out_of_order: int = 0
    by_bot: int = 0
    by_people: int = 0  # handed off, or already with people
    unanswered: int = 0
    duplicated_answers: int = 0
    answers_stored: int = 0  # outbound rows in the residents' conversations
    answers_marked_sent: int = 0
    answers_received: int = 0
    duplicated_sends: int = 0
    handoffs: Counter[str] = field(default_factory=Counter)


def handoff_reason(event_text: str) -> str:
    """``转人工:机器人不可用:<error>`` → ``机器人不可用``: the reason without the error's details."""
    return event_text.split(":")[1] if ":" in event_text else event_text


def tally(chats: list[tuple[Chat, WeChatResident | None]], rows: list[Any]) -> dict[str, Tally]:
    """Count ``rows`` (ROWS, in conversation and id order) against what the residents sent and received."""
    stored: Counter[tuple[str, int]] = Counter()
    order: dict[str, list[int]] = defaultdict(list)
    answers: dict[tuple[str, int], set[str]] = defaultdict(set)
    bot_texts: dict[tuple[str, int], Counter[str]] = defaultdict(Counter)
    outbound: Counter[str] = Counter()  # per address
    marked_sent: Counter[str] = Counter()
    handoffs: dict[str, Counter[str]] = defaultdict(Counter)
    current: tuple[str, int] | None = None
    with_people = False
    address = None
    for row in rows:
        if row["external_id"] != address:
            address, current, with_people = row["external_id"], None, False
        if row["direction"] == "in" and row["author"] == "resident":
            tag = TAG.search(row["text"] or "")
            if tag is None:
                continue
            current = (tag[1], int(tag[2]))
            stored[current] += 1
            order[tag[1]].append(current[1])
            answers[current].add("people" if with_people else "")
        elif row["direction"] == "internal" and row["event"] == "handoff":
            with_people = True
            handoffs[row["channel"]][handoff_reason(row["text"] or "")] += 1
            if current is not None:
                answers[current].add("people")
        elif row["direction"] == "out":
            outbound[address] += 1
            marked_sent[address] += row["delivery"] in {"sent", "delivered"}
            if current is not None and row["author"] in {"bot", "agent"}:
                answers[current].add("bot" if row["author"] == "bot" else "people")
                if row["author"] == "bot":
                    bot_texts[current][row["text"] or ""] += 1
    result = {"webchat": Tally(), "wechat": Tally()}
    for chat, resident in chats:
        t = result[chat.channel]
        t.residents += 1
        t.sent += len(chat.sent)
        t.confirmed += len(chat.confirmed)
        for n in chat.sent:
            count = stored[(chat.name, n)]
            t.once += count == 1
            t.missing += count == 0
            t.missing_confirmed += count == 0 and n in chat.confirmed
            t.duplicated += max(0, count - 1)
            kinds = answers.get((chat.name, n), set())
            if count:
                t.by_bot += "bot" in kinds
                t.by_people += "bot" not in kinds and "people" in kinds
                t.unanswered += not kinds - {""}
            t.duplicated_answers += sum(c - 1 for c in bot_texts[(chat.name, n)].values())
        seen = order[chat.name]
        t.out_of_order += sum(1 for i, n in enumerate(seen) if any(n < m for m in seen[:i]))
        t.answers_stored += outbound[chat.address]
        t.answers_marked_sent += marked_sent[chat.address]
        if resident is None:
            t.answers_received += chat.received
        else:
            received = len(resident.sends())
            t.answers_received += received
            t.duplicated_sends += max(0, received - marked_sent[chat.address])
    for channel, counts in handoffs.items():
        result[channel].handoffs = counts
    return result


@dataclass
class Run:
    seed: int
    seconds: float
    per_channel: int
    took: float  # seconds from the start of the services to their stop
    background: float  # cores other processes used just before the run
    rasa_ready: float
    faults: list[Fault]
    tallies: dict[str, Tally]
    drained: float
    still_queued: int
    gave_up_at: list[float]  # seconds into the load when a resident stopped trying to send a message


async def run(seed: int, seconds: float, per_channel: int) -> Run:
    rng = random.Random(seed)
    faults = plan(rng, seconds)
    background = await asyncio.to_thread(background_load, 3.0)
    with tempfile.TemporaryDirectory(prefix="shuiwu-chaos-") as tmp:
        os.chmod(tmp, 0o711)  # noqa: S103 (the postgres user passes through to its cluster, nothing is listed)
        workdir = Path(tmp)
        standin, runner, api_url = await serve("127.0.0.1", 0, app_id=APP_ID, app_secret=APP_SECRET)
        cluster = Cluster(workdir, api_url)
        began = time.monotonic()
        try:
            progress(f"starting PostgreSQL, Redis, two hubs and the bot in {workdir} …")
            await asyncio.to_thread(cluster.start)
            rasa_ready = await wait_healthy(cluster.rasa_status, BACK_WITHIN)
            await wait_healthy(cluster.actions_health, BACK_WITHIN)
            progress(f"Rasa ready after {rasa_ready:.0f} s; {seconds:g} s of load, faults: "
                     + ", ".join(f"{f.kind} at {f.planned_at:g} s" for f in faults))
            started = time.monotonic()
            chaos = asyncio.create_task(inflict_all(cluster, faults, started))
            try:
                chats = await load(cluster, standin, started + seconds, per_channel, rng)
                await asyncio.wait_for(chaos, BACK_WITHIN)  # the last part killed is back before the count
            finally:
                chaos.cancel()
            drained, still_queued = await drain(cluster.pg.dsn)
            connection = await asyncpg.connect(cluster.pg.dsn, timeout=10)
            try:
                rows = await connection.fetch(ROWS)
            finally:
                await connection.close()
            return Run(seed, seconds, per_channel, time.monotonic() - began, background, rasa_ready, faults,
                       tally(chats, rows), drained, still_queued,
                       sorted(at - started for chat, _ in chats for at in chat.gave_up_at))
        finally:
            progress("stopping …")
            await asyncio.to_thread(cluster.stop)
            await runner.cleanup()


FAULT_NAMES = {
    "rasa": "Rasa: SIGKILL; hub A's supervisor starts it again",
    "actions": "Action server: SIGKILL; hub A's supervisor starts it again",
    "redis": "Redis: SIGKILL, started again (empty) after the pause",
    "postgresql": "PostgreSQL: `pg_ctl stop -m immediate`, started again after the pause",
    "hub": "Hub B: SIGKILL, started again after the pause",
}


def render(result: Run, command: str) -> str:
    m = machine_facts()
    web, wx = result.tallies["webchat"], result.tallies["wechat"]

    def row(label: str, name: str, web_only: bool = False, wechat_only: bool = False) -> str:
        a, b = getattr(web, name), getattr(wx, name)
        total = b if wechat_only else a if web_only else a + b
        return (f"| {label} | {'–' if wechat_only else f'{a:,}'} | {'–' if web_only else f'{b:,}'} | "
                f"{total:,} |")

    lost = web.missing + wx.missing
    twice = web.duplicated + wx.duplicated + web.duplicated_answers + wx.duplicated_answers + wx.duplicated_sends
    loaded = (f"**The machine was loaded by other runs**: other processes kept {result.background:.2f} cores busy "
              "just before the run, so the hub, Rasa and the load shared what was left."
              if result.background > 0.15 else f"Other load just before the run: {result.background:.2f} cores.")
    lines = [
        MARKERS[0], "## Chaos: nothing lost, nothing twice", "",
        f"Measured {m.date} with `{command}`: seed {result.seed}, {result.seconds:g} s of load, "
        f"{result.took / 60:.1f} minutes from the start of the services to the count.", "",
        f"**Machine.** {m.cpus} CPUs, {m.cpu_model}, {m.memory_gib:.1f} GiB RAM, {m.kernel}; Python {m.python}. "
        + loaded, "",
        "**Set-up.** A PostgreSQL cluster and a Redis of the run's own, the stand-in WeChat API, two hub processes "
        "(web chat and WeChat in safe mode, default settings); hub A runs Rasa and the action server as its "
        f"companions, hub B asks the same Rasa. Rasa answered {result.rasa_ready:.0f} s after both hubs were up; "
        f"the load started then. {result.per_channel} web chat and {result.per_channel} WeChat residents at a time, "
        f"each a chat of up to {CHAT_LENGTH} numbered FAQ questions, the next sent {THINK[0]:g}–{THINK[1]:g} s "
        "after the answer; a resident leaves when handed to people or unanswered for "
        f"{ANSWER_WAIT:g} s, and a new one comes. Web chat resends an unconfirmed message as the widget does "
        f"(for up to {SEND_PATIENCE:g} s); WeChat's callbacks go to the hubs in turn and are retried "
        f"{WECHAT_RETRIES} times. After the load, the hub had up to {DRAIN_SECONDS:g} s to empty its send queue "
        + (f"(empty after {result.drained:.0f} s)." if not result.still_queued
           else f"(**{result.still_queued} rows still queued** after {result.drained:.0f} s)."), "",
        "**Definitions** (bench/chaos.py). *Lost*: a numbered message a resident sent and the database does not "
        "hold. *Answered*: in its conversation, before the resident's next message, a bot or agent message or the "
        "hand-off to people followed it, or the conversation was already with people. *Duplicated*: a message "
        "stored twice, a bot answer stored twice for one message, or a WeChat message the stand-in received beyond "
        "the hub's outbound rows marked sent for that resident.", "",
        "| Fault | Planned at | Killed at | Pause | Answering again after the kill |",
        "|---|---|---|---|---|",
    ]
    for f in result.faults:
        killed = "not reached" if f.killed_at is None else f"{f.killed_at:.0f} s"
        back = (f"{f.back_after:.0f} s" if f.back_after is not None
                else "not reached" if f.killed_at is None else f"**not back within {BACK_WITHIN:g} s**")
        pause = "–" if f.pause is None else f"{f.pause:g} s"
        lines.append(f"| {FAULT_NAMES[f.kind]} | {f.planned_at:g} s | {killed} | {pause} | {back} |")
    handoffs = [f"{channel}: " + ", ".join(f"{reason} {n}" for reason, n in t.handoffs.most_common())
                for channel, t in (("web chat", web), ("WeChat", wx)) if t.handoffs]
    lines += [
        "", "| Count | Web chat | WeChat | Total |", "|---|---|---|---|",
        row("Residents", "residents"),
        row("Messages sent (numbered; resends and retries carry the same number)", "sent"),
        row("↳ confirmed by the hub (echo on the socket / HTTP 200 to WeChat)", "confirmed"),
        row("Stored exactly once", "once"),
        row("**Lost** (sent, not stored)", "missing"),
        row("↳ of which the hub had confirmed", "missing_confirmed"),
        row("**Stored more than once** (rows beyond the first)", "duplicated"),
        row("Stored after a later message of the same resident (out of order)", "out_of_order"),
        row("Answered by the bot", "by_bot"),
        row("Answered by the hand-off to people (or already with people)", "by_people"),
        row("**Unanswered** (stored, still the bot's, nothing followed)", "unanswered"),
        row("**Duplicated answers** (the same bot text stored twice after one message)", "duplicated_answers"),
        row("Outbound messages stored in the residents' conversations", "answers_stored"),
        row("↳ marked sent or delivered", "answers_marked_sent"),
        row("↳ reached the resident (web chat socket / stand-in sends and passive replies)", "answers_received"),
        row("**Duplicated sends** to residents (stand-in sends beyond rows marked sent)", "duplicated_sends",
            wechat_only=True),
        "",
        "Hand-offs by reason: " + ("; ".join(handoffs) if handoffs else "none") + ". Messages the hub never "
        "confirmed (the widget stopped resending, or WeChat stopped retrying), seconds into the load: "
        + (", ".join(f"{at:.0f}" for at in result.gave_up_at) or "none") + ".", "",
        f"Goal 0 lost, 0 duplicated: **{'met' if not lost and not twice else 'NOT met'}** ({lost} lost, {twice} "
        "duplicated).",
        MARKERS[1],
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=150.0, help="seconds of load (default 150)")
    parser.add_argument("--seed", type=int, default=16, help="seed of the fault schedule and the texts (default 16)")
    parser.add_argument("--residents", type=int, default=5, help="residents at a time per channel (default 5)")
    parser.add_argument("--write", action="store_true", help=f"update {DOCUMENT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    if args.seconds < 60:
        parser.error("--seconds: at least 60 (five faults, each in its own share of the run)")
    if not (MODEL.exists() and RASA.exists()):
        sys.exit("the bot is not set up: run scripts/bot-env.sh and scripts/bot-train.sh (make bench does)")
    result = asyncio.run(run(args.seed, args.seconds, args.residents))
    command = " ".join(["python -m bench.chaos", shlex.join(sys.argv[1:] if argv is None else argv)]).rstrip()
    section = render(result, command)
    publish(section, args.write, MARKERS)


if __name__ == "__main__":
    main()

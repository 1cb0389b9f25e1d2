"""``python -m bench.bot``: the bot's figures: training the full data set (time, peak memory), Rasa's
``/model/parse`` (latency, throughput) and a whole bot turn through the hub.

Training runs ``rasa train`` on ``bot/`` with an empty Rasa cache, so nothing is reused. The hub then runs
as its own process on a fresh PostgreSQL database with ``HUB_BOT_AUTOSTART=1``: it starts Rasa (tracker
store in the hub's database) and the action server itself, as in production. A bot turn is timed from
the resident's frame leaving the web chat socket to the bot's first reply arriving on it: the router
stores the message, asks Rasa over its REST channel, Rasa runs the policies (and, for the bill, the
action server, which asks the hub's bot lookup), and the router stores and pushes the reply. The bill takes
two action turns: the account number (the hub looks it up and, as it is not the new visitor's, the bot asks for
the phone's last four digits) and the digits (the hub checks them and answers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.clients import Recorder, TimedSocket
from bench.hubproc import ROOT, HubProcess, free_port, open_database
from bench.report import DOCUMENT, machine_facts, publish
from bench.stats import Distribution
from router.billing import DemoBilling
from router.botinput import normalise_for_bot

MARKERS = ("<!-- bot:begin -->", "<!-- bot:end -->")
BOT = ROOT / "bot"
RASA = BOT / ".venv" / "bin" / "rasa"
TARGETS = {"parse_p95_ms": 20.0, "turn_p95_ms": 150.0, "train_seconds": 300.0, "intent_accuracy": 0.95,
           "each_intent_accuracy": 0.90}
# Turns whose answer comes from the model alone, and turns that go through the action server and the hub.
FAQ_TURN = "阶梯水价是怎么收费的"
ACTION_TURN = "查一下户号30001234的水费"
DIGITS_TURN = (DemoBilling().phone("30001234") or "")[-4:]  # the last four of the phone on the demo account


@dataclass(frozen=True, slots=True)
class Training:
    seconds: float
    peak_rss_gib: float
    examples: int


def train(out: Path) -> tuple[Path, Training]:
    """``rasa train`` of the whole bot with an empty cache: wall time and the peak resident memory."""
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "RASA_CACHE_DIRECTORY": str(out / "rasa-cache")}
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(RASA), "train", "--config", "config.yml", "--domain", "domain", "--data", "data",
         "--out", str(out), "--fixed-model-name", "bench"],
        cwd=BOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"rasa train failed ({process.returncode}): {process.stderr.read().decode()[-3000:]}")
    return out / "bench.tar.gz", Training(seconds, usage.ru_maxrss / 1024**2, len(example_texts(BOT / "data")))


def evaluate_intents(model: Path, out: Path) -> dict[str, Any]:
    """``rasa test nlu`` on the held-out examples: accuracy overall and per intent (its recall), FAQ topics."""
    result = subprocess.run(
        [str(RASA), "test", "nlu", "--model", str(model), "--nlu", "tests/nlu_test.yml", "--out", str(out)],
        cwd=BOT, env={**os.environ, "RASA_TELEMETRY_ENABLED": "false"}, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"rasa test nlu failed: {(result.stdout + result.stderr)[-3000:]}")
    report = json.loads((out / "intent_report.json").read_text())
    faq = json.loads((out / "response_selection_report.json").read_text())
    intents = {name: (row["recall"], row["support"]) for name, row in report.items()
               if isinstance(row, dict) and "recall" in row and name not in {"macro avg", "weighted avg", "micro avg"}}
    return {"accuracy": report["accuracy"], "intents": intents, "faq_accuracy": faq["accuracy"],
            "examples": sum(support for _, support in intents.values())}


def example_texts(where: Path) -> list[str]:
    """The example texts of every NLU file under ``where`` (entity markup left in)."""
    texts = []
    for path in sorted(where.rglob("*.yml")):
        for block in (yaml.safe_load(path.read_text("utf-8")) or {}).get("nlu", []) or []:
            for line in str(block.get("examples", "")).splitlines():
                if line.strip().startswith("- "):
                    texts.append(line.strip()[2:])
    return texts


async def measure_parse(rasa_url: str, token: str, sequential: int, seconds: float,
                        clients: int) -> dict[str, Any]:
    """``POST /model/parse`` with the held-out examples, normalised first as the hub does (timed with it): one
    at a time, then ``clients`` at once."""
    texts = example_texts(BOT / "tests")
    async with aiohttp.ClientSession() as http:

        async def parse(index: int) -> None:
            async with http.post(f"{rasa_url}/model/parse", params={"token": token},
                                 json={"text": normalise_for_bot(texts[index % len(texts)])}) as response:
                assert response.status == 200, await response.text()
                await response.read()

        latencies = []
        for index in range(sequential):
            started = time.perf_counter()
            await parse(index)
            latencies.append(time.perf_counter() - started)
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            nonlocal done
            index = offset
            while time.perf_counter() < deadline:
                await parse(index)
                done += 1
                index += clients

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
    return {"sequential": Distribution.of(latencies), "count": sequential, "rate": done / elapsed,
            "clients": clients, "texts": len(texts)}


class ChatResident(TimedSocket):
    """A web chat visitor that notes when each bot reply arrives."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        super().__init__(Recorder())
        self._http = http
        self._base_url = base_url
        self.replies: asyncio.Queue[tuple[float, str]] = asyncio.Queue()

    async def connect(self) -> None:
        async with self._http.post(f"{self._base_url}/webchat/visitors", json={}) as response:
            token = (await response.json())["token"]
        ws = await self._http.ws_connect(f"{self._base_url.replace('http', 'ws', 1)}/webchat/ws",
                                         params={"token": token})
        await ws.receive_json(timeout=10)
        self._start_reading(ws)

    def on_frame(self, data: dict[str, Any], at: float) -> None:
        message = data.get("message") or {}
        if data.get("type") == "message" and message.get("author") in {"bot", "system"}:
            self.replies.put_nowait((at, message.get("text") or ""))

    async def turn(self, text: str) -> tuple[float, str]:
        """Say ``text``; the seconds until the bot's first reply, and that reply."""
        while not self.replies.empty():
            self.replies.get_nowait()
        assert self._ws is not None
        started = time.perf_counter()
        await self._ws.send_str(json.dumps({"type": "message", "client_id": os.urandom(8).hex(), "text": text},
                                           ensure_ascii=False))
        at, reply = await asyncio.wait_for(self.replies.get(), timeout=30)
        await asyncio.sleep(0.3)  # the turn's later replies (buttons, follow-ups) are not the next turn's
        return at - started, reply

    async def close(self) -> None:
        await self._close_socket()


async def measure_turns(hub_url: str, residents: int, conversations: int) -> dict[str, Any]:
    """``residents`` visitors side by side, each holding ``conversations`` short chats one after another.

    A chat is what residents do: a greeting, an FAQ, their bill. Each chat is a new visitor, so Rasa's
    tracker (which it loads and saves on every turn) is as long as a real conversation's.
    """
    faq: list[float] = []
    action: list[float] = []
    unexpected: list[str] = []
    async with aiohttp.ClientSession() as http:

        async def converse() -> None:
            for _ in range(conversations):
                person = ChatResident(http, hub_url)
                await person.connect()
                await person.turn("你好")  # opens the conversation and Rasa's tracker; not timed
                seconds, reply = await person.turn(FAQ_TURN)
                faq.append(seconds)
                if "阶梯" not in reply:
                    unexpected.append(reply)
                for text in (ACTION_TURN, DIGITS_TURN):
                    seconds, reply = await person.turn(text)
                    action.append(seconds)
                    if "30001234" not in reply:
                        unexpected.append(reply)
                await person.close()

        await asyncio.gather(*(converse() for _ in range(residents)))
    return {
        "faq": Distribution.of(faq),
        "action": Distribution.of(action),
        "all": Distribution.of(faq + action),
        "turns": len(faq) + len(action),
        "residents": residents,
        "unexpected": unexpected,
    }


async def wait_healthy(url: str, within: float) -> float:
    """Seconds until ``url`` answers 200."""
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.perf_counter() - started < within:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{url} not healthy after {within:.0f} s")


def run_hub(model: Path, args: argparse.Namespace) -> dict[str, Any]:
    rasa_port, actions_port = free_port(), free_port()
    token = secrets.token_urlsafe(24)  # Rasa's API answers only with it
    overrides = {"HUB_BOT_AUTOSTART": "1", "HUB_BOT_MODEL_PATH": str(model), "HUB_RASA_PORT": str(rasa_port),
                 "HUB_ACTIONS_PORT": str(actions_port), "HUB_BOT_TIMEOUT_SECONDS": "10", "HUB_RASA_TOKEN": token}
    with tempfile.TemporaryDirectory(prefix="shuiwu-bench-bot-") as tmp, \
            open_database("postgresql", Path(tmp)) as database, HubProcess(database, Path(tmp), overrides) as hub:
        rasa_url = f"http://127.0.0.1:{rasa_port}"

        async def measure() -> dict[str, Any]:
            ready = await wait_healthy(f"{rasa_url}/status?token={token}", 300)
            await wait_healthy(f"http://127.0.0.1:{actions_port}/health", 60)
            parse = await measure_parse(rasa_url, token, args.parses, args.seconds, args.clients)
            alone = await measure_turns(hub.url, 1, args.conversations)
            together = await measure_turns(hub.url, args.residents, args.conversations)
            return {"rasa_ready_seconds": ready, "parse": parse, "alone": alone, "together": together}

        result = asyncio.run(measure())
        result["database"] = database.describe()
        result["hub_log_problems"] = hub.log_problems()
    return result


def intent_rows(intents: dict[str, Any]) -> list[str]:
    evaluated = intents["intents"]
    worst = min(recall for recall, _ in evaluated.values())
    rows = ["", f"**Intents of held-out messages** (`bot/tests/nlu_test.yml`, {intents['examples']} examples the "
            "model never saw, written as residents type; the hub's normalisation applies to what residents send, "
            "this file is already in that form): overall **{:.1f} %**, lowest intent {:.1f} %, FAQ topics "
            "{:.1f} %.".format(100 * intents["accuracy"], 100 * worst, 100 * intents["faq_accuracy"]), "",
            "| Intent | Held-out examples | Right |", "|---|---|---|"]
    for name, (recall, support) in sorted(evaluated.items()):
        rows.append(f"| {name} | {support} | {100 * recall:.1f} % |")
    met = intents["accuracy"] >= TARGETS["intent_accuracy"] and worst >= TARGETS["each_intent_accuracy"]
    rows += ["", f"Targets: overall ≥ 95 %, every intent ≥ 90 %: **{'met' if met else 'NOT met'}**."]
    return rows


def render(training: Training | None, result: dict[str, Any], command: str) -> str:
    m = machine_facts()
    parse, alone, together = result["parse"], result["alone"], result["together"]
    seq = parse["sequential"]

    def verdict(value: float, target: float) -> str:
        return "met" if value <= target else "NOT met"

    def turn_rows(turns: dict[str, Any], who: str) -> list[str]:
        faq, action, both = turns["faq"], turns["action"], turns["all"]
        return [
            f"| {who}: FAQ answer ({FAQ_TURN}) | p50 {faq.p50:.0f} ms · p95 {faq.p95:.0f} ms |",
            f"| {who}: bill via the form, the action server and the billing API ({ACTION_TURN}) | "
            f"p50 {action.p50:.0f} ms · p95 {action.p95:.0f} ms |",
            f"| **{who}: all turns** ({turns['turns']}) | p50 {both.p50:.0f} ms · **p95 {both.p95:.0f} ms** · "
            f"p99 {both.p99:.0f} ms |",
        ]

    lines = [
        MARKERS[0], "## Bot: training, NLU parse, a bot turn through the hub", "",
        f"Measured {m.date} with `{command}`.", "",
        f"**Machine.** {m.cpus} CPUs, {m.cpu_model}, {m.memory_gib:.1f} GiB RAM, {m.kernel}; Python {m.python}; "
        f"Rasa 3.6.21 (Python 3.10); {result['database']}. One hub process, which starts Rasa and the action "
        "server beside it; the clients in a fourth process. A bot turn is timed from the resident's web chat "
        "frame to the bot's first reply on the same socket; each chat is a new visitor (greeting, FAQ, bill).", "",
        "| Measure | Result |", "|---|---|",
    ]
    if training is not None:
        lines.append(f"| `rasa train` of the full bot ({training.examples:,} NLU examples, stories, rules), empty "
                     f"cache | **{training.seconds:.0f} s**, peak memory {training.peak_rss_gib:.2f} GiB |")
    lines += [
        f"| Rasa ready (model loaded, `/status` answers) after the hub starts it | {result['rasa_ready_seconds']:.0f}"
        " s |",
        f"| normalisation + `POST /model/parse`, one at a time, {parse['count']} held-out examples | "
        f"p50 {seq.p50:.1f} ms · "
        f"**p95 {seq.p95:.1f} ms** · p99 {seq.p99:.1f} ms |",
        f"| `POST /model/parse`, {parse['clients']} concurrent clients | **{parse['rate']:.0f} parses/s** |",
        *turn_rows(alone, "One resident at a time"),
        *turn_rows(together, f"{together['residents']} residents at once"),
        "",
        "Targets (2 cores): parse p95 ≤ 20 ms: **" + verdict(seq.p95, TARGETS["parse_p95_ms"]) + "**; "
        "bot turn p95 ≤ 150 ms (one resident at a time): **" + verdict(alone["all"].p95, TARGETS["turn_p95_ms"])
        + "**" + ("" if training is None else "; training ≤ 5 minutes: **"
                  + verdict(training.seconds, TARGETS["train_seconds"]) + "**") + ".",
        *intent_rows(result["intents"]),
        "",
    ]
    unexpected = alone["unexpected"] + together["unexpected"]
    if unexpected:
        lines += [f"Unexpected answers ({len(unexpected)}): " + "; ".join(unexpected[:3]), ""]
    if result["hub_log_problems"]:
        lines += ["Hub log excerpts:", "", "```", *result["hub_log_problems"][:5], "```", ""]
    lines.append(MARKERS[1])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-training", action="store_true",
                        help="use bot/models/current.tar.gz instead of training (no training figure)")
    parser.add_argument("--parses", type=int, default=500, help="sequential parse requests (default 500)")
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of concurrent parsing (default 15)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent parse clients (default 8)")
    parser.add_argument("--residents", type=int, default=4, help="residents chatting at once (default 4)")
    parser.add_argument("--conversations", type=int, default=40, help="chats per resident (default 40)")
    parser.add_argument("--write", action="store_true", help=f"update {DOCUMENT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="shuiwu-bench-train-") as tmp:
        if args.skip_training:
            model, training = BOT / "models" / "current.tar.gz", None
        else:
            model, training = train(Path(tmp))
            print(f"trained in {training.seconds:.0f} s, peak {training.peak_rss_gib:.2f} GiB", file=sys.stderr)
        result = run_hub(model, args)
        result["intents"] = evaluate_intents(model, Path(tmp) / "nlu-test")
    command = " ".join(["python -m bench.bot", shlex.join(sys.argv[1:] if argv is None else argv)]).rstrip()
    section = render(training, result, command)
    publish(section, args.write, MARKERS)


if __name__ == "__main__":
    main()

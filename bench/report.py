"""The Markdown report: machine facts, a table per backend, the targets and whether they were met."""

from __future__ import annotations

import math
import os
import platform
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench.scenarios import ECHO_TIMEOUT, GRACE, LATE_MS, Measured, Options
from bench.stats import CpuUse, Distribution
from bench.verify import Verification

BEGIN, END = "<!-- webchat:begin -->", "<!-- webchat:end -->"
DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
TARGET_RATE = 2000.0  # messages/s on PostgreSQL, 2 cores
TARGET_P99_MS = 100.0  # at 500 messages/s
TARGET_AT_RATE = 500.0
QUIET = 0.15  # cores of other load above which a backend's figures are flagged as disturbed
INTRO = """# Benchmarks

Load measurements of Shuiwu Hub on a stated machine. Each benchmark starts the real hub as its own
process (`python -m router run`) on a fresh database and drives it from a separate load-generator
process over the same wire protocol as the browsers ([api-contract.md](api-contract.md)), so the
figures include HTTP, WebSocket, JSON and database costs.

Run them with `make bench` (it bootstraps the virtualenv, starts PostgreSQL and Redis if they are not
running, then runs `.venv/bin/python -m bench`). `python -m bench --help` lists the options;
`--write` replaces the benchmark's own section below with the figures of that run.

Each issue that adds a benchmark keeps its results between its own markers
(`<!-- name:begin -->` … `<!-- name:end -->`); a run rewrites only its own section.
"""


@dataclass(frozen=True, slots=True)
class Machine:
    date: str
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str
    libraries: str


@dataclass(frozen=True, slots=True)
class BackendResult:
    backend: str
    database: str
    settings: dict[str, str]
    measured: Measured
    verification: Verification
    hub_log_problems: list[str]
    background: float  # cores other processes used just before the run


def machine_facts() -> Machine:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return Machine(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpus=len(os.sched_getaffinity(0)),  # what nproc prints
        cpu_model=model.group(1).strip() if model else "unknown",
        memory_gib=int(meminfo.group(1)) / 1024**2 if meminfo else math.nan,
        kernel=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        libraries=", ".join(f"{name} {version(name)}" for name in ("aiohttp", "SQLAlchemy", "asyncpg", "aiosqlite")),
    )


def _ms(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.1f} ms" if value < 10 else f"{value:,.0f} ms"


def _spread(d: Distribution) -> str:
    return f"p50 {_ms(d.p50)} · p95 {_ms(d.p95)} · p99 {_ms(d.p99)} · max {_ms(d.max)}"


def _cpu(use: CpuUse, cpus: int) -> str:
    return (f"hub {use.hub:.2f} · load generator {use.bench:.2f} · database and rest {use.rest:.2f} "
            f"(machine {use.machine:.2f} of {cpus})")


def _store_line(v: Verification) -> str:
    parts = [f"`{c.tag}` {c.rows:,} rows / {c.distinct:,} distinct / {c.sent:,} sent"
             + (f" ({c.missing} missing, {c.unexpected} unexpected)" if c.missing or c.unexpected else "")
             for c in v.checks]
    delivery = ", ".join(f"{state} {n:,}" for state, n in sorted(v.reply_delivery.items()))
    verdict = "**yes**" if v.exact else "**NO**"
    return (f"{verdict}: {'; '.join(parts)}; all inbound rows {v.inbound_rows:,} = resident messages sent "
            f"{v.inbound_sent:,}{'' if v.inbound_rows == v.inbound_sent else ' (MISMATCH)'}; "
            f"reply delivery state: {delivery or 'none'}")


def _table(result: BackendResult, machine: Machine, options: Options) -> list[str]:
    m = result.measured
    tp, fr, rp = m.throughput, m.fixed_rate, m.replies
    held = (f"yes: {fr.achieved:,.0f} messages/s reached the agent" if fr.held
            else f"**no**: the hub delivered {fr.achieved:,.0f} messages/s to the agent")
    problems = len(result.hub_log_problems)
    refusals = ", ".join(f"`{code}` {n:,}" for code, n in sorted(m.refusals.items())) or "none"
    return [
        f"### {_title(result.backend)}",
        "",
        f"Database: {result.database}.",
        "",
        "| Measure | Result |",
        "|---|---|",
        f"| **Throughput**, {options.residents} residents in closed loop | **{tp.rate:,.0f} messages/s** "
        f"({tp.completed:,} stored and echoed in {tp.window:g} s after {options.warmup:g} s warm-up) |",
        f"| ↳ resident send → own echo at that load | {_spread(tp.round_trip)} |",
        f"| ↳ events on the agent socket | {tp.at_agent:,} of {tp.sent:,} messages; refused by the hub: "
        f"{tp.refused}; residents stalled (no echo in {ECHO_TIMEOUT:g} s): {tp.stalled} |",
        f"| ↳ CPU, cores | {_cpu(tp.cpu, machine.cpus)} |",
        f"| **Latency at {fr.offered:,.0f} messages/s**, resident send → agent socket | "
        f"{_spread(fr.to_agent).replace('p99 ', '**p99** ', 1)} |",
        f"| ↳ late (> {LATE_MS:g} ms) / refused / missing (not there {GRACE:g} s after the last send) | "
        f"{fr.late:,} / {fr.refused:,} / {fr.missing:,} of {fr.sent:,}; the last arrived {fr.backlog:,.1f} s "
        "after the last send |",
        f"| ↳ rate held | {held} (offered {fr.offered:,.0f}) |",
        f"| ↳ resident send → own echo | {_spread(fr.to_resident)} |",
        f"| ↳ load generator behind its schedule | p99 {_ms(fr.schedule_lag.p99)} · max {_ms(fr.schedule_lag.max)} |",
        f"| ↳ CPU, cores | {_cpu(fr.cpu, machine.cpus)} |",
        f"| **Agent → resident** at {rp.offered:g} replies/s, POST start → resident socket | "
        f"{_spread(rp.to_resident)} |",
        f"| ↳ missing / POST not 201 | {rp.missing} / {rp.failed_posts} of {rp.sent:,} "
        f"(over {rp.conversations} claimed conversations) |",
        f"| ↳ POST response time | {_spread(rp.post)} |",
        f"| ↳ CPU, cores | {_cpu(rp.cpu, machine.cpus)} |",
        f"| Stored exactly once (database rows after the run) | {_store_line(result.verification)} |",
        f"| Sockets closed by the hub / messages received twice / error frames | residents "
        f"{m.dropped_residents}, staff {'yes' if m.staff_dropped else 'no'} / {m.repeats} / {refusals} |",
        f"| Hub log warnings and errors | {problems} |",
        f"| Other load on the machine just before the run | {result.background:.2f} cores |",
        "",
    ]


def _title(backend: str) -> str:
    return {"postgresql": "PostgreSQL", "sqlite": "SQLite"}[backend]


def _verdicts(results: list[BackendResult]) -> list[str]:
    lines = ["### Targets", "",
             f"Issue targets on 2 cores: throughput ≥ {TARGET_RATE:,.0f} messages/s on PostgreSQL; "
             f"p99 ≤ {TARGET_P99_MS:g} ms at {TARGET_AT_RATE:g} messages/s.", ""]
    by_backend = {r.backend: r for r in results}
    postgresql = by_backend.get("postgresql")
    if postgresql is None:
        lines.append("- Throughput target: not measured (PostgreSQL was not part of this run).")
    else:
        rate = postgresql.measured.throughput.rate
        met = "met" if rate >= TARGET_RATE else "**not met**"
        lines.append(f"- Throughput ≥ {TARGET_RATE:,.0f} messages/s on PostgreSQL: {met} "
                     f"({rate:,.0f} messages/s, {rate / TARGET_RATE:.0%} of the target).")
    for result in results:
        fr = result.measured.fixed_rate
        if fr.offered != TARGET_AT_RATE:
            lines.append(f"- p99 target on {_title(result.backend)}: not measured (run at {fr.offered:g} messages/s).")
            continue
        met = fr.held and fr.to_agent.p99 <= TARGET_P99_MS
        detail = f"p99 {_ms(fr.to_agent.p99)}"
        if not fr.held:
            detail += (f"; the hub could not keep {fr.offered:g} messages/s: {fr.achieved:,.0f} messages/s "
                       f"reached the agent, {fr.missing:,} missing")
        lines.append(f"- p99 ≤ {TARGET_P99_MS:g} ms at {TARGET_AT_RATE:g} messages/s on {_title(result.backend)}: "
                     f"{'met' if met else '**not met**'} ({detail}).")
    disturbed = [f"{_title(r.backend)} ({r.background:.2f} cores)" for r in results if r.background > QUIET]
    if disturbed:
        lines.append(f"- **Caution**: other processes were busy just before the run of {', '.join(disturbed)}; "
                     "those figures understate the hub.")
    return [*lines, ""]


def render_section(machine: Machine, options: Options, results: list[BackendResult], command: str) -> str:
    settings = results[0].settings if results else {}
    shown = ", ".join(f"`{k}={v}`" for k, v in settings.items() if k != "HUB_DATABASE_URL")
    lines = [
        BEGIN,
        "## Web chat: resident messages and agent replies",
        "",
        f"Measured {machine.date} with `{command}`.",
        "",
        f"**Machine.** {machine.cpus} CPUs (`nproc`), {machine.cpu_model}, {machine.memory_gib:.1f} GiB RAM, "
        f"{machine.kernel}; Python {machine.python}; {machine.libraries}. The hub, the load generator and "
        "PostgreSQL are separate processes sharing these cores, as on a small production host; the CPU rows "
        "show who used them (the load generator's share is CPU the hub did not get).",
        "",
        f"**Hub.** One `python -m router run` process, no bot, in-process event bus (no Redis), on a fresh "
        f"database per backend: {shown}. `HUB_DATABASE_POOL_SIZE` also sets the overflow, so up to twice "
        "that many PostgreSQL connections. The per-visitor message limit (default 2/s after a burst of 20) is "
        "raised because at the default 200 sockets could offer at most 400 messages/s: the limiter, not the "
        "hub, would be measured. A real 2,000 messages/s at 2/s per resident means at least 1,000 residents "
        "typing at once; the hub's work per message is the same.",
        "",
        "**Method.**",
        f"- {options.residents} residents, each on its own visitor WebSocket sending "
        "`{\"type\": \"message\", \"client_id\": <uuid>, \"text\": …}` (a 30-character Chinese sentence); each "
        "first opens its conversation with one unmeasured message. The admin is signed in (cookie + CSRF) and "
        "listens on `/api/ws`, where an admin receives every conversation's events. All times are "
        "`time.perf_counter()` in the one load-generator process, so both ends of a latency share a clock.",
        f"- Throughput: closed loop, each resident sends its next message when the hub has echoed the previous "
        f"one, so the load adapts to the hub. Counted: messages echoed inside the {options.duration:g} s window "
        f"after {options.warmup:g} s warm-up (the echo is published after the commit, so each counted message is "
        "stored).",
        f"- Latency: open loop, {options.rate:g} messages/s in total round-robin over the residents for "
        f"{options.duration:g} s, whatever the hub's speed; measured from the resident's send to the `message` "
        f"event on the agent's socket, matched by `client_id`. Late: over {LATE_MS:g} ms. A hub that falls behind "
        f"works off its backlog before the next scenario starts (up to {GRACE:g} s); what has not arrived by then "
        "is missing.",
        f"- Agent → resident: the admin claims {options.reply_conversations} conversations and POSTs "
        f"`/api/conversations/{{id}}/messages` at {options.reply_rate:g}/s (open loop); measured from the start of "
        "the POST to the `message` frame on the resident's socket, a path through the outbound queue worker.",
        "- Check: after the hub has stopped, the database rows of each scenario (selected by a tag at the start "
        "of the text) are compared with the client ids and reply texts sent.",
        "",
    ]
    for result in results:
        lines += _table(result, machine, options)
    lines += _verdicts(results)
    problems = [f"{r.backend}: {line}" for r in results for line in r.hub_log_problems[:5]]
    if problems:
        lines += ["Hub log excerpts:", "", "```", *problems, "```", ""]
    lines.append(END)
    return "\n".join(lines)


def publish(section: str, write: bool, markers: tuple[str, str] = (BEGIN, END)) -> None:
    """Print a benchmark's section; with ``write``, it takes the place of the one in docs/benchmarks.md."""
    print(section)
    if write:
        write_section(DOCUMENT, section, markers)


def write_section(path: Path, section: str, markers: tuple[str, str] = (BEGIN, END)) -> None:
    """Replace a benchmark's section between its markers; create the document or append if needed."""
    text = path.read_text() if path.exists() else INTRO
    start_marker, end_marker = markers
    begin, end = text.find(start_marker), text.find(end_marker)
    if begin != -1 and end > begin:
        text = text[:begin] + section + text[end + len(end_marker):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)

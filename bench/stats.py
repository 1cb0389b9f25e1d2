"""Measurement helpers: latency distributions and CPU accounting read from /proc."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values (``fraction`` 0.99 for p99): a value that was observed."""
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Percentiles of durations, in milliseconds."""

    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Distribution:
        ordered = sorted(s * 1000 for s in seconds)
        return cls(
            p50=percentile(ordered, 0.50),
            p95=percentile(ordered, 0.95),
            p99=percentile(ordered, 0.99),
            max=ordered[-1] if ordered else math.nan,
        )


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    wall: float
    hub: float  # CPU seconds used so far by the hub process (all its threads)
    bench: float  # CPU seconds used so far by this process, the load generator
    machine: float  # CPU seconds all cores have spent not idle since boot
    stolen: float  # CPU seconds the hypervisor gave to others while this machine's cores wanted them


@dataclass(frozen=True, slots=True)
class CpuUse:
    """Average CPU use over an interval, in cores (1.0 = one core fully busy)."""

    hub: float
    bench: float
    machine: float
    stolen: float  # cores' worth taken by the hypervisor (a virtual machine's "steal")

    @property
    def rest(self) -> float:
        """Everything else that ran: mostly the database server (PostgreSQL backends)."""
        return max(0.0, self.machine - self.hub - self.bench)


def _machine_busy() -> tuple[float, float]:
    """CPU seconds all cores have spent not idle since boot, and of those the hypervisor's steal."""
    # /proc/stat "cpu" line: user nice system idle iowait irq softirq steal (guest is counted in user).
    cpu = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(cpu) - cpu[3] - cpu[4]) / _CLOCK_TICKS, cpu[7] / _CLOCK_TICKS


def background_load(seconds: float) -> float:
    """Cores kept busy by other processes while the bench itself is idle (sampled before a backend runs)."""
    (before, _), started = _machine_busy(), time.perf_counter()
    time.sleep(seconds)
    return (_machine_busy()[0] - before) / (time.perf_counter() - started)


def cpu_snapshot(hub_pid: int) -> CpuSnapshot:
    # Fields after the parenthesised command name: state is the first, utime the 12th, stime the 13th.
    fields = Path(f"/proc/{hub_pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = os.times()
    busy, stolen = _machine_busy()
    return CpuSnapshot(
        wall=time.perf_counter(),
        hub=(int(fields[11]) + int(fields[12])) / _CLOCK_TICKS,
        bench=own.user + own.system,
        machine=busy,
        stolen=stolen,
    )


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> CpuUse:
    wall = after.wall - before.wall
    return CpuUse(
        hub=(after.hub - before.hub) / wall,
        bench=(after.bench - before.bench) / wall,
        machine=(after.machine - before.machine) / wall,
        stolen=(after.stolen - before.stolen) / wall,
    )

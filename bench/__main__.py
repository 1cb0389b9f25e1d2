"""``python -m bench``: run the web chat load benchmark on SQLite and/or PostgreSQL, print the report.

``--write`` also replaces this benchmark's section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
from pathlib import Path

from bench.hubproc import ROOT, HubProcess, open_database
from bench.report import DOCUMENT, BackendResult, machine_facts, publish, render_section
from bench.scenarios import Options, progress, run_all
from bench.stats import background_load
from bench.verify import verify

BACKENDS = ("postgresql", "sqlite")


def run_backend(backend: str, options: Options) -> BackendResult:
    background = background_load(3.0)
    progress(f"{backend}: other processes used {background:.2f} cores just before the run")
    with tempfile.TemporaryDirectory(prefix=f"shuiwu-bench-{backend}-") as tmp:
        workdir = Path(tmp)
        with open_database(backend, workdir) as database:
            hub = HubProcess(database, workdir)
            with hub:
                progress(f"{backend}: hub pid {hub.pid} listening on {hub.url}")
                measured = asyncio.run(run_all(hub.url, hub.pid, hub.admin_password, options))
            verification = verify(database, measured)
            progress(f"{backend}: database check {'exact' if verification.exact else 'FAILED'}")
            return BackendResult(
                backend=backend,
                database=database.describe(),
                settings=hub.settings,
                measured=measured,
                verification=verification,
                hub_log_problems=hub.log_problems(),
                background=background,
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=[*BACKENDS, "all"], default="all")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds per scenario (default 15)")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of throughput load before its measured window (default 3)")
    parser.add_argument("--residents", type=int, default=200, help="visitor WebSockets (default 200)")
    parser.add_argument("--rate", type=float, default=500.0,
                        help="resident messages/s of the fixed-rate latency scenario (default 500)")
    parser.add_argument("--reply-rate", type=float, default=50.0, help="agent replies/s (default 50)")
    parser.add_argument("--write", action="store_true", help=f"update {DOCUMENT.relative_to(ROOT)}")
    args = parser.parse_args(argv)
    options = Options(residents=args.residents, duration=args.duration, warmup=args.warmup, rate=args.rate,
                      reply_rate=args.reply_rate, reply_conversations=min(50, args.residents))
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    results = [run_backend(backend, options) for backend in backends]
    command = " ".join(["python -m bench", shlex.join(sys.argv[1:] if argv is None else argv)]).rstrip()
    section = render_section(machine_facts(), options, results, command)
    publish(section, args.write)
    if args.write:
        progress(f"wrote {DOCUMENT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Progress of ``rasa train`` from its log, one line every few seconds at most (scripts/bot-train.sh).

Rasa logs "Starting to train component 'X'." as each part of the pipeline starts, and DIET, the response
selector and TED draw progress bars ("Epochs:  40%|... | 12/30 [...]", updated with carriage returns). This
follows the log file while training runs and prints what is being trained, its epoch, the seconds since
training began and what is still to come (the components of config.yml not started yet).

    python3 scripts/train_progress.py LOG CONFIG [--pid PID] [--every SECONDS]

With ``--pid`` it follows LOG until that process ends; without, it reads LOG once (a finished log).
Standard library only: it runs before any virtual environment is needed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

STARTED = re.compile(r"Starting to train component '([^']+)'")
EPOCH = re.compile(r"Epochs:\s+(\d+)%\|[^|]*\|\s*(\d+)/(\d+)")
VALIDATING = re.compile(r"Started validating domain and training data")
SAVED = re.compile(r"Your Rasa model is trained and saved")
CONFIG_NAME = re.compile(r"^\s*- name:\s*([\w.]+)", re.MULTILINE)
QUIET_REPEATS = 6
UNTRAINED = {"FallbackClassifier"}  # in the pipeline, but it has nothing to learn: Rasa never "starts" it


def planned_components(config: str) -> list[str]:
    """The pipeline's and the policies' names in config.yml's order (``components.x.Y`` as ``Y``), less those
    that are not trained."""
    names = [name.rsplit(".", 1)[-1] for name in CONFIG_NAME.findall(config)]
    return [name for name in names if name not in UNTRAINED]


class Progress:
    """What training is doing, from the log's records; a line to print at most every ``every`` seconds."""

    def __init__(self, plan: list[str], started: float, every: float) -> None:
        self._to_come = list(plan)
        self._started = started
        self._every = every
        self._last_printed = started - every
        self._state = "starting Rasa"
        self._component = ""
        self._printed_state = ""

    def feed(self, record: str) -> None:
        """Take one log record (a line, or one redraw of a progress bar)."""
        if VALIDATING.search(record):
            self._state = "validating the training data"
        elif (started := STARTED.search(record)) is not None:
            name = started.group(1)
            if name in self._to_come:
                self._to_come.remove(name)
            self._state = f"training {name}"
            self._component = name
        elif (epoch := EPOCH.search(record)) is not None and self._state.startswith("training "):
            percent, done, total = epoch.groups()
            self._state = f"training {self._component}: epoch {done}/{total} ({percent}%)"
        elif SAVED.search(record):
            self._state = "model saved"
            self._to_come = []

    def line(self, now: float, final: bool = False) -> str | None:
        """The progress line to print now, or None: too soon since the last, or nothing new to say (an unchanged
        state is repeated after ``QUIET_REPEATS`` intervals, to show training has not hung)."""
        since = now - self._last_printed
        if not final and (since < self._every or (self._state == self._printed_state
                                                   and since < self._every * QUIET_REPEATS)):
            return None
        self._last_printed, self._printed_state = now, self._state
        to_come = ""
        if self._to_come:
            shown = ", ".join(self._to_come[:3]) + (f" and {len(self._to_come) - 3} more" if len(self._to_come) > 3
                                                    else "")
            to_come = f"; still to come: {shown}"
        return f"bot-train: {int(now - self._started):4d}s {self._state}{to_come}"


def records(chunk: str) -> list[str]:
    """Log records in a chunk of the log: lines, and each redraw of a progress bar (carriage returns)."""
    return [part for part in re.split(r"[\r\n]+", chunk) if part.strip()]


def follow(log: Path, pid: int | None, poll: float = 1.0) -> Iterator[tuple[str | None, float]]:
    """(record, time) as the log grows, and (None, time) every ``poll`` seconds; until ``pid`` has ended."""
    with log.open("r", encoding="utf-8", errors="replace", newline="") as stream:
        pending = ""
        while True:
            running = pid is not None and _alive(pid)
            pending += stream.read()
            end = max(pending.rfind("\n"), pending.rfind("\r")) + 1  # a record is complete once its end is written
            complete, pending = pending[:end], pending[end:]
            for record in records(complete):
                yield record, time.monotonic()
            if not running:
                for record in records(pending):
                    yield record, time.monotonic()
                return
            yield None, time.monotonic()
            time.sleep(poll)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a finished child its parent has not reaped yet does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("config", type=Path)
    parser.add_argument("--pid", type=int)
    parser.add_argument("--every", type=float, default=5.0)
    args = parser.parse_args(argv)
    progress = Progress(planned_components(args.config.read_text("utf-8")), time.monotonic(), args.every)
    now = time.monotonic()
    for record, now in follow(args.log, args.pid):
        if record is not None:
            progress.feed(record)
        if (line := progress.line(now)) is not None:
            print(line, flush=True)
    if args.pid is not None and (line := progress.line(now, final=True)) is not None:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A quiet machine for the load tests: while one runs (sixty phone calls at once), no browser or phone test, nor
one with tight deadlines, runs beside it in the other test process, and it does not start while one does.

Those tests hold a shared lock for their duration, a load test the exclusive one; the test processes of one
pytest run share the lock file. A load test first raises a flag so that tests starting meanwhile wait for it
instead of keeping the shared lock taken one after another.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Iterator
from pathlib import Path

FLAG_POLL_SECONDS = 0.5


@contextlib.contextmanager
def _locked(path: Path, operation: int) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, operation)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def beside_others(directory: Path) -> Iterator[None]:
    """A test that may share the machine, unless a load test has it (a browser, phone or timing test)."""
    flag = directory / "load-test-waiting"
    while flag.exists():
        time.sleep(FLAG_POLL_SECONDS)
    with _locked(directory / "quiet.lock", fcntl.LOCK_SH):
        yield


@contextlib.contextmanager
def alone(directory: Path) -> Iterator[None]:
    """A load test: waits until no such test runs, and keeps new ones waiting until it is over."""
    flag = directory / "load-test-waiting"
    flag.touch()
    try:
        with _locked(directory / "quiet.lock", fcntl.LOCK_EX):
            yield
    finally:
        flag.unlink(missing_ok=True)

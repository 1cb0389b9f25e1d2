"""What runs in the password-hashing worker processes (router/passwords.py): argon2id and nothing else.

Kept apart so that a worker imports only argon2, not the hub.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

NICENESS = 10  # workers yield the CPU to the hub's event loop and the database on a busy machine

# OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane): about 30 ms a check, a tenth of argon2-cffi's
# default (64 MiB, 3 passes, 4 lanes), so a flood of sign-ins costs an attacker ten times more per CPU second
# of ours. Hashes made with other parameters still verify and are rehashed at the next sign-in.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def prepare_worker() -> None:
    """Run at a lower priority, and end with the hub: a hub killed outright (SIGKILL, out of memory) cannot shut
    its pool down, and its workers would otherwise wait for work for ever."""
    with contextlib.suppress(AttributeError, OSError):  # not permitted or not POSIX: normal priority
        os.nice(NICENESS)
    hub = os.getppid()

    def end_with_the_hub() -> None:
        while os.getppid() == hub:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=end_with_the_hub, name="end-with-the-hub", daemon=True).start()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)

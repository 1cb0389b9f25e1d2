"""Password hashing off the event loop, and the policy for passwords people choose.

An argon2id check takes some 30 ms of CPU (router/hashing.py), far more on a busy machine. Run on the event
loop, a flood of sign-ins would stall every WebSocket and WeChat's five-second answer. The work goes to a
few worker processes at a lower CPU priority: on a busy machine the hub's event loop and the database are
scheduled first and a sign-in waits instead. (Threads would share the interpreter lock with the loop, and
a low-priority thread holding it would stall the loop.) The pool is bounded twice: a few workers, and a
cap on the work waiting for them; beyond the cap a sign-in is refused at once (503) instead of queueing.
A quarter of the cap is kept for sign-ins from addresses without recent failures, so that a flood from
addresses that keep failing cannot keep colleagues out.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from zxcvbn import zxcvbn

from router import hashing
from router.errors import HubError, Invalid

WORKERS = min(4, os.cpu_count() or 1)
MAX_IN_FLIGHT = WORKERS * 8  # hashes running or waiting for a worker; more are refused
MIN_LENGTH = 10
MIN_SCORE = 3  # zxcvbn: 3 is "safely unguessable", about 10^8 guesses or more
POLICY_CHARS = 72  # zxcvbn refuses longer input (its time grows quickly); a longer password is judged on its start


class HashingBusy(HubError):
    status, code = 503, "sign_in_busy"


class PasswordWork:
    """Argon2 hashing and verification in a bounded pool of worker processes."""

    def __init__(self, workers: int = WORKERS, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._workers = workers
        self._max_in_flight = max_in_flight
        self._in_flight = 0
        self._executor: ProcessPoolExecutor | None = None
        # Verifying against this keeps sign-in time the same whether or not the username exists.
        self.dummy_hash = hashing.hash_password(secrets.token_hex(16))

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def _run(self, function: Any, *args: Any, reserve: bool = True) -> Any:
        """``reserve``: may use the last quarter of the pool (callers not under suspicion)."""
        limit = self._max_in_flight if reserve else self._max_in_flight - self._max_in_flight // 4
        if self._in_flight >= limit:
            raise HashingBusy("登录请求过多,请稍后再试")
        if self._executor is None:
            # "spawn": a fresh interpreter, not a fork of a process with an event loop and open connections.
            self._executor = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=hashing.prepare_worker)
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
        except BrokenProcessPool as exc:  # a worker was killed (out of memory …): start afresh next time
            self._executor = None
            raise HashingBusy("登录服务暂时不可用,请稍后再试") from exc
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        return await self._run(hashing.hash_password, password)

    async def verify(self, password_hash: str | None, password: str, *, reserve: bool = True) -> bool:
        """Whether ``password`` matches; with no hash (unknown user) the same work is done and False returned."""
        matches = await self._run(hashing.verify, password_hash or self.dummy_hash, password, reserve=reserve)
        return matches and password_hash is not None

    @staticmethod
    def needs_rehash(password_hash: str) -> bool:
        return hashing.needs_rehash(password_hash)


PASSWORDS = PasswordWork()

# zxcvbn's feedback, in the language of the people who read it.
_FEEDBACK_ZH = {
    "Use a few words, avoid common phrases.": "使用几个不相关的词组合,避免常见短语。",
    "No need for symbols, digits, or uppercase letters.": "不必使用符号、数字或大写字母,长度更重要。",
    "Add another word or two. Uncommon words are better.": "再加一两个词,不常见的词更好。",
    "Straight rows of keys are easy to guess.": "键盘上连续一排的按键很容易被猜到。",
    "Short keyboard patterns are easy to guess.": "简短的键盘图案很容易被猜到。",
    "Use a longer keyboard pattern with more turns.": "使用更长、转折更多的键盘图案。",
    'Repeats like "aaa" are easy to guess.': "像 “aaa” 这样的重复很容易被猜到。",
    'Repeats like "abcabcabc" are only slightly harder to guess than "abc".':
        "像 “abcabcabc” 这样的重复并不比 “abc” 难猜多少。",
    "Avoid repeated words and characters.": "避免重复的词和字符。",
    'Sequences like "abc" or "6543" are easy to guess.': "像 “abc” 或 “6543” 这样的序列很容易被猜到。",
    "Avoid sequences.": "避免使用序列。",
    "Recent years are easy to guess.": "最近的年份很容易被猜到。",
    "Avoid recent years.": "避免使用最近的年份。",
    "Avoid years that are associated with you.": "避免使用与您有关的年份。",
    "Dates are often easy to guess.": "日期通常很容易被猜到。",
    "Avoid dates and years that are associated with you.": "避免使用与您有关的日期和年份。",
    "This is a top-10 common password.": "这是最常用的 10 个密码之一。",
    "This is a top-100 common password.": "这是最常用的 100 个密码之一。",
    "This is a very common password.": "这是非常常见的密码。",
    "This is similar to a commonly used password.": "这与常用密码相似。",
    "A word by itself is easy to guess.": "单个词很容易被猜到。",
    "Names and surnames by themselves are easy to guess.": "单独的姓名很容易被猜到。",
    "Common names and surnames are easy to guess.": "常见的姓名很容易被猜到。",
    "Capitalization doesn't help very much.": "大写字母帮助不大。",
    "All-uppercase is almost as easy to guess as all-lowercase.": "全部大写和全部小写几乎一样容易被猜到。",
    "Reversed words aren't much harder to guess.": "倒写的词并不难猜多少。",
    "Predictable substitutions like '@' instead of 'a' don't help very much.": "用 “@” 代替 “a” 这类替换帮助不大。",
}


def check_policy(password: str, *, field: str = "password", user_inputs: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse a short or guessable password (422 ``weak_password``), saying why in Chinese.

    ``user_inputs`` are the account's own words (username, display name): a password built from them is weak.
    Applies where a person chooses a password; hashes already stored are not judged again.
    """
    if len(password) < MIN_LENGTH:
        raise Invalid(f"密码至少 {MIN_LENGTH} 位", code="weak_password",
                      details={"fields": {field: f"at least {MIN_LENGTH} characters"}})
    verdict = zxcvbn(password[:POLICY_CHARS], user_inputs=[word for word in user_inputs if word])
    if verdict["score"] >= MIN_SCORE:
        return
    feedback = verdict["feedback"]
    advice = [_FEEDBACK_ZH.get(text, "") for text in [feedback.get("warning", ""), *feedback.get("suggestions", [])]]
    advice = [text for text in advice if text] or ["请使用更长、更不常见的密码,例如几个不相关的词。"]
    raise Invalid("密码太容易被猜到:" + " ".join(advice), code="weak_password",
                  details={"fields": {field: "too easy to guess"}, "score": verdict["score"], "advice": advice})

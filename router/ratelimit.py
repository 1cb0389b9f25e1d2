"""Per-address limits on the public endpoints anyone can call without signing in, answered with 429.

Counts live in Redis when ``HUB_REDIS_URL`` is set, so that every hub process sees the same totals, and
in this process otherwise. Should Redis fail, the process counts on its own until Redis answers again:
a limit that is briefly per process is better than endpoints that stop answering.

WeChat's callback comes from many WeChat addresses at whatever rate residents write, and every genuine
post is signed. So there only refused posts (bad or stale signatures, plaintext in safe mode) are counted,
and an address that keeps failing is turned away before its signatures are checked: WeChat's own traffic is
never limited, however busy the hotline.

Sign-in has its own throttle, per username and per address, kept in the database (router/throttle.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import limits
from aiohttp import web
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from limits.errors import StorageError

from router.logs import get_logger
from router.net import client_ip
from router.settings import Settings

log = get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFUSED = frozenset({400, 401, 403})
REDIS_RETRY_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    methods: frozenset[str]
    path: str
    setting: str  # the Settings field with the limit, such as "20/minute;200/hour"
    refusals_only: bool = False  # count only answers in REFUSED


MAX_SUSPECTS = 100_000

RULES = (
    Rule("visitors", frozenset({"POST"}), "/webchat/visitors", "rate_limit_new_visitors"),
    Rule("uploads", frozenset({"POST"}), "/webchat/upload", "rate_limit_uploads"),
    Rule("surveys", frozenset({"GET", "POST"}), "/api/surveys", "rate_limit_surveys"),
    Rule("wechat", frozenset({"GET", "POST"}), "/wechat", "rate_limit_wechat_refusals", refusals_only=True),
)

RATE_LIMIT_SETTINGS = tuple(rule.setting for rule in RULES)


def lifted_limits_environment() -> dict[str, str]:
    """Environment for a hub process that load tests drive from one address: every per-address limit out of
    the way (the limiter still runs on every request)."""
    return {f"HUB_{name.upper()}": "1000000/minute" for name in RATE_LIMIT_SETTINGS}


def is_limited(method: str, path: str) -> bool:
    """Whether a route may answer 429 (the OpenAPI document says so)."""
    return any(rule.path == path and method in rule.methods for rule in RULES)


class RateLimits:
    """The counters of every rule, in Redis or in memory, with memory standing in while Redis fails."""

    def __init__(self, settings: Settings) -> None:
        self._items = {rule.name: limits.parse_many(getattr(settings, rule.setting)) for rule in RULES}
        self._memory = FixedWindowRateLimiter(MemoryStorage())
        self._shared: FixedWindowRateLimiter | None = None
        self._redis_down_until = 0.0
        # Rules counting refusals only: the addresses this process refused within the rule's longest window.
        # Others are let through without asking the counters, so the genuine traffic of a busy channel
        # (WeChat's) costs no round trip to Redis; an address refused on another process is counted here
        # from its first refusal on this one.
        self._suspects: dict[tuple[str, str], float] = {}
        self._suspect_seconds = {rule.name: max(item.get_expiry() for item in self._items[rule.name])
                                 for rule in RULES}
        if settings.redis_url:
            storage: Storage = RedisStorage(settings.redis_url, implementation="redispy", wrap_exceptions=True,
                                            key_prefix=f"{settings.redis_prefix}:limits", socket_timeout=1,
                                            socket_connect_timeout=1)
            self._shared = FixedWindowRateLimiter(storage)

    def rule_for(self, request: web.Request) -> Rule | None:
        for rule in RULES:
            if request.path == rule.path and request.method in rule.methods:
                return rule
        return None

    async def retry_after(self, rule: Rule, address: str) -> int | None:
        """Seconds until ``address`` may call again, or None while it is within every limit of ``rule``."""
        if rule.refusals_only and self._suspects.get((rule.name, address), 0.0) < time.monotonic():
            return None
        try:
            return await self._retry_after(self._limiter(), rule, address)
        except StorageError as exc:
            self._redis_failed(exc)
            return await self._retry_after(self._memory, rule, address)

    async def count(self, rule: Rule, address: str) -> None:
        if rule.refusals_only:
            self._suspect(rule, address)
        try:
            await self._count(self._limiter(), rule, address)
        except StorageError as exc:
            self._redis_failed(exc)
            await self._count(self._memory, rule, address)

    async def _retry_after(self, limiter: FixedWindowRateLimiter, rule: Rule, address: str) -> int | None:
        for item in self._items[rule.name]:
            if not await limiter.test(item, rule.name, address):
                stats = await limiter.get_window_stats(item, rule.name, address)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None

    async def _count(self, limiter: FixedWindowRateLimiter, rule: Rule, address: str) -> None:
        for item in self._items[rule.name]:
            await limiter.hit(item, rule.name, address)

    def _suspect(self, rule: Rule, address: str) -> None:
        now = time.monotonic()
        if len(self._suspects) >= MAX_SUSPECTS:  # a flood of addresses: forget those whose window has passed
            self._suspects = {key: until for key, until in self._suspects.items() if until > now}
            if len(self._suspects) >= MAX_SUSPECTS:  # still full: start afresh (each is counted again when refused)
                self._suspects = {}
        self._suspects[(rule.name, address)] = now + self._suspect_seconds[rule.name]

    def _limiter(self) -> FixedWindowRateLimiter:
        if self._shared is None or time.monotonic() < self._redis_down_until:
            return self._memory
        return self._shared

    def _redis_failed(self, exc: Exception) -> None:
        """Count in memory for a few seconds, then try Redis again (each try costs a connection timeout)."""
        log.warning("redis unavailable; counting rate limits in this process for now", error=str(exc))
        self._redis_down_until = time.monotonic() + REDIS_RETRY_SECONDS


def rate_limit_middleware(settings: Settings) -> Callable[..., Awaitable[web.StreamResponse]]:
    rate_limits = RateLimits(settings)

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        rule = rate_limits.rule_for(request)
        if rule is None:
            return await handler(request)
        address = client_ip(request, settings.trusted_proxies)
        wait = await rate_limits.retry_after(rule, address)
        if wait is not None:
            log.info("rate limited", rule=rule.name, path=request.path, retry_after=wait)
            body = {"error": {"code": "rate_limited", "message": f"请求过于频繁,请 {wait} 秒后再试",
                              "details": {"retry_after": wait}}}
            return web.json_response(body, status=429, headers={"Retry-After": str(wait)},
                                     dumps=lambda value: json.dumps(value, ensure_ascii=False))
        if not rule.refusals_only:
            await rate_limits.count(rule, address)
        response = await handler(request)
        if rule.refusals_only and response.status in REFUSED:
            await rate_limits.count(rule, address)
        return response

    return rate_limit

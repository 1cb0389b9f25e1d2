"""Addresses: where a request came from (trusting ``X-Forwarded-For`` only from the configured reverse proxies),
and a free loopback port for a server started alongside the hub."""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(spec: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` → networks; a bad entry raises ValueError (settings refuse to load)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def client_ip(request: web.Request, trusted_proxies: str) -> str:
    """The peer's address; behind a trusted proxy, the right-most address in X-Forwarded-For that is not a
    trusted proxy itself (left-most entries are whatever the client chose to send)."""
    peer = request.remote or ""
    networks = parse_networks(trusted_proxies)
    if not networks or not _within(peer, networks):
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _within(hop, networks):
            return hop if _is_address(hop) else peer
    return peer


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

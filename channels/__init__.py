"""Channel adapters, one package per channel; the router finds them through :func:`load_adapter`."""

from __future__ import annotations

import importlib

from channels.base import ChannelAdapter


def load_adapter(name: str) -> type[ChannelAdapter]:
    """The adapter class a channel package exports as ``ADAPTER`` (``channels/<name>/__init__.py``)."""
    if not name.isidentifier():
        raise ValueError(f"invalid channel name {name!r}")
    module = importlib.import_module(f"channels.{name}")
    adapter: type[ChannelAdapter] = module.ADAPTER
    if adapter.name != name:
        raise ValueError(f"channels.{name}.ADAPTER is named {adapter.name!r}")
    return adapter

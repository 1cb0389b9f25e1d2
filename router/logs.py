"""Structured logging (console or JSON) with personal data masked before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# Mainland mobile numbers and 18-digit resident ID numbers; the middle digits are replaced.
_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_ID_NUMBER = re.compile(r"(?<!\d)(\d{6})\d{8}(\d{3}[\dXx])(?!\d)")
VISIBLE_DIGITS = 4  # of a phone number shown to staff who do not call the resident
_SECRET_KEYS = {"password", "token", "secret", "authorization", "cookie", "csrf_token", "access_token"}


def mask_personal_data(text: str) -> str:
    """Mask phone and ID numbers in free text: ``13812345678`` → ``138****5678``."""
    text = _ID_NUMBER.sub(r"\1********\2", text)
    return _MOBILE.sub(r"\1****\2", text)


def mask_phone(number: str) -> str:
    """Every digit but the last four hidden: ``+8613812345678`` → ``+*********5678``."""
    head, tail = number[:-VISIBLE_DIGITS], number[-VISIBLE_DIGITS:]
    return "".join("*" if c.isdigit() else c for c in head) + tail


def masked(value: Any) -> Any:
    """A text, or the strings inside a JSON-like value, with phone and ID numbers masked."""
    return _mask_value("", value)


def _mask_value(key: str, value: Any) -> Any:
    if key.lower() in _SECRET_KEYS:
        return "***"
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(key, v) for v in value]
    return value


def _mask_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {key: _mask_value(key, value) for key, value in event_dict.items()}


def configure_logging(level: str = "INFO", json: bool = False) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _mask_processor,
    ]
    renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False) if json else (
        structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer,
        ])
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would print query strings (visitor tokens); requests are logged by our middleware.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)

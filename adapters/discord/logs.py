"""Keep what people wrote out of discord.py's logs.

At DEBUG, discord.py logs every REST body it sends and receives and every gateway event: that
is DMs, report details and alert embeds, plus interaction tokens inside webhook URLs. This
filter keeps those records (timing and status are useful) and hides their payloads: numbers,
HTTP methods, URLs (with tokens cut out), route keys, hashes, event and handler names stay;
any other argument becomes ``[hidden]``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["PayloadFilter", "hide_payloads"]

LOGGERS = (
    "discord.client",
    "discord.gateway",
    "discord.http",
    "discord.shard",
    "discord.state",
    "discord.webhook.async_",
)
HIDDEN = "[hidden]"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_SECRET_IN_URL = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/?#\s]+")
_ROUTE_KEY = re.compile(r"(?:GET|POST|PUT|PATCH|DELETE) /[\w{}/.:-]*")
_HASH = re.compile(r"[0-9a-f]{6,64}(?::\d+)*")
_EVENT_NAME = re.compile(r"[A-Z][A-Z0-9_]{1,40}|on_[a-z_]{1,40}")  # gateway event, handler


def _safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if not isinstance(value, str):
        return HIDDEN  # a payload (dict, list, form data, response object)
    if value in _METHODS:
        return value
    if value.startswith(("http://", "https://", "ws://", "wss://")):
        return _SECRET_IN_URL.sub(r"\1" + HIDDEN, value.split("?", 1)[0])
    if _ROUTE_KEY.fullmatch(value) or _HASH.fullmatch(value) or _EVENT_NAME.fullmatch(value):
        return value
    return HIDDEN


class PayloadFilter(logging.Filter):
    """Rewrites a record's arguments in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            record.msg, record.args = HIDDEN, None
        elif isinstance(record.args, tuple):
            record.args = tuple(_safe(a) for a in record.args)
        elif record.args:  # a single mapping argument
            record.args = None
            record.msg = HIDDEN
        return True


_FILTER = PayloadFilter()


def hide_payloads() -> None:
    """Install the filter on discord.py's loggers (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)

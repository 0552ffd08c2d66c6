"""Moderator answers about a report go into the thread of that report's alert."""

from __future__ import annotations

from typing import Any

__all__ = ["alert_key", "in_thread"]


def alert_key(reference: str) -> str:
    """The idempotency key the alert of a report is delivered under (safebot/service.py),
    which the adapter stores in the alert event to find it again."""
    return f"alert:{reference}"


def in_thread(content: dict[str, Any], root: str | None) -> dict[str, Any]:
    """``content`` as a message in the thread of the event ``root`` (unchanged if None).
    ``is_falling_back`` plus ``m.in_reply_to`` show it as a reply where threads are not
    supported."""
    if root is None:
        return content
    return {
        **content,
        "m.relates_to": {
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": root},
        },
    }

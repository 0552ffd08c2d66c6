"""Finding one of the bot's own events in a room's history (an alert, to skip re-posting it
after a crash or to thread answers under it).

An alert a moderator acts on days later may be hundreds of events back in a busy moderator
room. This pages back through the bot's own events only (a ``senders`` filter, so other
people's messages and reactions cost nothing), newest first, and stops after a fixed number
of pages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from nio import AsyncClient, MegolmEvent, RoomMessagesResponse
from nio.exceptions import EncryptionError

__all__ = ["find_own_event", "own_events"]


async def own_events(
    client: AsyncClient,
    room_id: str,
    match: Callable[[Mapping[str, Any]], bool],
    *,
    pages: int,
    page_size: int = 100,
) -> AsyncIterator[str]:
    """The ids of the events the bot sent in ``room_id`` whose (decrypted) content
    ``match``es, newest first, looking at most ``pages * page_size`` of its events back."""
    own = str(client.user_id)
    token: str | None = None
    for _ in range(pages):
        response = await client.room_messages(
            room_id, start=token, limit=page_size, message_filter={"senders": [own]}
        )
        if not isinstance(response, RoomMessagesResponse):
            return
        for event in response.chunk:
            if isinstance(event, MegolmEvent):
                try:
                    event = client.decrypt_event(event)
                except EncryptionError:
                    continue
            if getattr(event, "sender", None) != own:
                continue
            content = event.source.get("content", {})
            if isinstance(content, Mapping) and match(content):
                yield str(event.event_id)
        if not response.chunk or not response.end or response.end == token:
            return
        token = response.end


async def find_own_event(
    client: AsyncClient,
    room_id: str,
    match: Callable[[Mapping[str, Any]], bool],
    *,
    pages: int,
    page_size: int = 100,
) -> str | None:
    """The id of the newest event the bot sent in ``room_id`` whose content ``match``es."""
    async for event_id in own_events(client, room_id, match, pages=pages, page_size=page_size):
        return event_id
    return None

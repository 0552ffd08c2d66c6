"""Is a Matrix room a private 1:1 chat between one person and the bot, right now?

Guidance (the welcome, the menu, every reply, status updates) goes only into such a room. A
room counts as private when all of these hold in its current state:

* its join rule lets nobody in without an invite (``invite``, ``knock`` or the old
  ``private``): not ``public``, and not ``restricted``/``knock_restricted`` (members of
  another room or space may join on their own);
* its history is not ``world_readable`` (readable by anyone, even without joining);
* the bot is joined, and the joined plus invited members are exactly the bot and the person
  (the person may still be invited: a DM the bot has just opened), with no pending
  third-party (e-mail) invite.

Where the state comes from. nio's ``MatrixRoom`` is updated by sync, so it can lag behind the
homeserver: a third member may have joined after the message that is being answered, in a
sync the bot has not processed yet. The cache is therefore only trusted to say "not private"
(it never adds members that were not there when the message was received, so refusing on it
is at worst too careful); "private" is always confirmed by asking the homeserver for the
room's current state. Only if that request fails does the cached state decide (with the same
rule), so a homeserver hiccup does not leave a person without an answer.

What to say instead: a non-private room gets at most one neutral line (nothing about the
person, pointing to a private chat), once per room per ``interval`` seconds
(:class:`RedirectLimiter`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nio import AsyncClient, MatrixRoom, RoomGetStateResponse

__all__ = [
    "PRIVATE_JOIN_RULES",
    "RedirectLimiter",
    "RoomView",
    "current_view",
    "is_private",
    "names_bot",
    "private_room",
    "view_from_cache",
    "view_from_state",
]

log = logging.getLogger(__name__)

PRIVATE_JOIN_RULES = frozenset({"invite", "knock", "private"})
_PUBLIC_HISTORY = "world_readable"


@dataclass(frozen=True, slots=True)
class RoomView:
    """What decides a room's privacy, from its state."""

    join_rule: str
    history_visibility: str
    joined: frozenset[str]
    invited: frozenset[str]
    third_party_invites: int = 0


def view_from_state(events: Iterable[Mapping[str, Any]]) -> RoomView:
    """A view from the room's full current state (``GET /rooms/{id}/state``). Missing
    events take the spec's defaults (join rule ``invite``, history ``shared``)."""
    join_rule, history = "invite", "shared"
    joined: set[str] = set()
    invited: set[str] = set()
    third_party = 0
    for event in events:
        kind = event.get("type")
        content = event.get("content") or {}
        if not isinstance(content, Mapping):
            continue
        if kind == "m.room.join_rules":
            join_rule = str(content.get("join_rule", join_rule))
        elif kind == "m.room.history_visibility":
            history = str(content.get("history_visibility", history))
        elif kind == "m.room.member":
            user = str(event.get("state_key", ""))
            membership = content.get("membership")
            if membership == "join":
                joined.add(user)
            elif membership == "invite":
                invited.add(user)
        elif kind == "m.room.third_party_invite" and content:
            third_party += 1  # an empty content is a revoked invite
    return RoomView(join_rule, history, frozenset(joined), frozenset(invited), third_party)


def view_from_cache(room: MatrixRoom) -> RoomView:
    """A view from nio's synced copy of the room (possibly behind the homeserver)."""
    invited = frozenset(str(u) for u in room.invited_users)
    joined = frozenset(str(u) for u in room.users) - invited
    return RoomView(room.join_rule, room.history_visibility, joined, invited)


def is_private(view: RoomView, bot: str, person: str) -> bool:
    """The room is a private chat of ``person`` and ``bot`` and nobody else."""
    return (
        view.join_rule in PRIVATE_JOIN_RULES
        and view.history_visibility != _PUBLIC_HISTORY
        and bot in view.joined
        and view.joined | view.invited == {bot, person}
        and view.third_party_invites == 0
    )


def names_bot(body: str, bot: str, display_name: str | None) -> bool:
    """The text names the bot (its user id, its localpart or its display name, as a whole
    word, any case): a message meant for it, even in a room that is not private."""
    localpart = bot[1:].split(":", 1)[0] if bot.startswith("@") else bot
    names = {n for n in (bot, localpart, display_name) if n}
    return any(re.search(rf"(?<!\w){re.escape(name)}(?!\w)", body, re.IGNORECASE) for name in names)


async def current_view(client: AsyncClient, room_id: str) -> RoomView | None:
    """The room's state as the homeserver has it now (None if it could not be read)."""
    response = await client.room_get_state(room_id)
    if not isinstance(response, RoomGetStateResponse):
        log.warning("could not read a room's state (%s)", getattr(response, "status_code", "?"))
        return None
    return view_from_state(response.events)


async def private_room(client: AsyncClient, room_id: str, person: str) -> bool:
    """Whether guidance for ``person`` may go into ``room_id`` now (see the module doc)."""
    cached = client.rooms.get(room_id)
    bot = str(client.user_id)
    # Refused on the cache only where the cache shows the bot joined: a room it has just
    # joined or created may not be synced yet.
    cached_view = view_from_cache(cached) if cached is not None else None
    joined_in_cache = cached_view is not None and bot in cached_view.joined
    if joined_in_cache and cached_view is not None and not is_private(cached_view, bot, person):
        return False
    view = await current_view(client, room_id)
    if view is None:
        view = cached_view
    return view is not None and is_private(view, bot, person)


class RedirectLimiter:
    """Says when a room may get the neutral "talk to me in private" line again: once per
    ``interval`` seconds per room. Remembers at most ``capacity`` rooms (the oldest are
    forgotten first), so a flood of rooms cannot grow it without bound."""

    def __init__(self, interval: float, capacity: int = 10_000) -> None:
        self.interval = interval
        self.capacity = capacity
        self._last: dict[str, float] = {}

    def due(self, room_id: str, now: float) -> bool:
        """True (and remembered) if the line may be said in ``room_id`` at ``now``."""
        last = self._last.get(room_id)
        if last is not None and now - last < self.interval:
            return False
        self._last.pop(room_id, None)
        self._last[room_id] = now
        while len(self._last) > self.capacity:
            del self._last[next(iter(self._last))]
        return True

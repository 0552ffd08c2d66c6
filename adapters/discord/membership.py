"""Who is in which server, as this process learned it recently.

Discord gives a bot without the privileged Server Members intent no way to list a person's
servers: each configured server has to be asked (GET /guilds/{id}/members/{user}). The answers
are kept here for a while, together with what guild interactions show for free (the person
clicked or ran a command in that server), so that offering servers again in the same or a
later conversation asks Discord only about servers not seen recently. This is a hint for
*offering* servers only: the check when a report is submitted always asks Discord.

Discord sends every DM to shard 0, so one process answers all the lists and its memory serves
the whole deployment, however many processes run the other shards.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["MembershipMemory"]


class MembershipMemory:
    """``(server, person) -> (member?, when)``, bounded (least recently used goes first)."""

    def __init__(
        self, ttl: float, size: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._known: OrderedDict[tuple[int, int], tuple[bool, float]] = OrderedDict()

    def recall(self, guild_id: int, user_id: int) -> bool | None:
        """True or False if learned within ``ttl``; None if unknown or too old."""
        key = (guild_id, user_id)
        hit = self._known.get(key)
        if hit is None:
            return None
        if self.clock() - hit[1] > self.ttl:
            del self._known[key]
            return None
        self._known.move_to_end(key)
        return hit[0]

    def learn(self, guild_id: int, user_id: int, member: bool) -> None:
        key = (guild_id, user_id)
        self._known[key] = (member, self.clock())
        self._known.move_to_end(key)
        while len(self._known) > self.size:
            self._known.popitem(last=False)

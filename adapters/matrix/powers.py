"""Who moderates a Matrix room, from its m.room.create, m.room.power_levels and
m.room.member state.

In room version 12 and later, the room's creators (the m.room.create sender plus
``additional_creators``) have unlimited power and are not listed in m.room.power_levels.
Power levels keep users who have left (and creators stay creators), so only people joined to
the room now count as its moderators: someone who left is neither obeyed nor mentioned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RoomPowers"]

_DEFAULT_KICK = 50
_DEFAULT_BAN = 50
_LEGACY_VERSIONS = frozenset(str(v) for v in range(1, 12))


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True, slots=True)
class RoomPowers:
    creators: frozenset[str]
    users: Mapping[str, int]
    users_default: int
    threshold: int  # the lower of the kick and ban levels: who counts as a moderator
    joined: frozenset[str]  # members joined now
    ban: int = _DEFAULT_BAN  # the level needed to ban

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> RoomPowers:
        """From the room's full current state (``GET /rooms/{id}/state``)."""
        create_sender = ""
        create: Mapping[str, Any] = {}
        levels: Mapping[str, Any] = {}
        joined: set[str] = set()
        for event in events:
            kind, content = event.get("type"), event.get("content") or {}
            if not isinstance(content, Mapping):
                continue
            if kind == "m.room.create":
                create_sender, create = str(event.get("sender", "")), content
            elif kind == "m.room.power_levels":
                levels = content
            elif kind == "m.room.member" and content.get("membership") == "join":
                joined.add(str(event.get("state_key", "")))
        return cls.from_state(create_sender, create, levels, joined)

    @classmethod
    def from_state(
        cls,
        create_sender: str,
        create: Mapping[str, Any],
        power_levels: Mapping[str, Any],
        joined: Iterable[str],
    ) -> RoomPowers:
        version = str(create.get("room_version", "1"))
        creators: frozenset[str] = frozenset()
        if version not in _LEGACY_VERSIONS:
            extra = create.get("additional_creators") or []
            creators = frozenset([create_sender, *[str(u) for u in extra if isinstance(u, str)]])
        users = {
            str(u): _int(level, 0)
            for u, level in (power_levels.get("users") or {}).items()
            if isinstance(u, str)
        }
        threshold = min(
            _int(power_levels.get("kick"), _DEFAULT_KICK),
            _int(power_levels.get("ban"), _DEFAULT_BAN),
        )
        return cls(
            creators,
            users,
            _int(power_levels.get("users_default"), 0),
            threshold,
            frozenset(joined),
            _int(power_levels.get("ban"), _DEFAULT_BAN),
        )

    def level(self, user_id: str) -> int:
        return self.users.get(user_id, self.users_default)

    def can_ban(self, user_id: str) -> bool:
        """Joined, and a creator or at the ban level (what the homeserver itself checks)."""
        return user_id in self.joined and (
            user_id in self.creators or self.level(user_id) >= self.ban
        )

    def outranks(self, user_id: str, other: str) -> bool:
        """``user_id`` may ban ``other``: a higher level, and ``other`` is not a creator."""
        if other in self.creators:
            return False
        return user_id in self.creators or self.level(user_id) > self.level(other)

    def is_moderator(self, user_id: str) -> bool:
        if user_id not in self.joined:
            return False
        if user_id in self.creators:
            return True
        return self.users.get(user_id, self.users_default) >= self.threshold

    def moderators(self, exclude: str | None = None) -> list[str]:
        """Everyone named as a moderator (creators and listed users at the threshold) who is
        joined to the room now."""
        named = set(self.creators) | {
            u for u, level in self.users.items() if level >= self.threshold
        }
        named &= self.joined
        named.discard(exclude or "")
        return sorted(named)

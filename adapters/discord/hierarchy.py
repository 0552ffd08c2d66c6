"""Would Discord let this moderator time out or ban that member themselves?

The bot's own role may be higher than the clicking moderator's, so the bot must not lend its
rank: a Timeout or Ban button does something only when Discord would allow the moderator to
do it by hand, and the bot too. Discord's rules (role hierarchy):

- nobody can act on the server owner; the owner can act on anyone else;
- the permission (Ban Members, Moderate Members) comes from the member's roles, @everyone
  included, and Administrator grants every permission;
- otherwise the actor's highest role must be strictly above the target's highest role
  (roles of equal position are ordered by id, the older one above);
- members with Administrator cannot be timed out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import discord

__all__ = ["Rank", "Refusal", "rank_of", "refusal"]


class Refusal(Enum):
    """Why an action is refused; each has its own text for the moderator."""

    MODERATOR = "moderator"  # the clicking moderator could not do it themselves
    OWNER = "owner"  # the target owns the server
    ADMIN = "admin"  # an Administrator cannot be timed out
    BOT = "bot"  # the bot itself is not allowed to


@dataclass(frozen=True, slots=True)
class Rank:
    """A member's standing in a server: owner, guild-wide permissions and highest role."""

    user_id: int
    owner: bool
    permissions: int  # guild-wide permission bits (Administrator means all)
    top: tuple[int, int]  # (position, -id) of the highest role: bigger is higher

    def can(self, permission: int) -> bool:
        return self.owner or bool(self.permissions & (permission | _ADMINISTRATOR))

    def above(self, other: Rank) -> bool:
        return not other.owner and (self.owner or self.top > other.top)


_ADMINISTRATOR = discord.Permissions(administrator=True).value
_NEEDS = {
    "timeout": discord.Permissions(moderate_members=True).value,
    "ban": discord.Permissions(ban_members=True).value,
}


def rank_of(member: Mapping[str, Any], guild: Mapping[str, Any]) -> Rank:
    """A member's rank from Discord's own payloads, fetched just now: the guild (its roles and
    owner) and the member (its role ids). Unknown role ids (deleted roles) count for nothing."""
    user_id = int(member["user"]["id"])
    guild_id = int(guild["id"])
    roles = {int(r["id"]): r for r in guild.get("roles", [])}
    held = [roles[int(r)] for r in member.get("roles", []) if int(r) in roles]
    everyone = roles.get(guild_id)
    permissions = int(everyone["permissions"]) if everyone is not None else 0
    for role in held:
        permissions |= int(role["permissions"])
    top = max(((int(r["position"]), -int(r["id"])) for r in held), default=(0, -guild_id))
    return Rank(user_id, user_id == int(guild["owner_id"]), permissions, top)


def refusal(action: str, moderator: Rank, target: Rank, bot: Rank) -> Refusal | None:
    """None if Discord would let both the moderator and the bot do ``action`` to ``target``."""
    need = _NEEDS[action]
    if target.owner:
        return Refusal.OWNER
    if target.user_id in (moderator.user_id, bot.user_id):
        return Refusal.MODERATOR
    if not moderator.can(need) or not moderator.above(target):
        return Refusal.MODERATOR
    if action == "timeout" and target.permissions & _ADMINISTRATOR:
        return Refusal.ADMIN
    if not bot.can(need) or not bot.above(target):
        return Refusal.BOT
    return None

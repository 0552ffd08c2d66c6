"""Discord ids as the core's: people, servers, and the moderator role a server set up."""

from __future__ import annotations

import discord

from safebot.model import Community, CommunityConfig, CommunityId, PersonId

__all__ = ["PLATFORM", "community_of", "moderator_role", "person_of"]

PLATFORM = "discord"


def person_of(user: discord.abc.User) -> PersonId:
    return PersonId(PLATFORM, str(user.id))


def community_of(guild: discord.Guild) -> Community:
    return Community(CommunityId(PLATFORM, str(guild.id)), guild.name)


def moderator_role(config: CommunityConfig | None) -> str | None:
    """The configured moderator role, unless it is @everyone (whose id is the server's): a
    setup saved before setup refused it must neither ping everyone nor make everyone a
    moderator."""
    if config is None or not config.mention or config.mention == config.community.id:
        return None
    return config.mention

"""Checks on what ``/safety setup`` is given.

The moderator role is pinged for every report and makes its holders moderators of the
server's reports, so it must be a role the server chose for its moderators: not @everyone, not
a role managed by Discord or another app, and not a role every member holds. The channel gets
report details, so setup warns when everyone in the server can see it.
"""

from __future__ import annotations

import logging

import discord
from discord.http import HTTPClient

__all__ = ["channel_warning", "role_problem"]

log = logging.getLogger(__name__)


async def role_problem(
    http: HTTPClient, guild_id: int, role: discord.Role, bot_holds: bool
) -> str | None:
    """The content key of the reason this role can't be the moderator role, or None.

    Whether every member holds the role is asked of Discord (role member counts, which needs
    Manage Roles); without that permission the check is skipped. The bot itself need not hold
    it, and a server of just its owner and the bot is left alone (a server being set up)."""
    if role.is_default():
        return "discord.setup_role_everyone"
    if role.managed:  # a bot's, an integration's or the Server Booster role
        return "discord.setup_role_managed"
    try:
        counts = await http.get_role_member_counts(guild_id)
        guild = await http.get_guild(guild_id, with_counts=True)
    except discord.HTTPException as exc:
        log.info("role member counts unavailable (%s): skipping that check", exc.status)
        return None
    members = guild.get("approximate_member_count")
    if not isinstance(members, int):
        return None
    without = members - int(counts.get(str(role.id), 0))  # members who don't hold it
    if members > 2 and without <= (0 if bot_holds else 1):
        return "discord.setup_role_everyone"
    return None


async def channel_warning(client: discord.Client, channel_id: int) -> str | None:
    """The content key of a warning if @everyone can see the channel (its overwrites as
    Discord has them now), or None."""
    try:
        channel = await client.fetch_channel(channel_id)
    except discord.HTTPException:
        return None  # /safety status reports a channel the bot can't reach
    if not isinstance(channel, discord.abc.GuildChannel):
        return None
    if channel.permissions_for(channel.guild.default_role).view_channel:
        return "discord.setup_channel_public"
    return None

"""``/safety setup`` over the wire: the moderator role must be one only moderators hold, and
setup warns when everyone can see the moderator channel."""

from __future__ import annotations

from typing import Any

from fakediscord import VIEW_CHANNEL
from fakediscord._models import MANAGE_ROLES
from test_discord_adapter import World, bot, reply_text, report_by_dm, store, world

from safebot.adapters.discord import DiscordAdapter
from safebot.model import CommunityConfig, CommunityId

__all__ = ["bot", "store", "world"]  # fixtures shared with test_discord_adapter

PUBLIC = "Everyone in this server can see"


async def setup(world: World, role: Any, channel: Any = None) -> str:
    inter = await world.fake.slash(
        world.owner,
        "safety",
        {"channel": channel or world.safety, "role": role},
        guild=world.guild,
        subcommand="setup",
    )
    return await reply_text(inter)


async def test_setup_refuses_roles_that_are_not_only_moderators(
    world: World, bot: DiscordAdapter
) -> None:
    fake = world.fake
    assert "Everyone in this server has" in await setup(world, fake.guild(world.guild).everyone)
    managed = await setup(world, fake.bot_role(world.guild))
    assert "given out by Discord or by an app" in managed
    # A role every member holds (the bot need not), seen through Discord's role member counts.
    members_role = fake.add_role(world.guild, "Members")
    for user in (world.owner, world.alice, world.mod, world.offender):
        fake.guild(world.guild).member(user).role_ids.append(members_role.id)
    fake.bot_role(world.guild).permissions |= MANAGE_ROLES
    assert "Everyone in this server has" in await setup(world, members_role)
    assert await bot.store.list_communities("discord") == []
    # Once someone doesn't hold it, it can be the moderator role.
    fake.guild(world.guild).member(world.offender).role_ids.remove(members_role.id)
    assert "Saved" in await setup(world, members_role)


async def test_setup_warns_when_everyone_can_see_the_channel(
    world: World, bot: DiscordAdapter
) -> None:
    fake = world.fake
    text = await setup(world, world.mod_role)
    assert "Saved" in text and PUBLIC in text
    everyone = fake.guild(world.guild).everyone
    fake.set_overwrites(
        world.safety,
        {
            everyone: (0, VIEW_CHANNEL),
            world.mod_role: (VIEW_CHANNEL, 0),
            fake.bot_role(world.guild): (VIEW_CHANNEL, 0),
        },
    )
    text = await setup(world, world.mod_role)
    assert "Saved" in text and PUBLIC not in text
    fake.set_overwrites(world.safety, {everyone: (VIEW_CHANNEL, 0)})
    assert PUBLIC in await setup(world, world.mod_role)


async def test_a_setup_saved_with_everyone_before_the_fix_pings_and_empowers_nobody(
    world: World, bot: DiscordAdapter
) -> None:
    """What the old /safety setup saved for role:@everyone (its id is the server's)."""
    guild_id = str(world.guild.id)
    await bot.bot.configure_community(
        CommunityConfig(
            community=CommunityId("discord", guild_id),
            name="Test Server",
            destination=str(world.safety.id),
            mention=guild_id,
        ),
        actor="old-setup",
    )
    reference = await report_by_dm(world, offender="x", details="y", evidence="https://a.b/c")
    alert = await world.fake.wait_for_message(channel_id=world.safety)
    assert alert.allowed_mentions is not None
    assert alert.allowed_mentions.get("roles", []) == [] and "<@&" not in alert.content
    refused = await world.fake.click(world.alice, alert, f"sb:m:ack:{reference}")
    assert "Only this server's moderators" in await reply_text(refused)
    report = await bot.store.get_report(reference)
    assert report is not None and report.status.value == "new"

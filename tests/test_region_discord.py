"""The crisis screen with no region known, over the wire: real discord.py, fake Discord."""

from __future__ import annotations

from test_discord_adapter import (  # fixtures are used by name
    World,
    bot,
    custom_id_for,
    dm,
    press,
    reply_text,
    store,
    world,
)

from safebot.adapters.discord import DiscordAdapter
from safebot.model import CommunityId

__all__ = ["bot", "store", "world"]


async def test_no_region_crisis_dm_shows_labelled_lines_and_country(
    world: World, bot: DiscordAdapter
) -> None:
    message = await dm(world, world.alice, "i want to kill myself")
    lines = message.content.splitlines()
    for label, contact in (
        ("United States", "988"),
        ("United States", "741741"),
        ("United Kingdom", "85258"),
        ("Canada", "686868"),
        ("Australia", "1800 55 1800"),
        ("Spain", "024"),
        ("Mexico", "800 911 2000"),
        ("Any country", "findahelpline.com"),
    ):
        assert any(label in line and contact in line for line in lines), (label, contact)
    custom_id_for(message, "Country")  # the button the text tells them to press
    assert len(message.custom_ids()) <= 3  # the menu sits behind one button
    picked = await press(world, world.alice, message, "settings.region")
    assert "Which country" in picked.content


async def test_server_region_from_setup_is_used_until_the_person_picks(
    world: World, bot: DiscordAdapter
) -> None:
    inter = await world.fake.slash(
        world.owner,
        "safety",
        {"channel": world.safety, "role": world.mod_role, "region": "UK"},
        guild=world.guild,
        subcommand="setup",
    )
    assert "Saved" in await reply_text(inter)
    config = await bot.store.get_community(CommunityId("discord", str(world.guild.id)))
    assert config is not None and config.region == "UK"
    asked = await world.fake.slash(world.alice, "safety", guild=world.guild, subcommand="resources")
    reply = await asked.wait_followup(lambda m: "Help in" in m.content)
    assert "United Kingdom" in reply.content and "Childline" in reply.content
    # Someone else's first DM has no community: the deployment default (international).
    message = await dm(world, world.mod, "i want to kill myself")
    assert "findahelpline.com" in message.content

"""Membership checks cost what the person's servers cost, not what the deployment's do.

40 servers have SafeBot set up; the person is in 2. Above ``probe_all_up_to`` servers, offering
asks only the servers the person was seen using SafeBot in (learned by any process, through the
store), each at most once per few minutes; submitting a report asks only the chosen server,
always fresh. A small deployment still asks every server.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from fakediscord import BAN_MEMBERS, MODERATE_MEMBERS
from test_discord_adapter import (
    REF,
    World,
    custom_id_for,
    dm,
    has_choices,
    make_adapter,
    press,
    reply_text,
    running,
    store,
    world,
)

from safebot.conversation import Engine
from safebot.model import CommunityId, PersonId
from safebot.pseudonym import pseudonym
from safebot.settings import LimitSettings, Settings
from safebot.store.base import Store

__all__ = ["store", "world"]  # fixtures shared with test_discord_adapter

SERVERS = 40
MEMBER_CHECK = re.compile(r"/guilds/(\d+)/members/(\d+)$")


def member_checks(world: World, since: int, user: Any) -> list[int]:
    """The servers asked about ``user`` since request number ``since``."""
    asked = []
    for request in world.fake.requests[since:]:
        found = MEMBER_CHECK.match(request.path)
        if request.method == "GET" and found and int(found.group(2)) == user.id:
            asked.append(int(found.group(1)))
    return asked


async def confirm(world: World, server: str) -> Any:
    """A whole DM report to ``server``, up to the Confirm click (its interaction)."""
    msg = await dm(world, world.alice, "hi")
    msg = await press(world, world.alice, msg, "report")
    msg = await press(world, world.alice, msg, "report.go")
    msg = await press(world, world.alice, msg, server)
    msg = await press(world, world.alice, msg, "cat.threats")
    for _ in range(3):
        msg = await press(world, world.alice, msg, "skip")
    msg = await press(world, world.alice, msg, "identity.anonymous")
    return await world.fake.click(world.alice, msg, custom_id_for(msg, "report.confirm"))


async def report(world: World, server: str) -> None:
    done = await confirm(world, server)
    await done.wait_followup(lambda m: REF.search(m.content) is not None)


async def add_servers(world: World, count: int) -> list[tuple[Any, Any, Any]]:
    """``count`` servers, each with a safety channel and a moderator role (not set up yet)."""
    fake = world.fake
    guilds = []
    for n in range(count):
        guild = fake.add_guild(f"Server {n:02d}", owner_id=world.owner)
        role = fake.add_role(guild, "Mods", MODERATE_MEMBERS | BAN_MEMBERS)
        guilds.append((guild, fake.add_channel(guild, "safety"), role))
    return guilds


async def set_up(world: World, guilds: list[tuple[Any, Any, Any]]) -> None:
    for guild, channel, role in guilds:
        inter = await world.fake.slash(
            world.owner,
            "safety",
            {"channel": channel, "role": role},
            guild=guild,
            subcommand="setup",
        )
        assert "Saved" in await reply_text(inter)


async def tag_of(store: Store, user: Any) -> str:
    return pseudonym(await store.pseudonym_secret(), PersonId("discord", str(user.id)))


async def learned(store: Store, user: Any, count: int) -> list[CommunityId]:
    """The servers the store learned ``user`` is in, once there are ``count`` (bounded wait:
    the sighting is written by the interaction event, next to the command's own handling)."""
    tag = await tag_of(store, user)
    deadline = time.monotonic() + 5.0
    for _ in range(500):
        found = await store.known_communities(tag, "discord")
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.01)
    return found


def many(settings: Settings) -> Settings:
    return Settings(
        database_url=settings.database_url,
        limits=LimitSettings(reports_per_hour=9, messages_per_minute=500),
    )


async def test_membership_checks_follow_the_persons_servers(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    fake = world.fake
    guilds = await add_servers(world, SERVERS)
    for guild, _, _ in guilds[:2]:
        fake.add_member(guild, world.alice)
    fake.add_member(guilds[5][0], world.stranger)  # a member, but never used SafeBot there
    # Another process sets the servers up and sees Alice use /safety in her two servers.
    async with running(world, make_adapter(engine, store, many(settings))):
        await set_up(world, guilds)
        for guild, _, _ in guilds[:2]:
            helped = await fake.slash(world.alice, "safety", guild=guild, subcommand="help")
            assert await reply_text(helped)
        assert len(await learned(store, world.alice, 2)) == 2
    async with running(world, make_adapter(engine, store, many(settings))):
        start = len(fake.requests)
        await report(world, "Server 01")
        first = member_checks(world, start, world.alice)
        # Offering: only her two servers, once each. Submitting: only the chosen one.
        assert len(first) == 3, len(first)
        assert sorted(first[:2]) == sorted(g.id for g, _, _ in guilds[:2])
        assert first[-1] == guilds[1][0].id
        # A second report a little later asks only the chosen server again.
        start = len(fake.requests)
        await report(world, "Server 00")
        assert member_checks(world, start, world.alice) == [guilds[0][0].id]
        # Leaving shows at once at submit, whatever was learned before.
        fake.remove_member(guilds[0][0], world.alice)
        start = len(fake.requests)
        done = await confirm(world, "Server 00")
        await done.wait_followup(lambda m: "Nothing was sent" in m.content)
        assert member_checks(world, start, world.alice) == [guilds[0][0].id]
        # Someone never seen in a server: no member call at all, and told to report from there.
        start = len(fake.requests)
        msg = await dm(world, world.stranger, "hi")
        msg = await press(world, world.stranger, msg, "report")
        msg = await press(world, world.stranger, msg, "report.go")
        assert "/safety report" in msg.content, msg.content
        assert member_checks(world, start, world.stranger) == []


async def test_small_deployments_still_ask_every_server(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    fake = world.fake
    guilds = await add_servers(world, 3)
    fake.add_member(guilds[2][0], world.alice)  # never used SafeBot there
    async with running(world, make_adapter(engine, store, many(settings))):
        await set_up(world, guilds)
        start = len(fake.requests)
        await report(world, "Server 02")
        asked = member_checks(world, start, world.alice)
        assert sorted(asked[:3]) == sorted(g.id for g, _, _ in guilds)
        assert asked[3:] == [guilds[2][0].id]
        # Someone in none of them: the usual "no server" screen, without the Discord hint.
        msg = await dm(world, world.stranger, "hi")
        msg = await press(world, world.stranger, msg, "report")
        msg = await press(world, world.stranger, msg, "report.go")
        assert "couldn't find a server" in msg.content and "/safety report" not in msg.content


async def test_forget_me_in_a_server_forgets_that_server_too(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    fake = world.fake
    ((guild, _, _),) = await add_servers(world, 1)
    fake.add_member(guild, world.alice)
    async with running(world, make_adapter(engine, store, settings)):
        helped = await fake.slash(world.alice, "safety", guild=guild, subcommand="help")
        assert await reply_text(helped)
        assert await learned(store, world.alice, 1) == [CommunityId("discord", str(guild.id))]
        # "Forget me", asked and confirmed in that very server (each step a sighting there).
        asked = await fake.slash(world.alice, "safety", guild=guild, subcommand="forget-me")
        msg = await asked.wait_followup(has_choices)
        done = await fake.click(world.alice, msg, custom_id_for(msg, "forget.yes"))
        await done.wait_followup(lambda m: "deleted" in m.content)
        assert await store.known_communities(await tag_of(store, world.alice), "discord") == []
        # Using SafeBot there again is a new sighting.
        again = await fake.slash(world.alice, "safety", guild=guild, subcommand="help")
        assert await reply_text(again)
        assert await learned(store, world.alice, 1) == [CommunityId("discord", str(guild.id))]

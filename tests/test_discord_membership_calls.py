"""Membership checks cost what the person's servers cost, not what the deployment's do.

40 servers have SafeBot set up; the person is in 2. Offering servers asks each server at most
once per few minutes; submitting a report asks only the chosen server, always fresh.
"""

from __future__ import annotations

import re
from typing import Any

from fakediscord import BAN_MEMBERS, MODERATE_MEMBERS
from test_discord_adapter import (
    REF,
    World,
    custom_id_for,
    dm,
    make_adapter,
    press,
    reply_text,
    running,
    store,
    world,
)

from safebot.conversation import Engine
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


async def test_membership_checks_follow_the_persons_servers(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    fake = world.fake
    guilds = []
    for n in range(SERVERS):
        guild = fake.add_guild(f"Server {n:02d}", owner_id=world.owner)
        role = fake.add_role(guild, "Mods", MODERATE_MEMBERS | BAN_MEMBERS)
        guilds.append((guild, fake.add_channel(guild, "safety"), role))
    for guild, _, _ in guilds[:2]:
        fake.add_member(guild, world.alice)
    many = Settings(
        database_url=settings.database_url,
        limits=LimitSettings(reports_per_hour=9, messages_per_minute=500),
    )
    async with running(world, make_adapter(engine, store, many)):
        for guild, channel, role in guilds:
            inter = await fake.slash(
                world.owner,
                "safety",
                {"channel": channel, "role": role},
                guild=guild,
                subcommand="setup",
            )
            assert "Saved" in await reply_text(inter)
        # Alice used a command in Server 00: that shows she is a member there, for free.
        helped = await fake.slash(world.alice, "safety", guild=guilds[0][0], subcommand="help")
        assert await reply_text(helped)
        start = len(fake.requests)
        await report(world, "Server 01")
        first = member_checks(world, start, world.alice)
        # Offering: each other server asked once. Submitting: only the chosen one.
        assert len(first) == SERVERS, len(first)
        assert sorted(first[:-1]) == sorted(g.id for g, _, _ in guilds[1:])
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

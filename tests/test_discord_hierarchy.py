"""Timeout and Ban over the wire: the bot never lends its rank to a moderator.

Each case is a real report (a DM conversation) naming a member, and a click on the alert's
button; the fake Discord models roles with positions, the owner, Administrator and the bot's
own rank, and refuses what real Discord would refuse the bot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakediscord import ADMINISTRATOR, BAN_MEMBERS, KICK_MEMBERS, MODERATE_MEMBERS
from test_discord_adapter import (
    World,
    forged_click,
    make_adapter,
    other_server,
    reply_text,
    report_by_dm,
    running,
    setup_server,
    store,
    world,
)

from safebot.adapters.discord import DiscordAdapter
from safebot.conversation import Engine
from safebot.settings import LimitSettings, Settings
from safebot.store.base import Store

__all__ = ["store", "world"]  # fixtures shared with test_discord_adapter

BOTH = MODERATE_MEMBERS | BAN_MEMBERS
RANK = "your highest role has to be above theirs"


@pytest.fixture
async def bot(
    world: World, engine: Engine, store: Store, settings: Settings
) -> AsyncIterator[DiscordAdapter]:
    many = Settings(database_url=settings.database_url, limits=LimitSettings(reports_per_hour=50))
    async with running(world, make_adapter(engine, store, many)) as adapter:
        await setup_server(world)
        yield adapter


async def alert_naming(world: World, target: Any) -> tuple[str, Any]:
    reference = await report_by_dm(
        world, offender=f"<@{target.id}>", details="x", evidence="https://a.b/c"
    )
    alert = await world.fake.wait_for_message(
        channel_id=world.safety, predicate=lambda m: reference in str(m.embeds)
    )
    return reference, alert


def member_actions(world: World) -> list[Any]:
    """Every ban or member edit the bot asked Discord for."""
    return [
        r
        for r in world.fake.requests
        if (r.method == "PUT" and "/bans/" in r.path)
        or (r.method == "PATCH" and "/members/" in r.path)
    ]


async def click(
    world: World, user: Any, alert: Any, action: str, reference: str, target: Any
) -> str:
    inter = await world.fake.click(user, alert, f"sb:x:{action}:{reference}:{target.id}")
    return await reply_text(inter)


async def test_a_moderator_below_the_target_cannot_ban_through_the_bot(
    world: World, bot: DiscordAdapter
) -> None:
    fake = world.fake
    junior_role = fake.add_role(world.guild, "Junior Mods", BOTH)
    senior_role = fake.add_role(world.guild, "Seniors")  # above Junior Mods, below the bot
    junior, senior = fake.add_user("junior"), fake.add_user("senior")
    fake.add_member(world.guild, junior, roles=[junior_role])
    fake.add_member(world.guild, senior, roles=[senior_role])
    reference, alert = await alert_naming(world, senior)
    for action in ("ban", "timeout"):
        assert RANK in await click(world, junior, alert, action, reference, senior)
    # The same role as the target is not above it either.
    peer = fake.add_user("peer")
    fake.add_member(world.guild, peer, roles=[senior_role, junior_role])
    assert RANK in await click(world, peer, alert, "ban", reference, senior)
    assert member_actions(world) == []
    assert senior.id in fake.guild(world.guild).members
    # A moderator whose role is above the target's can.
    boss_role = fake.add_role(world.guild, "Head Mods", BAN_MEMBERS)
    boss = fake.add_user("boss")
    fake.add_member(world.guild, boss, roles=[boss_role])
    assert "banned" in await click(world, boss, alert, "ban", reference, senior)
    assert senior.id in fake.guild(world.guild).bans


async def test_the_permission_must_be_the_moderators_own(world: World, bot: DiscordAdapter) -> None:
    fake = world.fake
    kicker_role = fake.add_role(world.guild, "Kickers", KICK_MEMBERS)  # a moderator, no ban
    kicker = fake.add_user("kicker")
    fake.add_member(world.guild, kicker, roles=[kicker_role])
    reference, alert = await alert_naming(world, world.offender)
    assert RANK in await click(world, kicker, alert, "ban", reference, world.offender)
    assert RANK in await click(world, kicker, alert, "timeout", reference, world.offender)
    assert member_actions(world) == []
    # Administrator grants every permission.
    admin_role = fake.add_role(world.guild, "Admins", ADMINISTRATOR)
    admin = fake.add_user("admin")
    fake.add_member(world.guild, admin, roles=[admin_role])
    assert "timed out" in await click(world, admin, alert, "timeout", reference, world.offender)


async def test_the_owner_can_act_and_nobody_can_act_on_the_owner(
    world: World, bot: DiscordAdapter
) -> None:
    reference, alert = await alert_naming(world, world.owner)
    for action in ("ban", "timeout"):
        text = await click(world, world.mod, alert, action, reference, world.owner)
        assert "server owner" in text
    assert member_actions(world) == []
    reference, alert = await alert_naming(world, world.offender)
    text = await click(world, world.owner, alert, "timeout", reference, world.offender)
    assert "timed out" in text  # the owner holds no role at all, and still may


async def test_administrators_cannot_be_timed_out(world: World, bot: DiscordAdapter) -> None:
    fake = world.fake
    admin_role = fake.add_role(world.guild, "Helpers", ADMINISTRATOR, position=1)
    helper = fake.add_user("helper")
    fake.add_member(world.guild, helper, roles=[admin_role])
    reference, alert = await alert_naming(world, helper)
    assert "Administrator" in await click(world, world.owner, alert, "timeout", reference, helper)
    assert member_actions(world) == []


async def test_the_bot_must_outrank_the_target_too(world: World, bot: DiscordAdapter) -> None:
    fake = world.fake
    top = max(r.position for r in fake.guild(world.guild).roles.values())
    high_role = fake.add_role(world.guild, "Above the bot", position=top + 1)
    mod_role = fake.add_role(world.guild, "Top Mods", BOTH, position=top + 2)
    high, top_mod = fake.add_user("high"), fake.add_user("top-mod")
    fake.add_member(world.guild, high, roles=[high_role])
    fake.add_member(world.guild, top_mod, roles=[mod_role])
    reference, alert = await alert_naming(world, high)
    text = await click(world, top_mod, alert, "ban", reference, high)
    assert "I don't have permission to do that here" in text
    assert member_actions(world) == []


async def test_only_the_member_the_report_named(world: World, bot: DiscordAdapter) -> None:
    reference, alert = await alert_naming(world, world.offender)
    bystander = world.fake.add_user("bystander")
    world.fake.add_member(world.guild, bystander)
    for action in ("ban", "timeout"):
        forged = await forged_click(
            world, world.owner, world.safety, alert, f"sb:x:{action}:{reference}:{bystander.id}"
        )
        assert "the report isn't from this server" in await reply_text(forged)
    assert member_actions(world) == []


async def test_ban_and_timeout_refuse_another_servers_report(
    world: World, bot: DiscordAdapter
) -> None:
    """A click in server A carrying server B's report (B's offender is in A too)."""
    other = await other_server(world, bot)
    world.fake.add_member(other.guild, world.offender)
    reference = await report_by_dm(
        world,
        offender=f"<@{world.offender.id}>",
        details="x",
        evidence="https://a.b/c",
        community="Other Server",
    )
    await world.fake.wait_for_message(channel_id=other.safety)
    await world.fake.slash(world.owner, "safety", guild=world.guild, subcommand="test-alert")
    in_a = await world.fake.wait_for_message(
        channel_id=world.safety, predicate=lambda m: "test alert" in m.content
    )
    for action in ("ban", "timeout"):
        forged = await forged_click(
            world, world.owner, world.safety, in_a, f"sb:x:{action}:{reference}:{world.offender.id}"
        )
        assert "the report isn't from this server" in await reply_text(forged)
    assert member_actions(world) == []
    assert world.offender.id in world.fake.guild(world.guild).members

"""A redelivered alert shows up once in the moderator channel.

The core delivers at least once, with the same key on a redelivery (a crash between the send
and the outbox mark). Discord-side, two things make it invisible: the adapter looks for the
alert in the channel's recent history, and sends with a nonce Discord enforces. Each test
below sends the same alert again from a fresh adapter (a restarted process: empty caches).
"""

from __future__ import annotations

from fakediscord import READ_MESSAGE_HISTORY
from test_discord_adapter import (
    World,
    make_adapter,
    report_by_dm,
    running,
    setup_server,
    store,
    world,
)

from safebot.adapters.discord import DiscordAdapter
from safebot.conversation import Engine
from safebot.moderation import build_alert
from safebot.settings import Settings
from safebot.store.base import Store

__all__ = ["store", "world"]  # fixtures shared with test_discord_adapter


def alerts_in(world: World, channel: object, reference: str) -> int:
    return sum(
        1 for m in world.fake.channel_messages(channel) if m.embeds and reference in str(m.embeds)
    )


async def send_again(adapter: DiscordAdapter, reference: str) -> None:
    """What the outbox does on a redelivery: the same alert, the same key."""
    report = await adapter.store.get_report(reference)
    assert report is not None
    config = await adapter.store.get_community(report.community)
    assert config is not None
    alert = build_alert(adapter.content, report, f"alert:{reference}", config.locale)
    await adapter.send_alert(config, alert)


async def report_then_resend(world: World, engine: Engine, store: Store, settings: Settings) -> str:
    async with running(world, make_adapter(engine, store, settings)) as first:
        await setup_server(world)
        reference = await report_by_dm(world, offender="x", details="y", evidence="https://a.b/c")
        await world.fake.wait_for_message(channel_id=world.safety)
        await send_again(first, reference)
    async with running(world, make_adapter(engine, store, settings, sync_commands=False)) as fresh:
        await send_again(fresh, reference)
        await send_again(fresh, reference)
    return reference


async def test_redelivered_alert_is_posted_once(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    reference = await report_then_resend(world, engine, store, settings)
    assert alerts_in(world, world.safety, reference) == 1


async def test_redelivered_alert_is_posted_once_without_history_access(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    """Without Read Message History the history lookup finds nothing: the nonce must hold."""
    world.fake.set_overwrites(
        world.safety, {world.fake.bot_role(world.guild): (0, READ_MESSAGE_HISTORY)}
    )
    reference = await report_then_resend(world, engine, store, settings)
    assert alerts_in(world, world.safety, reference) == 1


async def test_redelivered_alert_is_posted_once_after_the_nonce_expired(
    world: World, engine: Engine, store: Store, settings: Settings
) -> None:
    """A redelivery long after the send (Discord forgets nonces after a few minutes): the
    history lookup must hold."""
    world.fake.nonces.window = 0.0
    reference = await report_then_resend(world, engine, store, settings)
    assert alerts_in(world, world.safety, reference) == 1

"""Discord API trouble while an alert is on its way: 5xx, 429 and lost permissions.

Real discord.py against the fake Discord (tests/fakediscord). The alert waits in the outbox,
is retried with backoff, and moderators see it exactly once when Discord answers again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import test_discord_adapter as base
from test_discord_adapter import World, make_adapter, report_by_dm, running, setup_server

from safebot.adapters.discord import DiscordAdapter
from safebot.conversation import Engine
from safebot.model import OutboxItem
from safebot.settings import OutboxSettings, Settings
from safebot.store.base import Store

world = base.world
store = base.store


@pytest.fixture
def fast_retries(tmp_path: Path) -> Settings:
    outbox = OutboxSettings(max_attempts=20, base_delay=0.05, max_delay=0.2)
    return Settings(database_url=str(tmp_path / "safebot.db"), outbox=outbox)


@pytest.fixture
async def bot(
    world: World, engine: Engine, store: Store, fast_retries: Settings
) -> AsyncIterator[DiscordAdapter]:
    async with running(world, make_adapter(engine, store, fast_retries)) as adapter:
        yield adapter


def alerts_posted(world: World, reference: str) -> int:
    return sum(1 for m in world.fake.channel_messages(world.safety) if reference in str(m.embeds))


async def delivered(store: Store, key: str) -> OutboxItem:
    for _ in range(200):
        item = await store.get_outbox_item(key)
        if item is not None and item.delivered_at is not None:
            return item
        await asyncio.sleep(0.02)
    raise AssertionError(f"{key} was posted but never marked delivered")


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, "discord error 503"), (403, "missing permission in the moderator channel")],
    ids=["discord-down", "lost-send-permission"],
)
async def test_alert_waits_through_errors_and_arrives_once(
    world: World, bot: DiscordAdapter, store: Store, status: int, error: str
) -> None:
    await setup_server(world)
    rule = world.fake.fail_next("POST", rf"/channels/{world.safety.id}/messages$", status, times=3)
    reference = await report_by_dm(world, offender="x", details="y", evidence="https://a.b/c")
    alert = await world.fake.wait_for_message(
        channel_id=world.safety, predicate=lambda m: reference in str(m.embeds), timeout=15
    )
    assert alert.nonce is not None
    item = await delivered(store, f"alert:{reference}")
    assert rule.hits == 3
    assert (item.attempts, item.last_error) == (3, error)  # kept from the last failed try
    await bot.bot.deliver_due()
    assert alerts_posted(world, reference) == 1


async def test_rate_limited_alert_is_sent_once(world: World, bot: DiscordAdapter) -> None:
    await setup_server(world)
    rule = world.fake.fail_next(
        "POST",
        rf"/channels/{world.safety.id}/messages$",
        429,
        times=2,
        retry_after=0.05,
        headers={"Via": "1.1 google"},
    )
    reference = await report_by_dm(world, offender="x", details="y", evidence="https://a.b/c")
    await world.fake.wait_for_message(
        channel_id=world.safety, predicate=lambda m: reference in str(m.embeds), timeout=15
    )
    await bot.bot.deliver_due()
    assert alerts_posted(world, reference) == 1
    assert rule.hits == 2  # discord.py waited retry_after and tried again itself
    assert rule.hits == 2  # discord.py waited retry_after and tried again itself

"""Two bot processes split the shards and share one PostgreSQL database.

``safebot run discord --shards 0 --shard-count 2`` and ``--shards 1 --shard-count 2``: each is
a real discord.py AutoShardedClient on the fake Discord, with its own store connection pool.
Discord sends DMs to shard 0 only, and a guild's events to its own shard, so a person whose
server lives on shard 1 talks to process A while their server's moderators click buttons on
process B. The report must still offer that server, reach its moderators exactly once, and
the moderator's acknowledgement must reach the person.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fakediscord import BAN_MEMBERS, MODERATE_MEMBERS, FakeDiscord, FakeMessage, run_client
from test_discord_adapter import REF, custom_id_for, make_adapter, reply_text

from safebot.adapters.discord import DiscordAdapter
from safebot.conversation import Engine
from safebot.settings import OutboxSettings, Settings
from safebot.store import open_store

pytest_plugins = ["pgserver"]  # the session's PostgreSQL server: postgres_url

SHARDS = 2


def guild_on_shard(fake: FakeDiscord, shard: int, name: str, owner: Any) -> Any:
    """A guild whose id puts it on ``shard`` (ids come from a clock, so try until one fits)."""
    for _ in range(1000):
        guild = fake.add_guild(name, owner_id=owner)
        if fake.shard_for(guild.id, SHARDS) == shard:
            return guild
    raise AssertionError(f"no guild id on shard {shard}")


@contextlib.asynccontextmanager
async def process(
    fake: FakeDiscord, engine: Engine, settings: Settings, shard: int
) -> AsyncIterator[DiscordAdapter]:
    """One bot process: its own store pool and a client running only ``shard``."""
    store = await open_store(settings.database_url)
    adapter = make_adapter(engine, store, settings, shard_ids=[shard], shard_count=SHARDS)
    try:
        async with run_client(fake, adapter.client):
            yield adapter
        await adapter.close()
    finally:
        await store.close()


def has_choices(message: FakeMessage) -> bool:
    return bool(message.custom_ids())


async def test_two_processes_split_shards_on_one_postgres(
    postgres_url: str, engine: Engine, tmp_path: Path
) -> None:
    outbox = OutboxSettings(max_attempts=20, base_delay=0.05, max_delay=0.2)
    settings = Settings(database_url=postgres_url, outbox=outbox)
    async with FakeDiscord() as fake:
        owner, alice, mod = (fake.add_user(n) for n in ("owner", "alice", "mod"))
        guild = guild_on_shard(fake, 1, "Far Server", owner)
        role = fake.add_role(guild, "Safety", MODERATE_MEMBERS | BAN_MEMBERS, mentionable=True)
        for user, roles in ((owner, []), (alice, []), (mod, [role])):
            fake.add_member(guild, user, roles=roles)
        safety = fake.add_channel(guild, "safety")
        async with (
            process(fake, engine, settings, 0) as a,
            process(fake, engine, settings, 1) as b,
        ):
            assert a.client.get_guild(guild.id) is None  # the server is not on A's shard
            assert b.client.get_guild(guild.id) is not None
            setup = await fake.slash(
                owner,
                "safety",
                {"channel": safety, "role": role},
                guild=guild,
                subcommand="setup",
            )
            assert "Saved" in await reply_text(setup)

            async def dm(text: str) -> FakeMessage:
                fake.mark()
                await fake.send_dm(alice, text)
                return await fake.wait_for_message(channel_id=alice, predicate=has_choices)

            async def press(message: FakeMessage, wanted: str) -> FakeMessage:
                inter = await fake.click(alice, message, custom_id_for(message, wanted))
                return await inter.wait_followup(has_choices)

            msg = await dm("hi")  # a DM: only shard 0, process A, sees it
            msg = await press(msg, "report")
            msg = await press(msg, "report.go")
            labels = [str(c) for c in msg.custom_ids()] + [msg.content]
            assert any("community.0" in label for label in labels), labels
            msg = await press(msg, "community.0")
            msg = await press(msg, "cat.money")
            for _ in range(3):
                msg = await dm("skip")
            msg = await press(msg, "identity.anonymous")
            msg = await press(msg, "report.confirm")
            reference = REF.search(msg.content)
            assert reference is not None, msg.content

            alert = await fake.wait_for_message(
                channel_id=safety, predicate=lambda m: bool(m.embeds), timeout=10
            )
            ack = await fake.click(mod, alert, f"sb:m:ack:{reference.group(0)}")  # on B
            assert (await ack.response())["type"] == 7
            status = await fake.wait_for_message(
                channel_id=alice, predicate=lambda m: "has seen it" in m.content, timeout=10
            )
            assert reference.group(0) in status.content
            await a.bot.deliver_due()
            await b.bot.deliver_due()
        posted = [m for m in fake.channel_messages(safety) if m.embeds]
        assert len(posted) == 1, [m.content for m in posted]
        # Only shard 0 gets DMs, and each process identified only its own shard.
        assert sorted(tuple(i["shard"]) for i in fake.identifies) == [(0, 2), (1, 2)]

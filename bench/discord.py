"""Discord benchmark: DM round trip through the SafeBot adapter vs a bare discord.py echo bot,
on the same in-process fake Discord server, in the same run.

    .venv/bin/python bench/discord.py --messages 300

A round trip is: the fake dispatches a DM (MESSAGE_CREATE) -> the bot's last reply POST
arrives at the fake. Prints both medians, p95 and the ratio (target <= 1.3x).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# This file is named discord.py: keep its folder off the path so `import discord` finds the
# library, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import discord  # noqa: E402
from fakediscord import FakeDiscord, client_kwargs, run_client  # noqa: E402

from safebot.adapters.discord import DiscordAdapter  # noqa: E402
from safebot.app import assemble  # noqa: E402
from safebot.service import build_engine  # noqa: E402
from safebot.settings import LimitSettings, Settings  # noqa: E402
from safebot.store import open_store  # noqa: E402

# What the person types: free text that walks in and out of the block flow and the menu.
SCRIPT = ("hi", "how do I block them", "1", "2", "menu", "should I pay?", "what is sextortion")


class EchoBot(discord.Client):
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None and not message.author.bot:
            await message.channel.send(message.content or "…")


class ButtonEchoBot(discord.Client):
    """The floor for an interactive reply: echo plus nine buttons, like SafeBot's menu."""

    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None and not message.author.bot:
            view = discord.ui.View(timeout=None)
            for i in range(9):
                view.add_item(discord.ui.Button(label=f"Choice {i}", custom_id=f"echo:{i}"))
            await message.channel.send(message.content or "…", view=view)


async def round_trips(fake: FakeDiscord, user: Any, count: int, expect_last: bool) -> list[float]:
    times: list[float] = []
    for index in range(count):
        text = SCRIPT[index % len(SCRIPT)]
        fake.mark()
        start = time.perf_counter()
        await fake.send_dm(user, text)
        # The reply is complete when the message carrying the choices (or the echo) arrives.
        await fake.wait_for_message(
            channel_id=user,
            predicate=(lambda m: bool(m.custom_ids())) if expect_last else None,
            timeout=5,
        )
        times.append(time.perf_counter() - start)
    return times


def describe(name: str, times: list[float]) -> float:
    times = sorted(times)
    median = statistics.median(times) * 1000
    p95 = times[int(len(times) * 0.95) - 1] * 1000
    print(f"  {name:<22} median {median:7.3f} ms   p95 {p95:7.3f} ms   n={len(times)}")
    return median


async def main(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # One person sends every message of a round: lift the per-person flood limit.
        limits = LimitSettings(messages_per_minute=1_000_000)
        settings = Settings(database_url=str(Path(tmp) / "bench.db"), limits=limits)
        engine = build_engine(settings)
        store = await open_store(settings.database_url)
        async with FakeDiscord() as fake:
            guild = fake.add_guild("Bench")
            users = [fake.add_user(f"u{i}") for i in range(3 * rounds)]
            for user in users:
                fake.add_member(guild, user)
            ours: list[float] = []
            bare: list[float] = []
            buttons: list[float] = []
            # Alternate the bots so drift in machine speed hits all of them alike.
            for r in range(rounds):
                adapter = DiscordAdapter(settings, engine.content, guild_ready_timeout=0.05)
                assemble(engine, store, adapter, settings)
                async with run_client(fake, adapter.client):
                    ours += await round_trips(fake, users[3 * r], count // rounds, True)
                await adapter.close()
                echo = EchoBot(**client_kwargs())
                async with run_client(fake, echo):
                    bare += await round_trips(fake, users[3 * r + 1], count // rounds, False)
                with_buttons = ButtonEchoBot(**client_kwargs())
                async with run_client(fake, with_buttons):
                    buttons += await round_trips(fake, users[3 * r + 2], count // rounds, True)
        await store.close()
    print(f"Discord DM round trip on a fake Discord (127.0.0.1), {rounds} alternating rounds")
    a = describe("SafeBot adapter", ours)
    b = describe("bare discord.py echo", bare)
    c = describe("echo + 9 buttons", buttons)
    print(f"  ratio vs bare echo     {a / b:7.2f}x   (target <= 1.3x)")
    print(f"  ratio vs echo+buttons  {a / c:7.2f}x   (same reply shape: the adapter's own cost)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.rounds))

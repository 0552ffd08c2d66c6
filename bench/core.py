"""Core benchmark: N simulated people go through the full flows on SQLite.

Prints messages per second, p50/p99 latency per message (time inside SafeBot.handle), and
resident memory per 1,000 active conversations. Next to the throughput it prints the floor:
the same number of messages at the same concurrency, each only one aiosqlite upsert and its
commit (what a bot that keeps its state per message in a transaction pays at least), the
core's ratio to it, and for scale the same upserts autocommitted and all queued at once.

    .venv/bin/python bench/core.py --users 200 --conversations 10000

Targets from the core issue: >= 5,000 messages/s, p99 < 2 ms, 10,000 conversations < 100 MB.
These machines are shared and noisy: compare figures from one run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path

import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safebot.adapters.memory import MemoryBot
from safebot.events import ChoiceSelected, Event, TextReceived
from safebot.model import Community, PersonId
from safebot.service import build_engine
from safebot.settings import Settings
from safebot.store import open_store


def script(person: PersonId, index: int) -> list[Event]:
    """A realistic mix: free text, crisis words, the block walkthrough, and a full report."""
    events: list[Event] = [
        TextReceived(person, "hi"),
        TextReceived(person, "he wants $500 or he'll send my pics to my followers"),
        TextReceived(person, "should I pay?"),
        ChoiceSelected(person, "block", "answer.pay"),
        ChoiceSelected(person, "app.discord", "block.platform"),
        ChoiceSelected(person, "device.mobile", "block.device"),
        ChoiceSelected(person, "step.next", "block.steps"),
        TextReceived(person, "menu"),
        TextReceived(person, "tell the mods"),
        ChoiceSelected(person, "report.go", "report.start"),
        ChoiceSelected(person, "community.0", "report.community"),
        ChoiceSelected(person, "cat.money", "report.category"),
        TextReceived(person, f"scammer_{index}"),
        TextReceived(person, "they say they will post my photos unless I pay"),
        TextReceived(person, "https://discord.com/channels/1/2/3"),
        ChoiceSelected(person, "identity.anonymous", "report.identity"),
        ChoiceSelected(person, "report.confirm", "report.review"),
    ]
    if index % 10 == 0:
        events.insert(3, TextReceived(person, "i want to die"))
    return events


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_flows(users: int, database: str) -> None:
    settings = Settings(database_url=database)
    engine = build_engine(settings)
    store = await open_store(database)
    bot = MemoryBot(engine, store, settings)
    home: Community = await bot.setup_community("g1", "Home")
    people = [bot.person(f"u{i}") for i in range(users)]
    for person in people:
        bot.platform.join(person, home)
    latencies: list[float] = []

    async def one(index: int, person: PersonId) -> None:
        for event in script(person, index):
            start = time.perf_counter()
            await bot.service.handle(event)
            latencies.append(time.perf_counter() - start)

    # Throughput: everyone at once. Latency under load includes queueing behind the others.
    began = time.perf_counter()
    await asyncio.gather(*(one(i, p) for i, p in enumerate(people)))
    wall = time.perf_counter() - began
    loaded = sorted(latencies)
    # Latency of one message on an otherwise idle bot: people one after another.
    latencies.clear()
    for i, person in enumerate(bot.person(f"s{i}") for i in range(min(users, 50))):
        bot.platform.join(person, home)
        await one(i, person)
    alone = sorted(latencies)
    delivered = 0
    while n := await bot.deliver():
        delivered += n
    await store.close()
    per_user = len(loaded) // users
    floor = await floor_rate(users, per_user, database + ".floor", serial=True)
    queued = await floor_rate(users, per_user, database + ".queued", serial=False)
    rate = len(loaded) / wall
    print(f"flows: {users} people at once, {len(loaded)} messages in {wall:.2f} s, SQLite")
    print(f"  throughput        {rate:10.0f} messages/s")
    print(f"  floor             {floor:10.0f} messages/s  (an aiosqlite upsert + commit each)")
    print(f"  core / floor      {rate / floor:10.2f} x     (target >= 0.8x)")
    print(f"  queued upserts    {queued:10.0f} messages/s  (autocommitted, all queued at once)")
    print(f"  latency p50/p99   {pct(alone, 50):8.3f} / {pct(alone, 99):.3f} ms  (one at a time)")
    print(f"  latency p50/p99   {pct(loaded, 50):8.3f} / {pct(loaded, 99):.3f} ms  (all at once)")
    print(f"  alerts sent       {delivered:10d} (expected {users + min(users, 50)})")


async def floor_rate(users: int, per_user: int, database: str, *, serial: bool) -> float:
    """Messages per second when a message costs one aiosqlite upsert and its commit, with
    ``users`` people at once, on one connection with the store's settings (WAL, synchronous
    NORMAL). ``serial``: each upsert and commit waits for the previous one (a transaction
    per message on a shared connection); else the upserts are autocommitted and queued
    together (the fastest aiosqlite allows)."""
    conn = await aiosqlite.connect(database, isolation_level="" if serial else None)
    await conn.execute("PRAGMA journal_mode = WAL")
    await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.execute("CREATE TABLE state (person TEXT PRIMARY KEY, body TEXT, at REAL)")
    await conn.commit()
    body = "x" * 300  # about a stored conversation's size
    upsert = (
        "INSERT INTO state (person, body, at) VALUES (?, ?, ?) "
        "ON CONFLICT (person) DO UPDATE SET body = excluded.body, at = excluded.at"
    )
    turn = asyncio.Lock()

    async def one(index: int) -> None:
        for step in range(per_user):
            if serial:
                async with turn:
                    await conn.execute(upsert, (f"u{index}", body, float(step)))
                    await conn.commit()
            else:
                await conn.execute(upsert, (f"u{index}", body, float(step)))

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(users)))
    wall = time.perf_counter() - began
    await conn.close()
    return users * per_user / wall


def pct(sorted_seconds: list[float], p: int) -> float:
    index = min(len(sorted_seconds) - 1, max(0, round(len(sorted_seconds) * p / 100) - 1))
    return sorted_seconds[index] * 1000


async def run_memory(conversations: int, database: str) -> None:
    """RSS growth while holding many active conversations (sessions mid-report)."""
    settings = Settings(database_url=database)
    engine = build_engine(settings)
    gc.collect()
    before = rss_mb()
    store = await open_store(database)
    bot = MemoryBot(engine, store, settings)
    home = await bot.setup_community("g1", "Home")
    for i in range(conversations):
        person = bot.person(f"m{i}")
        bot.platform.join(person, home)
        await bot.service.handle(TextReceived(person, "tell the mods"))
        await bot.service.handle(ChoiceSelected(person, "report.go", "report.start"))
    gc.collect()
    after = rss_mb()
    await store.close()
    per_k = (after - before) / conversations * 1000
    print(f"memory: {conversations} active conversations (mid-report), SQLite")
    print(f"  RSS growth      {after - before:10.1f} MB  ({per_k:.2f} MB per 1,000)")
    print(f"  RSS total       {after:10.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--conversations", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_flows(args.users, str(Path(tmp) / "flows.db")))
        asyncio.run(run_memory(args.conversations, str(Path(tmp) / "memory.db")))


if __name__ == "__main__":
    main()

"""SafeBot on Discord (discord.py 2.7). ``safebot run discord --config FILE``."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from adapters.discord.adapter import PLATFORM, DiscordAdapter, SafeBotClient
from safebot.ops.health import MonitoringError, start_monitoring
from safebot.service import build_engine
from safebot.settings import Settings
from safebot.store import open_store

__all__ = ["PLATFORM", "DiscordAdapter", "SafeBotClient", "run_discord"]

log = logging.getLogger(__name__)


async def run_discord(
    settings: Settings,
    token: str,
    *,
    shard_ids: list[int] | None = None,
    shard_count: int | None = None,
    **client_options: Any,
) -> None:
    """Run until SIGINT/SIGTERM, then close the gateway and the store cleanly.
    ``client_options`` go to the discord.py client (e.g. guild_ready_timeout)."""
    engine = build_engine(settings)
    store = await open_store(settings.database_url)
    options: dict[str, Any] = {}
    if shard_count is not None:
        options["shard_count"] = shard_count
        options["shard_ids"] = shard_ids
    adapter = DiscordAdapter(settings, engine, store, **options, **client_options)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        health = await start_monitoring(settings.monitoring, adapter.bot.metrics, store)
    except MonitoringError:
        await store.close()
        raise
    runner = asyncio.create_task(adapter.client.start(token))
    stopper = asyncio.create_task(stopping.wait())
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # a login failure or a fatal gateway error: raise it
    finally:
        log.info("shutting down")
        await adapter.close()
        stopper.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        if health is not None:
            await health.close()
        await store.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

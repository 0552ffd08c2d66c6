"""SafeBot on Matrix (matrix-nio with E2EE). ``safebot run matrix --config FILE``."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import platformdirs

from adapters.matrix.adapter import PLATFORM, MatrixAdapter, MatrixLoginError
from safebot.ops.health import MonitoringError, start_monitoring
from safebot.ops.secrets import matrix_access_token, matrix_password
from safebot.service import build_engine
from safebot.settings import Settings
from safebot.store import open_store, sqlite_path

__all__ = ["PLATFORM", "MatrixAdapter", "MatrixLoginError", "data_dir_for", "run_matrix"]

log = logging.getLogger(__name__)


def data_dir_for(settings: Settings) -> Path:
    """Where the device, crypto store and DM list live: [matrix] data_dir, or next to the
    SQLite file, or (PostgreSQL, memory) in the user's data directory."""
    if settings.matrix.data_dir:
        return Path(settings.matrix.data_dir)
    path = sqlite_path(settings.database_url)
    if path is None:
        return Path(platformdirs.user_data_dir("safebot", appauthor=False)) / "matrix"
    return Path(path).resolve().parent / "matrix"


async def run_matrix(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, then stop syncing and close the store cleanly. Raises
    MatrixLoginError when the session cannot be kept (signed out and no password)."""
    engine = build_engine(settings)
    store = await open_store(settings.database_url)
    adapter = MatrixAdapter(
        settings,
        engine,
        store,
        homeserver=settings.matrix.homeserver,
        user_id=settings.matrix.user_id,
        data_dir=data_dir_for(settings),
        password=matrix_password(settings),
        access_token=matrix_access_token(settings),
        device_id=settings.matrix.device_id or None,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        health = await start_monitoring(settings.monitoring, adapter.bot.metrics, store)
    except MonitoringError:
        await store.close()
        raise
    try:
        await adapter.start()
        stop_waiter = asyncio.ensure_future(stopping.wait())
        gave_up = asyncio.ensure_future(adapter.stopped.wait())
        await asyncio.wait({stop_waiter, gave_up}, return_when=asyncio.FIRST_COMPLETED)
        stop_waiter.cancel()
        gave_up.cancel()
        if adapter.failure is not None:
            raise adapter.failure  # e.g. signed out with no password: exit non-zero
    finally:
        log.info("shutting down")
        await adapter.close()
        if health is not None:
            await health.close()
        await store.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

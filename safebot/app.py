"""The composition root: the one place where a SafeBot is put together and run.

``serve`` does, for every platform, what each runner used to copy: build the engine, open the
store, build the adapter and the service (``assemble``), serve health and metrics, turn SIGINT
and SIGTERM into a clean stop, and close everything in order whatever happened. An adapter only
implements ``Adapter``: the outbound port, plus ``attach``, ``run`` and ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from safebot.conversation import Engine
from safebot.ops.health import start_monitoring
from safebot.platforms import PlatformError
from safebot.ports import PlatformPort
from safebot.service import SafeBot, build_engine
from safebot.settings import Settings
from safebot.store import Store, open_store

__all__ = ["Adapter", "assemble", "serve"]

log = logging.getLogger(__name__)


class Adapter(PlatformPort, Protocol):
    """A platform adapter as the composition root drives it."""

    def attach(self, bot: SafeBot) -> None:
        """Receive the service whose port this adapter is (before ``run``)."""
        ...

    def reference_tokens(self) -> Callable[[], str] | None:
        """Where report references come from, if the platform needs them repeatable (Matrix
        replays a message after a crash and must mint the same reference); None: random."""
        ...

    async def run(self, stop: asyncio.Event) -> None:
        """Connect and serve until ``stop`` is set. Raise PlatformError if the platform gives
        up (e.g. the session was signed out and cannot be renewed)."""
        ...

    async def close(self) -> None:
        """Stop serving and disconnect (called once, after ``run``, whatever happened)."""
        ...


def assemble(
    engine: Engine, store: Store, adapter: Adapter, settings: Settings, **options: Any
) -> SafeBot:
    """The service on ``adapter``, attached to it. ``options`` go to SafeBot (a test's clock,
    tokens, cache size or metrics)."""
    _check_ids(engine, adapter)
    tokens = adapter.reference_tokens()
    if tokens is not None:
        options.setdefault("tokens", tokens)
    bot = SafeBot(engine=engine, store=store, port=adapter, settings=settings, **options)
    adapter.attach(bot)
    return bot


def _check_ids(engine: Engine, adapter: Adapter) -> None:
    """Refuse to start when a step or choice id could not come back from a tapped choice."""
    capabilities = adapter.capabilities
    steps, choices = engine.ids()
    refused = sorted(
        [i for i in steps if not _carries(capabilities.step_ids, i)]
        + [i for i in choices if not _carries(capabilities.choice_ids, i)]
    )
    if refused:
        raise PlatformError(
            f"{adapter.platform} cannot carry these step or choice ids back from a button: "
            + ", ".join(refused[:5])
            + (f" and {len(refused) - 5} more" if len(refused) > 5 else "")
            + " (rename them in content/flows.toml or the content)"
        )


def _carries(pattern: str | None, value: str) -> bool:
    return pattern is None or re.fullmatch(pattern, value) is not None


@contextlib.contextmanager
def _signals_stop(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def serve(
    settings: Settings,
    make_adapter: Callable[[Settings, Engine, Store], Adapter],
    *,
    signals: bool = True,
) -> None:
    """Run one platform until SIGINT/SIGTERM (when ``signals``) or until its adapter returns,
    then close the adapter, the monitoring server and the store. Raises StoreUnavailable,
    MonitoringError and the adapter's PlatformError for the command line to report."""
    engine = build_engine(settings)
    store = await open_store(settings.database_url)
    try:
        adapter = make_adapter(settings, engine, store)
        bot = assemble(engine, store, adapter, settings)
        health = await start_monitoring(settings.monitoring, bot.metrics, store)
        stop = asyncio.Event()
        try:
            with _signals_stop(stop) if signals else contextlib.nullcontext():
                await adapter.run(stop)
        finally:
            log.info("shutting down")
            await adapter.close()
            if health is not None:
                await health.close()
    finally:
        await store.close()

"""Seams into discord.py and a helper to run a real client against the fake."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import discord
import discord.gateway
import discord.http
import yarl

if TYPE_CHECKING:
    from ._core import FakeDiscordCore

ClientT = TypeVar("ClientT", bound=discord.Client)

#: Pass as ``guild_ready_timeout=`` to every client in tests; discord.py's default waits 2 s
#: after the last GUILD_CREATE before firing on_ready.
GUILD_READY_TIMEOUT = 0.05


class patch_discord:
    """Point discord.py at the fake: ``Route.BASE`` (REST, interactions and webhooks) and
    ``DiscordWebSocket.DEFAULT_GATEWAY``. Usable as ``with`` or ``async with``; restores the
    previous values on exit (nests fine)."""

    def __init__(self, fake: FakeDiscordCore) -> None:
        self.fake = fake
        self._saved: tuple[str, yarl.URL] | None = None

    def __enter__(self) -> FakeDiscordCore:
        self._saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.fake.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.fake.gateway_url)
        return self.fake

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saved is not None:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = self._saved
            self._saved = None

    async def __aenter__(self) -> FakeDiscordCore:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def default_intents(**overrides: bool) -> discord.Intents:
    """``Intents.default()`` (no privileged intents) with optional overrides."""
    intents = discord.Intents.default()
    for name, value in overrides.items():
        setattr(intents, name, value)
    return intents


def client_kwargs(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments every test client should get: default intents + fast on_ready."""
    kwargs: dict[str, Any] = {
        "intents": default_intents(),
        "guild_ready_timeout": GUILD_READY_TIMEOUT,
    }
    kwargs.update(overrides)
    return kwargs


class _ErrorCapture(logging.Handler):
    def __init__(self, fake: FakeDiscordCore) -> None:
        super().__init__(logging.ERROR)
        self.fake = fake

    def emit(self, record: logging.LogRecord) -> None:
        self.fake.record_client_error(record)


@contextlib.asynccontextmanager
async def run_client(
    fake: FakeDiscordCore,
    client: ClientT,
    *,
    token: str | None = None,
    ready_timeout: float = 5.0,
    fail_on_error: bool = True,
    close_timeout: float = 5.0,
) -> AsyncIterator[ClientT]:
    """Run ``client.start()`` as a task until on_ready, yield, then close it.

    * The task is watched: if it dies (e.g. a malformed payload killed the gateway loop),
      every ``fake.wait_*`` / ``inter.response()`` raises ``ClientCrashed`` at once.
    * With ``fail_on_error`` any ERROR logged by discord.py (exceptions in events, commands,
      views, modals) makes waits raise ``ClientLoggedError`` and fails the block on exit.
    * Leaving the block closes the client and re-raises the task's exception, if any.
    """
    capture = _ErrorCapture(fake)
    dlog = logging.getLogger("discord")
    dlog.addHandler(capture)
    fake.fail_on_client_error = fail_on_error
    n_identify = len(fake.identifies)
    task = asyncio.create_task(
        client.start(token or fake.token), name=f"discord-client-{id(client):x}"
    )
    fake.watch(task)
    body_failed = False
    try:
        await fake.wait_until(
            lambda: True if len(fake.identifies) > n_identify else None,
            timeout=ready_timeout,
            what="the client to IDENTIFY",
        )
        await fake.wait_for_coro(client.wait_until_ready(), timeout=ready_timeout, what="on_ready")
        yield client
    except BaseException:
        body_failed = True
        raise
    finally:
        fake.unwatch(task)
        try:
            await asyncio.wait_for(client.close(), close_timeout)
            await asyncio.wait_for(asyncio.shield(task), close_timeout)
        except BaseException:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            if not body_failed:
                raise
        finally:
            dlog.removeHandler(capture)
        if not body_failed and fail_on_error and fake.client_errors:
            fake.raise_if_client_failed()

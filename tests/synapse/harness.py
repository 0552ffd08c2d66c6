"""``MatrixHarness``: users, clients and runners on one server, cleaned up together.

Usable from pytest (the ``matrix`` fixture) and from plain asyncio scripts/benchmarks::

    server = SynapseServer(); server.start(tmpdir)
    async with MatrixHarness(server, Path(tmpdir) / "stores") as hx:
        bot = await hx.runner(hx.user("bot"), auto_join=True, on_message=echo_handler)
        alice = await hx.runner(hx.user("alice"))
        room = await create_dm(alice, bot.user_id)
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

from nio import AsyncClient

from .clients import ClientRunner, MessageHandler, make_client
from .server import RegisteredUser, SynapseServer


def unique_localpart(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}".lower()


class MatrixHarness:
    def __init__(self, server: SynapseServer, store_root: Path | str) -> None:
        self.server = server
        self.store_root = Path(store_root)
        self.clients: list[AsyncClient] = []
        self.runners: list[ClientRunner] = []

    async def __aenter__(self) -> MatrixHarness:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def user(
        self, prefix: str = "user", *, admin: bool = False, password: str | None = None
    ) -> RegisteredUser:
        """Register a new user ``@<prefix>-<uuid>:localhost`` (blocking, ~15 ms)."""
        return self.server.register_sync(unique_localpart(prefix), password, admin=admin)

    async def auser(
        self, prefix: str = "user", *, admin: bool = False, password: str | None = None
    ) -> RegisteredUser:
        """Like ``user`` without blocking the event loop (for many concurrent users)."""
        return await self.server.register(unique_localpart(prefix), password, admin=admin)

    def store_dir(self, user: RegisteredUser) -> Path:
        """The persistent crypto-store directory of ``user``'s device."""
        return self.store_root / f"{user.localpart}-{user.device_id}"

    async def client(self, user: RegisteredUser, *, encrypted: bool = True) -> AsyncClient:
        """A logged-in client for ``user``'s device (same store on every call)."""
        client = await make_client(
            user, self.store_dir(user), encrypted=encrypted, homeserver=self.server.url
        )
        self.clients.append(client)
        return client

    async def runner(
        self,
        user: RegisteredUser,
        *,
        encrypted: bool = True,
        auto_join: bool = False,
        on_message: MessageHandler | None = None,
        start: bool = True,
        **kwargs: Any,
    ) -> ClientRunner:
        """A ``ClientRunner`` around a new client for ``user``; started unless
        ``start=False``. Stopped by ``aclose`` (or stop it yourself to restart it)."""
        client = await self.client(user, encrypted=encrypted)
        runner = ClientRunner(client, auto_join=auto_join, on_message=on_message, **kwargs)
        self.runners.append(runner)
        if start:
            await runner.start()
        return runner

    async def aclose(self) -> None:
        runners, self.runners = self.runners, []
        clients, self.clients = self.clients, []
        for runner in runners:
            with contextlib.suppress(Exception):
                await runner.stop(close=False)
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        # Let aiohttp finish closing its connectors before the loop goes away.
        await asyncio.sleep(0)

"""The public :class:`FakeDiscord`: state + gateway + test driver, with the REST resources
composed into it, served by aiohttp."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from aiohttp import web

from ._driver import DriverMixin
from ._gateway import GatewayMixin
from ._rest import RestRouter
from ._rest_app import AppResource
from ._rest_channels import ChannelResource
from ._rest_commands import CommandResource
from ._rest_guilds import GuildResource
from ._rest_interactions import InteractionResource
from ._rest_messages import MessageWriter


class FakeDiscord(DriverMixin, GatewayMixin):
    """An in-process fake Discord (REST under ``/api/v10`` + gateway at ``/gateway``) on
    127.0.0.1, for running the *real* discord.py client against it.

    ::

        async with FakeDiscord() as fake:          # also patches discord.py (patch=True)
            guild = fake.add_guild("Test Server")
            alice = fake.add_user("alice")
            fake.add_member(guild, alice)
            bot = commands.Bot(command_prefix="!", intents=discord.Intents.default(),
                               guild_ready_timeout=0.05)
            async with run_client(fake, bot):
                await fake.send_dm(alice, "hi")
                reply = await fake.wait_for_message(channel_id=alice)

    Constructor options (all keyword): ``bot_name``, ``token``, ``gateway_shards`` (what GET
    /gateway/bot advertises), ``interaction_timeout`` (3 s, like Discord: a later first
    callback gets 404 10062), ``enforce_permissions`` (bot permission/hierarchy checks -> 403
    50013/50001), ``emulate_message_content_intent`` (blank content of guild messages unless
    the session has MESSAGE_CONTENT or the bot is mentioned), ``require_registered_commands``
    (``slash()`` of an unsynced command raises), ``allowed_privileged_intents`` (IDENTIFY
    asking for more closes with 4014), ``echo_bot_messages`` (MESSAGE_CREATE for the bot's
    own messages, as Discord does), ``ratelimit_headers`` (send a consistent, never-exhausted
    X-RateLimit-* set; default off = no rate-limit headers at all), ``patch`` (apply
    :func:`patch_discord` while running).
    """

    def __init__(self, *, patch: bool = True, **options: Any) -> None:
        super().__init__(**options)
        writer = MessageWriter(self)
        self._rest = RestRouter(
            self,
            [
                AppResource(self),
                ChannelResource(self, writer),
                GuildResource(self),
                CommandResource(self),
                InteractionResource(self, writer),
            ],
        )
        self._patch_enabled = patch
        self._patch: Any = None
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest._rest_entry)
        app.router.add_route("*", "/api/v9/{tail:.*}", self._rest._rest_entry)
        app.router.add_get("/gateway", self._ws_entry)
        app.router.add_get("/gateway/", self._ws_entry)
        app.router.add_get("/attachments/{tail:.*}", self._rest._cdn_entry)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        if self._patch_enabled:
            from ._client import patch_discord

            self._patch = patch_discord(self)
            self._patch.__enter__()

    async def stop(self) -> None:
        if self._patch is not None:
            self._patch.__exit__(None, None, None)
            self._patch = None
        await self._close_all_for_shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await asyncio.sleep(0)

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

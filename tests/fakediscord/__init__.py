"""In-process fake Discord (REST + gateway) for over-the-wire tests with the real discord.py.

Quick start (see ``FakeDiscord`` and ``run_client`` docstrings)::

    from fakediscord import FakeDiscord, client_kwargs, run_client

    async def test_dm_echo() -> None:
        async with FakeDiscord() as fake:  # starts on 127.0.0.1:<free port>, patches discord.py
            alice = fake.add_user("alice")
            fake.add_member(fake.add_guild("Test"), alice)
            client = discord.Client(**client_kwargs())  # default intents, guild_ready_timeout=0.05
            ...
            async with run_client(fake, client):
                await fake.send_dm(alice, "hello")
                reply = await fake.wait_for_message(channel_id=alice)

Layout (private modules; import from the package):

- ``_fake``: :class:`FakeDiscord` = ``DriverMixin`` + ``GatewayMixin`` on ``FakeDiscordCore``,
  with the REST side composed into it (a ``RestRouter`` over the resource objects below) and
  the aiohttp app that serves it all.
- ``_core``: the shared state (users, guilds, channels, messages, commands, what the bot did),
  builders, gateway dispatch and the waiting helpers.
- ``_driver``: the test-driving API (users sending messages, slash commands, clicks, modals).
- ``_gateway``: the gateway websocket (HELLO / IDENTIFY / RESUME / heartbeats).
- ``_rest``: REST routing: the entry point (request recording, failure injection, bot-token
  check, rate-limit headers), the CDN, ``Req`` / ``Upload`` / ``json_response``, the
  ``route()`` decorator, and ``RestResource``, the base of each resource object, holding the
  lookups and permission checks they share (``_get_channel``, ``_get_guild``, ``_require``,
  ``_require_hierarchy``, ``_get_message``).
- ``_rest_app``: the bot's user and application, the gateway URL, users, DM creation.
- ``_rest_channels``: channels, typing, history, messages, reactions.
- ``_rest_guilds``: guilds, roles, channel list, members (edit, timeout, kick, roles), bans.
- ``_rest_commands``: application commands, global and per guild, and their validation.
- ``_rest_interactions``: interaction callbacks, followups, the interaction webhook's messages.
- ``_rest_messages``: message-body validation and ``MessageWriter``, which creates, edits and
  deletes the bot's messages for both the channel and the interaction resources.
- ``_models``, ``_records``, ``_nonce``, ``_client``: data model, records and errors,
  ``enforce_nonce`` memory, discord.py seams and ``run_client``.
"""

from __future__ import annotations

from ._client import GUILD_READY_TIMEOUT, client_kwargs, default_intents, patch_discord, run_client
from ._core import Flushed
from ._fake import FakeDiscord
from ._models import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    BAN_MEMBERS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    EPHEMERAL,
    KICK_MEMBERS,
    LOADING,
    MANAGE_MESSAGES,
    MODERATE_MEMBERS,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    snowflake_time,
)
from ._records import (
    ApiError,
    ClientCrashed,
    ClientLoggedError,
    FakeDiscordError,
    FakeInteraction,
    RecordedRequest,
)

#: Alias: the record returned by ``slash`` / ``click`` / ``submit_modal`` / ``context_menu``.
Interaction = FakeInteraction

__all__ = [
    "ADMINISTRATOR",
    "ALL_PERMISSIONS",
    "BAN_MEMBERS",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_EVERYONE_PERMISSIONS",
    "EPHEMERAL",
    "GUILD_READY_TIMEOUT",
    "KICK_MEMBERS",
    "LOADING",
    "MANAGE_MESSAGES",
    "MODERATE_MEMBERS",
    "READ_MESSAGE_HISTORY",
    "SEND_MESSAGES",
    "VIEW_CHANNEL",
    "ApiError",
    "ClientCrashed",
    "ClientLoggedError",
    "FakeChannel",
    "FakeDiscord",
    "FakeDiscordError",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "Flushed",
    "Interaction",
    "RecordedRequest",
    "client_kwargs",
    "default_intents",
    "patch_discord",
    "run_client",
    "snowflake_time",
]

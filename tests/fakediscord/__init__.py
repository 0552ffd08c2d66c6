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

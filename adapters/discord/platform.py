"""Discord as SafeBot's registry sees it (``safebot.platforms``): the ``[discord]`` settings,
the bot token, the sharding options of ``safebot run discord``, and the adapter's factory."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safebot.ops.secrets import SecretError, SecretSource, read_secret
from safebot.platforms import AdapterFactory, Platform, PlatformError
from safebot.settings import Settings

if TYPE_CHECKING:
    from safebot.app import Adapter
    from safebot.conversation import Engine
    from safebot.store import Store

__all__ = ["REGISTRATION", "DiscordSettings", "discord_settings", "discord_token", "shard_range"]

TOKEN_CREDENTIAL = "discord-token"  # the file name under systemd's $CREDENTIALS_DIRECTORY


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    token_env: str = "SAFEBOT_DISCORD_TOKEN"
    token_file: str = ""  # read the token from this file instead (see safebot/ops/secrets.py)
    membership_minutes: float = 10.0  # how long a server's "member or not" answer is reused
    membership_checks_at_once: int = 8  # servers asked in parallel when offering servers
    # Up to this many configured servers, offering servers asks each one. Above it, only the
    # servers the person was seen using SafeBot in (membership_days) are asked.
    probe_all_up_to: int = 10


def discord_settings(settings: Settings) -> DiscordSettings:
    return settings.section("discord", DiscordSettings)


def discord_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    """The bot token: ``[discord] token_file``, the ``discord-token`` credential, or the
    environment variable ``[discord] token_env``."""
    d = discord_settings(settings)
    return read_secret(SecretSource(d.token_file, TOKEN_CREDENTIAL, d.token_env), environ)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shards", help="the shard ids this process runs, e.g. 0-3 (needs --shard-count)"
    )
    parser.add_argument("--shard-count", type=int, help="the total number of shards")


def shard_range(text: str | None, count: int | None) -> list[int] | None:
    """``--shards 0-3`` as shard ids, checked against ``--shard-count``."""
    if text is None:
        return None
    first, _, last = text.partition("-")
    try:
        ids = list(range(int(first), int(last or first) + 1))
    except ValueError:
        ids = []
    if count is None or not ids or ids[0] < 0 or ids[-1] >= count:
        raise PlatformError("--shards must lie within --shard-count")
    return ids


def _prepare(settings: Settings, args: argparse.Namespace) -> AdapterFactory:
    if importlib.util.find_spec("discord") is None:
        raise PlatformError("this needs the discord extra: pip install 'safebot[discord]'")
    try:
        token = discord_token(settings)
    except SecretError as exc:
        raise PlatformError(str(exc)) from None
    if token is None:
        raise PlatformError(
            f"set the bot token in the {discord_settings(settings).token_env} environment"
            " variable (or [discord] token_file, or the discord-token systemd credential)."
        )
    shard_count: int | None = getattr(args, "shard_count", None)
    shard_ids = shard_range(getattr(args, "shards", None), shard_count)
    options: dict[str, Any] = {}
    if shard_count is not None:
        options = {"shard_count": shard_count, "shard_ids": shard_ids}

    def make(settings: Settings, engine: Engine, store: Store) -> Adapter:
        from safebot.adapters.discord.adapter import DiscordAdapter

        return DiscordAdapter(settings, engine.content, token=token, **options)

    return make


REGISTRATION = Platform(
    name="discord",
    summary="run SafeBot as a Discord bot (discord.py)",
    settings=DiscordSettings,
    prepare=_prepare,
    add_arguments=_add_arguments,
    secret_keys=("token",),
)

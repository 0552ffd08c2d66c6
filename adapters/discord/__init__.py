"""SafeBot on Discord (discord.py 2.7). ``safebot run discord --config FILE``.

Importing this package is cheap: discord.py loads with the adapter, on first use of one of the
names below (the platform registry reads ``safebot.adapters.discord.platform`` on every command).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safebot.adapters import lazy_names

if TYPE_CHECKING:
    from safebot.adapters.discord.adapter import PLATFORM, DiscordAdapter, SafeBotClient

__all__ = ["PLATFORM", "DiscordAdapter", "SafeBotClient"]


__getattr__ = lazy_names("safebot.adapters.discord.adapter", __all__)

"""The console as SafeBot's registry sees it (``safebot.platforms``): the local demo behind
``safebot console``, with its ``[console]`` settings and its ``--lang`` option."""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from safebot.platforms import AdapterFactory, Platform
from safebot.settings import Settings

if TYPE_CHECKING:
    from safebot.app import Adapter
    from safebot.conversation import Engine
    from safebot.store import Store

__all__ = ["REGISTRATION", "ConsoleSettings", "console_settings"]


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    community: str = "Demo Server"
    moderator_channel: str = "#safety-team"
    person: str = "you"
    moderator: str = "mod"


def console_settings(settings: Settings) -> ConsoleSettings:
    return settings.section("console", ConsoleSettings)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", help="start in this language, e.g. en or es")


def console_stdin() -> io.TextIOWrapper:
    """Standard input as UTF-8, whatever the locale says, with bytes that are not UTF-8
    replaced (U+FFFD) instead of raising. Standard output keeps its encoding but replaces what
    it cannot show, so a strict locale (``LC_ALL=C`` with ``PYTHONUTF8=0``) never crashes."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace")


def _prepare(settings: Settings, args: argparse.Namespace) -> AdapterFactory:
    locale: str | None = getattr(args, "lang", None)

    def make(settings: Settings, engine: Engine, store: Store) -> Adapter:
        from safebot.adapters.console import ConsolePlatform

        return ConsolePlatform(
            settings, engine.content, sys.stdout, stdin=console_stdin(), locale=locale
        )

    return make


REGISTRATION = Platform(
    name="console",
    summary="chat with SafeBot in this terminal (local demo)",
    settings=ConsoleSettings,
    prepare=_prepare,
    add_arguments=_add_arguments,
    local=True,
)

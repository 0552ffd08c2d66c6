"""The chat platforms SafeBot can run on, found by their ``safebot.platforms`` entry points.

The core names no platform. Each adapter package registers one ``Platform`` in
``pyproject.toml``::

    [project.entry-points."safebot.platforms"]
    discord = "safebot.adapters.discord.platform:PLATFORM"

and brings with it everything platform-specific: its settings section (``[discord]``), the
secrets that must never be written in the settings file, its extra ``safebot run`` options, the
checks made before anything starts, and how to build its adapter. ``safebot run NAME`` and the
settings loader read only this registry (see docs/adding-a-platform.md).
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safebot.app import Adapter
    from safebot.conversation import Engine
    from safebot.settings import Settings
    from safebot.store import Store

__all__ = ["ENTRY_POINTS", "AdapterFactory", "Platform", "PlatformError", "platforms"]

log = logging.getLogger(__name__)

ENTRY_POINTS = "safebot.platforms"

AdapterFactory = Callable[["Settings", "Engine", "Store"], "Adapter"]


class PlatformError(Exception):
    """The platform cannot run: a missing setting or secret before start, or a session that
    cannot be kept. The message is one line for the operator; ``exit_code`` is the command's
    exit status (2 for configuration, 1 for a failure at run time)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Platform:
    """One chat platform, as its adapter package registers it."""

    name: str  # the platform id in person and community keys, and the settings section
    summary: str  # one line for ``safebot run --help``
    settings: type[Any]  # its settings section: a frozen dataclass whose fields all default
    # Prepares a run from the settings and the command line, before anything starts: reads
    # secrets, checks required settings (raising PlatformError) and returns the factory of the
    # adapter the composition root (safebot.app.serve) builds and drives.
    prepare: Callable[[Settings, argparse.Namespace], AdapterFactory]
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    secret_keys: tuple[str, ...] = ()  # refused in the settings file, with advice
    local: bool = False  # the local demo (``safebot console``), not offered by ``safebot run``


@functools.cache
def platforms() -> Mapping[str, Platform]:
    """Every installed platform by name. Cached: entry points do not change while running."""
    found: dict[str, Platform] = {}
    for entry in entry_points(group=ENTRY_POINTS):
        platform = entry.load()
        if not isinstance(platform, Platform) or platform.name != entry.name:
            raise TypeError(f"entry point {entry.name!r} is not a Platform named {entry.name!r}")
        found[entry.name] = platform
    if not found:
        log.warning("no chat platform is installed; reinstall SafeBot: pip install -e .")
    return dict(sorted(found.items()))

"""One package per chat platform (and memory, for tests). See docs/adding-a-platform.md."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(module: str, names: Collection[str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that imports ``module`` only when one of ``names`` is first
    used: the platform registry imports every adapter package on every command, and the
    platform library (discord.py, nio) should load only when that platform runs."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(module), name)
        raise AttributeError(name)

    return __getattr__

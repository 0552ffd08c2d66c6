"""One package per chat platform (and memory, for tests). See docs/adding-a-platform.md."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from safebot.content import Content
    from safebot.service import SafeBot
    from safebot.store.base import Store

__all__ = ["AdapterPart", "lazy_names"]


class _Attached(Protocol):
    @property
    def bot(self) -> SafeBot: ...

    @property
    def store(self) -> Store: ...

    @property
    def content(self) -> Content: ...


A = TypeVar("A", bound=_Attached)


class AdapterPart(Generic[A]):
    """One job of an adapter (its outbound port, its moderator side), composed into it and
    reading the service, the store and the content from the adapter it belongs to."""

    def __init__(self, adapter: A) -> None:
        self.adapter = adapter

    @property
    def bot(self) -> SafeBot:
        return self.adapter.bot

    @property
    def store(self) -> Store:
        return self.adapter.store

    @property
    def content(self) -> Content:
        return self.adapter.content


def lazy_names(module: str, names: Collection[str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` that imports ``module`` only when one of ``names`` is first
    used: the platform registry imports every adapter package on every command, and the
    platform library (discord.py, nio) should load only when that platform runs."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(importlib.import_module(module), name)
        raise AttributeError(name)

    return __getattr__

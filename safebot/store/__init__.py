"""Storage: the Store protocol and its implementations, chosen by the ``database`` setting."""

from __future__ import annotations

from safebot.store.base import Backlog, DuplicateReference, Store, VersionConflict

__all__ = ["Backlog", "DuplicateReference", "Store", "VersionConflict", "open_store"]


async def open_store(database: str) -> Store:
    """``memory`` (nothing kept), ``sqlite:///path``, or a plain file path for SQLite."""
    if database == "memory":
        from safebot.store.memory import MemoryStore

        return MemoryStore()
    if database.startswith(("postgres://", "postgresql://")):
        raise ValueError("PostgreSQL storage is not available in this version")
    from safebot.store.sqlite import SqliteStore

    path = database.removeprefix("sqlite:///").removeprefix("sqlite://")
    return await SqliteStore.open(path)

"""Storage: the Store protocol and its implementations, chosen by the ``database`` setting."""

from __future__ import annotations

from safebot.store.base import Backlog, DuplicateReference, Store, VersionConflict

__all__ = ["Backlog", "DuplicateReference", "Store", "VersionConflict", "open_store"]


async def open_store(database: str) -> Store:
    """``memory`` (nothing kept), ``postgresql://...`` (or ``postgres://``) for PostgreSQL,
    ``sqlite:///path``, or a plain file path for SQLite."""
    if database == "memory":
        from safebot.store.memory import MemoryStore

        return MemoryStore()
    if database.startswith(("postgres://", "postgresql://")):
        try:
            from safebot.store.postgres import PostgresStore
        except ImportError as missing:  # asyncpg is an optional extra
            raise ValueError(
                "PostgreSQL storage needs asyncpg: pip install 'safebot[postgres]'"
            ) from missing

        return await PostgresStore.open(database)
    from safebot.store.sqlite import SqliteStore

    path = database.removeprefix("sqlite:///").removeprefix("sqlite://")
    return await SqliteStore.open(path)

"""Storage: the Store protocol and its implementations, chosen by the ``database`` setting."""

from __future__ import annotations

from safebot.store.base import Backlog, DuplicateReference, Store, VersionConflict

__all__ = [
    "Backlog",
    "DuplicateReference",
    "Store",
    "VersionConflict",
    "open_store",
    "sqlite_path",
]

_POSTGRES = ("postgres://", "postgresql://")


def sqlite_path(database_url: str) -> str | None:
    """The SQLite file ``database_url`` names (a plain path, or ``sqlite:///path``); None for
    ``memory`` and PostgreSQL."""
    if database_url == "memory" or database_url.startswith(_POSTGRES):
        return None
    return database_url.removeprefix("sqlite:///").removeprefix("sqlite://")


async def open_store(database: str) -> Store:
    """``memory`` (nothing kept), ``postgresql://...`` (or ``postgres://``) for PostgreSQL,
    ``sqlite:///path``, or a plain file path for SQLite."""
    if database == "memory":
        from safebot.store.memory import MemoryStore

        return MemoryStore()
    if database.startswith(_POSTGRES):
        try:
            from safebot.store.postgres import PostgresStore
        except ImportError as missing:  # asyncpg is an optional extra
            raise ValueError(
                "PostgreSQL storage needs asyncpg: pip install 'safebot[postgres]'"
            ) from missing

        return await PostgresStore.open(database)
    from safebot.store.sqlite import SqliteStore

    path = sqlite_path(database)
    assert path is not None
    return await SqliteStore.open(path)

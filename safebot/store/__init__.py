"""Storage: the Store protocol and its implementations, chosen by the ``database_url`` setting."""

from __future__ import annotations

import sqlite3
from urllib.parse import urlsplit

from safebot.store.base import Backlog, DuplicateReference, Store, VersionConflict

__all__ = [
    "Backlog",
    "DuplicateReference",
    "Store",
    "StoreUnavailable",
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


class StoreUnavailable(Exception):
    """The database could not be opened. The message is one line for a person to read: what
    was opened and why it failed, without the password of a PostgreSQL URL."""


def _describe(database: str) -> str:
    """``database`` as it can be shown: a SQLite path, or a PostgreSQL URL without user and
    password."""
    if not database.startswith(_POSTGRES):
        return database
    parts = urlsplit(database)
    where = parts.hostname or "localhost"
    if parts.port is not None:
        where = f"{where}:{parts.port}"
    return f"PostgreSQL at {where}{parts.path}"


def _is_open_failure(exc: Exception) -> bool:
    """A failure of the database itself (missing, unreadable, not a database, refused),
    rather than a bug in SafeBot."""
    if isinstance(exc, (OSError, sqlite3.Error, ValueError)):
        return True
    return type(exc).__module__.split(".")[0] == "asyncpg"


async def open_store(database: str) -> Store:
    """``memory`` (nothing kept), ``postgresql://...`` (or ``postgres://``) for PostgreSQL,
    ``sqlite:///path``, or a plain file path for SQLite. Raises StoreUnavailable when the
    database cannot be opened."""
    try:
        return await _open(database)
    except Exception as exc:
        if not _is_open_failure(exc):
            raise
        reason = " ".join(str(exc).split()) or type(exc).__name__
        password = urlsplit(database).password if database.startswith(_POSTGRES) else None
        if password:
            reason = reason.replace(password, "***")
        raise StoreUnavailable(f"cannot open the database {_describe(database)}: {reason}") from exc


async def _open(database: str) -> Store:
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

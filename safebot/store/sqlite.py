"""SQLite: the ``Database`` under the SQL store (``safebot.store.sql``), on one aiosqlite
connection.

The connection is shared by every coroutine. aiosqlite runs statements one after another, in
the order they were queued, on its own thread. A single statement is queued at once (many can
be on their way together, so a busy bot pays one thread hop per statement, not one round
trip), except while a transaction is open: then it waits until the transaction ends, so no
statement ever runs inside another coroutine's transaction (and sees or commits its half-done
work). Transactions take turns on ``self._lock`` and use ``BEGIN IMMEDIATE``, so the write
lock is taken up front and a concurrent process gets ``busy_timeout`` instead of a deadlock.

A statement whose row count matters gets ``RETURNING 1`` and is fetched: the count and the
statement's end in one thread hop (closing an aiosqlite cursor would be a second one).

Durability is chosen per transaction. In WAL mode, ``synchronous = NORMAL`` commits without an
fsync: a process crash loses nothing (the WAL is in the OS cache), but a power loss or OS crash
can undo the last commits. That is fine for conversation state and outbox bookkeeping (a lost
"delivered" mark means a redelivery with the same idempotency key). Whatever a person or
moderator was told has happened commits with FULL (``transaction(durable=True)``); that fsync
also makes every earlier NORMAL commit in the WAL durable.

Nothing here logs message text or report contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from aiosqlite.context import Result

from safebot.model import valid_utf8
from safebot.store.schema import (
    MIGRATIONS,
    VERSION_TABLE,
    Migration,
    run_migrations,
)
from safebot.store.sql import Dialect, SqlStore

__all__ = ["DIALECT", "SqliteDatabase", "SqliteStore", "migrate", "migration_steps"]

log = logging.getLogger(__name__)


class _CallNamesOnly(logging.Filter):
    """aiosqlite logs every call at DEBUG with its arguments, i.e. the values people typed.
    Keep the record but show only which call it was (and an exception's type)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_call_name(a) for a in record.args)
        return True


def _call_name(value: Any) -> str:
    func = getattr(value, "func", None)  # a functools.partial around a sqlite3 method
    if func is not None:
        return f"{getattr(func, '__name__', 'call')}(...)"
    if isinstance(value, BaseException):
        return type(value).__name__
    return "[hidden]"


logging.getLogger("aiosqlite").addFilter(_CallNamesOnly())

DIALECT = Dialect(
    name="sqlite",
    types={
        "time": "REAL",
        "flag": "INTEGER",
        "key": "TEXT",
        "row_id": "INTEGER PRIMARY KEY",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "false": "0",
        "not_parked": "parked = 0",
    },
    lock_rows="",  # BEGIN IMMEDIATE already holds the only write lock
    skip_locked="",  # one writer at a time
)

_MEMORY = ":memory:"
_BUSY_TIMEOUT_MS = 5000

Params = Sequence[Any]


def _bind(params: Params) -> tuple[Any, ...]:
    """Every text parameter made storable: ids, names and moderator handles come from
    platforms and may hold lone surrogates, which SQLite (UTF-8 only) refuses. One place, so
    no statement can forget it."""
    return tuple(valid_utf8(v) if isinstance(v, str) else v for v in params)


class _Connection:
    """The aiosqlite connection as the SQL store's ``Connection``."""

    __slots__ = ("raw",)

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw

    def run(self, sql: str, params: Params = ()) -> Result[aiosqlite.Cursor]:
        """Awaitable, and usable as ``async with`` (like aiosqlite's ``execute``)."""
        return self.raw.execute(sql, _bind(params))

    async def execute(self, sql: str, params: Params = ()) -> int:
        return len(list(await self.raw.execute_fetchall(sql + " RETURNING 1", _bind(params))))

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            await self.raw.executemany(sql, [_bind(r) for r in rows])

    async def fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self.raw.execute_fetchall(sql, _bind(params)))


class SqliteDatabase:
    """One aiosqlite connection, opened with ``await SqliteDatabase.open(path)``."""

    dialect = DIALECT

    def storable(self, text: str) -> str:
        return valid_utf8(text)

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self._conn: _Connection | None = _Connection(raw)
        self._lock = asyncio.Lock()  # one transaction at a time
        self._no_transaction = asyncio.Event()  # set while no transaction is open
        self._no_transaction.set()

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        """Open (creating with mode 0600 if needed) and migrate the database at ``path``."""
        if path != _MEMORY:
            await asyncio.to_thread(_create_private_file, Path(path))
        raw = await aiosqlite.connect(path, isolation_level=None)
        try:
            raw.row_factory = aiosqlite.Row
            await _configure(raw, path)
            await migrate(raw)
        except BaseException:
            await raw.close()
            raise
        if path != _MEMORY:
            await asyncio.to_thread(_tighten_sidecars, Path(path))
        return cls(raw)

    @property
    def raw(self) -> aiosqlite.Connection:
        """The aiosqlite connection (for tests and tools; the store goes through the lock)."""
        return self._connection().raw

    def _connection(self) -> _Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn

    async def _outside_transactions(self) -> _Connection:
        """The connection, once no transaction is open. Nothing awaits between this and the
        caller queuing its statement, so it cannot land inside a transaction begun since."""
        while not self._no_transaction.is_set():
            await self._no_transaction.wait()
        return self._connection()

    async def fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await (await self._outside_transactions()).fetch(sql, params)

    async def write(self, sql: str, params: Params = ()) -> int:
        return await (await self._outside_transactions()).execute(sql, params)

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, durable: bool = False, scrub: bool = False
    ) -> AsyncIterator[_Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``durable`` commits with ``synchronous=FULL``,
        ``scrub`` empties the WAL afterwards (it still holds old copies of deleted rows)."""
        async with self._lock:
            conn = self._connection()
            self._no_transaction.clear()  # single statements queued from now on wait
            try:
                if durable:
                    await conn.run("PRAGMA synchronous = FULL")
                try:
                    await conn.run("BEGIN IMMEDIATE")
                    yield conn
                    await conn.run("COMMIT")
                except BaseException:
                    # The worker thread runs statements in order, so this ROLLBACK comes after
                    # everything this transaction queued (BEGIN included), even when we were
                    # cancelled mid-await: no transaction is left open behind us.
                    with contextlib.suppress(sqlite3.OperationalError):
                        await conn.run("ROLLBACK")
                    raise
                finally:
                    if durable:
                        await conn.run("PRAGMA synchronous = NORMAL")
                if scrub:
                    await _truncate_wal(conn)
            finally:
                self._no_transaction.set()

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    await conn.run("PRAGMA optimize")
                await conn.raw.close()


class SqliteStore(SqlStore):
    """The SQL store on SQLite: ``await SqliteStore.open(path)``."""

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        return await cls.on(await SqliteDatabase.open(path))

    @property
    def raw(self) -> aiosqlite.Connection:
        """The aiosqlite connection underneath (for tests and tools)."""
        db = self.database
        assert isinstance(db, SqliteDatabase)
        return db.raw


# --- migrations ------------------------------------------------------------------------------
class _Steps:
    """The runner's steps on one connection (``safebot.store.schema.MigrationSteps``)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def current_version(self) -> int:
        await self._conn.execute(VERSION_TABLE.format_map(DIALECT.types))
        rows = list(await self._conn.execute_fetchall("SELECT MAX(version) FROM schema_version"))
        return int(rows[0][0]) if rows[0][0] is not None else 0

    async def apply(self, migration: Migration) -> int:
        # executescript() commits a pending transaction first but adds no other transaction
        # control, so the BEGIN in the script keeps the DDL and the version row together.
        try:
            await self._conn.executescript("BEGIN IMMEDIATE;\n" + migration.sql(DIALECT.types))
            await self._conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, time.time()),
            )
            await self._conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.OperationalError):  # no transaction was open
                await self._conn.execute("ROLLBACK")
            raise
        return migration.version


def migration_steps(conn: aiosqlite.Connection) -> _Steps:
    return _Steps(conn)


async def migrate(
    conn: aiosqlite.Connection,
    target: int | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Bring the database on ``conn`` to ``target`` (default: the latest schema)."""
    return await run_migrations(migration_steps(conn), target, migrations)


# --- connection setup ------------------------------------------------------------------------
def _create_private_file(path: Path) -> None:
    """Create the database file readable by its owner only, before SQLite opens it.

    SQLite creates the -wal and -shm files with the database file's permissions."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.is_dir():
            raise ValueError("it is a folder; give the path of a database file") from None
        return
    os.close(fd)


def _tighten_sidecars(path: Path) -> None:
    """Once SQLite accepted the file: warn if others can read it, and make -wal and -shm
    owner-only. (Not earlier, so a file that is not a database gets one clear error and no
    advice about its permissions.)"""
    if path.stat().st_mode & 0o077:
        log.warning("database %s is accessible by other users; chmod 600 it", path)
    for suffix in ("-wal", "-shm"):
        sidecar = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(sidecar, 0o600)


async def _configure(conn: aiosqlite.Connection, path: str) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
    if path != _MEMORY and rows[0][0] != "wal":
        log.warning("could not switch %s to WAL (journal_mode=%s)", path, rows[0][0])
    await conn.execute("PRAGMA synchronous = NORMAL")  # FULL per durable transaction
    await conn.execute("PRAGMA foreign_keys = ON")
    # Overwrite deleted content with zeros so forgotten sessions and purged reports do not
    # linger in free space of the database file.
    await conn.execute("PRAGMA secure_delete = ON")


async def _truncate_wal(conn: _Connection) -> None:
    """Checkpoint and empty the -wal file, which still holds old copies of deleted rows."""
    rows = await conn.fetch("PRAGMA wal_checkpoint(TRUNCATE)")
    if rows and rows[0][0]:
        log.warning("WAL checkpoint was blocked; deleted data stays in the -wal file for now")

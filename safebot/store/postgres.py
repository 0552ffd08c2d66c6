"""PostgreSQL: the ``Database`` under the SQL store (``safebot.store.sql``), on an asyncpg
connection pool, for several bot processes on one database.

The queries are the SQLite ones; what differs is how concurrency is handled. SQLite serialises
writers on one file lock; here every process has its own pool and the database arbitrates:

- the outbox claim locks the rows it claims with ``FOR UPDATE SKIP LOCKED`` in the statement
  that moves their ``next_try`` past the lease, so concurrent workers, in this process or
  another, never claim the same item;
- sessions use optimistic versioning and report a lost race as VersionConflict;
- multi-statement writes run in one transaction on one pooled connection.

Every commit is durable (PostgreSQL's default ``synchronous_commit = on``); there is no cheaper
mode to choose per transaction as with SQLite, and no WAL copy of deleted rows to scrub.

Text from platforms may hold lone UTF-16 surrogates and NUL characters, both of which
PostgreSQL refuses in text; every str parameter goes through ``_text``.

Nothing here logs message text, report contents or the database URL (it may hold a password).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from safebot.model import valid_utf8
from safebot.store.schema import MIGRATIONS, VERSION_TABLE, Migration, run_migrations
from safebot.store.sql import Dialect, SqlStore

__all__ = ["DIALECT", "PostgresDatabase", "PostgresStore", "migrate", "migration_steps"]

# asyncpg ships no type information: records, connections and pools are Any to mypy.
Record = Any
RawConnection = Any
Params = Sequence[Any]

DIALECT = Dialect(
    name="postgresql",
    types={
        "time": "DOUBLE PRECISION",
        "flag": "BOOLEAN",
        "key": 'TEXT COLLATE "C"',
        "row_id": "BIGSERIAL PRIMARY KEY",
        "serial": "BIGSERIAL PRIMARY KEY",
        "false": "FALSE",
        "not_parked": "NOT parked",
    },
    lock_rows=" FOR UPDATE",
    skip_locked=" FOR UPDATE SKIP LOCKED",
)

# Any constant works; it only has to be the same in every SafeBot process. Advisory locks are
# per database, so two SafeBot databases on one server do not wait for each other.
_LOCK_KEY = 0x5AFEB075C4E3A


@functools.cache
def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1``, ``$2``... (no statement here has a ``?``
    inside a string literal)."""
    parts = sql.split("?")
    return "".join(
        part + (f"${n}" if n < len(parts) else "") for n, part in enumerate(parts, start=1)
    )


def _text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it: lone surrogates become U+FFFD (as in SQLite)
    and NUL characters, which text columns refuse outright, are dropped."""
    return valid_utf8(value).replace("\x00", "")


def _bind(params: Params) -> tuple[Any, ...]:
    return tuple(_text(v) if isinstance(v, str) else v for v in params)


def _count(status: str) -> int:
    """The row count of a command tag such as ``UPDATE 1`` or ``INSERT 0 1``."""
    return int(status.rsplit(" ", 1)[-1])


class _Connection:
    """A pooled asyncpg connection as the SQL store's ``Connection``."""

    __slots__ = ("raw",)

    def __init__(self, raw: RawConnection) -> None:
        self.raw = raw

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _count(await self.raw.execute(numbered(sql), *_bind(params)))

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            await self.raw.executemany(numbered(sql), [_bind(r) for r in rows])

    async def fetch(self, sql: str, params: Params = ()) -> list[Record]:
        return list(await self.raw.fetch(numbered(sql), *_bind(params)))


class PostgresDatabase:
    """An asyncpg pool, opened with ``await PostgresDatabase.open(url)``."""

    dialect = DIALECT

    def storable(self, text: str) -> str:
        return _text(text)

    def __init__(self, pool: Any) -> None:
        self._pool: Any | None = pool

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresDatabase:
        """Connect to ``url`` (``postgresql://user:password@host:port/database``) and migrate
        the database to the latest schema."""
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            server_settings={"application_name": "safebot"},
        )
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        if self._pool is None:
            raise RuntimeError("store is closed")
        async with self._pool.acquire() as raw:
            yield _Connection(raw)

    async def fetch(self, sql: str, params: Params = ()) -> list[Record]:
        async with self._connection() as conn:
            return await conn.fetch(sql, params)

    async def write(self, sql: str, params: Params = ()) -> int:
        async with self._connection() as conn:
            return await conn.execute(sql, params)

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, durable: bool = False, scrub: bool = False
    ) -> AsyncIterator[_Connection]:
        """One transaction on one pooled connection; rolled back if the body raises (or is
        cancelled: asyncpg resets a connection returned with a transaction open). Every commit
        is durable here, and nothing needs scrubbing."""
        async with self._connection() as conn, conn.raw.transaction():
            yield conn

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


class PostgresStore(SqlStore):
    """The SQL store on PostgreSQL: ``await PostgresStore.open(url)``."""

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        return await cls.on(await PostgresDatabase.open(url, min_size=min_size, max_size=max_size))


# --- migrations ------------------------------------------------------------------------------
class _Steps:
    """The runner's steps on one connection (``safebot.store.schema.MigrationSteps``)."""

    def __init__(self, conn: RawConnection) -> None:
        self._conn = conn

    async def _version(self) -> int:
        await self._conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await self._conn.execute(VERSION_TABLE.format_map(DIALECT.types))
        value = await self._conn.fetchval("SELECT MAX(version) FROM schema_version")
        return int(value) if value is not None else 0

    async def current_version(self) -> int:
        async with self._conn.transaction():
            return await self._version()

    async def apply(self, migration: Migration) -> int:
        async with self._conn.transaction():
            current = await self._version()
            if current >= migration.version:
                return current  # another process applied it while we waited for the lock
            await self._conn.execute(migration.sql(DIALECT.types))
            await self._conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.description,
                time.time(),
            )
        return migration.version


def migration_steps(conn: RawConnection) -> _Steps:
    return _Steps(conn)


async def migrate(
    conn: RawConnection,
    target: int | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Bring the database on ``conn`` to ``target`` (default: the latest schema)."""
    return await run_migrations(migration_steps(conn), target, migrations)

"""``safebot db backup PATH`` and ``safebot db migrate``: the operator's database tools.

Backup copies a live SQLite database with SQLite's online backup API (a consistent copy while
the bot keeps writing), into a new file created ``0600``. PostgreSQL has its own tool for that
(``pg_dump``). Migrate applies the numbered migrations in ``safebot/store/`` one by one and
says what it does; the bot also migrates on start, so this is for upgrading on purpose, with
the bot stopped and a backup made.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path
from typing import TextIO

import aiosqlite

from safebot.store import sqlite_path
from safebot.store.schema import LATEST_VERSION, Migration, MigrationSteps, run_migrations

__all__ = ["DatabaseToolError", "backup", "migrate"]

_POSTGRES = ("postgres://", "postgresql://")
_BUSY_TIMEOUT_MS = 10_000


class DatabaseToolError(Exception):
    """What went wrong, in one line for the operator."""


def _kind(database_url: str) -> str:
    if database_url == "memory":
        raise DatabaseToolError("database_url is 'memory': there is no database to work on")
    return "postgresql" if database_url.startswith(_POSTGRES) else "sqlite"


def backup(database_url: str, destination: str | Path, out: TextIO) -> None:
    """Copy the SQLite database into ``destination`` (a new file, created 0600)."""
    if _kind(database_url) == "postgresql":
        raise DatabaseToolError(
            "backup works for SQLite only; for PostgreSQL use pg_dump, e.g. "
            "pg_dump --format=custom --file=safebot.dump DATABASE_URL"
        )
    source = Path(sqlite_path(database_url) or "")
    if not source.is_file():
        raise DatabaseToolError(f"no SQLite database at {source}")
    target = Path(destination)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DatabaseToolError(f"{target} already exists; pick a new file name") from None
    except OSError as exc:
        raise DatabaseToolError(f"cannot create {target}: {exc.strerror}") from None
    os.close(fd)
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=_BUSY_TIMEOUT_MS / 1000)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            (check,) = dst.execute("PRAGMA quick_check").fetchone()
            (version,) = dst.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise DatabaseToolError(f"backup failed: {exc}") from None
    if check != "ok":
        raise DatabaseToolError(f"the copy in {target} failed its check: {check}")
    size = target.stat().st_size
    print(f"Backed up {source} to {target} ({size} bytes, schema version {version}).", file=out)


async def migrate(database_url: str, out: TextIO) -> int:
    """Bring the schema to this SafeBot's latest version, printing each step. Returns it."""
    if _kind(database_url) == "postgresql":
        return await _migrate_postgres(database_url, out)
    path = Path(sqlite_path(database_url) or "")
    print(f"Database: SQLite at {path}", file=out)
    await asyncio.to_thread(_create_private, path)
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        await conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        from safebot.store.sqlite import migration_steps

        return await _steps(migration_steps(conn), out)


def _create_private(path: Path) -> None:
    """A new database file is created 0600, as the bot itself does."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


async def _migrate_postgres(database_url: str, out: TextIO) -> int:
    try:
        import asyncpg

        from safebot.store.postgres import migration_steps
    except ImportError:
        raise DatabaseToolError(
            "PostgreSQL needs asyncpg: pip install 'safebot[postgres]'"
        ) from None
    print("Database: PostgreSQL", file=out)  # the URL may hold a password: not printed
    try:
        conn = await asyncpg.connect(database_url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseToolError(f"cannot connect to PostgreSQL: {exc}") from None
    try:
        return await _steps(migration_steps(conn), out)
    finally:
        await conn.close()


async def _steps(steps: MigrationSteps, out: TextIO) -> int:
    """Apply the migrations above the current version, each in its own transaction (and, for
    PostgreSQL, under its lock), printing each."""
    current = await steps.current_version()
    print(f"Schema version {current}; this SafeBot uses version {LATEST_VERSION}.", file=out)
    if current > LATEST_VERSION:
        raise DatabaseToolError(
            f"the schema (version {current}) is newer than this SafeBot ({LATEST_VERSION}); "
            "upgrade SafeBot instead"
        )

    def announce(migration: Migration) -> None:
        print(f"Applying migration {migration.version}: {migration.description}", file=out)

    current = await run_migrations(steps, announce=announce)
    print(f"Done: schema version {current}.", file=out)
    return current

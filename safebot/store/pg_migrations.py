"""Numbered schema migrations for the PostgreSQL store.

The versions and descriptions are the SQLite ones (safebot.store.migrations), so "schema
version 3" means the same tables whichever database holds them; only the DDL differs:
DOUBLE PRECISION epoch seconds, BOOLEAN flags, TEXT for JSON, BIGSERIAL for the audit order.

JSON stays TEXT, not JSONB: JSONB refuses ``\\u0000`` and lone-surrogate escapes, which
``json.dumps`` writes for text that came from a platform, and the store never queries inside it.

Identifier columns use ``COLLATE "C"`` so ordering and equality are by code point, as in SQLite,
whatever locale the database was created with (an ``en_US`` collation sorts "b1" and "B2"
differently and would make listings depend on the server's setup).

Each migration runs in its own transaction with its ``schema_version`` row, under a
transaction-scoped advisory lock: two processes starting at once take turns, and the second
finds the work done. Append-only, like the SQLite list.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from safebot.store.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from safebot.store.migrations import Migration, _check_numbering

__all__ = ["LATEST_VERSION", "MIGRATIONS", "current_version", "migrate"]

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every SafeBot process. Advisory locks are
# per database, so two SafeBot databases on one server do not wait for each other.
_LOCK_KEY = 0x5AFEB075C4E3A

_V1 = """
CREATE TABLE sessions (
    person     TEXT COLLATE "C" PRIMARY KEY,
    state      TEXT NOT NULL,               -- Session.to_json()
    version    INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE reports (
    reference      TEXT COLLATE "C" PRIMARY KEY,
    community      TEXT COLLATE "C" NOT NULL,
    community_name TEXT NOT NULL,
    reporter       TEXT COLLATE "C",         -- NULL once forgotten
    reveal         BOOLEAN NOT NULL,
    category       TEXT NOT NULL,
    offender       TEXT,
    details        TEXT,
    evidence       TEXT NOT NULL,           -- JSON array of strings
    locale         TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     DOUBLE PRECISION NOT NULL,
    updated_at     DOUBLE PRECISION NOT NULL,
    handled_by     TEXT
);
CREATE INDEX reports_by_community ON reports (community, created_at);
CREATE INDEX reports_by_reporter ON reports (reporter) WHERE reporter IS NOT NULL;
CREATE INDEX reports_by_created ON reports (created_at);

CREATE TABLE outbox (
    key          TEXT COLLATE "C" PRIMARY KEY,
    kind         TEXT NOT NULL,
    reference    TEXT COLLATE "C" NOT NULL,
    community    TEXT COLLATE "C" NOT NULL,
    payload      TEXT NOT NULL,             -- JSON object of strings
    created_at   DOUBLE PRECISION NOT NULL,
    next_try     DOUBLE PRECISION NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at DOUBLE PRECISION,
    parked       BOOLEAN NOT NULL DEFAULT FALSE,
    last_error   TEXT
);
CREATE INDEX outbox_due ON outbox (next_try, created_at)
    WHERE delivered_at IS NULL AND NOT parked;
CREATE INDEX outbox_pending_by_community ON outbox (community, created_at)
    WHERE delivered_at IS NULL;
CREATE INDEX outbox_by_reference ON outbox (reference);
"""

_V2 = """
CREATE TABLE communities (
    community   TEXT COLLATE "C" PRIMARY KEY,
    platform    TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    destination TEXT NOT NULL,
    mention     TEXT,
    locale      TEXT NOT NULL,
    blocked     TEXT NOT NULL,              -- JSON array of person keys
    updated_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX communities_by_platform ON communities (platform, community);

CREATE TABLE audit_log (
    id        BIGSERIAL PRIMARY KEY,        -- insertion order
    at        DOUBLE PRECISION NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    reference TEXT COLLATE "C",
    community TEXT COLLATE "C"
);
CREATE INDEX audit_log_by_reference ON audit_log (reference) WHERE reference IS NOT NULL;
"""

_V3 = """
CREATE TABLE rate_hits (
    key        TEXT COLLATE "C" NOT NULL,
    starts_at  DOUBLE PRECISION NOT NULL,
    ends_at    DOUBLE PRECISION NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (key, starts_at)
);
CREATE INDEX rate_hits_by_end ON rate_hits (ends_at);
"""

_V4 = """
ALTER TABLE reports ADD COLUMN reporter_tag TEXT COLLATE "C";
CREATE INDEX reports_by_reporter_tag ON reports (reporter_tag, created_at)
    WHERE reporter_tag IS NOT NULL;
CREATE INDEX sessions_by_updated ON sessions (updated_at);

CREATE TABLE deployment_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    secret TEXT NOT NULL
);
"""

_V5 = """
ALTER TABLE communities ADD COLUMN region TEXT NOT NULL DEFAULT '';
"""

_V6 = """
CREATE TABLE memberships (
    tag        TEXT COLLATE "C" NOT NULL,
    platform   TEXT COLLATE "C" NOT NULL,
    community  TEXT COLLATE "C" NOT NULL,
    seen_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tag, community)
);
CREATE INDEX memberships_by_seen ON memberships (seen_at);
"""

_V7 = """
ALTER TABLE reports ADD COLUMN urgent TEXT NOT NULL DEFAULT '';
"""

_V8 = """
CREATE TABLE case_notes (
    id         BIGSERIAL PRIMARY KEY,
    reference  TEXT COLLATE "C" NOT NULL,
    at         DOUBLE PRECISION NOT NULL,
    author     TEXT NOT NULL,
    text       TEXT NOT NULL
);
CREATE INDEX case_notes_by_reference ON case_notes (reference, id);
"""

_V9 = """
ALTER TABLE communities ADD COLUMN policy_room TEXT NOT NULL DEFAULT '';
ALTER TABLE communities ADD COLUMN escalate_to TEXT NOT NULL DEFAULT '';
"""

_SCRIPTS = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)

MIGRATIONS: tuple[Migration, ...] = tuple(
    Migration(m.version, m.description, script)
    for m, script in zip(SQLITE_MIGRATIONS, _SCRIPTS, strict=True)
)
LATEST_VERSION = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  DOUBLE PRECISION NOT NULL
)
"""

# asyncpg ships no type information; a connection is whatever asyncpg.connect() returns.
Connection = Any


async def current_version(conn: Connection) -> int:
    """The highest applied migration, 0 for an empty database."""
    await conn.execute(_VERSION_TABLE)
    value = await conn.fetchval("SELECT MAX(version) FROM schema_version")
    return int(value) if value is not None else 0


async def migrate(
    conn: Connection,
    target: int | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Apply the migrations above the current version up to ``target`` (default: the latest)
    in order, each in its own transaction. Returns the resulting version."""
    _check_numbering(migrations)
    latest = migrations[-1].version if migrations else 0
    goal = latest if target is None else target
    async with conn.transaction():
        await _lock(conn)
        current = await current_version(conn)
    if current > latest:
        raise RuntimeError(
            f"database schema version {current} is newer than this SafeBot ({latest}); "
            "refusing to touch it"
        )
    if not 0 <= goal <= latest:
        raise ValueError(f"no migration to version {goal}")
    if goal < current:
        raise ValueError(f"cannot downgrade schema from {current} to {goal}")
    for migration in migrations:
        if current < migration.version <= goal:
            current = await _apply(conn, migration)
    return current


async def _lock(conn: Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)


async def _apply(conn: Connection, migration: Migration) -> int:
    """Apply one migration unless another process did while we waited for the lock. Returns
    the version afterwards."""
    async with conn.transaction():
        await _lock(conn)
        current = await current_version(conn)
        if current >= migration.version:
            return current
        await conn.execute(migration.script)
        await conn.execute(
            "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
            migration.version,
            migration.description,
            time.time(),
        )
    log.info("schema migrated to version %d: %s", migration.version, migration.description)
    return migration.version

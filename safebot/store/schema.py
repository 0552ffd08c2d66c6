"""The numbered schema migrations, one list for SQLite and PostgreSQL, and the one runner.

A migration's script is written once; the words that differ fill its placeholders from the
backend's ``Dialect``:

- ``{time}``: epoch seconds (SQLite REAL, PostgreSQL DOUBLE PRECISION);
- ``{flag}``: a yes/no column (SQLite INTEGER 0/1, PostgreSQL BOOLEAN);
- ``{key}``: an identifier column. PostgreSQL uses ``COLLATE "C"`` so ordering and equality
  are by code point, as in SQLite, whatever locale the database was created with;
- ``{row_id}`` and ``{serial}``: an insertion-order id (``{serial}`` never reuses one);
- ``{false}`` and ``{not_parked}``: the literal and the predicate each database indexes.

JSON stays TEXT, never JSONB: JSONB refuses ``\\u0000`` and lone-surrogate escapes, which
``json.dumps`` writes for text that came from a platform, and no query looks inside it.

Each migration runs in its own transaction together with its row in ``schema_version``, so a
failed migration leaves the database at the previous version (on PostgreSQL under an advisory
lock, so two processes starting at once take turns). Append-only: never edit a migration that
has shipped, add a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Migration",
    "MigrationSteps",
    "check_numbering",
    "run_migrations",
]

log = logging.getLogger(__name__)


class Migration(NamedTuple):
    version: int
    description: str
    script: str  # with the placeholders above

    def sql(self, words: dict[str, str]) -> str:
        """The script for one database (its ``Dialect.types``)."""
        return self.script.format_map(words)


class MigrationSteps(Protocol):
    """What a backend does for the runner, on one connection."""

    async def current_version(self) -> int:
        """The highest applied migration, 0 for an empty database (creates ``schema_version``
        if needed)."""
        ...

    async def apply(self, migration: Migration) -> int:
        """Apply ``migration`` with its ``schema_version`` row in one transaction, unless
        another process did it first. Returns the version afterwards."""
        ...


_V1 = """
CREATE TABLE sessions (
    person     {key} PRIMARY KEY,       -- PersonId.key
    state      TEXT NOT NULL,           -- Session.to_json()
    version    INTEGER NOT NULL,
    updated_at {time} NOT NULL
);

CREATE TABLE reports (
    reference      {key} PRIMARY KEY,
    community      {key} NOT NULL,      -- CommunityId.key
    community_name TEXT NOT NULL,
    reporter       {key},               -- PersonId.key, NULL once forgotten
    reveal         {flag} NOT NULL,
    category       TEXT NOT NULL,
    offender       TEXT,
    details        TEXT,
    evidence       TEXT NOT NULL,       -- JSON array of strings
    locale         TEXT NOT NULL,
    status         TEXT NOT NULL,
    created_at     {time} NOT NULL,
    updated_at     {time} NOT NULL,
    handled_by     TEXT
);
CREATE INDEX reports_by_community ON reports (community, created_at);
CREATE INDEX reports_by_reporter ON reports (reporter) WHERE reporter IS NOT NULL;
CREATE INDEX reports_by_created ON reports (created_at);

CREATE TABLE outbox (
    key          {key} PRIMARY KEY,     -- idempotency key
    kind         TEXT NOT NULL,
    reference    {key} NOT NULL,
    community    {key} NOT NULL,
    payload      TEXT NOT NULL,         -- JSON object of strings
    created_at   {time} NOT NULL,
    next_try     {time} NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at {time},
    parked       {flag} NOT NULL DEFAULT {false},
    last_error   TEXT
);
CREATE INDEX outbox_due ON outbox (next_try, created_at)
    WHERE delivered_at IS NULL AND {not_parked};
CREATE INDEX outbox_pending_by_community ON outbox (community, created_at)
    WHERE delivered_at IS NULL;
CREATE INDEX outbox_by_reference ON outbox (reference);
"""

_V2 = """
CREATE TABLE communities (
    community   {key} PRIMARY KEY,      -- CommunityId.key
    platform    {key} NOT NULL,
    name        TEXT NOT NULL,
    destination TEXT NOT NULL,
    mention     TEXT,
    locale      TEXT NOT NULL,
    blocked     TEXT NOT NULL,          -- JSON array of person keys
    updated_at  {time} NOT NULL
);
CREATE INDEX communities_by_platform ON communities (platform, community);

CREATE TABLE audit_log (
    id        {row_id},                 -- insertion order
    at        {time} NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    reference {key},
    community {key}
);
CREATE INDEX audit_log_by_reference ON audit_log (reference) WHERE reference IS NOT NULL;
"""

_V3 = """
CREATE TABLE rate_hits (
    key        {key} NOT NULL,           -- what is limited, e.g. "messages:<person key>"
    starts_at  {time} NOT NULL,          -- the fixed window this count belongs to
    ends_at    {time} NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (key, starts_at)
);
CREATE INDEX rate_hits_by_end ON rate_hits (ends_at);
"""

_V4 = """
ALTER TABLE reports ADD COLUMN reporter_tag {key};  -- the reporter's pseudonym, kept on forget
CREATE INDEX reports_by_reporter_tag ON reports (reporter_tag, created_at)
    WHERE reporter_tag IS NOT NULL;
CREATE INDEX sessions_by_updated ON sessions (updated_at);

CREATE TABLE deployment_secret (
    id     INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
    secret TEXT NOT NULL                        -- hex; keys the pseudonyms
);
"""

_V5 = """
-- The region a community's moderators chose at setup ('' = none): the crisis lines and help
-- shown to people asking from that community, until they pick a country themselves.
ALTER TABLE communities ADD COLUMN region TEXT NOT NULL DEFAULT '';
"""

_V6 = """
-- Servers where a person was seen using SafeBot (a command or button there shows they are a
-- member): the only servers asked about when offering servers in a large deployment. Keyed by
-- the person's pseudonym; rows go after membership_days, and with "forget me".
CREATE TABLE memberships (
    tag        {key} NOT NULL,  -- the person's pseudonym
    platform   {key} NOT NULL,
    community  {key} NOT NULL,  -- CommunityId.key
    seen_at    {time} NOT NULL,
    PRIMARY KEY (tag, community)
);
CREATE INDEX memberships_by_seen ON memberships (seen_at);
"""

_V7 = """
-- Why a report is urgent (safebot.model.URGENCY, comma-separated; '' = not urgent). Only the
-- reasons are kept, never the words that showed them.
ALTER TABLE reports ADD COLUMN urgent TEXT NOT NULL DEFAULT '';
"""

_V8 = """
-- Moderators' notes on a report (for the case and the evidence pack); deleted with the report.
CREATE TABLE case_notes (
    id         {serial},
    reference  {key} NOT NULL,
    at         {time} NOT NULL,
    author     TEXT NOT NULL,
    text       TEXT NOT NULL
);
CREATE INDEX case_notes_by_reference ON case_notes (reference, id);
"""

_V9 = """
-- Matrix: the policy list room where shared bans are written as m.policy.rule.user ('' = none).
ALTER TABLE communities ADD COLUMN policy_room TEXT NOT NULL DEFAULT '';
-- Where the second reminder of an unacknowledged alert goes too: a Discord role, a Matrix room.
ALTER TABLE communities ADD COLUMN escalate_to TEXT NOT NULL DEFAULT '';
"""

_V10 = """
-- An alert's message as the platform named it when it was posted (a Discord channel/message
-- id, a Matrix event id): its edits and replies go straight there, without a history search.
ALTER TABLE outbox ADD COLUMN posted TEXT;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "sessions, reports and outbox", _V1),
    Migration(2, "community settings and audit log", _V2),
    Migration(3, "rate limit counters shared by processes", _V3),
    Migration(4, "reporter pseudonyms that outlive forget-me; session expiry index", _V4),
    Migration(5, "community region", _V5),
    Migration(6, "memberships learned from guild interactions", _V6),
    Migration(7, "urgent reports", _V7),
    Migration(8, "case notes", _V8),
    Migration(9, "policy list room and escalation target", _V9),
    Migration(10, "where each alert was posted", _V10),
)
LATEST_VERSION = MIGRATIONS[-1].version

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  {time} NOT NULL
)
"""


async def run_migrations(
    steps: MigrationSteps,
    target: int | None = None,
    migrations: Sequence[Migration] = MIGRATIONS,
    announce: Callable[[Migration], None] | None = None,
) -> int:
    """Apply the migrations above the current version up to ``target`` (default: the latest)
    in order, each in its own transaction, calling ``announce`` before each. Returns the
    resulting version. Refuses a database newer than this SafeBot, and a downgrade."""
    check_numbering(migrations)
    latest = migrations[-1].version if migrations else 0
    goal = latest if target is None else target
    current = await steps.current_version()
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
            if announce is not None:
                announce(migration)
            current = await steps.apply(migration)
            log.info("schema migrated to version %d: %s", migration.version, migration.description)
    return current


def check_numbering(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1..n in order, got {versions}")

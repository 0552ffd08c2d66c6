"""PostgreSQL Store on an asyncpg connection pool, for several bot processes on one database.

Same semantics as the SQLite store (one contract test suite covers both). What differs is how
concurrency is handled: SQLite serialises writers on one file lock, here every process has its
own pool and the database arbitrates:

- ``claim_due`` locks the rows it claims with ``FOR UPDATE SKIP LOCKED`` in the same statement
  (so the same transaction) that moves their ``next_try`` past the lease, so concurrent
  workers, in this process or another, never claim the same item;
- sessions use optimistic versioning (``UPDATE ... WHERE version = $n``, or ``INSERT ... ON
  CONFLICT DO NOTHING`` for a new one) and report a lost race as VersionConflict;
- multi-statement writes run in one transaction on one pooled connection.

Every commit is durable (PostgreSQL's default ``synchronous_commit = on``); there is no
cheaper mode to choose per transaction as with SQLite.

Text from platforms may hold lone UTF-16 surrogates and NUL characters, both of which
PostgreSQL refuses in text; every str parameter goes through ``_text`` (see ``_bind``).

Nothing here logs message text, report contents or the database URL (it may hold a password).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import Any

import asyncpg

from safebot.model import (
    AuditEntry,
    CaseNote,
    CommunityConfig,
    CommunityId,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
    Session,
    name_removal,
    valid_utf8,
)
from safebot.pseudonym import (
    new_secret,
    pseudonym,
    pseudonymize_blocked,
    pseudonymize_counter,
    pseudonymize_key,
)
from safebot.store import codec
from safebot.store.base import Backlog, DuplicateReference, Store, VersionConflict
from safebot.store.pg_migrations import migrate

__all__ = ["PostgresStore"]

log = logging.getLogger(__name__)

# asyncpg ships no type information: records, connections and pools are Any to mypy.
Record = Any
Connection = Any

_REPORT_FIELDS = (
    "reference",
    "community",
    "community_name",
    "reporter",
    "reveal",
    "category",
    "offender",
    "details",
    "evidence",
    "locale",
    "status",
    "created_at",
    "updated_at",
    "handled_by",
    "reporter_tag",
    "urgent",
)
_OUTBOX_FIELDS = (
    "key",
    "kind",
    "reference",
    "community",
    "payload",
    "created_at",
    "next_try",
    "attempts",
    "delivered_at",
    "parked",
    "last_error",
)
_REPORT_COLUMNS = ", ".join(_REPORT_FIELDS)
_OUTBOX_COLUMNS = ", ".join(_OUTBOX_FIELDS)
_COMMUNITY_COLUMNS = (
    "community, platform, name, destination, mention, locale, blocked, updated_at, region, "
    "policy_room, escalate_to"
)
_AUDIT_COLUMNS = "at, actor, action, reference, community"


def _placeholders(count: int, start: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(start, start + count))


_INSERT_OUTBOX = (
    f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES ({_placeholders(len(_OUTBOX_FIELDS))}) "
    "ON CONFLICT (key) DO NOTHING"
)
_INSERT_REPORT = (
    f"INSERT INTO reports ({_REPORT_COLUMNS}) VALUES ({_placeholders(len(_REPORT_FIELDS))}) "
    "ON CONFLICT (reference) DO NOTHING"
)
_UPDATE_REPORT = (
    "UPDATE reports SET "
    + ", ".join(f"{name} = ${n}" for n, name in enumerate(_REPORT_FIELDS[1:], start=2))
    + " WHERE reference = $1"
)
_INSERT_AUDIT = f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
_PENDING = "delivered_at IS NULL AND NOT parked"

# One statement, so one transaction: the rows are locked (skipping those another worker is
# claiming right now) and moved past the lease before anyone else can see them as due. A
# worker whose snapshot predates another's commit re-checks ``next_try`` on the locked row
# (READ COMMITTED re-evaluation) and drops it, so a committed claim is never taken twice.
_CLAIM = (
    "WITH due AS ("
    f"    SELECT key FROM outbox WHERE {_PENDING} AND next_try <= $1"
    "    ORDER BY created_at, key LIMIT $2 FOR UPDATE SKIP LOCKED"
    ") "
    "UPDATE outbox SET next_try = $3 FROM due WHERE outbox.key = due.key "
    "RETURNING " + ", ".join(f"outbox.{name}" for name in _OUTBOX_FIELDS)
)

Params = Sequence[Any]


def _text(value: str) -> str:
    """``value`` as PostgreSQL text can hold it: lone surrogates become U+FFFD (as in the
    SQLite store) and NUL characters, which text columns refuse outright, are dropped."""
    return valid_utf8(value).replace("\x00", "")


def _bind(params: Params) -> tuple[Any, ...]:
    return tuple(_text(v) if isinstance(v, str) else v for v in params)


def _count(status: str) -> int:
    """The row count of a command tag such as ``UPDATE 1`` or ``INSERT 0 1``."""
    return int(status.rsplit(" ", 1)[-1])


class _Connection:
    """A pooled asyncpg connection with every text parameter made storable. One place, so no
    statement can forget it."""

    __slots__ = ("raw",)

    def __init__(self, raw: Connection) -> None:
        self.raw = raw

    async def execute(self, sql: str, *params: Any) -> int:
        """Run one statement; returns the changed row count."""
        return _count(await self.raw.execute(sql, *_bind(params)))

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if rows:
            await self.raw.executemany(sql, [_bind(r) for r in rows])

    async def fetch(self, sql: str, *params: Any) -> list[Record]:
        return list(await self.raw.fetch(sql, *_bind(params)))


class PostgresStore:
    def __init__(self, pool: Any) -> None:
        """Use ``await PostgresStore.open(url)``; this expects a pool on a migrated database."""
        self._pool: Any | None = pool
        self._next_sweep = 0.0  # rate_hits: when ended windows are next deleted

    @classmethod
    async def open(cls, url: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
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
            store = cls(pool)
            await store._pseudonymize_plain_keys()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _pseudonymize_plain_keys(self) -> None:
        """Person keys stored before pseudonyms existed (report limits, block lists, rate
        counters) become pseudonyms. Finds nothing to do on every later start; two processes
        starting at once wait for each other on the row locks and the second changes nothing."""
        secret = await self.pseudonym_secret()
        if not await codec.plain_keys_left(self._fetch, secret):
            return  # the usual case: read-only, no row locks on every start
        async with self._transaction() as conn:
            reporters = await conn.fetch(
                "SELECT DISTINCT reporter FROM reports "
                "WHERE reporter IS NOT NULL AND reporter_tag IS NULL"
            )
            await conn.executemany(
                "UPDATE reports SET reporter_tag = $1 WHERE reporter = $2 AND reporter_tag IS NULL",
                [(pseudonymize_key(secret, r[0]), r[0]) for r in reporters],
            )
            communities = await conn.fetch("SELECT community, blocked FROM communities FOR UPDATE")
            for row in communities:
                blocked = tuple(json.loads(row["blocked"]))
                tagged = pseudonymize_blocked(secret, blocked)
                if tagged != blocked:
                    await conn.execute(
                        "UPDATE communities SET blocked = $1 WHERE community = $2",
                        codec.dumps(list(tagged)),
                        row["community"],
                    )
            for row in await conn.fetch(
                "SELECT key, starts_at, ends_at, count FROM rate_hits FOR UPDATE"
            ):
                tagged_key = pseudonymize_counter(secret, row["key"])
                if tagged_key == row["key"]:
                    continue
                await conn.execute(
                    "DELETE FROM rate_hits WHERE key = $1 AND starts_at = $2",
                    row["key"],
                    row["starts_at"],
                )
                await conn.execute(
                    "INSERT INTO rate_hits (key, starts_at, ends_at, count) "
                    "VALUES ($1, $2, $3, $4) ON CONFLICT (key, starts_at) "
                    "DO UPDATE SET count = rate_hits.count + excluded.count",
                    tagged_key,
                    row["starts_at"],
                    row["ends_at"],
                    row["count"],
                )

    # --- plumbing -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[_Connection]:
        if self._pool is None:
            raise RuntimeError("store is closed")
        async with self._pool.acquire() as raw:
            yield _Connection(raw)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Connection]:
        """One transaction on one pooled connection; rolled back if the body raises (or is
        cancelled: asyncpg resets a connection returned with a transaction open)."""
        async with self._connection() as conn, conn.raw.transaction():
            yield conn

    async def _fetch(self, sql: str, *params: Any) -> list[Record]:
        async with self._connection() as conn:
            return await conn.fetch(sql, *params)

    async def _write(self, sql: str, *params: Any) -> int:
        """One statement in its own (autocommit) transaction. Returns the changed row count."""
        async with self._connection() as conn:
            return await conn.execute(sql, *params)

    # --- sessions -------------------------------------------------------------------------
    async def load_session(self, person: PersonId) -> Session | None:
        rows = await self._fetch(
            "SELECT state, version FROM sessions WHERE person = $1", person.key
        )
        if not rows:
            return None
        return Session.from_json(person, rows[0]["state"], int(rows[0]["version"]))

    async def save_session(self, session: Session) -> Session:
        state, person = session.to_json(), session.person.key
        if session.version == 0:
            changed = await self._write(
                "INSERT INTO sessions (person, state, version, updated_at) "
                "VALUES ($1, $2, 1, $3) ON CONFLICT (person) DO NOTHING",
                person,
                state,
                float(session.updated_at),
            )
        else:
            changed = await self._write(
                "UPDATE sessions SET state = $1, version = version + 1, updated_at = $2 "
                "WHERE person = $3 AND version = $4",
                state,
                float(session.updated_at),
                person,
                session.version,
            )
        if changed != 1:
            raise VersionConflict  # no person id in the message: callers may log it
        return session.evolve(version=session.version + 1)

    async def delete_session(self, person: PersonId) -> None:
        await self._write("DELETE FROM sessions WHERE person = $1", person.key)

    # --- reports + outbox -----------------------------------------------------------------
    async def add_report(self, report: Report, outbox: Sequence[OutboxItem]) -> None:
        row, items = _report_row(report), [_outbox_row(i) for i in outbox]
        async with self._transaction() as conn:
            if await conn.execute(_INSERT_REPORT, *row) != 1:
                raise DuplicateReference(report.reference)
            await conn.executemany(_INSERT_OUTBOX, items)

    async def get_report(self, reference: str) -> Report | None:
        rows = await self._fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reference = $1", reference
        )
        return codec.report(rows[0]) if rows else None

    async def update_report(
        self, report: Report, outbox: Sequence[OutboxItem], audit: AuditEntry | None
    ) -> None:
        """Raises KeyError (writing nothing) if the report does not exist (e.g. purged)."""
        row, items = _report_row(report), [_outbox_row(i) for i in outbox]
        async with self._transaction() as conn:
            if await conn.execute(_UPDATE_REPORT, *row) != 1:
                raise KeyError(report.reference)
            await conn.executemany(_INSERT_OUTBOX, items)
            if audit is not None:
                await conn.execute(_INSERT_AUDIT, *_audit_row(audit))

    async def reports_for_community(self, community: CommunityId) -> list[Report]:
        rows = await self._fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE community = $1 "
            "ORDER BY created_at, reference",
            community.key,
        )
        return [codec.report(r) for r in rows]

    async def add_case_note(self, note: CaseNote, audit: AuditEntry) -> None:
        async with self._transaction() as conn:
            status = await conn.execute(
                "INSERT INTO case_notes (reference, at, author, text) "
                "SELECT reference, $1, $2, $3 FROM reports WHERE reference = $4",
                float(note.at),
                _text(note.author),
                _text(note.text),
                note.reference,
            )
            if status != 1:
                raise KeyError(note.reference)
            await conn.execute(_INSERT_AUDIT, *_audit_row(audit))

    async def case_notes(self, reference: str) -> list[CaseNote]:
        rows = await self._fetch(
            "SELECT reference, at, author, text FROM case_notes WHERE reference = $1 ORDER BY id",
            reference,
        )
        return [CaseNote(r[0], float(r[1]), r[2], r[3]) for r in rows]

    async def reports_of(self, person: PersonId, limit: int) -> list[Report]:
        rows = await self._fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reporter = $1 "
            "ORDER BY created_at DESC, reference DESC LIMIT $2",
            person.key,
            limit,
        )
        return [codec.report(r) for r in rows]

    async def forget_person(self, person: PersonId, now: float) -> int:
        # (a platform id may hold lone surrogates: their pseudonym is that of the stored text)
        tag = pseudonym(await self.pseudonym_secret(), replace(person, id=valid_utf8(person.id)))
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM sessions WHERE person = $1", person.key)
            await conn.execute("DELETE FROM memberships WHERE tag = $1", tag)
            await conn.execute(
                "DELETE FROM outbox WHERE kind = $1 AND delivered_at IS NULL AND reference IN "
                "(SELECT reference FROM reports WHERE reporter = $2)",
                OutboxKind.STATUS.value,
                person.key,
            )
            named = await conn.fetch(
                "SELECT reference, community FROM reports WHERE reporter = $1 AND reveal",
                person.key,
            )
            removals = [
                name_removal(r["reference"], CommunityId.parse(r["community"]), float(now))
                for r in named
            ]
            await conn.executemany(_INSERT_OUTBOX, [_outbox_row(i) for i in removals])
            return await conn.execute(
                "UPDATE reports SET reporter = NULL WHERE reporter = $1", person.key
            )

    async def purge_reports(self, created_before: float) -> int:
        async with self._transaction() as conn:
            for table in ("outbox", "case_notes"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE reference IN "
                    "(SELECT reference FROM reports WHERE created_at < $1)",
                    float(created_before),
                )
            return await conn.execute(
                "DELETE FROM reports WHERE created_at < $1", float(created_before)
            )

    async def purge_sessions(self, updated_before: float, now: float) -> int:
        async with self._transaction() as conn:
            count = await conn.execute(
                "DELETE FROM sessions WHERE updated_at < $1", float(updated_before)
            )
            await conn.execute("DELETE FROM rate_hits WHERE ends_at <= $1", float(now))
            return count

    # --- outbox ---------------------------------------------------------------------------
    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        rows = [_outbox_row(i) for i in items]
        if not rows:
            return
        async with self._transaction() as conn:
            await conn.executemany(_INSERT_OUTBOX, rows)

    async def claim_due(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        rows = await self._fetch(_CLAIM, float(now), limit, float(now + lease))
        # RETURNING comes in no particular order; the contract is oldest first.
        return sorted((codec.outbox_item(r) for r in rows), key=lambda i: (i.created_at, i.key))

    async def mark_delivered(self, key: str, now: float) -> None:
        await self._write("UPDATE outbox SET delivered_at = $1 WHERE key = $2", float(now), key)

    async def mark_retry(self, key: str, attempts: int, next_try: float, error: str) -> None:
        await self._write(
            "UPDATE outbox SET attempts = $1, next_try = $2, last_error = $3 WHERE key = $4",
            attempts,
            float(next_try),
            error,
            key,
        )

    async def mark_parked(self, key: str, attempts: int, error: str) -> None:
        await self._write(
            "UPDATE outbox SET attempts = $1, parked = TRUE, last_error = $2 WHERE key = $3",
            attempts,
            error,
            key,
        )

    async def get_outbox_item(self, key: str) -> OutboxItem | None:
        rows = await self._fetch(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key = $1", key)
        return codec.outbox_item(rows[0]) if rows else None

    async def backlog(self, community: CommunityId | None = None) -> Backlog:
        sql = (
            "SELECT COUNT(*) FILTER (WHERE NOT parked), COUNT(*) FILTER (WHERE parked), "
            "MIN(created_at) FILTER (WHERE NOT parked) FROM outbox WHERE delivered_at IS NULL "
            f"AND kind <> '{OutboxKind.ESCALATION.value}'"  # reminders wait on purpose
        )
        params: tuple[str, ...] = ()
        if community is not None:
            sql, params = sql + " AND community = $1", (community.key,)
        waiting, parked, oldest = (await self._fetch(sql, *params))[0]
        return Backlog(int(waiting), int(parked), None if oldest is None else float(oldest))

    # --- rate limits ----------------------------------------------------------------------
    async def reports_since(self, reporter_tag: str, since: float) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM reports WHERE reporter_tag = $1 AND created_at >= $2",
            reporter_tag,
            float(since),
        )
        return int(rows[0][0])

    async def pseudonym_secret(self) -> str:
        rows = await self._fetch("SELECT secret FROM deployment_secret WHERE id = 1")
        if rows:
            return str(rows[0][0])
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO deployment_secret (id, secret) VALUES (1, $1) "
                "ON CONFLICT (id) DO NOTHING",
                new_secret(),
            )
            rows = await conn.fetch("SELECT secret FROM deployment_secret WHERE id = 1")
        return str(rows[0][0])

    async def count_hit(self, key: str, window: float, now: float) -> int:
        start = now - now % window
        async with self._connection() as conn:
            if now >= self._next_sweep:
                # Ended windows, swept at most once a window (this is on the path of every
                # message). Best effort: it skips rows another process holds, so it never
                # waits and cannot deadlock with a concurrent hit.
                self._next_sweep = now + window
                await conn.execute(
                    "DELETE FROM rate_hits WHERE (key, starts_at) IN (SELECT key, starts_at "
                    "FROM rate_hits WHERE ends_at <= $1 FOR UPDATE SKIP LOCKED)",
                    float(now),
                )
            rows = await conn.fetch(
                "INSERT INTO rate_hits (key, starts_at, ends_at, count) VALUES ($1, $2, $3, 1) "
                "ON CONFLICT (key, starts_at) DO UPDATE SET count = rate_hits.count + 1 "
                "RETURNING count",
                key,
                float(start),
                float(start + window),
            )
        return int(rows[0][0])

    # --- memberships learned from use ------------------------------------------------------
    async def remember_membership(self, tag: str, community: CommunityId, now: float) -> None:
        await self._write(
            "INSERT INTO memberships (tag, platform, community, seen_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (tag, community) DO UPDATE SET "
            "seen_at = GREATEST(memberships.seen_at, excluded.seen_at)",
            tag,
            community.platform,
            community.key,
            float(now),
        )

    async def known_communities(self, tag: str, platform: str) -> list[CommunityId]:
        rows = await self._fetch(
            "SELECT community FROM memberships WHERE tag = $1 AND platform = $2 ORDER BY community",
            tag,
            platform,
        )
        return [CommunityId.parse(r["community"]) for r in rows]

    async def purge_memberships(self, seen_before: float) -> int:
        async with self._transaction() as conn:
            return await conn.execute(
                "DELETE FROM memberships WHERE seen_at < $1", float(seen_before)
            )

    # --- community settings ---------------------------------------------------------------
    async def get_community(self, community: CommunityId) -> CommunityConfig | None:
        rows = await self._fetch(
            f"SELECT {_COMMUNITY_COLUMNS} FROM communities WHERE community = $1", community.key
        )
        return codec.community(rows[0]) if rows else None

    async def put_community(self, config: CommunityConfig) -> None:
        await self._write(
            f"INSERT INTO communities ({_COMMUNITY_COLUMNS}) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
            "ON CONFLICT (community) DO UPDATE SET platform = excluded.platform, "
            "name = excluded.name, destination = excluded.destination, "
            "mention = excluded.mention, locale = excluded.locale, "
            "blocked = excluded.blocked, updated_at = excluded.updated_at, "
            "region = excluded.region, policy_room = excluded.policy_room, "
            "escalate_to = excluded.escalate_to",
            config.community.key,
            config.community.platform,
            config.name,
            config.destination,
            config.mention,
            config.locale,
            codec.dumps(list(config.blocked)),
            float(config.updated_at),
            config.region,
            config.policy_room,
            config.escalate_to,
        )

    async def delete_community(self, community: CommunityId) -> None:
        await self._write("DELETE FROM communities WHERE community = $1", community.key)

    async def list_communities(self, platform: str) -> list[CommunityConfig]:
        rows = await self._fetch(
            f"SELECT {_COMMUNITY_COLUMNS} FROM communities WHERE platform = $1 ORDER BY community",
            platform,
        )
        return [codec.community(r) for r in rows]

    # --- audit log ------------------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        await self._write(_INSERT_AUDIT, *_audit_row(entry))

    async def audit_log(self, reference: str | None = None) -> list[AuditEntry]:
        if reference is None:
            rows = await self._fetch(f"SELECT {_AUDIT_COLUMNS} FROM audit_log ORDER BY id")
        else:
            rows = await self._fetch(
                f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE reference = $1 ORDER BY id",
                reference,
            )
        return [codec.audit_entry(r) for r in rows]

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


# --- row mapping -----------------------------------------------------------------------------
def _report_row(r: Report) -> tuple[Any, ...]:
    return (
        r.reference,
        r.community.key,
        r.community_name,
        codec.key(r.reporter),
        bool(r.reveal),
        str(r.category),
        r.offender,
        r.details,
        codec.dumps(list(r.evidence)),
        r.locale,
        ReportStatus(r.status).value,
        float(r.created_at),
        float(r.updated_at),
        r.handled_by,
        r.reporter_tag,
        ",".join(r.urgent),
    )


def _outbox_row(i: OutboxItem) -> tuple[Any, ...]:
    return (
        i.key,
        OutboxKind(i.kind).value,
        i.reference,
        i.community.key,
        codec.dumps(dict(i.payload)),
        float(i.created_at),
        float(i.next_try),
        i.attempts,
        None if i.delivered_at is None else float(i.delivered_at),
        bool(i.parked),
        i.last_error,
    )


def _audit_row(e: AuditEntry) -> tuple[Any, ...]:
    return (float(e.at), e.actor, e.action, e.reference, codec.key(e.community))


_conforms: type[Store] = PostgresStore

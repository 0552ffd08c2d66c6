"""The one SQL store: every query of the Store contract, written once for SQLite and PostgreSQL.

A backend (``safebot.store.sqlite``, ``safebot.store.postgres``) supplies a ``Database``: how
to run a statement, a transaction and a migration there, and the few words of SQL that differ
(its ``Dialect``). Everything else, from the row writers to the claim of due outbox items,
lives here, so the two databases cannot drift apart. Statements use ``?`` placeholders; the
PostgreSQL backend numbers them.

Values are bound as Python values: booleans as ``bool`` (SQLite stores 1/0), times as
``float``. Each backend makes text storable (lone surrogates, NUL) in one place.

Nothing here logs message text or report contents.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any, Protocol, Self

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

__all__ = ["Connection", "Database", "Dialect", "SqlStore"]

Row = Any  # sqlite3.Row or asyncpg.Record: both index by position and by column name
Params = Sequence[Any]


@dataclass(frozen=True, slots=True)
class Dialect:
    """The words of SQL that differ between the databases. ``types`` fill the migrations'
    ``{time}``, ``{flag}``, ``{key}``, ``{row_id}``, ``{serial}`` and ``{not_parked}``."""

    name: str
    types: dict[str, str]
    lock_rows: str  # after a SELECT whose rows the transaction goes on to change
    skip_locked: str  # after a SELECT that claims rows other workers may be claiming

    @property
    def not_parked(self) -> str:
        return self.types["not_parked"]


class Connection(Protocol):
    """One connection, inside a transaction or in autocommit mode."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the changed row count."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None: ...

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]: ...


class Database(Protocol):
    dialect: Dialect

    def storable(self, text: str) -> str:
        """``text`` as this database keeps it (what every bound str becomes)."""
        ...

    async def fetch(self, sql: str, params: Params = ()) -> list[Row]:
        """One query in its own (autocommit) transaction."""
        ...

    async def write(self, sql: str, params: Params = ()) -> int:
        """One statement in its own (autocommit) transaction; returns the changed row count."""
        ...

    def transaction(
        self, *, durable: bool = False, scrub: bool = False
    ) -> AbstractAsyncContextManager[Connection]:
        """A transaction, rolled back if the body raises or is cancelled. ``durable``: what it
        writes is something a person was told has happened. ``scrub``: it deletes personal
        data, so copies the database keeps elsewhere (SQLite's WAL) are emptied after it."""
        ...

    async def close(self) -> None: ...


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
    "posted",
)
_COMMUNITY_FIELDS = (
    "community",
    "platform",
    "name",
    "destination",
    "mention",
    "locale",
    "blocked",
    "updated_at",
    "region",
    "policy_room",
    "escalate_to",
)
_AUDIT_FIELDS = ("at", "actor", "action", "reference", "community")


def _columns(fields: Sequence[str]) -> str:
    return ", ".join(fields)


def _marks(fields: Sequence[str]) -> str:
    return ", ".join("?" for _ in fields)


_REPORT_COLUMNS = _columns(_REPORT_FIELDS)
_OUTBOX_COLUMNS = _columns(_OUTBOX_FIELDS)
_COMMUNITY_COLUMNS = _columns(_COMMUNITY_FIELDS)
_AUDIT_COLUMNS = _columns(_AUDIT_FIELDS)

_INSERT_REPORT = (
    f"INSERT INTO reports ({_REPORT_COLUMNS}) VALUES ({_marks(_REPORT_FIELDS)}) "
    "ON CONFLICT (reference) DO NOTHING"
)
_UPDATE_REPORT = (
    "UPDATE reports SET "
    + ", ".join(f"{name} = ?" for name in _REPORT_FIELDS[1:])
    + " WHERE reference = ?"
)
_INSERT_OUTBOX = (
    f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES ({_marks(_OUTBOX_FIELDS)}) "
    "ON CONFLICT (key) DO NOTHING"
)
_UPSERT_COMMUNITY = (
    f"INSERT INTO communities ({_COMMUNITY_COLUMNS}) VALUES ({_marks(_COMMUNITY_FIELDS)}) "
    "ON CONFLICT (community) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _COMMUNITY_FIELDS[1:])
)
_INSERT_AUDIT = f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES ({_marks(_AUDIT_FIELDS)})"
_ADD_HITS = (
    "INSERT INTO rate_hits (key, starts_at, ends_at, count) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key, starts_at) DO UPDATE SET count = rate_hits.count + excluded.count"
)


_HITS_AT_ONCE = 500  # windows' hits in one statement, at most (4 values each)


class _Hit:
    """One count_hit call waiting for its group's statement."""

    __slots__ = ("count", "ends_at", "key", "now", "starts_at")

    def __init__(self, key: str, starts_at: float, ends_at: float, now: float) -> None:
        self.key, self.starts_at, self.ends_at, self.now = key, starts_at, ends_at, now
        self.count: asyncio.Future[int] = asyncio.get_running_loop().create_future()


class SqlStore:
    """The Store on a ``Database``. Backends add a classmethod ``open``."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending = f"delivered_at IS NULL AND {db.dialect.not_parked}"
        # One statement, so one transaction: the rows are locked (on PostgreSQL, skipping
        # those another worker is claiming right now) and moved past the lease before anyone
        # else sees them as due. A PostgreSQL worker whose snapshot predates another's commit
        # re-checks ``next_try`` on the locked row (READ COMMITTED re-evaluation) and drops it,
        # so a committed claim is never taken twice; SQLite runs one writer at a time.
        self._claim = (
            "WITH due AS ("
            f"SELECT key FROM outbox WHERE {self._pending} AND next_try <= ? "
            f"ORDER BY created_at, key LIMIT ?{db.dialect.skip_locked}) "
            "UPDATE outbox SET next_try = ? FROM due WHERE outbox.key = due.key "
            "RETURNING " + ", ".join(f"outbox.{name}" for name in _OUTBOX_FIELDS)
        )
        self._next_sweep = 0.0  # rate_hits: when ended windows are next deleted
        self._hits: list[_Hit] = []  # hits waiting for the next group (count_hit)
        self._counting: asyncio.Future[None] | None = None

    @classmethod
    async def on(cls, db: Database) -> Self:
        """The store on an opened, migrated database, with any person keys from before
        pseudonyms converted; the database is closed if that fails."""
        store = cls(db)
        try:
            await store._pseudonymize_plain_keys()
        except BaseException:
            await store.close()
            raise
        return store

    @property
    def database(self) -> Database:
        return self._db

    async def _pseudonymize_plain_keys(self) -> None:
        """Person keys stored before pseudonyms existed (report limits, block lists, rate
        counters) become pseudonyms, and the plain ids are overwritten. Finds nothing to do
        on every later start; two processes starting at once take turns on the row locks and
        the second changes nothing."""
        secret = await self.pseudonym_secret()
        if not await codec.plain_keys_left(self._db.fetch, secret):
            return  # the usual case: a read-only check, no write on every start
        lock = self._db.dialect.lock_rows
        async with self._db.transaction(durable=True, scrub=True) as conn:
            reporters = await conn.fetch(
                "SELECT DISTINCT reporter FROM reports "
                "WHERE reporter IS NOT NULL AND reporter_tag IS NULL"
            )
            await conn.executemany(
                "UPDATE reports SET reporter_tag = ? WHERE reporter = ? AND reporter_tag IS NULL",
                [(pseudonymize_key(secret, r[0]), r[0]) for r in reporters],
            )
            for row in await conn.fetch(f"SELECT community, blocked FROM communities{lock}"):
                blocked = tuple(json.loads(row["blocked"]))
                tagged = pseudonymize_blocked(secret, blocked)
                if tagged != blocked:
                    await conn.execute(
                        "UPDATE communities SET blocked = ? WHERE community = ?",
                        (codec.dumps(list(tagged)), row["community"]),
                    )
            for row in await conn.fetch(
                f"SELECT key, starts_at, ends_at, count FROM rate_hits{lock}"
            ):
                tagged_key = pseudonymize_counter(secret, row["key"])
                if tagged_key == row["key"]:
                    continue
                await conn.execute(
                    "DELETE FROM rate_hits WHERE key = ? AND starts_at = ?",
                    (row["key"], row["starts_at"]),
                )
                await conn.execute(
                    _ADD_HITS, (tagged_key, row["starts_at"], row["ends_at"], row["count"])
                )

    # --- sessions -------------------------------------------------------------------------
    async def load_session(self, person: PersonId) -> Session | None:
        rows = await self._db.fetch(
            "SELECT state, version FROM sessions WHERE person = ?", (person.key,)
        )
        if not rows:
            return None
        return Session.from_json(person, rows[0]["state"], int(rows[0]["version"]))

    async def save_session(self, session: Session) -> Session:
        state, person, at = session.to_json(), session.person.key, float(session.updated_at)
        if session.version == 0:
            changed = await self._db.write(
                "INSERT INTO sessions (person, state, version, updated_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (person) DO NOTHING",
                (person, state, at),
            )
        else:
            changed = await self._db.write(
                "UPDATE sessions SET state = ?, version = version + 1, updated_at = ? "
                "WHERE person = ? AND version = ?",
                (state, at, person, session.version),
            )
        if changed != 1:
            raise VersionConflict  # no person id in the message: callers may log it
        return session.evolve(version=session.version + 1)

    async def delete_session(self, person: PersonId) -> None:
        await self._db.write("DELETE FROM sessions WHERE person = ?", (person.key,))

    # --- reports + outbox -----------------------------------------------------------------
    async def add_report(self, report: Report, outbox: Sequence[OutboxItem]) -> None:
        row, items = _report_row(report), [_outbox_row(i) for i in outbox]
        async with self._db.transaction(durable=True) as conn:
            if await conn.execute(_INSERT_REPORT, row) != 1:
                raise DuplicateReference(report.reference)
            await conn.executemany(_INSERT_OUTBOX, items)

    async def get_report(self, reference: str) -> Report | None:
        rows = await self._db.fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reference = ?", (reference,)
        )
        return codec.report(rows[0]) if rows else None

    async def update_report(
        self, report: Report, outbox: Sequence[OutboxItem], audit: AuditEntry | None
    ) -> None:
        """Raises KeyError (writing nothing) if the report does not exist (e.g. purged)."""
        row, items = _report_row(report), [_outbox_row(i) for i in outbox]
        async with self._db.transaction(durable=True) as conn:
            if await conn.execute(_UPDATE_REPORT, (*row[1:], row[0])) != 1:
                raise KeyError(report.reference)
            await conn.executemany(_INSERT_OUTBOX, items)
            if audit is not None:
                await conn.execute(_INSERT_AUDIT, _audit_row(audit))

    async def reports_for_community(self, community: CommunityId) -> list[Report]:
        rows = await self._db.fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE community = ? "
            "ORDER BY created_at, reference",
            (community.key,),
        )
        return [codec.report(r) for r in rows]

    async def count_reports(self, community: CommunityId, status: ReportStatus) -> int:
        rows = await self._db.fetch(
            "SELECT COUNT(*) AS n FROM reports WHERE community = ? AND status = ?",
            (community.key, status.value),
        )
        return int(rows[0]["n"])

    async def add_case_note(self, note: CaseNote, audit: AuditEntry) -> None:
        async with self._db.transaction(durable=True) as conn:
            inserted = await conn.execute(
                "INSERT INTO case_notes (reference, at, author, text) "
                "SELECT reference, ?, ?, ? FROM reports WHERE reference = ?",
                (float(note.at), note.author, note.text, note.reference),
            )
            if inserted != 1:
                raise KeyError(note.reference)
            await conn.execute(_INSERT_AUDIT, _audit_row(audit))

    async def case_notes(self, reference: str) -> list[CaseNote]:
        rows = await self._db.fetch(
            "SELECT reference, at, author, text FROM case_notes WHERE reference = ? ORDER BY id",
            (reference,),
        )
        return [CaseNote(r[0], float(r[1]), r[2], r[3]) for r in rows]

    async def reports_of(self, person: PersonId, limit: int) -> list[Report]:
        rows = await self._db.fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reporter = ? "
            "ORDER BY created_at DESC, reference DESC LIMIT ?",
            (person.key, limit),
        )
        return [codec.report(r) for r in rows]

    async def forget_person(self, person: PersonId, now: float) -> int:
        # (a platform id may hold lone surrogates: their pseudonym is that of the stored text)
        tag = pseudonym(await self.pseudonym_secret(), replace(person, id=valid_utf8(person.id)))
        async with self._db.transaction(durable=True, scrub=True) as conn:
            await conn.execute("DELETE FROM sessions WHERE person = ?", (person.key,))
            await conn.execute("DELETE FROM memberships WHERE tag = ?", (tag,))
            await conn.execute(
                "DELETE FROM outbox WHERE kind = ? AND delivered_at IS NULL AND reference IN "
                "(SELECT reference FROM reports WHERE reporter = ?)",
                (OutboxKind.STATUS.value, person.key),
            )
            named = await conn.fetch(
                "SELECT reference, community FROM reports WHERE reporter = ? AND reveal = ?",
                (person.key, True),
            )
            removals = [
                name_removal(r["reference"], CommunityId.parse(r["community"]), float(now))
                for r in named
            ]
            await conn.executemany(_INSERT_OUTBOX, [_outbox_row(i) for i in removals])
            return await conn.execute(
                "UPDATE reports SET reporter = NULL WHERE reporter = ?", (person.key,)
            )

    async def purge_reports(self, created_before: float) -> int:
        cutoff = (float(created_before),)
        async with self._db.transaction(scrub=True) as conn:
            for table in ("outbox", "case_notes"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE reference IN "
                    "(SELECT reference FROM reports WHERE created_at < ?)",
                    cutoff,
                )
            return await conn.execute("DELETE FROM reports WHERE created_at < ?", cutoff)

    async def purge_sessions(self, updated_before: float, now: float) -> int:
        async with self._db.transaction(scrub=True) as conn:
            count = await conn.execute(
                "DELETE FROM sessions WHERE updated_at < ?", (float(updated_before),)
            )
            await conn.execute("DELETE FROM rate_hits WHERE ends_at <= ?", (float(now),))
            return count

    # --- outbox ---------------------------------------------------------------------------
    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        if not items:
            return
        async with self._db.transaction() as conn:
            await conn.executemany(_INSERT_OUTBOX, [_outbox_row(i) for i in items])

    async def claim_due(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        async with self._db.transaction() as conn:
            rows = await conn.fetch(self._claim, (float(now), limit, float(now + lease)))
        # RETURNING comes in no particular order; the contract is oldest first.
        return sorted((codec.outbox_item(r) for r in rows), key=lambda i: (i.created_at, i.key))

    async def mark_delivered(self, key: str, now: float, posted: str | None = None) -> None:
        await self._db.write(
            "UPDATE outbox SET delivered_at = ?, posted = ? WHERE key = ?",
            (float(now), posted, key),
        )

    async def mark_retry(self, key: str, attempts: int, next_try: float, error: str) -> None:
        await self._db.write(
            "UPDATE outbox SET attempts = ?, next_try = ?, last_error = ? WHERE key = ?",
            (attempts, float(next_try), error, key),
        )

    async def mark_parked(self, key: str, attempts: int, error: str) -> None:
        await self._db.write(
            "UPDATE outbox SET attempts = ?, parked = ?, last_error = ? WHERE key = ?",
            (attempts, True, error, key),
        )

    async def get_outbox_item(self, key: str) -> OutboxItem | None:
        rows = await self._db.fetch(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key = ?", (key,))
        return codec.outbox_item(rows[0]) if rows else None

    async def backlog(self, community: CommunityId | None = None) -> Backlog:
        not_parked = self._db.dialect.not_parked
        sql = (
            f"SELECT COUNT(*) FILTER (WHERE {not_parked}), "
            f"COUNT(*) FILTER (WHERE NOT ({not_parked})), "
            f"MIN(created_at) FILTER (WHERE {not_parked}) FROM outbox "
            "WHERE delivered_at IS NULL AND kind <> ?"  # reminders wait on purpose
        )
        params: tuple[str, ...] = (OutboxKind.ESCALATION.value,)
        if community is not None:
            sql, params = sql + " AND community = ?", (*params, community.key)
        waiting, parked, oldest = (await self._db.fetch(sql, params))[0]
        return Backlog(int(waiting), int(parked), None if oldest is None else float(oldest))

    # --- rate limits ----------------------------------------------------------------------
    async def reports_since(self, reporter_tag: str, since: float) -> int:
        rows = await self._db.fetch(
            "SELECT COUNT(*) FROM reports WHERE reporter_tag = ? AND created_at >= ?",
            (reporter_tag, float(since)),
        )
        return int(rows[0][0])

    async def pseudonym_secret(self) -> str:
        select = "SELECT secret FROM deployment_secret WHERE id = 1"
        rows = await self._db.fetch(select)
        if not rows:
            async with self._db.transaction(durable=True) as conn:
                await conn.execute(
                    "INSERT INTO deployment_secret (id, secret) VALUES (1, ?) "
                    "ON CONFLICT (id) DO NOTHING",
                    (new_secret(),),
                )
                rows = await conn.fetch(select)
        return str(rows[0][0])

    async def count_hit(self, key: str, window: float, now: float) -> int:
        # On the path of every message, so hits are counted in groups: the hits that arrive
        # while one group's statement is on its way go together in the next one, a single
        # multi-row upsert that returns each window's count (as a database groups commits).
        # Each caller still gets the count with its own hit, in the order of the calls.
        start = now - now % window
        # (keyed as the database keeps it, so the counts coming back find their hit)
        hit = _Hit(self._db.storable(key), float(start), float(start + window), float(now))
        self._hits.append(hit)
        if self._counting is None or self._counting.done():
            self._counting = asyncio.ensure_future(self._count_hits())
        return await hit.count

    async def _count_hits(self) -> None:
        while self._hits:
            group, self._hits = self._hits[:_HITS_AT_ONCE], self._hits[_HITS_AT_ONCE:]
            try:
                counts = await self._add_hits(group)
                for hit in reversed(group):  # the latest hit of a window gets its full count
                    window = (hit.key, hit.starts_at)
                    if not hit.count.done():
                        hit.count.set_result(counts[window])
                    counts[window] -= 1
            except BaseException as exc:  # no caller is ever left waiting
                for hit in group:
                    if not hit.count.done():
                        hit.count.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise

    async def _add_hits(self, group: list[_Hit]) -> dict[tuple[str, float], int]:
        now = max(hit.now for hit in group)
        if now >= self._next_sweep:
            # Ended windows, swept at most once a window. On PostgreSQL the sweep skips rows
            # another process holds, so it never waits and cannot deadlock with a hit.
            self._next_sweep = now + min(hit.ends_at - hit.starts_at for hit in group)
            await self._db.write(
                "DELETE FROM rate_hits WHERE (key, starts_at) IN (SELECT key, starts_at "
                f"FROM rate_hits WHERE ends_at <= ?{self._db.dialect.skip_locked})",
                (now,),
            )
        added: dict[tuple[str, float], list[Any]] = {}
        for hit in group:
            row = added.setdefault(
                (hit.key, hit.starts_at), [hit.key, hit.starts_at, hit.ends_at, 0]
            )
            row[3] += 1
        rows = await self._db.fetch(
            "INSERT INTO rate_hits (key, starts_at, ends_at, count) VALUES "
            + ", ".join("(?, ?, ?, ?)" for _ in added)
            + " ON CONFLICT (key, starts_at) DO UPDATE SET count = rate_hits.count + "
            "excluded.count RETURNING key, starts_at, count",
            [value for row in added.values() for value in row],
        )
        return {(r[0], float(r[1])): int(r[2]) for r in rows}

    # --- memberships learned from use ------------------------------------------------------
    async def remember_membership(self, tag: str, community: CommunityId, now: float) -> None:
        await self._db.write(
            "INSERT INTO memberships (tag, platform, community, seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tag, community) DO UPDATE SET seen_at = CASE "
            "WHEN excluded.seen_at > memberships.seen_at THEN excluded.seen_at "
            "ELSE memberships.seen_at END",
            (tag, community.platform, community.key, float(now)),
        )

    async def known_communities(self, tag: str, platform: str) -> list[CommunityId]:
        rows = await self._db.fetch(
            "SELECT community FROM memberships WHERE tag = ? AND platform = ? ORDER BY community",
            (tag, platform),
        )
        return [CommunityId.parse(r["community"]) for r in rows]

    async def purge_memberships(self, seen_before: float) -> int:
        async with self._db.transaction(scrub=True) as conn:
            return await conn.execute(
                "DELETE FROM memberships WHERE seen_at < ?", (float(seen_before),)
            )

    # --- community settings ---------------------------------------------------------------
    async def get_community(self, community: CommunityId) -> CommunityConfig | None:
        rows = await self._db.fetch(
            f"SELECT {_COMMUNITY_COLUMNS} FROM communities WHERE community = ?", (community.key,)
        )
        return codec.community(rows[0]) if rows else None

    async def put_community(self, config: CommunityConfig) -> None:
        async with self._db.transaction(durable=True) as conn:
            await conn.execute(_UPSERT_COMMUNITY, _community_row(config))

    async def delete_community(self, community: CommunityId) -> None:
        await self._db.write("DELETE FROM communities WHERE community = ?", (community.key,))

    async def list_communities(self, platform: str) -> list[CommunityConfig]:
        rows = await self._db.fetch(
            f"SELECT {_COMMUNITY_COLUMNS} FROM communities WHERE platform = ? ORDER BY community",
            (platform,),
        )
        return [codec.community(r) for r in rows]

    # --- audit log ------------------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        await self._db.write(_INSERT_AUDIT, _audit_row(entry))

    async def audit_log(self, reference: str | None = None) -> list[AuditEntry]:
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit_log"
        if reference is None:
            rows = await self._db.fetch(sql + " ORDER BY id")
        else:
            rows = await self._db.fetch(sql + " WHERE reference = ? ORDER BY id", (reference,))
        return [codec.audit_entry(r) for r in rows]

    async def close(self) -> None:
        await self._db.close()


# --- row writers -----------------------------------------------------------------------------
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
        i.posted,
    )


def _community_row(c: CommunityConfig) -> tuple[Any, ...]:
    return (
        c.community.key,
        c.community.platform,
        c.name,
        c.destination,
        c.mention,
        c.locale,
        codec.dumps(list(c.blocked)),
        float(c.updated_at),
        c.region,
        c.policy_room,
        c.escalate_to,
    )


def _audit_row(e: AuditEntry) -> tuple[Any, ...]:
    return (float(e.at), e.actor, e.action, e.reference, codec.key(e.community))


_conforms: type[Store] = SqlStore

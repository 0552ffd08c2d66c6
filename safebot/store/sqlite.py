"""SQLite Store on one aiosqlite connection.

Every statement goes through ``self._lock``: the connection is shared, so without the lock a
coroutine could run a statement inside another coroutine's open transaction (and see or
commit its half-done work). Multi-statement operations use ``BEGIN IMMEDIATE`` so the write
lock is taken up front and a concurrent process gets ``busy_timeout`` instead of a deadlock.

Nothing here logs message text or report contents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiosqlite
from aiosqlite.context import Result

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
from safebot.store.migrations import migrate

__all__ = ["SqliteStore"]

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

_MEMORY = ":memory:"
_BUSY_TIMEOUT_MS = 5000

_REPORT_COLUMNS = (
    "reference, community, community_name, reporter, reveal, category, offender, details, "
    "evidence, locale, status, created_at, updated_at, handled_by, reporter_tag, urgent"
)
_OUTBOX_COLUMNS = (
    "key, kind, reference, community, payload, created_at, next_try, attempts, delivered_at, "
    "parked, last_error"
)
_COMMUNITY_COLUMNS = (
    "community, platform, name, destination, mention, locale, blocked, updated_at, region, "
    "policy_room, escalate_to"
)
_AUDIT_COLUMNS = "at, actor, action, reference, community"

_INSERT_OUTBOX = (
    f"INSERT INTO outbox ({_OUTBOX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO NOTHING"
)
_INSERT_AUDIT = f"INSERT INTO audit_log ({_AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
_PENDING = "delivered_at IS NULL AND parked = 0"

Params = Sequence[Any]


def _bind(params: Params) -> tuple[Any, ...]:
    return tuple(valid_utf8(v) if isinstance(v, str) else v for v in params)


class _Connection:
    """The aiosqlite connection with every text parameter made storable: ids, names and
    moderator handles come from platforms and may hold lone surrogates, which SQLite (UTF-8
    only) refuses. One place, so no statement can forget it."""

    __slots__ = ("raw",)

    def __init__(self, raw: aiosqlite.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Params = ()) -> Result[aiosqlite.Cursor]:
        """Awaitable, and usable as ``async with`` (like aiosqlite's)."""
        return self.raw.execute(sql, _bind(params))

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        await self.raw.executemany(sql, [_bind(r) for r in rows])

    async def execute_fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self.raw.execute_fetchall(sql, _bind(params)))


class SqliteStore:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        """Use ``await SqliteStore.open(path)``; this expects a configured, migrated connection."""
        self._conn: _Connection | None = _Connection(conn)
        self._lock = asyncio.Lock()
        self._next_sweep = 0.0  # rate_hits: when ended windows are next deleted

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        """Open (creating with mode 0600 if needed) and migrate the database at ``path``."""
        if path != _MEMORY:
            await asyncio.to_thread(_create_private_file, Path(path))
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = aiosqlite.Row
            await _configure(conn, path)
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        if path != _MEMORY:
            await asyncio.to_thread(_tighten_sidecars, Path(path))
        store = cls(conn)
        try:
            await store._pseudonymize_plain_keys()
        except BaseException:
            await store.close()
            raise
        return store

    async def _pseudonymize_plain_keys(self) -> None:
        """Person keys stored before pseudonyms existed (report limits, block lists, rate
        counters) become pseudonyms, and the plain ids are overwritten. Finds nothing to do
        on every later start."""
        secret = await self.pseudonym_secret()
        if not await codec.plain_keys_left(self._fetch, secret):
            return  # the usual case: a read-only check, no write on every start
        async with self._transaction(durable=True, scrub_wal=True) as conn:
            reporters = await conn.execute_fetchall(
                "SELECT DISTINCT reporter FROM reports "
                "WHERE reporter IS NOT NULL AND reporter_tag IS NULL"
            )
            await conn.executemany(
                "UPDATE reports SET reporter_tag = ? WHERE reporter = ? AND reporter_tag IS NULL",
                [(pseudonymize_key(secret, r[0]), r[0]) for r in reporters],
            )
            for row in await conn.execute_fetchall("SELECT community, blocked FROM communities"):
                blocked = tuple(json.loads(row["blocked"]))
                tagged = pseudonymize_blocked(secret, blocked)
                if tagged != blocked:
                    await conn.execute(
                        "UPDATE communities SET blocked = ? WHERE community = ?",
                        (codec.dumps(list(tagged)), row["community"]),
                    )
            for row in await conn.execute_fetchall(
                "SELECT key, starts_at, ends_at, count FROM rate_hits"
            ):
                tagged_key = pseudonymize_counter(secret, row["key"])
                if tagged_key == row["key"]:
                    continue
                await conn.execute(
                    "DELETE FROM rate_hits WHERE key = ? AND starts_at = ?",
                    (row["key"], row["starts_at"]),
                )
                await conn.execute(
                    "INSERT INTO rate_hits (key, starts_at, ends_at, count) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (key, starts_at) DO UPDATE SET count = count + excluded.count",
                    (tagged_key, row["starts_at"], row["ends_at"], row["count"]),
                )

    # --- plumbing -------------------------------------------------------------------------
    def _connection(self) -> _Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn

    async def _fetch(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._lock:
            return list(await self._connection().execute_fetchall(sql, params))

    async def _write(self, sql: str, params: Params = ()) -> int:
        """One statement in its own (autocommit) transaction. Returns the changed row count."""
        async with self._lock, self._connection().execute(sql, params) as cursor:
            return cursor.rowcount

    @contextlib.asynccontextmanager
    async def _transaction(
        self, *, durable: bool = False, scrub_wal: bool = False
    ) -> AsyncIterator[_Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``. ``durable`` commits with ``synchronous=FULL``:
        use it for whatever someone was told has happened (a report receipt, a moderator
        action, "forget me", a community's configuration)."""
        async with self._lock:
            conn = self._connection()
            if durable:
                await conn.execute("PRAGMA synchronous = FULL")
            try:
                await conn.execute("BEGIN IMMEDIATE")
                yield conn
                await conn.execute("COMMIT")
            except BaseException:
                # The worker thread runs statements in order, so this ROLLBACK comes after
                # everything this transaction queued (BEGIN included), even when we were
                # cancelled mid-await: the lock is never released with a transaction open.
                with contextlib.suppress(sqlite3.OperationalError):
                    await conn.execute("ROLLBACK")
                raise
            finally:
                if durable:
                    await conn.execute("PRAGMA synchronous = NORMAL")
            if scrub_wal:
                await _truncate_wal(conn)

    # --- sessions -------------------------------------------------------------------------
    async def load_session(self, person: PersonId) -> Session | None:
        rows = await self._fetch(
            "SELECT state, version FROM sessions WHERE person = ?", (person.key,)
        )
        if not rows:
            return None
        return Session.from_json(person, rows[0]["state"], int(rows[0]["version"]))

    async def save_session(self, session: Session) -> Session:
        state, person = session.to_json(), session.person.key
        if session.version == 0:
            changed = await self._write(
                "INSERT INTO sessions (person, state, version, updated_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (person) DO NOTHING",
                (person, state, session.updated_at),
            )
        else:
            changed = await self._write(
                "UPDATE sessions SET state = ?, version = version + 1, updated_at = ? "
                "WHERE person = ? AND version = ?",
                (state, session.updated_at, person, session.version),
            )
        if changed != 1:
            raise VersionConflict  # no person id in the message: callers may log it
        return session.evolve(version=session.version + 1)

    async def delete_session(self, person: PersonId) -> None:
        await self._write("DELETE FROM sessions WHERE person = ?", (person.key,))

    # --- reports + outbox -----------------------------------------------------------------
    async def add_report(self, report: Report, outbox: Sequence[OutboxItem]) -> None:
        row, items = _report_row(report), [_outbox_row(i) for i in outbox]
        async with self._transaction(durable=True) as conn:
            cursor = await conn.execute(
                f"INSERT INTO reports ({_REPORT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (reference) DO NOTHING",
                row,
            )
            if cursor.rowcount != 1:
                raise DuplicateReference(report.reference)
            await conn.executemany(_INSERT_OUTBOX, items)

    async def get_report(self, reference: str) -> Report | None:
        rows = await self._fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reference = ?", (reference,)
        )
        return codec.report(rows[0]) if rows else None

    async def update_report(
        self, report: Report, outbox: Sequence[OutboxItem], audit: AuditEntry | None
    ) -> None:
        """Raises KeyError (writing nothing) if the report does not exist (e.g. purged)."""
        row, items = _report_row(report), [_outbox_row(i) for i in outbox]
        async with self._transaction(durable=True) as conn:
            cursor = await conn.execute(
                "UPDATE reports SET community = ?, community_name = ?, reporter = ?, "
                "reveal = ?, category = ?, offender = ?, details = ?, evidence = ?, "
                "locale = ?, status = ?, created_at = ?, updated_at = ?, handled_by = ?, "
                "reporter_tag = ?, urgent = ? "
                "WHERE reference = ?",
                (*row[1:], row[0]),
            )
            if cursor.rowcount != 1:
                raise KeyError(report.reference)
            await conn.executemany(_INSERT_OUTBOX, items)
            if audit is not None:
                await conn.execute(_INSERT_AUDIT, _audit_row(audit))

    async def reports_for_community(self, community: CommunityId) -> list[Report]:
        rows = await self._fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE community = ? "
            "ORDER BY created_at, reference",
            (community.key,),
        )
        return [codec.report(r) for r in rows]

    async def add_case_note(self, note: CaseNote, audit: AuditEntry) -> None:
        async with self._transaction(durable=True) as conn:
            cursor = await conn.execute(
                "INSERT INTO case_notes (reference, at, author, text) "
                "SELECT reference, ?, ?, ? FROM reports WHERE reference = ?",
                _bind((note.at, note.author, note.text, note.reference)),
            )
            if cursor.rowcount != 1:
                raise KeyError(note.reference)
            await conn.execute(_INSERT_AUDIT, _audit_row(audit))

    async def case_notes(self, reference: str) -> list[CaseNote]:
        rows = await self._fetch(
            "SELECT reference, at, author, text FROM case_notes WHERE reference = ? ORDER BY id",
            (reference,),
        )
        return [CaseNote(r[0], float(r[1]), r[2], r[3]) for r in rows]

    async def reports_of(self, person: PersonId, limit: int) -> list[Report]:
        rows = await self._fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE reporter = ? "
            "ORDER BY created_at DESC, reference DESC LIMIT ?",
            (person.key, limit),
        )
        return [codec.report(r) for r in rows]

    async def forget_person(self, person: PersonId, now: float) -> int:
        # (a platform id may hold lone surrogates: their pseudonym is that of the stored text)
        tag = pseudonym(await self.pseudonym_secret(), replace(person, id=valid_utf8(person.id)))
        async with self._transaction(durable=True, scrub_wal=True) as conn:
            await conn.execute("DELETE FROM sessions WHERE person = ?", (person.key,))
            await conn.execute("DELETE FROM memberships WHERE tag = ?", (tag,))
            await conn.execute(
                "DELETE FROM outbox WHERE kind = ? AND delivered_at IS NULL AND reference IN "
                "(SELECT reference FROM reports WHERE reporter = ?)",
                (OutboxKind.STATUS.value, person.key),
            )
            named = await conn.execute_fetchall(
                "SELECT reference, community FROM reports WHERE reporter = ? AND reveal <> 0",
                (person.key,),
            )
            removals = [
                name_removal(r["reference"], CommunityId.parse(r["community"]), now) for r in named
            ]
            await conn.executemany(_INSERT_OUTBOX, [_outbox_row(i) for i in removals])
            cursor = await conn.execute(
                "UPDATE reports SET reporter = NULL WHERE reporter = ?", (person.key,)
            )
            return cursor.rowcount

    async def purge_reports(self, created_before: float) -> int:
        async with self._transaction(scrub_wal=True) as conn:
            for table in ("outbox", "case_notes"):
                await conn.execute(
                    f"DELETE FROM {table} WHERE reference IN "
                    "(SELECT reference FROM reports WHERE created_at < ?)",
                    (created_before,),
                )
            cursor = await conn.execute(
                "DELETE FROM reports WHERE created_at < ?", (created_before,)
            )
            return cursor.rowcount

    async def purge_sessions(self, updated_before: float, now: float) -> int:
        async with self._transaction(scrub_wal=True) as conn:
            cursor = await conn.execute(
                "DELETE FROM sessions WHERE updated_at < ?", (updated_before,)
            )
            await conn.execute("DELETE FROM rate_hits WHERE ends_at <= ?", (now,))
            return cursor.rowcount

    # --- outbox ---------------------------------------------------------------------------
    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        rows = [_outbox_row(i) for i in items]
        async with self._transaction() as conn:
            await conn.executemany(_INSERT_OUTBOX, rows)

    async def claim_due(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        until = now + lease
        async with self._transaction() as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE {_PENDING} AND next_try <= ? "
                "ORDER BY created_at, key LIMIT ?",
                (now, limit),
            )
            claimed = [replace(codec.outbox_item(r), next_try=until) for r in rows]
            await conn.executemany(
                "UPDATE outbox SET next_try = ? WHERE key = ?",
                [(until, item.key) for item in claimed],
            )
        return claimed

    async def mark_delivered(self, key: str, now: float) -> None:
        await self._write("UPDATE outbox SET delivered_at = ? WHERE key = ?", (now, key))

    async def mark_retry(self, key: str, attempts: int, next_try: float, error: str) -> None:
        await self._write(
            "UPDATE outbox SET attempts = ?, next_try = ?, last_error = ? WHERE key = ?",
            (attempts, next_try, error, key),
        )

    async def mark_parked(self, key: str, attempts: int, error: str) -> None:
        await self._write(
            "UPDATE outbox SET attempts = ?, parked = 1, last_error = ? WHERE key = ?",
            (attempts, error, key),
        )

    async def get_outbox_item(self, key: str) -> OutboxItem | None:
        rows = await self._fetch(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key = ?", (key,))
        return codec.outbox_item(rows[0]) if rows else None

    async def backlog(self, community: CommunityId | None = None) -> Backlog:
        sql = (
            "SELECT COUNT(*) FILTER (WHERE parked = 0), COUNT(*) FILTER (WHERE parked <> 0), "
            "MIN(created_at) FILTER (WHERE parked = 0) FROM outbox WHERE delivered_at IS NULL "
            f"AND kind <> '{OutboxKind.ESCALATION.value}'"  # reminders wait on purpose
        )
        params: tuple[str, ...] = ()
        if community is not None:
            sql, params = sql + " AND community = ?", (community.key,)
        waiting, parked, oldest = (await self._fetch(sql, params))[0]
        return Backlog(int(waiting), int(parked), None if oldest is None else float(oldest))

    # --- rate limits ----------------------------------------------------------------------
    async def reports_since(self, reporter_tag: str, since: float) -> int:
        rows = await self._fetch(
            "SELECT COUNT(*) FROM reports WHERE reporter_tag = ? AND created_at >= ?",
            (reporter_tag, since),
        )
        return int(rows[0][0])

    async def pseudonym_secret(self) -> str:
        rows = await self._fetch("SELECT secret FROM deployment_secret WHERE id = 1")
        if rows:
            return str(rows[0][0])
        async with self._transaction(durable=True) as conn:
            await conn.execute(
                "INSERT INTO deployment_secret (id, secret) VALUES (1, ?) "
                "ON CONFLICT (id) DO NOTHING",
                (new_secret(),),
            )
            rows = await conn.execute_fetchall("SELECT secret FROM deployment_secret WHERE id = 1")
        return str(rows[0][0])

    async def count_hit(self, key: str, window: float, now: float) -> int:
        # On the path of every message: one autocommit statement. Ended windows are swept
        # at most once a window, not on every hit.
        if now >= self._next_sweep:
            self._next_sweep = now + window
            await self._write("DELETE FROM rate_hits WHERE ends_at <= ?", (now,))
        start = now - now % window
        rows = await self._fetch(
            "INSERT INTO rate_hits (key, starts_at, ends_at, count) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (key, starts_at) DO UPDATE SET count = count + 1 RETURNING count",
            (key, start, start + window),
        )
        return int(rows[0][0])

    # --- memberships learned from use ------------------------------------------------------
    async def remember_membership(self, tag: str, community: CommunityId, now: float) -> None:
        await self._write(
            "INSERT INTO memberships (tag, platform, community, seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (tag, community) DO UPDATE SET "
            "seen_at = MAX(memberships.seen_at, excluded.seen_at)",
            (tag, community.platform, community.key, now),
        )

    async def known_communities(self, tag: str, platform: str) -> list[CommunityId]:
        rows = await self._fetch(
            "SELECT community FROM memberships WHERE tag = ? AND platform = ? ORDER BY community",
            (tag, platform),
        )
        return [CommunityId.parse(r["community"]) for r in rows]

    async def purge_memberships(self, seen_before: float) -> int:
        async with self._transaction(scrub_wal=True) as conn:
            cursor = await conn.execute("DELETE FROM memberships WHERE seen_at < ?", (seen_before,))
            return cursor.rowcount

    # --- community settings ---------------------------------------------------------------
    async def get_community(self, community: CommunityId) -> CommunityConfig | None:
        rows = await self._fetch(
            f"SELECT {_COMMUNITY_COLUMNS} FROM communities WHERE community = ?", (community.key,)
        )
        return codec.community(rows[0]) if rows else None

    async def put_community(self, config: CommunityConfig) -> None:
        async with self._transaction(durable=True) as conn:
            await conn.execute(
                f"INSERT INTO communities ({_COMMUNITY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (community) DO UPDATE SET platform = excluded.platform, "
                "name = excluded.name, destination = excluded.destination, "
                "mention = excluded.mention, locale = excluded.locale, "
                "blocked = excluded.blocked, updated_at = excluded.updated_at, "
                "region = excluded.region, policy_room = excluded.policy_room, "
                "escalate_to = excluded.escalate_to",
                (
                    config.community.key,
                    config.community.platform,
                    config.name,
                    config.destination,
                    config.mention,
                    config.locale,
                    codec.dumps(list(config.blocked)),
                    config.updated_at,
                    config.region,
                    config.policy_room,
                    config.escalate_to,
                ),
            )

    async def delete_community(self, community: CommunityId) -> None:
        await self._write("DELETE FROM communities WHERE community = ?", (community.key,))

    async def list_communities(self, platform: str) -> list[CommunityConfig]:
        rows = await self._fetch(
            f"SELECT {_COMMUNITY_COLUMNS} FROM communities WHERE platform = ? ORDER BY community",
            (platform,),
        )
        return [codec.community(r) for r in rows]

    # --- audit log ------------------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        await self._write(_INSERT_AUDIT, _audit_row(entry))

    async def audit_log(self, reference: str | None = None) -> list[AuditEntry]:
        if reference is None:
            rows = await self._fetch(f"SELECT {_AUDIT_COLUMNS} FROM audit_log ORDER BY id")
        else:
            rows = await self._fetch(
                f"SELECT {_AUDIT_COLUMNS} FROM audit_log WHERE reference = ? ORDER BY id",
                (reference,),
            )
        return [codec.audit_entry(r) for r in rows]

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute("PRAGMA optimize")
                await conn.raw.close()


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
    # Durability, chosen per transaction. In WAL mode, NORMAL commits without an fsync: a
    # process crash loses nothing (the WAL is in the OS cache), but a power loss or OS crash
    # can undo the last commits. That is fine for conversation state and outbox bookkeeping
    # (a lost "delivered" mark means a redelivery with the same idempotency key). Whatever a
    # person or moderator was told has happened (report receipt, moderator action, "forget
    # me", community configuration) commits with FULL via _transaction(durable=True); that
    # fsync also makes every earlier NORMAL commit in the WAL durable.
    await conn.execute("PRAGMA synchronous = NORMAL")
    await conn.execute("PRAGMA foreign_keys = ON")
    # Overwrite deleted content with zeros so forgotten sessions and purged reports do not
    # linger in free space of the database file.
    await conn.execute("PRAGMA secure_delete = ON")


async def _truncate_wal(conn: _Connection) -> None:
    """Checkpoint and empty the -wal file, which still holds old copies of deleted rows."""
    rows = list(await conn.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)"))
    if rows and rows[0][0]:
        log.warning("WAL checkpoint was blocked; deleted data stays in the -wal file for now")


# --- row mapping -----------------------------------------------------------------------------
def _report_row(r: Report) -> tuple[Any, ...]:
    return (
        r.reference,
        r.community.key,
        r.community_name,
        codec.key(r.reporter),
        int(r.reveal),
        str(r.category),
        r.offender,
        r.details,
        codec.dumps(list(r.evidence)),
        r.locale,
        ReportStatus(r.status).value,
        r.created_at,
        r.updated_at,
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
        i.created_at,
        i.next_try,
        i.attempts,
        i.delivered_at,
        int(i.parked),
        i.last_error,
    )


def _audit_row(e: AuditEntry) -> tuple[Any, ...]:
    return (e.at, e.actor, e.action, e.reference, codec.key(e.community))


_conforms: type[Store] = SqliteStore

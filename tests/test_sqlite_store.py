"""SQLite-only behaviour: migrations, durability settings, file permissions, scrubbing."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path

import aiosqlite
import pytest

from safebot.model import (
    AuditEntry,
    CommunityConfig,
    CommunityId,
    Draft,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
    Session,
)
from safebot.pseudonym import pseudonym
from safebot.store.schema import LATEST_VERSION, MIGRATIONS, Migration
from safebot.store.sqlite import SqliteStore, migrate

ALICE = PersonId("discord", "1001")
GUILD = CommunityId("discord", "500")
SECRET = "ZEBRA-7f3c-do-not-keep"


def report(reference: str = "R-1", details: str = "details", created_at: float = 100.0) -> Report:
    return Report(
        reference=reference,
        community=GUILD,
        community_name="Gamers",
        reporter=ALICE,
        reveal=True,
        category="money",
        offender=None,
        details=details,
        evidence=("e1",),
        locale="en",
        status=ReportStatus.NEW,
        created_at=created_at,
        updated_at=created_at,
        reporter_tag="p:a11ce",
    )


def status_item(key: str, reference: str = "R-1", text: str = "update") -> OutboxItem:
    return OutboxItem(
        key=key,
        kind=OutboxKind.STATUS,
        reference=reference,
        community=GUILD,
        created_at=100.0,
        next_try=100.0,
        payload={"to": ALICE.key, "text": text},
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "safebot.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    opened = await SqliteStore.open(str(db_path))
    yield opened
    await opened.close()


async def raw(path: Path) -> aiosqlite.Connection:
    return await aiosqlite.connect(path, isolation_level=None)


async def tables(conn: aiosqlite.Connection) -> set[str]:
    rows = await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {r[0] for r in rows}


def sidecar(db_path: Path, suffix: str) -> Path:
    return db_path.with_name(db_path.name + suffix)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def read_files(*paths: Path) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.exists())


# --- migrations ------------------------------------------------------------------------------
async def test_migrate_empty_database_to_latest(tmp_path: Path) -> None:
    conn = await raw(tmp_path / "x.db")
    try:
        assert await migrate(conn) == LATEST_VERSION
        assert await migrate(conn) == LATEST_VERSION  # nothing left to do
        rows = await conn.execute_fetchall("SELECT version FROM schema_version ORDER BY version")
        assert [r[0] for r in rows] == [m.version for m in MIGRATIONS]
        assert {"sessions", "reports", "outbox", "communities", "audit_log"} <= await tables(conn)
    finally:
        await conn.close()


async def test_migrate_from_version_1_keeps_data(db_path: Path) -> None:
    db_path.parent.mkdir()
    conn = await raw(db_path)
    try:
        assert await migrate(conn, target=1) == 1
        assert "communities" not in await tables(conn)
        state = Session(ALICE, node="menu", locale="en", region="US", updated_at=5.0).to_json()
        await conn.execute(
            "INSERT INTO sessions (person, state, version, updated_at) VALUES (?, ?, 3, 5.0)",
            (ALICE.key, state),
        )
        await conn.execute(
            "INSERT INTO reports VALUES ('R-1', 'discord:500', 'Gamers', 'discord:1001', 1, "
            "'money', NULL, 'details', '[\"e1\"]', 'en', 'new', 100.0, 100.0, NULL)"
        )
        await conn.execute(
            "INSERT INTO outbox (key, kind, reference, community, payload, created_at, next_try) "
            "VALUES ('R-1:s', 'status', 'R-1', 'discord:500', "
            '\'{"to":"discord:1001","text":"update"}\', 100.0, 100.0)'
        )
    finally:
        await conn.close()

    store = await SqliteStore.open(str(db_path))
    try:
        loaded = await store.load_session(ALICE)
        assert loaded is not None
        assert (loaded.node, loaded.version) == ("menu", 3)
        tag = pseudonym(await store.pseudonym_secret(), ALICE)
        assert await store.get_report("R-1") == replace(report(), reporter_tag=tag)
        assert await store.get_outbox_item("R-1:s") == status_item("R-1:s")
        config = CommunityConfig(GUILD, "Gamers", "chan", blocked=("discord:6",))
        await store.put_community(config)
        assert await store.list_communities("discord") == [config]
        await store.audit(AuditEntry(at=1.0, actor="a", action="b", reference="R-1"))
        assert len(await store.audit_log("R-1")) == 1
    finally:
        await store.close()


async def test_plain_person_keys_become_pseudonyms(db_path: Path) -> None:
    """Block lists, rate counters and report limits written before pseudonyms held plain
    person ids; opening the store turns them into pseudonyms and leaves no id behind."""
    db_path.parent.mkdir()
    conn = await raw(db_path)
    try:
        assert await migrate(conn, target=3) == 3
        await conn.execute(
            "INSERT INTO reports VALUES ('R-1', 'discord:500', 'Gamers', 'discord:1001', 1, "
            "'money', NULL, 'details', '[\"e1\"]', 'en', 'new', 100.0, 100.0, NULL)"
        )
        await conn.execute(
            "INSERT INTO communities VALUES ('discord:500', 'discord', 'Gamers', 'chan', NULL, "
            "'en', '[\"discord:6\",\"discord:7\"]', 1.0)"
        )
        await conn.execute(
            "INSERT INTO rate_hits VALUES ('messages:discord:6', 60.0, 120.0, 5), "
            "('messages:discord:6', 120.0, 180.0, 2)"
        )
    finally:
        await conn.close()

    store = await SqliteStore.open(str(db_path))
    try:
        secret = await store.pseudonym_secret()
        six, seven = (pseudonym(secret, PersonId("discord", i)) for i in "67")
        config = await store.get_community(GUILD)
        assert config is not None and config.blocked == (six, seven)
        assert await store.count_hit(f"messages:{six}", 60.0, 121.0) == 3  # the count went on
        assert await store.reports_since(pseudonym(secret, ALICE), 0.0) == 1
        assert b"discord:6" not in await file_bytes(store, db_path, vacuum=True)
    finally:
        await store.close()
    store = await SqliteStore.open(str(db_path))  # a second start changes nothing
    try:
        assert await store.pseudonym_secret() == secret
        config = await store.get_community(GUILD)
        assert config is not None and config.blocked == (six, seven)
    finally:
        await store.close()


async def test_failed_migration_rolls_back(tmp_path: Path) -> None:
    broken = Migration(
        LATEST_VERSION + 1, "broken", "CREATE TABLE half_done (x); INSERT INTO nowhere VALUES (1);"
    )
    conn = await raw(tmp_path / "x.db")
    try:
        with pytest.raises(sqlite3.OperationalError):
            await migrate(conn, migrations=(*MIGRATIONS, broken))
        assert "half_done" not in await tables(conn)
        rows = await conn.execute_fetchall("SELECT MAX(version) FROM schema_version")
        assert next(iter(rows))[0] == LATEST_VERSION
    finally:
        await conn.close()


async def test_newer_schema_is_refused(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    await store.close()
    conn = await raw(db_path)
    await conn.execute("INSERT INTO schema_version VALUES (99, 'from the future', 0.0)")
    await conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        await SqliteStore.open(str(db_path))


async def test_invalid_migration_list_is_rejected(tmp_path: Path) -> None:
    conn = await raw(tmp_path / "x.db")
    try:
        with pytest.raises(ValueError, match="numbered"):
            await migrate(conn, migrations=(MIGRATIONS[1], MIGRATIONS[0]))
    finally:
        await conn.close()


# --- durability and files --------------------------------------------------------------------
async def test_data_survives_restart(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    saved = await store.save_session(
        Session(ALICE, "details", "en", "US", 1.0, draft=Draft(details="ü"))
    )
    await store.add_report(report(), [status_item("R-1:s")])
    claimed = await store.claim_due(now=200.0, limit=5, lease=60.0)
    config = CommunityConfig(GUILD, "Gamers", "chan")
    await store.put_community(config)
    entry = AuditEntry(at=1.0, actor="mod", action="claim", reference="R-1", community=GUILD)
    await store.audit(entry)
    await store.close()

    store = await SqliteStore.open(str(db_path))
    try:
        assert await store.load_session(ALICE) == saved
        assert await store.get_report("R-1") == report()
        assert await store.get_outbox_item("R-1:s") == claimed[0]
        assert await store.claim_due(now=259.0, limit=5, lease=60.0) == []  # lease survives
        assert await store.get_community(GUILD) == config
        assert await store.audit_log() == [entry]
    finally:
        await store.close()


async def test_lone_surrogates_from_platforms_are_stored(db_path: Path) -> None:
    """Ids, names and moderator handles come from platforms and can hold lone surrogates,
    which SQLite refuses. Every kind of row is written with them, read back with U+FFFD."""
    odd = "\ud83d"  # half of an emoji: what a bad JSON decoder lets through
    person, community = PersonId("discord", f"7{odd}"), CommunityId("discord", f"9{odd}")
    name = f"Gamers {odd}"
    stored = replace(report(), reporter=person, community=community, community_name=name)
    acked = replace(stored, status=ReportStatus.ACKNOWLEDGED, handled_by=f"mod {odd}")
    entry = AuditEntry(at=1.0, actor=f"mod {odd}", action="ack", reference="R-1")
    store = await SqliteStore.open(str(db_path))
    try:
        await store.save_session(Session(person, "start", "en", "US", 1.0))
        await store.add_report(stored, [status_item(f"s:{odd}")])
        await store.update_report(acked, [], entry)
        await store.put_community(CommunityConfig(community, name, f"chan{odd}"))
        back = await store.get_report("R-1")
        assert back is not None and back.handled_by == "mod \ufffd", back
        assert back.community_name == "Gamers \ufffd" and back.reporter is not None
        assert back.reporter.id == "7\ufffd"
        assert await store.get_outbox_item("s:\ufffd") is not None
        assert [e.actor for e in await store.audit_log()] == ["mod \ufffd"]
        assert await store.load_session(PersonId("discord", "7\ufffd")) is not None
        assert await store.forget_person(PersonId("discord", f"7{odd}"), 2.0) == 1
    finally:
        await store.close()


async def test_closed_store_refuses_work(db_path: Path) -> None:
    store = await SqliteStore.open(str(db_path))
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.load_session(ALICE)


async def test_in_memory_database(tmp_path: Path) -> None:
    store = await SqliteStore.open(":memory:")
    try:
        await store.add_report(report(), [])
        assert await store.get_report("R-1") == report()
    finally:
        await store.close()
    assert files_in(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
async def test_files_are_private(store: SqliteStore, db_path: Path) -> None:
    await store.add_report(report(), [])  # make sure -wal and -shm exist
    assert mode(db_path) == 0o600
    assert mode(sidecar(db_path, "-wal")) == 0o600
    assert mode(sidecar(db_path, "-shm")) == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
async def test_loose_sidecars_are_tightened(store: SqliteStore, db_path: Path) -> None:
    """-wal and -shm files another process left readable by others are made 0600 when the
    store opens, so the report text in the WAL is not readable by other users."""
    await store.add_report(report(), [])  # the first store keeps -wal and -shm open
    for suffix in ("-wal", "-shm"):
        os.chmod(sidecar(db_path, suffix), 0o644)
    second = await SqliteStore.open(str(db_path))
    await second.close()
    assert mode(sidecar(db_path, "-wal")) == 0o600
    assert mode(sidecar(db_path, "-shm")) == 0o600


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
async def test_existing_file_mode_is_kept(db_path: Path) -> None:
    db_path.parent.mkdir()
    os.close(os.open(db_path, os.O_CREAT | os.O_WRONLY, 0o600))
    os.chmod(db_path, 0o640)
    store = await SqliteStore.open(str(db_path))
    await store.close()
    assert mode(db_path) == 0o640  # an operator's choice; we warn


async def test_pragmas(store: SqliteStore) -> None:
    conn = store.raw
    assert conn is not None

    async def pragma(name: str) -> object:
        rows = await conn.execute_fetchall(f"PRAGMA {name}")
        return next(iter(rows))[0]

    assert await pragma("journal_mode") == "wal"
    assert await pragma("synchronous") == 1  # NORMAL between durable (FULL) transactions
    assert await pragma("foreign_keys") == 1
    assert await pragma("secure_delete") == 1
    assert await pragma("busy_timeout") == 5000


async def test_what_someone_was_told_commits_with_fsync(store: SqliteStore) -> None:
    """A report receipt, a moderator action, "forget me" and a community's configuration
    commit under ``synchronous = FULL``; conversation state does not. The statements SQLite
    actually ran are traced, and the level in force at each commit is worked out from them."""
    conn = store.raw
    assert conn is not None
    statements: list[str] = []
    await conn.set_trace_callback(statements.append)

    async def levels_at_commit(operation: Awaitable[object]) -> list[str]:
        statements.clear()
        await operation
        level, levels = "NORMAL", []
        for sql in statements:
            words = sql.upper().replace("=", " ").split()
            if words[:2] == ["PRAGMA", "SYNCHRONOUS"] and len(words) == 3:
                level = words[2]
            elif words[:1] in (["COMMIT"], ["INSERT"], ["UPDATE"], ["DELETE"]):
                levels.append(level)
        return levels

    told = {
        "receipt": store.add_report(report(), [status_item("s:1")]),
        "moderator action": store.update_report(
            replace(report(), status=ReportStatus.ACKNOWLEDGED),
            [status_item("s:2")],
            AuditEntry(at=2.0, actor="mod", action="ack", reference="R-1", community=GUILD),
        ),
        "community configuration": store.put_community(CommunityConfig(GUILD, "Gamers", "c")),
        "forget me": store.forget_person(ALICE, 3.0),
    }
    for what, operation in told.items():
        levels = await levels_at_commit(operation)
        assert levels and levels[-1] == "FULL", (what, statements)
    session = Session(ALICE, "start", "en", "US", 1.0)
    assert await levels_at_commit(store.save_session(session)) == ["NORMAL"], statements
    assert await levels_at_commit(store.delete_session(ALICE)) == ["NORMAL"], statements
    await conn.set_trace_callback(None)


# --- scrubbing -------------------------------------------------------------------------------
async def file_bytes(store: SqliteStore, db_path: Path, *, vacuum: bool) -> bytes:
    """The database and -wal contents after a checkpoint (and optionally a VACUUM)."""
    conn = store.raw
    assert conn is not None
    if vacuum:
        await conn.execute("VACUUM")
    await conn.execute("PRAGMA wal_checkpoint(FULL)")  # FULL, not TRUNCATE: keep the -wal
    return read_files(db_path, sidecar(db_path, "-wal"))


@pytest.mark.parametrize("vacuum", [False, True])
async def test_forget_person_leaves_no_trace_in_file(
    store: SqliteStore, db_path: Path, vacuum: bool
) -> None:
    draft = Draft(details=f"{SECRET} in a draft " * 300)  # spans overflow pages
    saved = await store.save_session(Session(ALICE, "details", "en", "US", 1.0, draft=draft))
    await store.save_session(saved.evolve(node="confirm"))  # an older version is garbage now
    await store.add_report(report(), [status_item("R-1:s", text=SECRET)])
    await store.save_session(Session(PersonId("discord", "2"), "start", "en", "US", 1.0))
    assert SECRET.encode() in await file_bytes(store, db_path, vacuum=False)

    assert await store.forget_person(ALICE, 10.0) == 1

    data = await file_bytes(store, db_path, vacuum=vacuum)
    assert SECRET.encode() not in data
    assert ALICE.key.encode() not in data


@pytest.mark.parametrize("vacuum", [False, True])
async def test_idle_session_purge_leaves_no_trace_in_file(
    store: SqliteStore, db_path: Path, vacuum: bool
) -> None:
    """An unfinished draft is the person's own account of what happened: once the
    conversation has been idle past expiry, it must be gone from the file, not just hidden."""
    draft = Draft(details=f"{SECRET} in a draft " * 300)
    saved = await store.save_session(Session(ALICE, "details", "en", "US", 1.0, draft=draft))
    await store.save_session(saved.evolve(node="confirm", updated_at=2.0))
    await store.save_session(Session(PersonId("discord", "2"), "start", "en", "US", 500.0))
    await store.count_hit(f"messages:{ALICE.key}", 60.0, 1.0)
    assert SECRET.encode() in await file_bytes(store, db_path, vacuum=False)

    assert await store.purge_sessions(updated_before=100.0, now=500.0) == 1

    data = await file_bytes(store, db_path, vacuum=vacuum)
    assert SECRET.encode() not in data
    assert ALICE.key.encode() not in data  # nor the id, in sessions or ended rate windows
    assert await store.load_session(PersonId("discord", "2")) is not None


@pytest.mark.parametrize("vacuum", [False, True])
async def test_purge_leaves_no_trace_in_file(
    store: SqliteStore, db_path: Path, vacuum: bool
) -> None:
    await store.add_report(
        report("R-old", details=f"{SECRET} " * 1000, created_at=10.0),
        [status_item("old:s", "R-old", text=SECRET)],
    )
    await store.add_report(report("R-new", created_at=500.0), [])
    assert SECRET.encode() in await file_bytes(store, db_path, vacuum=False)

    assert await store.purge_reports(created_before=100.0) == 1

    data = await file_bytes(store, db_path, vacuum=vacuum)
    assert SECRET.encode() not in data
    assert b"R-old" not in data
    assert await store.get_report("R-new") is not None


# --- atomicity -------------------------------------------------------------------------------
async def fail_on(store: SqliteStore, sql: str) -> None:
    conn = store.raw
    assert conn is not None
    await conn.execute(sql)


async def test_add_report_is_all_or_nothing(store: SqliteStore) -> None:
    await fail_on(
        store,
        "CREATE TRIGGER boom BEFORE INSERT ON outbox WHEN NEW.key = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'boom'); END",
    )
    with pytest.raises(sqlite3.IntegrityError):
        await store.add_report(report(), [status_item("fine"), status_item("boom")])
    assert await store.get_report("R-1") is None
    assert await store.get_outbox_item("fine") is None
    await store.add_report(report(), [status_item("fine")])  # the connection still works


async def test_forget_person_is_all_or_nothing(store: SqliteStore) -> None:
    await store.save_session(Session(ALICE, "start", "en", "US", 1.0))
    await store.add_report(report(), [status_item("R-1:s")])
    await fail_on(
        store,
        "CREATE TRIGGER boom BEFORE UPDATE OF reporter ON reports "
        "BEGIN SELECT RAISE(ABORT, 'boom'); END",
    )
    with pytest.raises(sqlite3.IntegrityError):
        await store.forget_person(ALICE, 10.0)
    assert await store.load_session(ALICE) is not None
    assert await store.get_outbox_item("R-1:s") is not None
    assert await store.get_report("R-1") == report()

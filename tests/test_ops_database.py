"""``safebot db backup`` on a live database and ``safebot db migrate`` on fresh and current
databases, SQLite and PostgreSQL, through the real command."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

from test_service import report

from safebot.adapters.memory import MemoryBot
from safebot.conversation import Engine
from safebot.settings import Settings
from safebot.store import open_store
from safebot.store.schema import LATEST_VERSION, MIGRATIONS
from safebot.store.sqlite import DIALECT

pytest_plugins = ["pgserver"]  # the session's PostgreSQL server: postgres_url

REPO = Path(__file__).resolve().parents[1]


def safebot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safebot.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def take_backup(database: str, copy: Path) -> Path:
    wal = Path(database + "-wal")
    assert wal.exists() and wal.stat().st_size > 0
    copy.parent.mkdir()
    result = safebot("db", "backup", str(copy), "--db", database)
    assert result.returncode == 0, result.stderr
    assert f"to {copy}" in result.stdout and f"schema version {LATEST_VERSION}" in result.stdout
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.db"]
    # A rollback-journal file, not WAL: it opens even from read-only storage.
    assert copy.read_bytes()[18:20] == b"\x01\x01"
    return copy


async def test_backup_of_a_live_database_opens_and_holds_the_reports(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    store = await open_store(settings.database_url)
    try:
        bot = MemoryBot(engine, store, settings)
        home = await bot.setup_community("g1", "Home")
        references = []
        for name in ("alice", "bob"):
            person = bot.person(name)
            bot.platform.join(person, home)
            references.append(await report(bot, person, home))
        # The bot is still running with its connection open; the newest rows are in the WAL.
        copy = take_backup(settings.database_url, tmp_path / "backups" / "copy.db")
        # The bot goes on writing: the copy keeps what it had.
        bob = bot.person("bob")
        await bot.say(bob, "hi")
    finally:
        await store.close()
    restored = await open_store(str(copy))
    try:
        for reference in references:
            stored = await restored.get_report(reference)
            assert stored is not None and stored.community == home.id
        assert len(await restored.reports_for_community(home.id)) == 2
    finally:
        await restored.close()
    again = safebot("db", "backup", str(copy), "--db", settings.database_url)
    assert again.returncode == 1 and "already exists" in again.stderr


def test_backup_refuses_postgresql_and_a_missing_database(tmp_path: Path) -> None:
    result = safebot("db", "backup", str(tmp_path / "x.db"), "--db", "postgresql://h/safebot")
    assert result.returncode == 1 and "pg_dump" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "x.db").exists()
    missing = safebot("db", "backup", str(tmp_path / "x.db"), "--db", str(tmp_path / "none.db"))
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr
    assert not (tmp_path / "none.db").exists()  # nothing was created at the source


def expected_steps(start: int) -> list[str]:
    return [
        f"Applying migration {m.version}: {m.description}" for m in MIGRATIONS if m.version > start
    ]


def test_migrate_sqlite_fresh_then_up_to_date(tmp_path: Path) -> None:
    db = tmp_path / "data" / "safebot.db"
    first = safebot("db", "migrate", "--db", str(db))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"Database: SQLite at {db}",
        f"Schema version 0; this SafeBot uses version {LATEST_VERSION}.",
        *expected_steps(0),
        f"Done: schema version {LATEST_VERSION}.",
    ]
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
    assert versions == [m.version for m in MIGRATIONS]
    second = safebot("db", "migrate", "--db", str(db))
    assert second.returncode == 0 and "Applying" not in second.stdout
    assert f"Done: schema version {LATEST_VERSION}." in second.stdout


def test_migrate_sqlite_from_an_older_version_and_refuses_a_newer_one(tmp_path: Path) -> None:
    db = tmp_path / "safebot.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
            " applied_at REAL NOT NULL)"
        )
        conn.executescript(MIGRATIONS[0].sql(DIALECT.types))
        conn.execute("INSERT INTO schema_version VALUES (1, 'v1', 0)")
    result = safebot("db", "migrate", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if "Applying" in line] == (
        expected_steps(1)
    )
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future', 0)")
    newer = safebot("db", "migrate", "--db", str(db))
    assert newer.returncode == 1 and "newer than this SafeBot" in newer.stderr


def test_migrate_postgresql_fresh_then_up_to_date(postgres_url: str) -> None:
    first = safebot("db", "migrate", "--db", postgres_url)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "Database: PostgreSQL",
        f"Schema version 0; this SafeBot uses version {LATEST_VERSION}.",
        *expected_steps(0),
        f"Done: schema version {LATEST_VERSION}.",
    ]
    second = safebot("db", "migrate", "--db", postgres_url)
    assert second.returncode == 0, second.stderr
    assert "Applying" not in second.stdout
    assert f"Done: schema version {LATEST_VERSION}." in second.stdout

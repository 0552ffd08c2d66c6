"""The durable inbox of the Matrix adapter: nothing lost, everything in order, across restarts.

Every message that needs an answer is written here together with the sync token that comes
after it, in one SQLite transaction, before anything is done with it. So the token on disk
never runs ahead of the messages: a SIGKILL at any moment either keeps both (the messages are
answered after the restart, from here) or neither (the homeserver sends them again).

Each message is handled once its earlier messages from the same sender are done. Before a
message is handled, the sender's conversation version is noted on its row; the replies are
sent *before* the new conversation state is saved (with transaction ids derived from the
event id, so a repeat is de-duplicated by the homeserver). After a crash, a started row whose
conversation moved past the noted version was handled and answered; any other row is handled
again, from the same state, with the same transaction ids.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPLAY", "Inbound", "Inbox", "Replay", "replay_token", "replay_txn"]

log = logging.getLogger(__name__)

_KEEP_DONE = 5000  # ids of handled events kept to drop a second delivery of the same event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbound (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id  TEXT NOT NULL UNIQUE,
    room_id   TEXT NOT NULL,
    sender    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    body      TEXT NOT NULL,
    before    INTEGER,
    done      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sync_token (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    token  TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message waiting for its answer. ``kind`` is "text" or "media"; ``before`` is the
    sender's conversation version noted when handling started (None: not started)."""

    seq: int
    event_id: str
    room_id: str
    sender: str
    kind: str
    body: str
    before: int | None = None


class Inbox:
    """The inbox file (``inbox.db``, mode 0600). Calls are short synchronous transactions."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)  # SQLite gives its -wal and -shm files the same mode
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # answered messages' text is overwritten
        # A process crash loses nothing at NORMAL; only a power cut could undo the last
        # commit, and then the homeserver sends those messages again.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def token(self) -> str:
        row = self._db.execute("SELECT token FROM sync_token WHERE id = 1").fetchone()
        return str(row[0]) if row else ""

    def accept(self, items: list[Inbound], token: str) -> list[Inbound]:
        """Store new messages and the sync token after them, in one transaction. Returns the
        stored ones (an event already here, answered or not, is not stored twice)."""
        stored: list[Inbound] = []
        with self._transaction():
            for item in items:
                cursor = self._db.execute(
                    "INSERT OR IGNORE INTO inbound (event_id, room_id, sender, kind, body)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (item.event_id, item.room_id, item.sender, item.kind, item.body),
                )
                if cursor.rowcount == 1 and cursor.lastrowid is not None:
                    stored.append(Inbound(cursor.lastrowid, *_fields(item)))
            if token:
                self._db.execute(
                    "INSERT INTO sync_token (id, token) VALUES (1, ?)"
                    " ON CONFLICT (id) DO UPDATE SET token = excluded.token",
                    (token,),
                )
        return stored

    def pending(self) -> list[Inbound]:
        """Messages not answered yet, oldest first."""
        rows = self._db.execute(
            "SELECT seq, event_id, room_id, sender, kind, body, before FROM inbound"
            " WHERE done = 0 ORDER BY seq"
        ).fetchall()
        return [Inbound(*row) for row in rows]

    def started(self, seq: int, before: int) -> None:
        self._db.execute("UPDATE inbound SET before = ? WHERE seq = ?", (before, seq))

    def done(self, seq: int) -> None:
        with self._transaction():
            self._db.execute("UPDATE inbound SET done = 1, body = '' WHERE seq = ?", (seq,))
            self._db.execute("DELETE FROM inbound WHERE done = 1 AND seq <= ?", (seq - _KEEP_DONE,))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._db.execute("ROLLBACK" if kind is not None else "COMMIT")


def _fields(item: Inbound) -> tuple[str, str, str, str, str]:
    return (item.event_id, item.room_id, item.sender, item.kind, item.body)


class Replay:
    """While one inbound message is handled: its transaction ids and reference tokens are
    derived from its event id, so handling it again after a crash sends the same transaction
    ids (the homeserver shows the first send only) and mints the same report reference."""

    def __init__(self, event_id: str, secret: bytes) -> None:
        self.event_id = event_id
        self._secret = secret
        self._sends = 0
        self._tokens = 0

    def next_txn(self) -> str:
        self._sends += 1
        digest = hmac.new(self._secret, f"txn:{self.event_id}".encode(), hashlib.sha256)
        return f"safebot-in-{digest.hexdigest()[:32]}-{self._sends}"

    def next_token(self) -> str:
        self._tokens += 1
        message = f"token:{self.event_id}:{self._tokens}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:16]


REPLAY: ContextVar[Replay | None] = ContextVar("matrix_replay", default=None)


def replay_txn() -> str | None:
    """The next transaction id of the message being handled (None outside one)."""
    replay = REPLAY.get()
    return replay.next_txn() if replay is not None else None


def replay_token() -> str:
    """A reference token: derived from the message being handled, random outside one."""
    replay = REPLAY.get()
    return replay.next_token() if replay is not None else secrets.token_hex(8)

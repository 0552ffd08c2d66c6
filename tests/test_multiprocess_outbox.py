"""Several bot processes share one database: each alert is delivered by exactly one of them.

Real processes (``tests/outbox_worker.py``), started together on a shared outbox of 1,000
alerts, on PostgreSQL (``FOR UPDATE SKIP LOCKED``) and on SQLite (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import collections
from pathlib import Path

from outbox_worker import start_together

pytest_plugins = ["pgserver"]  # the session's PostgreSQL server: postgres_url

ALERTS = 1000


def fill(database: str) -> None:
    start_together([["fill", database, str(ALERTS), "A"]])


def deliver(database: str, workers: int, directory: Path) -> list[list[str]]:
    """Every key each worker delivered, by worker. Each claims one item at a time: every
    claim then races the other worker's for the same oldest row."""
    outs = [directory / f"delivered-{n}.txt" for n in range(workers)]
    start_together([["deliver", database, str(out), "1"] for out in outs], timeout=120)
    return [out.read_text("utf-8").split() for out in outs]


def check_exactly_once(per_worker: list[list[str]]) -> None:
    counts = collections.Counter(key for keys in per_worker for key in keys)
    expected = {f"alert:R-A{n:06d}" for n in range(ALERTS)}
    assert set(counts) == expected
    twice = [key for key, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} alerts delivered more than once, e.g. {twice[:3]}"
    assert all(per_worker), [len(k) for k in per_worker]  # the work was really shared


def test_two_processes_share_a_postgres_outbox(postgres_url: str, tmp_path: Path) -> None:
    fill(postgres_url)
    check_exactly_once(deliver(postgres_url, 2, tmp_path))


def test_two_processes_share_a_sqlite_outbox(tmp_path: Path) -> None:
    database = str(tmp_path / "safebot.db")
    fill(database)
    check_exactly_once(deliver(database, 2, tmp_path))

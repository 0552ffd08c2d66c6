"""Store throughput: reports stored and alerts delivered per second, SQLite vs PostgreSQL,
and with 1, 2 and 4 worker processes sharing one PostgreSQL database.

    .venv/bin/python bench/store.py [--reports 2000]

Every figure comes from real processes (tests/outbox_worker.py): "stored" is one transaction
per report with its alert (as the service writes them), "delivered" is the real outbox
delivery loop (claim, send, mark) against a platform that only records. Both databases run
with their production durability: SQLite in WAL mode with synchronous=FULL for each report,
PostgreSQL with fsync and synchronous_commit on (the test server's defaults are turned back
on here). The PostgreSQL server is a throwaway one on 127.0.0.1, started like the tests do.
Figures are for comparing within one run on one machine (ratios), not absolute targets.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
sys.path[:0] = [str(ROOT), str(TESTS)]

from outbox_worker import start_together  # noqa: E402
from pgserver import PostgresServer, find_bindir  # noqa: E402


def fill(database: str, count: int, processes: int) -> float:
    """Store ``count`` reports with ``processes`` writers at once; returns reports/second."""
    share = count // processes
    done = start_together([["fill", database, str(share), f"P{n}"] for n in range(processes)])
    return share * processes / done[0]["wall"]


def deliver(database: str, processes: int, directory: Path) -> float:
    """Deliver the whole outbox with ``processes`` workers released together; alerts/second."""
    outs = [directory / f"d{n}.txt" for n in range(processes)]
    done = start_together([["deliver", database, str(out)] for out in outs])
    return sum(r["delivered"] for r in done) / done[0]["wall"]


async def durable(server: PostgresServer) -> None:
    import asyncpg

    conn = await asyncpg.connect(server.url("postgres"))
    try:
        for name in ("fsync", "synchronous_commit", "full_page_writes"):
            await conn.execute(f"ALTER SYSTEM SET {name} = on")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    count = parser.parse_args().reports
    rows: list[tuple[str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        sqlite = str(directory / "bench.db")
        rows.append(("SQLite", 1, fill(sqlite, count, 1), deliver(sqlite, 1, directory)))

        bindir = find_bindir()
        if bindir is None:
            print("no PostgreSQL server binaries found: SQLite figures only")
        else:
            server = PostgresServer.start(bindir)
            try:
                asyncio.run(durable(server))
                for processes in (1, 2, 4):
                    url = asyncio.run(server.create_database())
                    stored = fill(url, count, processes)
                    rows.append(
                        ("PostgreSQL", processes, stored, deliver(url, processes, directory))
                    )
                    asyncio.run(server.drop_database(url))
            finally:
                server.stop()

    print(f"{count} reports, each with one alert; {os.cpu_count()} cores\n")
    print(f"{'store':<11} {'processes':>9} {'stored/s':>10} {'delivered/s':>12}")
    for name, processes, stored, delivered in rows:
        print(f"{name:<11} {processes:>9} {stored:>10.0f} {delivered:>12.0f}")
    pg = {p: (s, d) for name, p, s, d in rows if name == "PostgreSQL"}
    if pg:
        base_s, base_d = pg[1]
        print("\nscaling on PostgreSQL (vs 1 process):")
        for processes in (2, 4):
            s, d = pg[processes]
            print(f"  {processes} processes: stored x{s / base_s:.2f}, delivered x{d / base_d:.2f}")
        sq_s, sq_d = rows[0][2], rows[0][3]
        print(
            f"PostgreSQL vs SQLite, 1 process: stored x{base_s / sq_s:.2f}, "
            f"delivered x{base_d / sq_d:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

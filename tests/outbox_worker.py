"""One outbox worker process on a shared database, for tests/test_multiprocess_outbox.py and
bench/store.py.

    python tests/outbox_worker.py fill DATABASE COUNT PREFIX
        store COUNT reports (references R-<PREFIX><number>), each with its moderator alert
        in the outbox, one transaction each as the service does; prints {"stored": N, ...}
    python tests/outbox_worker.py deliver DATABASE OUT_FILE [BATCH]
        deliver due alerts through the real service (claiming BATCH at a time, default 20)
        until none is waiting; writes every key it delivered to OUT_FILE, one per line;
        prints {"delivered": N, ...}

Both open the store, print ``ready``, and wait for ``go`` on stdin before they start, so
several workers start together and "seconds" measures the work, not Python's start-up.
``start_together`` runs a set of them. The repository root must be on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from safebot.messages import Message
from safebot.model import (
    Community,
    CommunityConfig,
    CommunityId,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
)
from safebot.moderation import Alert
from safebot.ports import Capabilities
from safebot.service import SafeBot, build_engine
from safebot.settings import OutboxSettings, Settings
from safebot.store import open_store

COMMUNITY = CommunityId("bench", "guild")
DESTINATION = "mods"
ROOT = Path(__file__).resolve().parents[1]


def start_together(
    commands: Sequence[Sequence[str]], timeout: float = 600
) -> list[dict[str, float]]:
    """Start one worker per argument list, release them all at once, wait for all; returns
    each one's JSON summary, plus "wall": seconds from the release to the last one done."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for args in commands
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        started = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, f"worker failed: {out[-2000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
        wall = time.perf_counter() - started
        return [{**r, "wall": wall} for r in results]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()


async def _wait_for_go() -> None:
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)


class RecordingPort:
    """A platform whose moderator channel is a list of the alert keys it received."""

    platform = "bench"
    capabilities = Capabilities()

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        return [Community(COMMUNITY, "Bench")]

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> None:
        self.keys.append(alert.key)

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        self.keys.append(key)

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        self.keys.append(key)


def settings_for(database: str, batch: int = 20) -> Settings:
    outbox = OutboxSettings(batch=batch, lease=30.0)
    return Settings(database_url=database, outbox=outbox, log_level="ERROR")


async def fill(database: str, count: int, prefix: str) -> dict[str, float]:
    store = await open_store(database)
    try:
        if await store.get_community(COMMUNITY) is None:
            await store.put_community(CommunityConfig(COMMUNITY, "Bench", DESTINATION))
        await _wait_for_go()
        started = time.perf_counter()
        now = time.time()
        for number in range(count):
            reference = f"R-{prefix}{number:06d}"
            report = Report(
                reference=reference,
                community=COMMUNITY,
                community_name="Bench",
                reporter=PersonId("bench", f"{prefix}{number}"),
                reveal=False,
                category="money",
                offender=None,
                details="They want money or they will share a photo.",
                evidence=(),
                locale="en",
                status=ReportStatus.NEW,
                created_at=now,
                updated_at=now,
            )
            alert = OutboxItem(
                key=f"alert:{reference}",
                kind=OutboxKind.ALERT,
                reference=reference,
                community=COMMUNITY,
                created_at=now,
                next_try=now,
            )
            await store.add_report(report, [alert])
        return {"stored": count, "seconds": time.perf_counter() - started}
    finally:
        await store.close()


async def deliver(database: str, batch: int) -> tuple[list[str], dict[str, float]]:
    settings = settings_for(database, batch)
    store = await open_store(database)
    port = RecordingPort()
    bot = SafeBot(engine=build_engine(settings), store=store, port=port, settings=settings)
    try:
        await _wait_for_go()
        started = time.perf_counter()
        while True:
            if not await bot.deliver_due():
                if not (await store.backlog()).waiting:
                    break
                await asyncio.sleep(0.001)  # another worker holds what is left
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    return port.keys, {"delivered": len(port.keys), "seconds": seconds}


def main(argv: list[str]) -> int:
    mode, database = argv[0], argv[1]
    if mode == "fill":
        result = asyncio.run(fill(database, int(argv[2]), argv[3]))
    elif mode == "deliver":
        batch = int(argv[3]) if len(argv) > 3 else 20
        keys, result = asyncio.run(deliver(database, batch))
        Path(argv[2]).write_text("".join(f"{key}\n" for key in keys), "utf-8")
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

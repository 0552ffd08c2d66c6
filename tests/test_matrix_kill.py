"""SIGKILL at random moments against a real ``safebot run matrix`` process and a real Synapse:
every message is answered exactly once, in the order the person sent it, and the saved
conversation is the one the person saw.

Three people write into encrypted DMs without waiting for answers while the bot process is
killed with SIGKILL at random moments (seeded: ``SAFEBOT_CRASH_SEED``; bounded by
``KILLS`` and ``BUDGET`` seconds) and started again, so messages arrive while it is down,
while it starts, and while it is answering. After a final start, each person's list of bot
messages must be exactly what the same messages produce in one uninterrupted run of the
engine (on the memory store), reply for reply, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from safebot.adapters.matrix.render import message_content
from safebot.conversation import Engine
from safebot.events import TextReceived
from safebot.model import PersonId
from safebot.ports import Capabilities
from safebot.service import SafeBot
from safebot.settings import LimitSettings, Settings
from safebot.store import open_store
from safebot.store.memory import MemoryStore

try:  # ``python -m pytest`` from the repo root
    from tests.synapse import ClientRunner, MatrixHarness, RegisteredUser, create_dm, send_text
    from tests.synapse.fixtures import matrix, matrix_user, running_synapse, synapse
except ModuleNotFoundError as exc:  # plain ``pytest``: only tests/ is on sys.path
    if exc.name not in ("tests", "tests.synapse"):
        raise
    from synapse import (  # type: ignore[no-redef, unused-ignore]
        ClientRunner,
        MatrixHarness,
        RegisteredUser,
        create_dm,
        send_text,
    )
    from synapse.fixtures import (  # type: ignore[no-redef, unused-ignore]
        matrix,
        matrix_user,
        running_synapse,
        synapse,
    )

__all__ = ["matrix", "matrix_user", "running_synapse", "synapse"]

ROOT = Path(__file__).resolve().parents[1]
KILLS = 15
BUDGET = 60.0  # seconds for the kill phase, whatever the machine's speed
PEOPLE = 3
SCRIPT = (
    "how do I block them",
    "1",
    "2",
    "menu",
    "resources",
    "menu",
    "3",
    "help",
    "menu",
    "how do I block them",
    "2",
    "1",
    "menu",
    "block",
)


class BotProcess:
    """``safebot run matrix`` as a subprocess, with the bot's registered device and token."""

    def __init__(self, tmp: Path, homeserver: str, user: RegisteredUser) -> None:
        self.tmp = tmp
        self.config = tmp / "safebot.toml"
        self.config.write_text(
            f'database_url = "{tmp / "bot.db"}"\n'
            "[limits]\n"
            "messages_per_minute = 1000\n"  # re-runs after kills count too
            "[matrix]\n"
            f'homeserver = "{homeserver}"\n'
            f'user_id = "{user.user_id}"\n'
            f'device_id = "{user.device_id}"\n'
            f'data_dir = "{tmp / "matrix"}"\n'
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEBOT_")}
        self.env |= {"PYTHONPATH": str(ROOT), "SAFEBOT_MATRIX_TOKEN": user.access_token}
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        log = open(self.tmp / f"run-{self.runs}.log", "wb")  # noqa: SIM115 (kept by Popen)
        command = [sys.executable, "-m", "safebot.cli", "run", "matrix"]
        self.proc = subprocess.Popen(
            [*command, "--config", str(self.config)], env=self.env, stdout=log, stderr=log
        )
        log.close()

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        assert self.proc.returncode in (-signal.SIGKILL, None) or self.proc.returncode < 0, (
            self.proc.returncode,
            (self.tmp / f"run-{self.runs}.log").read_text(errors="replace")[-3000:],
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def syncing(self, limit: float) -> None:
        """Wait until this run has logged in and started syncing."""
        log = self.tmp / f"run-{self.runs}.log"
        for _ in range(int(limit / 0.05)):
            if b"syncing" in log.read_bytes():
                return
            await asyncio.sleep(0.05)

    def half_answered(self) -> int:
        """Messages whose answer was under way when the process died."""
        return self._inbox_count("done = 0 AND before IS NOT NULL")

    def waiting(self) -> int:
        """Messages in the inbox not yet handled to the end (state saved)."""
        return self._inbox_count("done = 0")

    def _inbox_count(self, where: str) -> int:
        path = self.tmp / "matrix" / "inbox.db"
        if not path.exists():
            return 0
        with contextlib.closing(sqlite3.connect(path)) as db:
            row = db.execute(f"SELECT COUNT(*) FROM inbound WHERE {where}").fetchone()
        return int(row[0])


async def expected_replies(engine: Engine, settings: Settings, who: str) -> tuple[list[str], str]:
    """What one uninterrupted run says to ``SCRIPT`` (bodies as Matrix shows them), and the
    conversation node it ends at."""

    class NoCommunities:
        platform = "matrix"
        capabilities = Capabilities()

        async def shared_communities(self, person: PersonId) -> list[object]:
            return []

    store = MemoryStore()
    bot = SafeBot(engine=engine, store=store, port=NoCommunities(), settings=settings)  # type: ignore[arg-type]
    person = PersonId("matrix", who)
    bodies: list[str] = []
    for text in ("hi", *SCRIPT):
        for reply in await bot.handle(TextReceived(person, text)):
            bodies.append(str(message_content(reply)["body"]))
    session = await store.load_session(person)
    assert session is not None
    return bodies, session.node


def bot_bodies(runner: ClientRunner, room: str, bot_id: str) -> list[str]:
    return [m.body for m in runner.messages.get(room, []) if m.sender == bot_id]


async def test_sigkill_at_random_moments_answers_every_message_once_in_order(
    matrix: MatrixHarness, engine: Engine, tmp_path: Path
) -> None:
    seed = int(os.environ.get("SAFEBOT_CRASH_SEED", random.randrange(1 << 30)))
    print(f"SAFEBOT_CRASH_SEED={seed}")
    rng = random.Random(seed)
    bot_user = matrix.user("safebot")
    process = BotProcess(tmp_path, matrix.server.url, bot_user)
    settings = Settings(database_url="memory", limits=LimitSettings(messages_per_minute=1000))
    loop = asyncio.get_running_loop()
    process.start()
    try:
        people: list[tuple[ClientRunner, str]] = []
        for i in range(PEOPLE):
            runner = await matrix.runner(matrix.user(f"kid{i}"), auto_join=True)
            room = await create_dm(runner, bot_user.user_id, timeout=60.0)
            await runner.wait_for_room(room, joined=[bot_user.user_id], timeout=60.0)
            await send_text(runner, room, "hi")
            await runner.wait_for_message(
                room, lambda m: m.sender == bot_user.user_id, timeout=60.0
            )
            people.append((runner, room))

        sent = asyncio.Event()  # a message just reached the homeserver

        async def write(runner: ClientRunner, room: str, pace: random.Random) -> None:
            for text in SCRIPT:
                await asyncio.sleep(pace.uniform(0.2, 4.0))
                await send_text(runner, room, text, timeout=30.0)
                sent.set()

        writers = [
            asyncio.ensure_future(write(r, room, random.Random(seed + i + 1)))
            for i, (r, room) in enumerate(people)
        ]
        started, kills, half = loop.time(), 0, 0
        while kills < KILLS and loop.time() - started < BUDGET:
            if rng.random() < 0.8:  # mostly while it answers, sometimes while it starts
                await process.syncing(min(20.0, BUDGET))
                # Like the tester: a few ms after a message arrived, while it is answered.
                sent.clear()
                if not all(w.done() for w in writers):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(sent.wait(), 5.0)
                await asyncio.sleep(rng.uniform(0.0, 0.12))
            else:
                await asyncio.sleep(rng.uniform(0.01, 1.5))
            process.kill()
            kills += 1
            half += process.half_answered()
            if rng.random() < 0.3:
                await asyncio.sleep(rng.uniform(0.5, 2.0))  # people write while it is down
            process.start()
        await asyncio.gather(*writers)
        print(f"{kills} kills in {loop.time() - started:.0f}s, {half} mid-answer")

        for (runner, room), i in zip(people, range(PEOPLE), strict=True):
            want, node = await expected_replies(engine, settings, runner.user_id)
            deadline = loop.time() + 60.0
            while len(bot_bodies(runner, room, bot_user.user_id)) < len(want):
                assert loop.time() < deadline, (i, bot_bodies(runner, room, bot_user.user_id))
                await asyncio.sleep(0.2)
        # A kill after a message's replies went out but before its state was saved leaves it
        # in the inbox: the restarted process handles it again (the homeserver shows its
        # replies once) and saves the state. Wait for that before looking at the state.
        deadline = loop.time() + 60.0
        while process.waiting():
            assert loop.time() < deadline, f"{process.waiting()} messages never finished"
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)  # anything answered twice would show up by now
        for runner, room in people:
            want, node = await expected_replies(engine, settings, runner.user_id)
            assert bot_bodies(runner, room, bot_user.user_id) == want
        assert kills >= 5
    finally:
        process.stop()
    store = await open_store(str(tmp_path / "bot.db"))
    try:
        for runner, _room in people:
            _want, node = await expected_replies(engine, settings, runner.user_id)
            session = await store.load_session(PersonId("matrix", runner.user_id))
            assert session is not None and session.node == node  # what the person last saw
    finally:
        await store.close()

"""A real SafeBot process for the crash test (tests/test_crash.py), meant to be SIGKILLed.

Run as ``python tests/crash_worker.py MODE DIR ...`` with the repository root on PYTHONPATH.
It builds the real service (``build_engine`` + ``SafeBot`` + ``SqliteStore`` on
``DIR/safebot.db``) with a platform port of its own whose moderator destination is durable:
``DIR/alerts.jsonl``, one line per delivery attempt carrying the idempotency key, flushed and
fsynced before ``send_alert`` returns. The port deduplicates nothing: every send is a line,
so the test sees each repeat and checks that a kill explains it. (Hiding a repeat from
moderators is the adapters' job: a Discord nonce and history check, a Matrix transaction id;
their own tests check it over the wire.)

The person's side is logged the same way (one fsynced JSON record per line, by person):

* ``confirms.log``   ``{person, reference}`` written *before* the person presses Confirm;
* ``receipts.log``   ``{person, reference}`` written *after* ``handle`` returned the receipt,
  i.e. the person has seen it;
* ``abandoned.log``  ``{person, reference}`` a draft left at the review step, never confirmed.

``SAFEBOT_CRASH_TOKEN_POOL=N`` makes report references collide often (see ``Worker.token``).

``phase`` holds, at fixed offsets and without fsync (a SIGKILL keeps the page cache), what
the conversation side and the outbox side were doing, so the test can tell where a kill
landed.

Modes:

``serve DIR``        a fork server: import and build the engine once, then for every
                     ``run RUN FIRST`` line on stdin fork a worker child and answer ``pid N``.
                     Forking skips ~0.3 s of start-up per kill, so a CI run affords 100+.
``run DIR RUN FIRST`` the same worker, started cold (exercises real start-up too).
``drain DIR``        the final clean run: lets people who confirmed but never saw an answer
                     press Confirm again, delivers until nothing is waiting, prints a JSON
                     summary and exits 0.

A worker prints ``ready PID`` once its store is open and the community is configured, then
retries unanswered confirmations and walks new people (ids ``FIRST``, ``FIRST + 1``, ...)
through whole reports while a background task delivers the outbox, until it is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safebot.conversation import Engine
from safebot.events import ChoiceSelected, TextReceived
from safebot.messages import Message
from safebot.model import Community, CommunityConfig, CommunityId, OutboxItem, PersonId, Report
from safebot.moderation import Alert
from safebot.ports import Capabilities
from safebot.service import SafeBot, build_engine
from safebot.settings import OutboxSettings, Settings
from safebot.store.sqlite import SqliteStore

PLATFORM = "crash"
COMMUNITY = Community(CommunityId(PLATFORM, "guild"), "Crash Test Server")
DESTINATION = "mods"
REFERENCE = re.compile(r"R-[2-9A-Z]{4,8}")
ABANDON_RATE = 0.15
PHASE_WIDTH = 64
LIFETIME = 60.0  # seconds a worker runs at most
SLOT_CONVERSATION, SLOT_OUTBOX = 0, 1
CATEGORIES = ("cat.threats", "cat.money", "cat.more_images", "cat.other")
EVIL = (
    "'; DROP TABLE reports; --",
    "@everyone <@123> <@&456> **bold** `x`",
    "https://matrix.to/#/@x:y \u202eevil\u2066",
    "someone#1234",
)


def settings_for(directory: Path) -> Settings:
    # A short lease: an item claimed by a killed worker is due again 0.2 s later.
    outbox = OutboxSettings(max_attempts=1000, base_delay=0.05, max_delay=0.2, lease=0.2)
    return Settings(database_url=str(directory / "safebot.db"), outbox=outbox, log_level="ERROR")


def person_id(number: int) -> PersonId:
    return PersonId(PLATFORM, f"p{number:07d}")


# --- durable logs --------------------------------------------------------------------------
def append_record(path: Path, **record: object) -> None:
    """Append one JSON record with a single write, then fsync: it survives the process and the
    OS. SIGKILL can cut a write short (seen here: a line torn after four bytes), so each
    record starts on a fresh line and a torn one is invalid JSON that readers skip."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, ("\n" + json.dumps(record) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The whole records of a log, and how many torn ones were skipped."""
    records: list[dict[str, Any]] = []
    torn = 0
    lines = path.read_text("utf-8").splitlines() if path.exists() else []
    for line in filter(None, lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            torn += 1
    return records, torn


def read_pairs(path: Path) -> dict[str, str]:
    """``person -> reference`` from a person-side log."""
    return {r["person"]: r["reference"] for r in read_records(path)[0]}


class Phases:
    """Where this worker is, for the test's statistics: one fixed-size record per slot."""

    def __init__(self, path: Path, run: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.run = run

    def set(self, slot: int, phase: str) -> None:
        record = f"{self.run} {phase}"[: PHASE_WIDTH - 1].ljust(PHASE_WIDTH - 1) + "\n"
        os.pwrite(self.fd, record.encode("ascii"), slot * PHASE_WIDTH)


# --- the platform and the store, instrumented -----------------------------------------------
class FilePort:
    """PlatformPort whose moderator channel is an append-only, fsynced JSONL file."""

    platform = PLATFORM
    capabilities = Capabilities()

    def __init__(self, directory: Path, phases: Phases, reporter_label: str) -> None:
        self.alerts = directory / "alerts.jsonl"
        self.phases = phases
        self.reporter_label = reporter_label

    async def shared_communities(self, person: PersonId) -> Sequence[Community]:
        return [COMMUNITY]

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> None:
        reporter = next((f.value for f in alert.fields if f.label == self.reporter_label), None)
        self.phases.set(SLOT_OUTBOX, f"sending {alert.reference}")
        append_record(
            self.alerts,
            key=alert.key,
            reference=alert.reference,
            reporter=reporter,
            pid=os.getpid(),
        )
        # A platform's answer takes a moment after the message is posted. Without it the window
        # between the post and its mark is so short that, now and then, not one of the random
        # kills lands in it and the test's own coverage check fails.
        await asyncio.sleep(0.003)
        self.phases.set(SLOT_OUTBOX, f"sent {alert.reference}")

    async def update_alert(self, config: CommunityConfig, alert: Alert, key: str) -> None:
        append_record(self.alerts, key=key, reference=alert.reference)

    async def send_private(self, person: PersonId, message: Message, key: str) -> None:
        pass  # status updates: no moderator acts in this test


class PhasedStore(SqliteStore):
    """The real SQLite store; it only notes which step of the outbox it is in."""

    phases: Phases

    async def add_report(self, report: Report, outbox: Sequence[OutboxItem]) -> None:
        self.phases.set(SLOT_CONVERSATION, f"storing {report.reference}")
        await super().add_report(report, outbox)
        self.phases.set(SLOT_CONVERSATION, f"stored {report.reference}")

    async def claim_due(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        self.phases.set(SLOT_OUTBOX, "claiming")
        claimed = await super().claim_due(now, limit, lease)
        self.phases.set(SLOT_OUTBOX, f"claimed {len(claimed)}" if claimed else "idle")
        return claimed

    async def mark_delivered(self, key: str, now: float, posted: str | None = None) -> None:
        await super().mark_delivered(key, now, posted)
        self.phases.set(SLOT_OUTBOX, f"marked {key}")


# --- the worker ----------------------------------------------------------------------------
class Worker:
    def __init__(self, engine: Engine, directory: Path, run: str) -> None:
        self.engine = engine
        self.dir = directory
        self.phases = Phases(directory / "phase", run)
        self.rng = random.Random()  # seeded from os.urandom: every child differs
        self.outbox: asyncio.Task[None] | None = None
        # SAFEBOT_CRASH_TOKEN_POOL=N draws the random tokens that references are minted from
        # out of N values, so reference collisions (1 in 810,000 per pair for real) are common.
        self.pool = int(os.environ.get("SAFEBOT_CRASH_TOKEN_POOL") or 0)

    def token(self) -> str:
        if self.pool:
            return f"pooled-{self.rng.randrange(self.pool)}"
        return secrets.token_hex(8)

    async def open(self) -> SafeBot:
        self.phases.set(SLOT_CONVERSATION, "opening")
        self.phases.set(SLOT_OUTBOX, "idle")
        settings = settings_for(self.dir)
        store = await PhasedStore.open(settings.database_url)
        assert isinstance(store, PhasedStore)
        store.phases = self.phases
        label = self.engine.content.text("en", "alert.reporter")
        port = FilePort(self.dir, self.phases, label)
        bot = SafeBot(
            engine=self.engine, store=store, port=port, settings=settings, tokens=self.token
        )
        if await store.get_community(COMMUNITY.id) is None:
            config = CommunityConfig(COMMUNITY.id, COMMUNITY.name, DESTINATION)
            await bot.configure_community(config, actor="test")
        return bot

    async def retry_unanswered(self, bot: SafeBot) -> int:
        """People who pressed Confirm and never saw an answer press it again (once the bot is
        back), as a person would. Only those whose conversation is still at the review step."""
        confirmed = read_pairs(self.dir / "confirms.log")
        answered = read_pairs(self.dir / "receipts.log")
        retried = 0
        for key in sorted(set(confirmed) - set(answered)):
            person = PersonId.parse(key)
            session = await bot.store.load_session(person)
            if session is None or session.node != "report.review":
                continue
            self.phases.set(SLOT_CONVERSATION, f"retry {key}")
            replies = await bot.handle(ChoiceSelected(person, "report.confirm", "report.review"))
            self.note_receipt(person, replies)
            retried += 1
        return retried

    def note_receipt(self, person: PersonId, replies: tuple[Message, ...]) -> str | None:
        self.phases.set(SLOT_CONVERSATION, f"answered {person.key}")
        for reply in replies:
            found = REFERENCE.search(reply.text) if reply.node == "report.done" else None
            if found:
                append_record(
                    self.dir / "receipts.log", person=person.key, reference=found.group(0)
                )
                self.phases.set(SLOT_CONVERSATION, f"receipt-logged {person.key}")
                return found.group(0)
        return None

    async def one_person(self, bot: SafeBot, person: PersonId) -> None:
        rng = self.rng

        async def press(choice: str, node: str) -> tuple[Message, ...]:
            self.phases.set(SLOT_CONVERSATION, f"conv:{node}")
            return await bot.handle(ChoiceSelected(person, choice, node))

        async def say(text: str, node: str) -> tuple[Message, ...]:
            self.phases.set(SLOT_CONVERSATION, f"conv:{node}")
            return await bot.handle(TextReceived(person, text))

        await say("hi", "start")
        await press("report", "menu")
        offered = await press("report.go", "report.start")
        assert any(c.id == "community.0" for m in offered for c in m.choices), offered
        await press("community.0", "report.community")
        await press(rng.choice(CATEGORIES), "report.category")
        for node in ("report.who", "report.details", "report.evidence"):
            if rng.random() < 0.3:
                text = rng.choice(EVIL)
                if node == "report.evidence":
                    text = f"https://discord.com/channels/1/2/{rng.randrange(10**6)}"
                await say(text, node)
            else:
                await press("skip", node)
        await press("identity.share", "report.identity")
        session = await bot.store.load_session(person)
        assert session is not None and session.node == "report.review", session
        reference = session.vars["reference"]
        if rng.random() < ABANDON_RATE:
            append_record(self.dir / "abandoned.log", person=person.key, reference=reference)
            self.phases.set(SLOT_CONVERSATION, f"abandoning {person.key}")
            if rng.random() < 0.5:
                await press("report.cancel", "report.review")
            return
        append_record(self.dir / "confirms.log", person=person.key, reference=reference)
        replies = await press("report.confirm", "report.review")
        assert self.note_receipt(person, replies) is not None, [r.text for r in replies]

    async def work(self, first: int) -> None:
        bot = await self.open()
        self.phases.set(SLOT_CONVERSATION, "ready")
        os.write(1, f"ready {os.getpid()}\n".encode())
        stop = asyncio.Event()
        self.outbox = asyncio.create_task(bot.run_outbox(stop, idle=0.01))
        await self.retry_unanswered(bot)
        number = first
        while True:
            await self.one_person(bot, person_id(number))
            number += 1
            await asyncio.sleep(0)  # let the outbox task run between people too

    async def drain(self, within: float = 20.0) -> dict[str, object]:
        bot = await self.open()
        retried = await self.retry_unanswered(bot)
        deadline = time.monotonic() + within
        while True:
            await bot.deliver_due()
            backlog = await bot.store.backlog()
            if backlog.waiting == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)  # claims of killed workers expire after the lease
        await bot.store.close()
        return {"retried": retried, "waiting": backlog.waiting, "parked": backlog.parked}


def child_main(engine: Engine, directory: Path, run: str, first: int) -> None:
    async def main() -> None:
        # Should the test die without killing us, stop by ourselves (the test never waits
        # anywhere near this long).
        asyncio.get_running_loop().call_later(LIFETIME, os._exit, 3)
        await Worker(engine, directory, run).work(first)

    asyncio.run(main())


def serve(directory: Path) -> None:
    """Fork server: one ``pid N`` answer per ``run RUN FIRST`` line; exits at end of input."""
    engine = build_engine(settings_for(directory))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    sys.stdout.write("serving\n")
    sys.stdout.flush()
    for line in sys.stdin:
        _, run, first = line.split()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(0)
                child_main(engine, directory, run, int(first))
            except BaseException as exc:
                os.write(2, f"crash worker failed: {exc!r}\n".encode())
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        sys.stdout.write(f"pid {pid}\n")
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    mode, directory = argv[0], Path(argv[1])
    if mode == "serve":
        serve(directory)
    elif mode == "run":
        engine = build_engine(settings_for(directory))
        child_main(engine, directory, argv[2], int(argv[3]))
    elif mode == "drain":
        worker = Worker(build_engine(settings_for(directory)), directory, "drain")
        print(json.dumps(asyncio.run(worker.drain())))
    else:
        print(f"unknown mode {mode!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

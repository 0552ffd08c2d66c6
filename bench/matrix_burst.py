"""Matrix burst benchmark: N new people, each on a new encrypted device, open an encrypted DM
with the SafeBot Matrix adapter and write their first message at the same moment (issue 10).

    .venv/bin/python bench/matrix_burst.py --people 100

Every first message makes the person's device claim one of the bot's one-time keys (to start
an Olm session and share its room key). matrix-nio publishes 50; the adapter tops them up as
they are claimed and keeps a fallback key (adapters/matrix/keys.py). This is the full proof
with real devices; the CI test (tests/test_matrix_durability.py) claims 80 keys through the
API and has 20 real devices write, because 100 real devices take minutes on 2 cores.

Setup (not measured): a throwaway Synapse (tests/synapse/), the production adapter with its
default waits, and N registered people whose E2EE clients are syncing. The burst: every
person at once creates an Element-style encrypted DM with the bot (without waiting for the
bot to join, as Element lets you type at once) and sends "menu". Prints how many got the
menu back (decrypted by their client), how many messages the bot could not decrypt, the time
from each person's send to the answer, and the bot device's one-time-key count (before,
lowest seen during, after). Exits 1 if anyone got no answer, 2 without Synapse.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
# As in bench/matrix.py: tests/ goes on the path so its harness imports as `synapse` (only in
# this process; the homeserver runs in a subprocess whose path never contains tests/).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from nio import MatrixRoom, MegolmEvent, SyncResponse  # noqa: E402
from synapse import (  # noqa: E402
    ClientRunner,
    MatrixHarness,
    RegisteredUser,
    SynapseServer,
    create_dm,
    real_synapse_available,
    send_text,
)

from safebot.adapters.matrix import MatrixAdapter  # noqa: E402
from safebot.app import assemble  # noqa: E402
from safebot.service import build_engine  # noqa: E402
from safebot.settings import Settings  # noqa: E402
from safebot.store import open_store  # noqa: E402

FIRST_MESSAGE = "menu"
ANSWER = "What would help right now"  # a phrase of the menu (en)
SETUP_PARALLEL = 12
STEP_TIMEOUT = 60.0


@dataclass
class Person:
    runner: ClientRunner
    room: str = ""
    opened: float = 0.0  # perf_counter when it started opening the DM
    sent: float = 0.0  # when its first message was accepted by the server
    answered: float = 0.0  # when its client had decrypted the answer
    error: str = ""


@dataclass
class KeyWatch:
    """The bot device's signed_curve25519 one-time-key count as the server reports it."""

    server: SynapseServer
    bot: RegisteredUser
    seen: list[int] = field(default_factory=list)

    async def count(self) -> int:
        # An upload of nothing returns the device's counts and changes nothing.
        reply = await asyncio.to_thread(
            self.server.admin_request,
            "POST",
            "/_matrix/client/v3/keys/upload",
            self.bot.access_token,
            {},
        )
        value = int(reply.get("one_time_key_counts", {}).get("signed_curve25519", 0))
        self.seen.append(value)
        return value

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.count()
            await asyncio.sleep(0.2)


def cpu_seconds(server: SynapseServer) -> tuple[float, float, float]:
    """(wall clock, CPU s of this process: bot + people, CPU s of Synapse)."""
    synapse = float("nan")
    if server.proc is not None:
        try:
            fields = Path(f"/proc/{server.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            synapse = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
    return time.perf_counter(), time.process_time(), synapse


async def new_person(
    hx: MatrixHarness, bot: str, open_before: bool, gate: asyncio.Semaphore
) -> Person:
    async with gate:
        user = await hx.auser("burst")
        person = Person(await hx.runner(user, auto_join=True))
        if open_before:  # the DM exists and the bot joined it; no key is claimed yet
            person.room = await create_dm(person.runner, bot, timeout=STEP_TIMEOUT)
            await person.runner.wait_for_room(person.room, joined=[bot], timeout=STEP_TIMEOUT)
            # Know the bot's device already (as a client that has the room open does); its
            # one-time key is claimed only when the first message is sent.
            client = person.runner.client
            room = client.rooms[person.room]
            if client.olm is not None:
                client.olm.update_tracked_users(room)
                if client.should_query_keys:
                    await client.keys_query()
        return person


async def open_and_write(person: Person, bot: str, start: asyncio.Event) -> None:
    await start.wait()
    try:
        person.opened = time.perf_counter()
        if not person.room:
            person.room = await create_dm(person.runner, bot, timeout=STEP_TIMEOUT)
        await send_text(person.runner, person.room, FIRST_MESSAGE, timeout=STEP_TIMEOUT)
        person.sent = time.perf_counter()
    except Exception as exc:  # reported per person; the others go on
        person.error = f"{type(exc).__name__}: {exc}"[:200]


def answered(person: Person, bot: str) -> bool:
    if not person.room:
        return False
    return any(
        m.sender == bot and ANSWER in m.body and m.decrypted
        for m in person.runner.messages.get(person.room, ())
    )


def spread(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: none"
    return (
        f"{name}: min {min(values):.2f} s, median {statistics.median(values):.2f} s, "
        f"max {max(values):.2f} s"
    )


async def bench(server: SynapseServer, tmp: Path, args: argparse.Namespace) -> int:
    setup_started = time.perf_counter()
    settings = Settings(database_url=str(tmp / "safebot.db"))
    engine = build_engine(settings)
    store = await open_store(settings.database_url)
    adapter: MatrixAdapter | None = None
    try:
        async with MatrixHarness(server, tmp / "stores") as hx:
            bot_user = await hx.auser("safebot")
            adapter = MatrixAdapter(
                settings,
                engine.content,
                homeserver=server.url,
                user_id=bot_user.user_id,
                data_dir=tmp / "safebot-matrix",
                access_token=bot_user.access_token,
                device_id=bot_user.device_id,
            )
            # Count every message that reached the bot undecryptable at least once (the
            # callback is looked up on the instance when start() registers it).
            unreadable: set[str] = set()
            on_megolm = adapter._on_megolm

            async def counting(room: MatrixRoom, event: MegolmEvent) -> None:
                if event.sender != bot_user.user_id:
                    unreadable.add(event.event_id)
                await on_megolm(room, event)

            adapter._on_megolm = counting  # type: ignore[method-assign]
            # When each of the bot's syncs came back (before its callback ran) and ended.
            syncs: list[tuple[float, float]] = []
            on_sync = adapter._on_sync

            async def timed_sync(response: SyncResponse) -> None:
                began = time.perf_counter()
                try:
                    await on_sync(response)
                finally:
                    syncs.append((began, time.perf_counter()))

            adapter._on_sync = timed_sync  # type: ignore[method-assign]
            assemble(engine, store, adapter, settings)
            await adapter.start()
            await asyncio.wait_for(adapter.synced.wait(), STEP_TIMEOUT)
            # When each message got through sync, decryption and the inbox to SafeBot itself.
            handled: list[float] = []
            handle = adapter.bot.handle

            async def timed_handle(*a: Any, **kw: Any) -> Any:
                handled.append(time.perf_counter())
                return await handle(*a, **kw)

            adapter.bot.handle = timed_handle  # type: ignore[method-assign]
            # When each of the bot's messages was accepted by the server (encrypted and sent).
            replied: list[float] = []
            send = adapter.outbound.send

            async def timed_send(*a: Any, **kw: Any) -> str:
                event_id = await send(*a, **kw)
                replied.append(time.perf_counter())
                return event_id

            adapter.outbound.send = timed_send  # type: ignore[method-assign]

            gate = asyncio.Semaphore(SETUP_PARALLEL)
            people = list(
                await asyncio.gather(
                    *(
                        new_person(hx, bot_user.user_id, args.open_before, gate)
                        for _ in range(args.people)
                    )
                )
            )
            keys = KeyWatch(server, bot_user)
            before = await keys.count()
            setup = time.perf_counter() - setup_started
            print(
                f"setup: {len(people)} people on new encrypted devices, syncing, in {setup:.1f} s"
            )

            start, stop_watch = asyncio.Event(), asyncio.Event()
            watcher = asyncio.create_task(keys.watch(stop_watch))
            writers = [
                asyncio.create_task(open_and_write(p, bot_user.user_id, start)) for p in people
            ]
            cpu_mark = cpu_seconds(server)
            burst_started = time.perf_counter()
            start.set()
            deadline = burst_started + args.wait
            waiting = list(people)
            while waiting and time.perf_counter() < deadline:
                now = time.perf_counter()
                for person in [p for p in waiting if answered(p, bot_user.user_id)]:
                    person.answered = now
                    waiting.remove(person)
                if all(w.done() for w in writers) and all(p.error for p in waiting):
                    break  # the rest failed to send: nothing more will come
                await asyncio.sleep(0.1)
            wall, ours, syn = (b - a for a, b in zip(cpu_mark, cpu_seconds(server), strict=True))
            for task in writers:
                task.cancel()
            await asyncio.gather(*writers, return_exceptions=True)
            await asyncio.sleep(1.0)  # one more count after the last top-up
            stop_watch.set()
            await watcher
            after = await keys.count()
            during = keys.seen[1:]

            sent = [p for p in people if p.sent]
            got = [p for p in people if p.answered]
            if args.open_before:
                print(
                    f"burst: {len(people)} people, each with an encrypted DM the bot had "
                    f"joined (opened in setup), wrote their first message {FIRST_MESSAGE!r} "
                    "at once"
                )
            else:
                print(
                    f"burst: {len(people)} people opened an encrypted DM with the bot and "
                    f"wrote {FIRST_MESSAGE!r} at once"
                )
            if sent:
                window = max(p.sent for p in sent) - burst_started
                print(
                    f"  first messages sent: {len(sent)}/{len(people)}, all within {window:.2f} s"
                )
            print(f"  answered (menu decrypted by the person's client): {len(got)}/{len(people)}")
            print(
                f"  messages the bot could not decrypt on arrival: {len(unreadable)}; "
                f"still undecryptable at the end: {len(adapter._undecryptable)}"
            )
            print("  " + spread("send -> answer, per person", [p.answered - p.sent for p in got]))
            print("  " + spread("burst start -> answer", [p.answered - burst_started for p in got]))
            reached = [t - burst_started for t in handled if t >= burst_started]
            print("  " + spread(f"burst start -> SafeBot.handle ({len(reached)} calls)", reached))
            ours_syncs = [(a - burst_started, b - a) for a, b in syncs if b >= burst_started]
            if ours_syncs:
                times = [0.0] + [a for a, _ in ours_syncs]
                gap = max(b - a for a, b in itertools.pairwise(times))
                print(
                    f"  bot syncs during the burst: {len(ours_syncs)}, back at "
                    + ", ".join(f"{a:.1f}" for a, _ in ours_syncs[:12])
                    + f" s; longest gap {gap:.1f} s; longest sync callback "
                    f"{max(d for _, d in ours_syncs):.2f} s"
                )
            out = [t - burst_started for t in replied if t >= burst_started]
            print("  " + spread(f"burst start -> bot message sent ({len(out)} sent)", out))
            if got:
                last = max(p.answered for p in got) - burst_started
                print(f"  everyone who got an answer had it {last:.2f} s after the burst began")
            print(
                f"  CPU busy during the burst: this process (bot + {len(people)} people) "
                f"{100 * ours / wall:.0f}%, Synapse {100 * syn / wall:.0f}% of one core"
            )
            print(
                f"  bot device one-time keys on the server: before {before}, lowest during "
                f"{min(during) if during else 'n/a'}, after {after}"
            )
            failed = [p for p in people if not p.answered]
            for person in failed[:10]:
                reason = person.error or ("no answer" if person.sent else "not sent")
                print(f"  no answer: {person.runner.user_id}: {reason}")
            return 1 if failed else 0
    finally:
        if adapter is not None:
            await adapter.close()
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100, help="new people in the burst")
    parser.add_argument("--wait", type=float, default=180.0, help="seconds to wait for all answers")
    parser.add_argument(
        "--open-before",
        action="store_true",
        help="open the DMs in setup: the burst is the first messages only, so the keys are "
        "claimed within seconds (opening 100 rooms at once takes Synapse over 30 s here)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds for the whole run (setup included)"
    )
    args = parser.parse_args()
    # nio warns at every new Olm session and about unverified devices: expected here.
    logging.getLogger("nio").setLevel(logging.ERROR)
    if not real_synapse_available():
        print("matrix-synapse is not installed (pip install -e '.[dev]')", file=sys.stderr)
        return 2
    started = time.perf_counter()
    code = 1
    with tempfile.TemporaryDirectory(prefix="safebot-bench-burst-") as name:
        tmp = Path(name)
        server = SynapseServer()
        try:
            server.start(tmp / "synapse")
            print(f"Synapse started in {server.start_durations[0]:.1f} s")
            code = asyncio.run(asyncio.wait_for(bench(server, tmp, args), args.timeout))
        except TimeoutError:
            print(f"gave up after {args.timeout:.0f} s", file=sys.stderr)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            code = 130
        finally:
            server.stop()
    print(f"total {time.perf_counter() - started:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Logs never carry what people wrote, nor secrets: a whole console session, a whole Discord
report (over the fake Discord) and a whole Matrix report (over a real Synapse), with every
logger at DEBUG and distinctive markers in every free-text field."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import Clock, Tokens
from fakediscord import BAN_MEMBERS, MODERATE_MEMBERS, FakeDiscord
from test_discord_adapter import World, dm, make_adapter, report_by_dm, running, setup_server
from test_matrix_adapter import (
    Bot,
    MatrixHarness,
    community_with_mods,
    from_bot,
    matrix,
    matrix_user,
    person,
    running_synapse,
    say,
    synapse,
    walk_report,
)
from test_service import report

from safebot.adapters.console import ConsolePlatform
from safebot.adapters.memory import MemoryBot, MemoryPlatform
from safebot.app import assemble
from safebot.conversation import Engine
from safebot.model import CommunityConfig
from safebot.moderation import Alert
from safebot.service import SafeBot
from safebot.settings import OutboxSettings, Settings
from safebot.store import open_store
from safebot.store.base import Store

__all__ = ["matrix", "matrix_user", "running_synapse", "synapse"]  # fixtures, re-exported

REPO = Path(__file__).resolve().parents[1]
TOKEN = "MTAxNTk.FAKE-TOKEN.zq8Xv3LOGCHECK"
MESSAGE = "MSGMARK-1843 he says he will post everything"
OFFENDER = "OFFMARK-2951"
DETAILS = "DETMARK-3067 wants 500 dollars by friday"
EVIDENCE = "https://evidence.test/EVIMARK-4172"
MARKERS = ("MSGMARK-1843", "OFFMARK-2951", "DETMARK-3067", "EVIMARK-4172")
LOGGERS = ("", "safebot", "discord", "aiosqlite", "asyncio", "aiohttp")

CONSOLE_LINES = [
    MESSAGE,
    "menu",
    "Tell the moderators",
    "Start a report",
    "Demo Server",
    "Asking me for money",
    OFFENDER,
    DETAILS,
    EVIDENCE,
    "They can see it's me",
    "Send the report",
    ":mod ack",
    ":mod claim",
    ":mod block",
    ":mod unblock",
    ":mod resolve",
    ":mod list",
]


def leaks(records: list[logging.LogRecord], secrets: tuple[str, ...]) -> list[str]:
    """Each record's message, arguments and traceback text that contain a secret."""
    found = []
    for record in records:
        parts = [str(record.msg), repr(record.args)]
        with contextlib.suppress(Exception):  # a malformed record is checked through msg/args
            parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
        text = "\n".join(parts)
        found += [f"{record.name}: {s}" for s in secrets if s in text]
    return found


@pytest.fixture
async def store_for_matrix(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(str(tmp_path / "matrix.db"))
    yield opened
    await opened.close()


def debug_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)


class CarelessPort(MemoryPlatform):
    """A platform whose failures quote the alert, as a careless library's exception might.
    (A DeliveryError's reason is written by the adapter and carries no content: ports.py.)"""

    tries = 0

    async def send_alert(self, config: CommunityConfig, alert: Alert) -> None:
        self.tries += 1
        text = " | ".join(str(f.value) for f in alert.fields)
        if self.tries % 2:
            raise RuntimeError(f"could not post {text}")
        raise UnicodeEncodeError("ascii", text, 0, 1, f"cannot encode {alert.offender}")


async def test_a_failed_delivery_logs_no_report_text(
    engine: Engine, settings: Settings, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever an exception from the platform says, the outbox logs the item key and the
    kind of failure, never the message: tried until parked, every logger at DEBUG."""
    debug_everywhere(caplog)
    store = await open_store("memory")
    bot = MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
    bot.platform = port = CarelessPort()
    bot.service = SafeBot(engine=engine, store=store, port=port, settings=settings, clock=clock)
    home = await bot.setup_community("g1", "Home")
    kim = bot.person("kim")
    port.join(kim, home)
    reference = await report(bot, kim, home, offender=OFFENDER, details=DETAILS)
    for _ in range(settings.outbox.max_attempts):
        await bot.deliver()
        clock.advance(3600)
    await store.close()
    failures = [r for r in caplog.records if "alert:" in r.getMessage()]
    assert any(r.levelno == logging.ERROR for r in failures), "the alert was never parked"
    assert len(failures) == settings.outbox.max_attempts, [r.getMessage() for r in failures]
    assert all(f"alert:{reference}" in r.getMessage() for r in failures)
    assert port.tries == settings.outbox.max_attempts
    assert leaks(caplog.records, MARKERS) == []


def test_console_command_logs_nothing_private(tmp_path: Path) -> None:
    """The real `safebot console`, piped, with a DEBUG config: stderr stays clean."""
    config = tmp_path / "debug.toml"
    config.write_text('log_level = "DEBUG"\n')
    db = str(tmp_path / "c.db")
    result = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "console", "--config", str(config), "--db", db],
        input="\n".join(CONSOLE_LINES) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "SAFEBOT_DISCORD_TOKEN": TOKEN},
    )
    assert result.returncode == 0, result.stderr
    assert "You acknowledged" in result.stdout and "can no longer report" in result.stdout
    assert DETAILS in result.stdout  # the moderator box shows it: the markers did flow through
    for secret in (*MARKERS, TOKEN):
        assert secret not in result.stderr


async def test_console_session_at_debug_logs_nothing_private(
    engine: Engine, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The same session in-process (the console command itself logs only warnings), so every
    logger really runs at DEBUG."""
    debug_everywhere(caplog)
    store = await open_store(settings.database_url)
    out = io.StringIO()
    try:
        stdin = io.StringIO("\n".join(CONSOLE_LINES) + "\n")
        platform = ConsolePlatform(settings, engine.content, out, stdin=stdin)
        assemble(engine, store, platform, settings)
        await platform.run(asyncio.Event())
    finally:
        await store.close()
    shown = out.getvalue()
    assert "You acknowledged" in shown and "can no longer report" in shown, shown
    assert all(marker in shown for marker in MARKERS)
    assert caplog.records, "nothing was logged at all: the capture is not working"
    assert leaks(caplog.records, MARKERS) == []


async def test_discord_report_at_debug_logs_nothing_private(
    engine: Engine,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    debug_everywhere(caplog)
    store = await open_store(settings.database_url)
    try:
        async with FakeDiscord(token=TOKEN) as fake:
            owner = fake.add_user("owner")
            guild = fake.add_guild("Test Server", owner_id=owner)
            role = fake.add_role(guild, "Safety Team", MODERATE_MEMBERS | BAN_MEMBERS)
            alice, mod = fake.add_user("alice"), fake.add_user("mod")
            offender, stranger = fake.add_user("offender"), fake.add_user("stranger")
            for user in (owner, alice, offender):
                fake.add_member(guild, user)
            fake.add_member(guild, mod, roles=[role])
            general = fake.add_channel(guild, "general")
            safety = fake.add_channel(guild, "safety")
            world = World(fake, guild, general, safety, role, owner, alice, mod, offender, stranger)
            adapter = make_adapter(engine, store, settings)
            async with running(world, adapter):
                await setup_server(world)
                await dm(world, alice, MESSAGE)
                reference = await report_by_dm(
                    world, offender=OFFENDER, details=DETAILS, evidence=EVIDENCE
                )
                alert = await fake.wait_for_message(channel_id=safety)
                assert DETAILS in alert.embeds[0]["description"]
                for action in ("ack", "block"):
                    clicked = await fake.click(mod, alert, f"sb:m:{action}:{reference}")
                    await clicked.response()
                await fake.wait_for_message(
                    channel_id=alice, predicate=lambda m: "has seen it" in m.content
                )
    finally:
        await store.close()
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"discord", "safebot"} <= names, names  # DEBUG really reached both
    assert leaks(caplog.records, (*MARKERS, TOKEN)) == []
    stderr = capfd.readouterr().err
    for secret in (*MARKERS, TOKEN):
        assert secret not in stderr


async def test_matrix_report_at_debug_logs_nothing_private(
    matrix: MatrixHarness,
    engine: Engine,
    store_for_matrix: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    debug_everywhere(caplog)
    for name in ("nio", "peewee"):
        caplog.set_level(logging.DEBUG, logger=name)
    settings = Settings(
        database_url=str(tmp_path / "bot.db"),
        outbox=OutboxSettings(max_attempts=30, base_delay=0.2, max_delay=1.0),
    )
    bot = Bot(matrix, engine, store_for_matrix, settings, tmp_path)
    await bot.start()
    try:
        alice, dm_room = await person(matrix, bot, "alice")
        owner, _community, mods = await community_with_mods(matrix, bot, [alice])
        await say(alice, dm_room, bot, MESSAGE, "not your fault")
        reference = await walk_report(alice, dm_room, bot, OFFENDER, DETAILS, EVIDENCE)
        alert = await from_bot(owner, mods, bot, lambda body: reference in body)
        assert DETAILS in alert.body
        await say(owner, mods, bot, f"!safebot ack {reference}", "You acknowledged")
        await from_bot(alice, dm_room, bot, lambda body: "has seen it" in body)
    finally:
        await bot.stop()
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"nio", "safebot"} <= names, names
    assert leaks(caplog.records, (*MARKERS, bot.user.access_token)) == []

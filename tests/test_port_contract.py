"""The port contract: what the core relies on from every platform adapter, run against each one
for real (like the store contract): the memory platform, the console, Discord (real discord.py
against the fake Discord) and Matrix (matrix-nio against the test Synapse, encrypted rooms).

Each ``PortWorld`` builds a community with a moderator destination, a member and a stranger, and
says what moderators and people can see; the tests never look inside an adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from test_discord_adapter import World, make_adapter, running, setup_server, world

from safebot.adapters.console import ConsolePlatform
from safebot.adapters.memory import MemoryPlatform
from safebot.app import assemble
from safebot.content import Content
from safebot.conversation import Engine
from safebot.messages import Message, Span, plain_text
from safebot.model import Category, CommunityConfig, CommunityId, PersonId, Report, ReportStatus
from safebot.moderation import Alert, build_alert
from safebot.ports import DeliveryError, PlatformPort
from safebot.settings import OutboxSettings, Settings
from safebot.store import open_store
from safebot.store.base import Store

try:  # ``python -m pytest`` from the repo root
    from tests.test_matrix_adapter import (
        TIMEOUT,
        Bot,
        community_with_mods,
        matrix,
        person,
        running_synapse,
        say,
        synapse,
    )
except ModuleNotFoundError as exc:  # plain ``pytest``: only tests/ is on sys.path
    if exc.name not in ("tests", "tests.test_matrix_adapter"):
        raise
    from test_matrix_adapter import (  # type: ignore[no-redef, unused-ignore]
        TIMEOUT,
        Bot,
        community_with_mods,
        matrix,
        person,
        running_synapse,
        say,
        synapse,
    )

__all__ = ["matrix", "running_synapse", "synapse", "world"]

SETTLE = 0.5  # after something showed up: how long a second copy gets to show up too
WAIT = 15.0


@dataclass
class PortWorld:
    """One platform with a community, its moderator destination, a member and a stranger.

    ``moderators_see(text, under)``: the messages in the moderator destination showing
    ``text`` (``under``: only the alert posted there and what was posted under it, edits
    applied). ``person_sees(person, text)``: the messages the person got showing ``text``.
    Both wait until at least one shows up (or time out), then a little for duplicates."""

    port: PlatformPort
    config: CommunityConfig
    member: PersonId
    stranger: PersonId
    moderators_see: Callable[[str, str | None], Awaitable[list[str]]]
    person_sees: Callable[[PersonId, str], Awaitable[list[str]]]
    unreachable: CommunityConfig | None  # a destination the bot cannot post to (None: none)
    has_references: bool = True  # send_alert names where the alert is


async def _settled(read: Callable[[], list[str]], wait: float = WAIT) -> list[str]:
    """``read()`` once it returns something, after a short settle for late duplicates."""
    deadline = asyncio.get_running_loop().time() + wait
    while not read() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    if read():
        await asyncio.sleep(SETTLE)
    return read()


# --- the four worlds -------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def memory_world(
    engine: Engine, store: Store, settings: Settings
) -> AsyncIterator[PortWorld]:
    platform = MemoryPlatform()
    assemble(engine, store, platform, settings)
    community = platform.add_community("g1", "Home")
    member = PersonId("memory", "alice")
    platform.join(member, community)
    platform.forbidden.add("closed")

    def texts(destination: str, under: str | None) -> list[str]:
        found = []
        for sent in platform.seen.values():
            if sent.to != destination:
                continue
            alert_posted = platform.posted.get(sent.alert.key) if sent.alert else None
            if under is not None and alert_posted != under:
                continue
            if sent.kind == "alert" and sent.alert is not None:
                found.append(plain_text(sent.alert.as_message().spans))
            elif sent.kind == "update" and sent.alert is not None:
                found.append(f"{sent.alert.status} {sent.alert.handled_by or ''}")
            elif sent.message is not None:
                found.append(plain_text(sent.message.spans))
        return found

    async def moderators_see(text: str, under: str | None) -> list[str]:
        return await _settled(lambda: [t for t in texts("mods", under) if text in t])

    async def person_sees(who: PersonId, text: str) -> list[str]:
        return await _settled(lambda: [t for t in texts(who.key, None) if text in t], 1.0)

    config = CommunityConfig(community.id, "Home", "mods")
    yield PortWorld(
        platform,
        config,
        member,
        PersonId("memory", "stranger"),
        moderators_see,
        person_sees,
        replace(config, destination="closed"),
    )


@contextlib.asynccontextmanager
async def console_world(
    engine: Engine, store: Store, settings: Settings
) -> AsyncIterator[PortWorld]:
    out = io.StringIO()
    platform = ConsolePlatform(settings, engine.content, out)
    assemble(engine, store, platform, settings)
    config = CommunityConfig(platform.community.id, platform.community.name, "#safety-team")

    def boxes() -> list[str]:  # the moderator channel's boxes
        return [b for b in out.getvalue().split("== #safety-team")[1:]]

    async def moderators_see(text: str, under: str | None) -> list[str]:
        return await _settled(lambda: [b for b in boxes() if text in b], 1.0)

    async def person_sees(who: PersonId, text: str) -> list[str]:
        def lines() -> list[str]:
            said = out.getvalue().split("\nSafeBot: ")[1:]
            return [s for s in said if text in s] if who.id == platform.options.person else []

        return await _settled(lines, 1.0)

    yield PortWorld(
        platform,
        config,
        PersonId("console", platform.options.person),
        PersonId("console", "someone-else"),
        moderators_see,
        person_sees,
        None,  # a terminal is always there
        has_references=False,
    )


@contextlib.asynccontextmanager
async def discord_world(
    world: World, engine: Engine, store: Store, settings: Settings
) -> AsyncIterator[PortWorld]:
    adapter = make_adapter(engine, store, settings)
    async with running(world, adapter):
        await setup_server(world)
        config = await store.get_community(CommunityId("discord", str(world.guild.id)))
        assert config is not None
        fake = world.fake

        def shown(message: Any) -> str:
            return (message.get("content") or "") + json.dumps(message.get("embeds") or [])

        def in_channel(channel_id: int, under: str | None) -> list[Any]:
            found = [m for m in fake.messages.get(channel_id, []) if m.by_bot and not m.deleted]
            if under is None:
                return found
            posted = under.partition("/")[2]
            return [
                m
                for m in found
                if str(m.id) == posted
                or (m.get("message_reference") or {}).get("message_id") == posted
            ]

        async def moderators_see(text: str, under: str | None) -> list[str]:
            return await _settled(
                lambda: [s for m in in_channel(world.safety.id, under) if text in (s := shown(m))]
            )

        async def person_sees(who: PersonId, text: str) -> list[str]:
            channel = fake.dm_channel(int(who.id)).id
            return await _settled(
                lambda: [s for m in in_channel(channel, None) if text in (s := shown(m))], 3.0
            )

        yield PortWorld(
            adapter,
            config,
            PersonId("discord", str(world.alice.id)),
            PersonId("discord", str(world.stranger.id)),
            moderators_see,
            person_sees,
            replace(config, destination=str(fake.snowflake())),  # no such channel
        )


@contextlib.asynccontextmanager
async def matrix_world(
    matrix: Any, engine: Engine, store: Store, tmp_path: Path
) -> AsyncIterator[PortWorld]:
    settings = Settings(
        database_url=str(tmp_path / "bot.db"),
        outbox=OutboxSettings(max_attempts=30, base_delay=0.2, max_delay=1.0),
    )
    bot = Bot(matrix, engine, store, settings, tmp_path)
    adapter = await bot.start()
    try:
        alice, dm = await person(matrix, bot, "alice")
        await say(alice, dm, bot, "hi", "What would help")  # the bot knows her DM
        owner, _community, mods = await community_with_mods(matrix, bot, [alice])
        [config] = await store.list_communities("matrix")
        stranger = matrix.user("stranger")

        def in_room(runner: Any, room: str | None, under: str | None) -> list[str]:
            found = []
            rooms = [room] if room is not None else list(runner.messages)
            for room_id in rooms:
                for event in runner.messages.get(room_id, []):
                    if event.sender != bot.user.user_id:
                        continue
                    relates = event.source.get("content", {}).get("m.relates_to", {})
                    if under is None or under in (event.event_id, relates.get("event_id")):
                        found.append(event.body)
            return found

        async def moderators_see(text: str, under: str | None) -> list[str]:
            return await _settled(lambda: [b for b in in_room(owner, mods, under) if text in b])

        async def person_sees(who: PersonId, text: str) -> list[str]:
            assert who.id == alice.user_id
            return await _settled(lambda: [b for b in in_room(alice, None, None) if text in b])

        yield PortWorld(
            adapter,
            config,
            PersonId("matrix", alice.user_id),
            PersonId("matrix", stranger.user_id),
            moderators_see,
            person_sees,
            replace(config, destination="!nowhere:" + alice.user_id.split(":", 1)[1]),
        )
    finally:
        await bot.stop()


PLATFORMS = ["memory", "console", "discord", "matrix"]


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    opened = await open_store(settings.database_url)
    yield opened
    await opened.close()


@pytest.fixture
async def memory_port(engine: Engine, store: Store, settings: Settings) -> AsyncIterator[PortWorld]:
    async with memory_world(engine, store, settings) as built:
        yield built


@pytest.fixture
async def console_port(
    engine: Engine, store: Store, settings: Settings
) -> AsyncIterator[PortWorld]:
    async with console_world(engine, store, settings) as built:
        yield built


@pytest.fixture
async def discord_port(
    world: World, engine: Engine, store: Store, settings: Settings
) -> AsyncIterator[PortWorld]:
    async with discord_world(world, engine, store, settings) as built:
        yield built


@pytest.fixture
async def matrix_port(
    matrix: Any, engine: Engine, store: Store, tmp_path: Path
) -> AsyncIterator[PortWorld]:
    async with matrix_world(matrix, engine, store, tmp_path) as built:
        yield built


@pytest.fixture(params=PLATFORMS)
def port_world(request: pytest.FixtureRequest) -> PortWorld:
    built: PortWorld = request.getfixturevalue(f"{request.param}_port")
    return built


# --- what every adapter does -----------------------------------------------------------------
def an_alert(content: Content, config: CommunityConfig, **changes: Any) -> Alert:
    report = Report(
        reference="R-7K3Q",
        community=config.community,
        community_name=config.name,
        reporter=None,
        reveal=False,
        category=Category.MONEY,
        offender="someone",
        details="asks for money @everyone <b>bold</b>",
        evidence=(),
        locale="en",
        status=ReportStatus.NEW,
        created_at=100.0,
        updated_at=100.0,
    ).evolve(**changes)
    return build_alert(content, report, "alert:R-7K3Q", "en")


async def test_an_alert_shows_once_and_says_where_it_is(
    port_world: PortWorld, content: Content
) -> None:
    """Sent twice (a crash before the outbox marked it), the alert shows once, and send_alert
    names the same place both times."""
    alert = an_alert(content, port_world.config)
    first = await port_world.port.send_alert(port_world.config, alert)
    again = await port_world.port.send_alert(port_world.config, alert)
    assert first == again
    assert (first is not None) == port_world.has_references
    assert len(await port_world.moderators_see("R-7K3Q", None)) == 1
    assert await port_world.moderators_see("asks for money", first)


async def test_updates_and_replies_reach_the_alert_where_it_was_posted(
    port_world: PortWorld, content: Content
) -> None:
    alert = an_alert(content, port_world.config)
    posted = await port_world.port.send_alert(port_world.config, alert)
    update = replace(
        an_alert(content, port_world.config, status=ReportStatus.ACKNOWLEDGED, handled_by="Ana"),
        posted=posted,
    )
    await port_world.port.update_alert(port_world.config, update, "update:1")
    assert await port_world.moderators_see("Ana", posted)
    note = Message((Span("A note from the person: "), Span("a new account", untrusted=True)))
    await port_world.port.reply_to_alert(port_world.config, update, note, "note:1", ping=False)
    await port_world.port.reply_to_alert(port_world.config, update, note, "note:1", ping=False)
    assert len(await port_world.moderators_see("a new account", posted)) == 1


async def test_a_private_message_reaches_the_person_once(
    port_world: PortWorld, content: Content
) -> None:
    message = Message((Span("Your report R-7K3Q: a moderator has seen it."),))
    await port_world.port.send_private(port_world.member, message, "status:1")
    await port_world.port.send_private(port_world.member, message, "status:1")
    assert len(await port_world.person_sees(port_world.member, "a moderator has seen it")) == 1


async def test_shared_communities_are_checked_not_assumed(port_world: PortWorld) -> None:
    shared = await port_world.port.shared_communities(port_world.member)
    assert port_world.config.community in [c.id for c in shared]
    assert await port_world.port.shared_communities(port_world.stranger) == []


async def test_an_unreachable_destination_is_a_delivery_error(
    port_world: PortWorld, content: Content
) -> None:
    """A failure comes back as the one typed error the outbox retries or parks, never as
    KeyError, AttributeError or a None taken for success."""
    if port_world.unreachable is None:
        pytest.skip("this platform has no destination that can fail")
    with pytest.raises(DeliveryError):
        await port_world.port.send_alert(
            port_world.unreachable, an_alert(content, port_world.unreachable)
        )


_ = TIMEOUT  # (the Matrix helpers' timeout, imported with them)

"""Shared fixtures: the real content, flow and engine, and a whole bot on the memory platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from safebot.adapters.memory import MemoryBot
from safebot.content import Content
from safebot.conversation import Engine, Policy
from safebot.flows import Flow, load_flow
from safebot.recognise import Recogniser
from safebot.settings import OutboxSettings, Settings
from safebot.store import open_store

CONTENT_DIR = Path(__file__).resolve().parents[1] / "content"


class Clock:
    """A settable clock so tests control time (idle timeouts, backoff, retention)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Tokens:
    """Deterministic tokens for reference minting."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"token-{self.count}"


@pytest.fixture(scope="session")
def content() -> Content:
    return Content.load()


@pytest.fixture(scope="session")
def flow() -> Flow:
    return load_flow()


@pytest.fixture(scope="session")
def recogniser(content: Content) -> Recogniser:
    return Recogniser.from_dir(content.root, content.locales)


@pytest.fixture(scope="session")
def engine(flow: Flow, content: Content, recogniser: Recogniser) -> Engine:
    return Engine(flow, content, recogniser, Policy())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=str(tmp_path / "safebot.db"),
        outbox=OutboxSettings(max_attempts=4, base_delay=1.0, max_delay=8.0, lease=30.0),
    )


@pytest.fixture(params=["memory", "sqlite"])
async def bot(
    request: pytest.FixtureRequest, engine: Engine, settings: Settings, clock: Clock
) -> AsyncIterator[MemoryBot]:
    database = "memory" if request.param == "memory" else settings.database_url
    store = await open_store(database)
    try:
        yield MemoryBot(engine, store, settings, clock=clock, tokens=Tokens())
    finally:
        await store.close()

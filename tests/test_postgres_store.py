"""PostgreSQL-only behaviour, on a real server: migrations, several pools (= several bot
processes) sharing one database, and text PostgreSQL would refuse.

The shared semantics are in test_store_contract.py, which runs on PostgreSQL too.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from safebot.model import (
    AuditEntry,
    CommunityConfig,
    CommunityId,
    Draft,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
    Session,
)
from safebot.pseudonym import pseudonym
from safebot.store import open_store
from safebot.store.postgres import PostgresStore, migrate
from safebot.store.schema import LATEST_VERSION, MIGRATIONS

pytest_plugins = ["pgserver"]

ALICE = PersonId("discord", "1001")
GUILD = CommunityId("discord", "500")


def report(reference: str = "R-1", **changes: Any) -> Report:
    return Report(
        reference=reference,
        community=GUILD,
        community_name="Gamers",
        reporter=ALICE,
        reveal=True,
        category="money",
        offender=None,
        details="details",
        evidence=("e1",),
        locale="en",
        status=ReportStatus.NEW,
        created_at=100.0,
        updated_at=100.0,
    ).evolve(**changes)


def item(key: str, created_at: float = 100.0, **changes: Any) -> OutboxItem:
    base = OutboxItem(
        key=key,
        kind=OutboxKind.ALERT,
        reference="R-1",
        community=GUILD,
        created_at=created_at,
        next_try=created_at,
        payload={"text": f"alert {key}"},
    )
    return replace(base, **changes)


@pytest.fixture
async def conn(postgres_url: str) -> AsyncIterator[Any]:
    """A plain connection to the test's (empty) database."""
    raw = await asyncpg.connect(postgres_url)
    try:
        yield raw
    finally:
        await raw.close()


async def versions(conn: Any) -> list[tuple[int, str]]:
    rows = await conn.fetch("SELECT version, description FROM schema_version ORDER BY version")
    return [(r["version"], r["description"]) for r in rows]


# --- migrations ------------------------------------------------------------------------------
async def test_migrate_from_empty(conn: Any) -> None:
    assert await migrate(conn) == LATEST_VERSION
    assert await versions(conn) == [(m.version, m.description) for m in MIGRATIONS]
    tables = {
        r["tablename"]
        for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert tables == {
        "schema_version",
        "sessions",
        "reports",
        "outbox",
        "communities",
        "audit_log",
        "rate_hits",
        "deployment_secret",
        "memberships",
        "case_notes",
    }
    assert await migrate(conn) == LATEST_VERSION  # a second run does nothing
    assert len(await versions(conn)) == LATEST_VERSION


async def test_migrate_from_version_1_keeps_data(conn: Any, postgres_url: str) -> None:
    assert await migrate(conn, target=1) == 1
    await conn.execute(
        "INSERT INTO sessions (person, state, version, updated_at) VALUES ($1, $2, 4, 10.0)",
        ALICE.key,
        Session(person=ALICE, node="menu", locale="es", region="MX", updated_at=10.0).to_json(),
    )
    await conn.execute(
        "INSERT INTO reports (reference, community, community_name, reporter, reveal, "
        "category, offender, details, evidence, locale, status, created_at, updated_at) "
        "VALUES ('R-1', $1, 'Gamers', $2, TRUE, 'money', NULL, 'details', '[\"e1\"]', 'en', "
        "'new', 100.0, 100.0)",
        GUILD.key,
        ALICE.key,
    )

    store = await PostgresStore.open(postgres_url)
    try:
        assert [v for v, _ in await versions(conn)] == list(range(1, LATEST_VERSION + 1))
        loaded = await store.load_session(ALICE)
        assert loaded is not None
        assert (loaded.node, loaded.locale, loaded.version) == ("menu", "es", 4)
        tag = pseudonym(await store.pseudonym_secret(), ALICE)
        assert await store.get_report("R-1") == report(reporter_tag=tag)
        assert await store.reports_since(tag, 0.0) == 1
        # The tables of versions 2 and 3 work.
        await store.audit(AuditEntry(at=1.0, actor="mod", action="claim", reference="R-1"))
        assert await store.count_hit("m:a", 60.0, 61.0) == 1
    finally:
        await store.close()


async def test_plain_person_keys_become_pseudonyms(conn: Any, postgres_url: str) -> None:
    assert await migrate(conn, target=3) == 3
    await conn.execute(
        "INSERT INTO communities VALUES ('discord:500', 'discord', 'Gamers', 'chan', NULL, "
        "'en', '[\"discord:6\",\"discord:7\"]', 1.0)"
    )
    await conn.execute("INSERT INTO rate_hits VALUES ('messages:discord:6', 60.0, 120.0, 5)")
    store = await PostgresStore.open(postgres_url)
    try:
        secret = await store.pseudonym_secret()
        six, seven = (pseudonym(secret, PersonId("discord", i)) for i in "67")
        config = await store.get_community(GUILD)
        assert config is not None and config.blocked == (six, seven)
        assert await store.count_hit(f"messages:{six}", 60.0, 61.0) == 6
        assert await conn.fetch("SELECT key FROM rate_hits WHERE key LIKE '%discord:6'") == []
    finally:
        await store.close()


async def test_refuses_a_newer_schema(conn: Any, postgres_url: str) -> None:
    await migrate(conn)
    await conn.execute(
        "INSERT INTO schema_version (version, description, applied_at) "
        "VALUES ($1, 'from the future', 0)",
        LATEST_VERSION + 1,
    )
    with pytest.raises(RuntimeError, match="newer than this SafeBot"):
        await PostgresStore.open(postgres_url)
    assert len(await versions(conn)) == LATEST_VERSION + 1  # untouched
    # The refused store closed its pool: only this test's connection is left.
    others = await conn.fetchval(
        "SELECT COUNT(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert others == 0


async def test_two_processes_starting_at_once_migrate_once(postgres_url: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(postgres_url) for _ in range(4)))
    try:
        raw = await asyncpg.connect(postgres_url)
        try:
            assert [v for v, _ in await versions(raw)] == list(range(1, LATEST_VERSION + 1))
        finally:
            await raw.close()
    finally:
        for store in stores:
            await store.close()


async def test_open_store_dispatches_postgres_urls(postgres_url: str) -> None:
    for url in (postgres_url, postgres_url.replace("postgresql://", "postgres://", 1)):
        store = await open_store(url)
        try:
            assert isinstance(store, PostgresStore)
            assert await store.load_session(ALICE) is None
        finally:
            await store.close()


# --- several processes on one database -------------------------------------------------------
@pytest.fixture
async def two_stores(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores with their own pools, as two bot processes would have."""
    first = await PostgresStore.open(postgres_url, max_size=4)
    second = await PostgresStore.open(postgres_url, max_size=4)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_two_pools_claiming_one_outbox_never_overlap(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_stores
    keys = [f"k{n:03}" for n in range(150)]
    await first.enqueue([item(k, created_at=float(n)) for n, k in enumerate(keys)])
    claimed: list[str] = []

    async def worker(store: PostgresStore) -> None:
        while batch := await store.claim_due(now=1000.0, limit=7, lease=600.0):
            claimed.extend(i.key for i in batch)

    await asyncio.wait_for(asyncio.gather(*(worker(s) for s in two_stores for _ in range(4))), 60)
    duplicates = [k for k, n in Counter(claimed).items() if n > 1]
    assert duplicates == []
    assert sorted(claimed) == keys
    assert (await second.backlog()).waiting == len(keys)  # claimed, not delivered


async def test_claim_skips_rows_another_process_has_locked(
    postgres_url: str, two_stores: tuple[PostgresStore, PostgresStore]
) -> None:
    store = two_stores[0]
    await store.enqueue([item("a", created_at=1.0), item("b", created_at=2.0)])
    other = await asyncpg.connect(postgres_url)
    try:
        async with other.transaction():
            await other.execute("SELECT * FROM outbox WHERE key = 'a' FOR UPDATE")
            # Does not wait for the other transaction: it takes what is free.
            batch = await asyncio.wait_for(store.claim_due(1000.0, 10, 60.0), 10)
            assert [i.key for i in batch] == ["b"]
    finally:
        await other.close()
    assert [i.key for i in await store.claim_due(1000.0, 10, 60.0)] == ["a"]


async def test_rate_counts_are_exact_across_pools(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    # Ended windows of other keys are being deleted by the same calls.
    first, second = two_stores
    for n in range(20):
        await first.count_hit(f"old:{n}", 10.0, 5.0)
    counts = await asyncio.gather(
        *(s.count_hit("m:a", 60.0, 61.0) for s in two_stores for _ in range(25))
    )
    assert sorted(counts) == list(range(1, 51))
    assert await second.count_hit("old:0", 10.0, 61.0) == 1  # its window had ended


async def test_concurrent_session_writers_in_two_pools(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = two_stores
    saved = await first.save_session(Session(ALICE, "start", "en", "US", updated_at=1.0))
    results = await asyncio.gather(
        *(s.save_session(saved.evolve(node=f"n{i}")) for i, s in enumerate(two_stores * 3)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Session) for r in results) == 1
    loaded = await second.load_session(ALICE)
    assert loaded is not None
    assert loaded.version == 2


# --- text PostgreSQL refuses ----------------------------------------------------------------
SURROGATE = "\ud83d"  # half of an emoji, as a broken client may send it
NUL = "\x00"


async def test_surrogates_and_nul_are_stored_without_error(
    two_stores: tuple[PostgresStore, PostgresStore],
) -> None:
    store = two_stores[0]
    odd = f"a{SURROGATE}b{NUL}c"
    cleaned = "a\ufffdbc"  # surrogate replaced, NUL dropped (text columns)
    person = PersonId("matrix", f"@x{SURROGATE}{NUL}:example.org")
    community = CommunityId("discord", f"5{NUL}00")

    session = Session(person, "details", "en", "US", updated_at=1.0, vars={"v": odd}).evolve(
        draft=Draft(details=odd)
    )
    await store.save_session(session)
    loaded = await store.load_session(person)  # the same mangling on read and write
    assert loaded is not None
    # The session is JSON: NUL is escaped (so kept), a raw surrogate becomes U+FFFD.
    assert loaded.vars == {"v": "a\ufffdb\x00c"}
    assert loaded.draft.details == "a\ufffdb\x00c"

    await store.add_report(
        report(
            f"R-{SURROGATE}",
            community=community,
            community_name=odd,
            reporter=person,
            reporter_tag=f"p:{odd}",
            offender=odd,
            details=odd,
            evidence=(odd,),
            handled_by=odd,
        ),
        [item("k1", payload={"text": odd}, last_error=odd)],
    )
    stored = await store.get_report(f"R-{SURROGATE}")
    assert stored is not None
    assert stored.reference == "R-\ufffd"
    assert (stored.community_name, stored.offender, stored.details) == (cleaned,) * 3
    assert stored.handled_by == cleaned
    assert stored.evidence == (odd,)  # a JSON column keeps everything, escaped
    assert stored.reporter == PersonId("matrix", "@x\ufffd:example.org")
    assert await store.reports_since(f"p:{odd}", 0.0) == 1
    assert [r.reference for r in await store.reports_for_community(community)] == ["R-\ufffd"]

    outbox = await store.get_outbox_item("k1")
    assert outbox is not None
    assert outbox.payload == {"text": odd}
    assert outbox.last_error == cleaned
    await store.mark_retry("k1", 2, 200.0, odd)
    await store.mark_parked("k1", 3, odd)

    await store.put_community(
        CommunityConfig(community, name=odd, destination=odd, mention=odd, blocked=(odd,))
    )
    config = await store.get_community(community)
    assert config is not None
    assert (config.name, config.destination, config.blocked) == (cleaned, cleaned, (odd,))

    await store.audit(AuditEntry(at=1.0, actor=odd, action=odd, reference=f"R-{SURROGATE}"))
    [entry] = await store.audit_log(f"R-{SURROGATE}")
    assert (entry.actor, entry.action) == (cleaned, cleaned)
    assert await store.count_hit(f"m:{odd}", 60.0, 1.0) == 1
    assert await store.forget_person(person, 2.0) == 1

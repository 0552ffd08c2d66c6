"""The Store contract: every store implementation must pass this one suite.

To add a store, add a factory to STORES. PostgreSQL runs on a real server that tests/pgserver.py
starts once per session, with a fresh database for each test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from safebot.model import (
    AuditEntry,
    CaseNote,
    Category,
    Community,
    CommunityConfig,
    CommunityId,
    Draft,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
    Session,
    name_removal,
)
from safebot.pseudonym import pseudonym
from safebot.store.base import Backlog, DuplicateReference, Store, VersionConflict
from safebot.store.memory import MemoryStore
from safebot.store.sqlite import SqliteStore

pytest_plugins = ["pgserver"]


@contextlib.asynccontextmanager
async def _memory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    yield MemoryStore()


@contextlib.asynccontextmanager
async def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await SqliteStore.open(str(tmp_path / "safebot.db"))
    try:
        yield opened
    finally:
        await opened.close()


@contextlib.asynccontextmanager
async def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    from safebot.store.postgres import PostgresStore

    server = request.getfixturevalue("postgres_server")
    async with server.database() as url:
        opened = await PostgresStore.open(url)
        try:
            yield opened
        finally:
            await opened.close()


STORES: dict[str, Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Store]]] = {
    "memory": _memory,
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=list(STORES))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async with STORES[request.param](request, tmp_path) as opened:
        yield opened


ALICE = PersonId("discord", "1001")
BOB = PersonId("discord", "1002")
ALICE_TAG, BOB_TAG = "p:a11ce", "p:b0b"  # pseudonyms (the store treats them as opaque)
GUILD = CommunityId("discord", "500")
OTHER_GUILD = CommunityId("discord", "501")
ROOM = CommunityId("matrix", "!room:example.org")


def session(person: PersonId = ALICE, **changes: Any) -> Session:
    return Session(person=person, node="start", locale="en", region="US", updated_at=10.0).evolve(
        **changes
    )


def report(reference: str = "R-1", **changes: Any) -> Report:
    return Report(
        reference=reference,
        community=GUILD,
        community_name="Gamers 🎮",
        reporter=ALICE,
        reveal=True,
        category=Category.MONEY,
        offender="bad#0001",
        details="they asked for money",
        evidence=("https://cdn.example/a.png", "msg:42"),
        locale="en",
        status=ReportStatus.NEW,
        created_at=100.0,
        updated_at=100.0,
        reporter_tag=ALICE_TAG,
    ).evolve(**changes)


def item(key: str, reference: str = "R-1", **changes: Any) -> OutboxItem:
    base = OutboxItem(
        key=key,
        kind=OutboxKind.ALERT,
        reference=reference,
        community=GUILD,
        created_at=100.0,
        next_try=100.0,
        payload={"text": f"alert {key}"},
    )
    return replace(base, **changes)


# --- sessions --------------------------------------------------------------------------------
async def test_missing_session_is_none(store: Store) -> None:
    assert await store.load_session(ALICE) is None


async def test_session_round_trip(store: Store) -> None:
    full = session(
        node="details",
        locale="es",
        region="MX",
        locale_chosen=True,
        vars={"name": "Zoë", "emoji": "🫶"},
        draft=Draft(
            community=ROOM,
            community_name="Sala «segura»",
            category="threats",
            offender="@x:example.org",
            details="مرحبا\n\u0000 quotes \" and 'single'",
            evidence=("a", "b"),
            reveal=False,
        ),
        offered=(Community(GUILD, "Gamers"), Community(ROOM, "Sala")),
    )
    saved = await store.save_session(full)
    assert saved == full.evolve(version=1)
    assert await store.load_session(ALICE) == saved
    assert await store.load_session(BOB) is None


async def test_session_huge_unicode_text(store: Store) -> None:
    huge = "😀 ꧁ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u202e " * 40_000  # about 1 MB
    saved = await store.save_session(session(draft=Draft(details=huge)))
    loaded = await store.load_session(ALICE)
    assert loaded is not None
    assert loaded.draft.details == huge
    assert loaded == saved


async def test_session_versions_increase(store: Store) -> None:
    first = await store.save_session(session())
    second = await store.save_session(first.evolve(node="menu"))
    assert (first.version, second.version) == (1, 2)
    assert await store.load_session(ALICE) == second


async def test_stale_session_write_conflicts(store: Store) -> None:
    first = await store.save_session(session())
    await store.save_session(first.evolve(node="winner"))
    with pytest.raises(VersionConflict):
        await store.save_session(first.evolve(node="loser"))
    loaded = await store.load_session(ALICE)
    assert loaded is not None
    assert (loaded.node, loaded.version) == ("winner", 2)


async def test_double_insert_conflicts(store: Store) -> None:
    await store.save_session(session(node="first"))
    with pytest.raises(VersionConflict):
        await store.save_session(session(node="second"))
    loaded = await store.load_session(ALICE)
    assert loaded is not None
    assert loaded.node == "first"


async def test_update_of_missing_session_conflicts(store: Store) -> None:
    with pytest.raises(VersionConflict):
        await store.save_session(session(version=3))
    assert await store.load_session(ALICE) is None


async def test_concurrent_inserts_one_wins(store: Store) -> None:
    results = await asyncio.gather(
        *(store.save_session(session(node=f"n{i}")) for i in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, Session) for r in results) == 1
    assert sum(isinstance(r, VersionConflict) for r in results) == 4


async def test_delete_session(store: Store) -> None:
    await store.save_session(session())
    await store.save_session(session(BOB))
    await store.delete_session(ALICE)
    await store.delete_session(ALICE)  # deleting twice is fine
    assert await store.load_session(ALICE) is None
    assert await store.load_session(BOB) is not None
    assert (await store.save_session(session())).version == 1  # fresh insert after delete


async def test_saved_session_is_not_shared_with_caller(store: Store) -> None:
    mutable = {"a": "1"}
    await store.save_session(session(vars=mutable))
    mutable["a"] = "changed"
    loaded = await store.load_session(ALICE)
    assert loaded is not None
    assert loaded.vars == {"a": "1"}


# --- reports ---------------------------------------------------------------------------------
async def test_report_round_trip(store: Store) -> None:
    full = report(
        details="línea 1\nline 2 🧷",
        status=ReportStatus.CLAIMED,
        handled_by="mod#7",
        reveal=False,
        updated_at=150.5,
        urgent=("crisis", "deadline"),
    )
    alert = item("R-1:alert", payload={"text": "ünïcode", "channel": "9"})
    await store.add_report(full, [alert])
    assert await store.get_report("R-1") == full
    assert await store.get_outbox_item("R-1:alert") == alert
    assert await store.get_report("R-2") is None


async def test_report_optional_fields_round_trip(store: Store) -> None:
    anonymous = report(reporter=None, offender=None, details=None, evidence=())
    await store.add_report(anonymous, [])
    assert await store.get_report("R-1") == anonymous


async def test_duplicate_reference_raises_and_writes_nothing(store: Store) -> None:
    original = report()
    await store.add_report(original, [item("R-1:alert")])
    with pytest.raises(DuplicateReference):
        await store.add_report(report(details="other"), [item("R-1:other")])
    assert await store.get_report("R-1") == original
    assert await store.get_outbox_item("R-1:other") is None
    assert (await store.backlog()).waiting == 1


async def test_concurrent_add_report_same_reference(store: Store) -> None:
    results = await asyncio.gather(
        *(store.add_report(report(details=f"d{i}"), [item(f"k{i}")]) for i in range(4)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert sum(isinstance(r, DuplicateReference) for r in results) == 3
    assert (await store.backlog()).waiting == 1


async def test_reports_of_a_person_newest_first(store: Store) -> None:
    other = PersonId("discord", "999")
    await store.add_report(report("R-1", created_at=10.0), [])
    await store.add_report(report("R-2", created_at=30.0), [])
    await store.add_report(report("R-3", created_at=20.0, reporter=other), [])
    await store.add_report(report("R-4", created_at=40.0, reporter=None), [])
    assert [r.reference for r in await store.reports_of(ALICE, 10)] == ["R-2", "R-1"]
    assert [r.reference for r in await store.reports_of(ALICE, 1)] == ["R-2"]
    assert [r.reference for r in await store.reports_of(other, 10)] == ["R-3"]


async def test_case_notes_are_kept_with_the_report_and_audited(store: Store) -> None:
    await store.add_report(report("R-1", created_at=10.0), [])
    first = CaseNote("R-1", 20.0, "mod#7", "called the parent; línea 2 🧷")
    second = CaseNote("R-1", 30.0, "mod#8", "reported to the platform\x00\ud800")
    entry = AuditEntry(at=20.0, actor="mod#7", action="case_note", reference="R-1")
    await store.add_case_note(first, entry)
    await store.add_case_note(second, entry)
    notes = await store.case_notes("R-1")
    assert notes[0] == first and [n.author for n in notes] == ["mod#7", "mod#8"]
    assert notes[1].text.startswith("reported to the platform")
    assert [e.action for e in await store.audit_log("R-1")] == ["case_note", "case_note"]
    with pytest.raises(KeyError):
        await store.add_case_note(CaseNote("R-9", 1.0, "m", "x"), entry)
    assert await store.case_notes("R-9") == []
    assert len(await store.audit_log()) == 2  # the refused one wrote nothing
    await store.purge_reports(created_before=15.0)
    assert await store.case_notes("R-1") == []


async def test_update_report(store: Store) -> None:
    await store.add_report(report(), [item("R-1:alert")])
    updated = report(
        status=ReportStatus.ACKNOWLEDGED, handled_by="mod#7", updated_at=200.0, urgent=("deadline",)
    )
    status = item("R-1:status:ack", kind=OutboxKind.STATUS, payload={"to": ALICE.key})
    changed_alert = item("R-1:alert", payload={"text": "replaced?"})
    entry = AuditEntry(at=200.0, actor="mod#7", action="acknowledge", reference="R-1")
    await store.update_report(updated, [changed_alert, status], entry)

    assert await store.get_report("R-1") == updated
    assert await store.get_outbox_item("R-1:status:ack") == status
    assert await store.get_outbox_item("R-1:alert") == item("R-1:alert")  # key already present
    assert await store.audit_log("R-1") == [entry]


async def test_update_report_without_audit(store: Store) -> None:
    await store.add_report(report(), [])
    await store.update_report(report(status=ReportStatus.RESOLVED), [], None)
    assert (await store.get_report("R-1")) == report(status=ReportStatus.RESOLVED)
    assert await store.audit_log() == []


async def test_update_of_missing_report_raises_and_writes_nothing(store: Store) -> None:
    entry = AuditEntry(at=1.0, actor="mod", action="resolve", reference="R-9")
    with pytest.raises(KeyError):
        await store.update_report(report("R-9"), [item("R-9:s", "R-9")], entry)
    assert await store.get_report("R-9") is None
    assert await store.get_outbox_item("R-9:s") is None
    assert await store.audit_log() == []


async def test_reports_for_community(store: Store) -> None:
    late = report("R-late", created_at=300.0)
    early = report("R-early", created_at=50.0)
    same_time = report("R-b", created_at=50.0)
    await store.add_report(late, [])
    await store.add_report(same_time, [])
    await store.add_report(early, [])
    await store.add_report(report("R-other", community=OTHER_GUILD), [])
    await store.add_report(report("R-matrix", community=CommunityId("matrix", "500")), [])
    assert await store.reports_for_community(GUILD) == [same_time, early, late]
    assert await store.reports_for_community(ROOM) == []


async def test_count_reports_by_status(store: Store) -> None:
    await store.add_report(report("R-new1"), [])
    await store.add_report(report("R-new2"), [])
    await store.add_report(report("R-ack", status=ReportStatus.ACKNOWLEDGED), [])
    await store.add_report(report("R-new3", community=OTHER_GUILD), [])
    assert await store.count_reports(GUILD, ReportStatus.NEW) == 2
    assert await store.count_reports(GUILD, ReportStatus.ACKNOWLEDGED) == 1
    assert await store.count_reports(GUILD, ReportStatus.RESOLVED) == 0
    assert await store.count_reports(ROOM, ReportStatus.NEW) == 0


async def test_forget_person(store: Store) -> None:
    await store.save_session(session())
    await store.save_session(session(BOB))
    await store.add_report(
        report("R-1"),
        [item("R-1:alert"), item("R-1:status", kind=OutboxKind.STATUS)],
    )
    await store.add_report(report("R-2"), [item("R-2:status", "R-2", kind=OutboxKind.STATUS)])
    await store.mark_delivered("R-2:status", 120.0)
    parked = item("R-2:status2", "R-2", kind=OutboxKind.STATUS)
    await store.enqueue([parked])
    await store.mark_parked(parked.key, 5, "blocked DMs")
    bob_report = report("R-3", reporter=BOB, reporter_tag=BOB_TAG)
    await store.add_report(bob_report, [item("R-3:status", "R-3", kind=OutboxKind.STATUS)])
    await store.add_report(report("R-4", reveal=False), [])

    assert await store.forget_person(ALICE, 130.0) == 3

    assert await store.load_session(ALICE) is None
    # The name goes; the pseudonym stays, so limits and blocks still hold.
    assert await store.get_report("R-1") == report("R-1", reporter=None)
    assert await store.get_report("R-2") == report("R-2", reporter=None)
    assert await store.get_report("R-4") == report("R-4", reporter=None, reveal=False)
    # Each report that showed the name gets one alert update taking it off.
    for reference in ("R-1", "R-2"):
        assert await store.get_outbox_item(f"forget:{reference}") == name_removal(
            reference, GUILD, 130.0
        )
    assert await store.get_outbox_item("forget:R-4") is None  # anonymous: nothing to remove
    assert await store.get_outbox_item("forget:R-3") is None
    assert await store.get_outbox_item("R-1:status") is None
    assert await store.get_outbox_item("R-2:status2") is None  # parked is still pending
    assert await store.get_outbox_item("R-1:alert") is not None  # moderators still get it
    assert await store.get_outbox_item("R-2:status") is not None  # already delivered
    # Bob is untouched.
    assert await store.load_session(BOB) is not None
    assert await store.get_report("R-3") == bob_report
    assert await store.get_outbox_item("R-3:status") is not None
    await store.mark_delivered("forget:R-1", 140.0)
    assert await store.forget_person(ALICE, 150.0) == 0
    again = await store.get_outbox_item("forget:R-1")
    assert again is not None and again.delivered_at == 140.0  # not queued a second time


async def test_purge_reports(store: Store) -> None:
    await store.add_report(report("R-old", created_at=100.0), [item("old:a", "R-old")])
    await store.add_report(report("R-edge", created_at=150.0), [item("edge:a", "R-edge")])
    await store.add_report(report("R-new", created_at=200.0), [item("new:a", "R-new")])
    await store.mark_delivered("old:a", 101.0)
    await store.enqueue([item("old:s", "R-old", kind=OutboxKind.STATUS)])
    entry = AuditEntry(at=120.0, actor="mod", action="resolve", reference="R-old")
    await store.audit(entry)

    assert await store.purge_reports(150.0) == 1

    assert await store.get_report("R-old") is None
    assert await store.get_outbox_item("old:a") is None
    assert await store.get_outbox_item("old:s") is None
    assert await store.get_report("R-edge") is not None  # not *before* the cutoff
    assert await store.get_outbox_item("edge:a") is not None
    assert await store.get_report("R-new") is not None
    assert await store.audit_log() == [entry]  # the audit log carries no report text
    assert await store.purge_reports(150.0) == 0


# --- outbox ----------------------------------------------------------------------------------
async def test_enqueue_is_idempotent(store: Store) -> None:
    first = item("k1")
    await store.enqueue([first])
    await store.enqueue([item("k1", payload={"text": "second"}), item("k2")])
    await store.enqueue([item("k3", created_at=1.0), item("k3", created_at=2.0)])
    assert await store.get_outbox_item("k1") == first
    assert await store.get_outbox_item("k2") == item("k2")
    assert await store.get_outbox_item("k3") == item("k3", created_at=1.0)
    assert await store.get_outbox_item("missing") is None
    assert (await store.backlog()).waiting == 3


async def test_enqueue_does_not_reset_progress(store: Store) -> None:
    await store.enqueue([item("k1")])
    await store.mark_delivered("k1", 150.0)
    await store.enqueue([item("k1")])  # a redelivery of the same event
    stored = await store.get_outbox_item("k1")
    assert stored is not None
    assert stored.delivered_at == 150.0


async def test_outbox_payload_is_not_shared_with_caller(store: Store) -> None:
    payload = {"text": "original"}
    await store.enqueue([item("k1", payload=payload)])
    payload["text"] = "changed"
    stored = await store.get_outbox_item("k1")
    assert stored is not None
    assert stored.payload == {"text": "original"}


async def test_claim_due_order_limit_and_lease(store: Store) -> None:
    await store.enqueue(
        [
            item("c", created_at=3.0, next_try=3.0),
            item("a", created_at=1.0, next_try=5.0),
            item("b2", created_at=2.0, next_try=1.0),
            item("b1", created_at=2.0, next_try=1.0),
            item("later", created_at=0.5, next_try=50.0),
        ]
    )
    claimed = await store.claim_due(now=10.0, limit=3, lease=30.0)
    assert [i.key for i in claimed] == ["a", "b1", "b2"]
    assert all(i.next_try == 40.0 for i in claimed)
    assert claimed[0] == item("a", created_at=1.0, next_try=40.0)
    assert await store.get_outbox_item("a") == claimed[0]

    # Claimed items are not due again until the lease runs out.
    assert [i.key for i in await store.claim_due(now=10.0, limit=10, lease=30.0)] == ["c"]
    assert await store.claim_due(now=39.9, limit=10, lease=30.0) == []
    again = await store.claim_due(now=40.0, limit=10, lease=30.0)
    assert [i.key for i in again] == ["a", "b1", "b2", "c"]
    assert [i.key for i in await store.claim_due(now=70.0, limit=10, lease=1.0)] == [
        "later",
        "a",
        "b1",
        "b2",
        "c",
    ]


async def test_claim_due_with_zero_limit(store: Store) -> None:
    await store.enqueue([item("k1")])
    assert await store.claim_due(now=1000.0, limit=0, lease=1.0) == []
    assert len(await store.claim_due(now=1000.0, limit=1, lease=1.0)) == 1


async def test_concurrent_claims_do_not_overlap(store: Store) -> None:
    await store.enqueue([item(f"k{n}", created_at=float(n)) for n in range(10)])
    batches = await asyncio.gather(
        *(store.claim_due(now=200.0, limit=3, lease=60.0) for _ in range(5))
    )
    keys = [i.key for batch in batches for i in batch]
    assert sorted(keys) == sorted(f"k{n}" for n in range(10))


async def test_delivered_and_parked_are_never_claimed(store: Store) -> None:
    await store.enqueue([item("done"), item("stuck"), item("ok")])
    await store.mark_delivered("done", 101.0)
    await store.mark_parked("stuck", 7, "Forbidden")
    assert [i.key for i in await store.claim_due(now=1e12, limit=10, lease=1.0)] == ["ok"]


async def test_mark_retry(store: Store) -> None:
    await store.enqueue([item("k1")])
    await store.claim_due(now=100.0, limit=1, lease=30.0)
    await store.mark_retry("k1", attempts=2, next_try=500.0, error="HTTP 503")
    assert await store.get_outbox_item("k1") == item(
        "k1", attempts=2, next_try=500.0, last_error="HTTP 503"
    )
    assert await store.claim_due(now=499.0, limit=1, lease=30.0) == []
    claimed = await store.claim_due(now=500.0, limit=1, lease=30.0)
    assert [(i.key, i.attempts, i.last_error) for i in claimed] == [("k1", 2, "HTTP 503")]


async def test_mark_parked(store: Store) -> None:
    await store.enqueue([item("k1")])
    await store.mark_parked("k1", attempts=9, error="Missing Access")
    assert await store.get_outbox_item("k1") == item(
        "k1", attempts=9, parked=True, last_error="Missing Access"
    )


async def test_mark_delivered(store: Store) -> None:
    await store.enqueue([item("k1")])
    await store.mark_delivered("k1", now=123.5)
    assert await store.get_outbox_item("k1") == item("k1", delivered_at=123.5)


async def test_mark_delivered_keeps_where_an_alert_was_posted(store: Store) -> None:
    """send_alert answers with the platform's reference to the posted alert; it is kept with
    the delivered item so later edits and replies find the alert without searching."""
    await store.enqueue([item("alert:R-1"), item("k2")])
    await store.mark_delivered("alert:R-1", 50.0, posted="1234/5678")
    await store.mark_delivered("k2", 51.0)
    assert await store.get_outbox_item("alert:R-1") == item(
        "alert:R-1", delivered_at=50.0, posted="1234/5678"
    )
    assert (await store.get_outbox_item("k2")) == item("k2", delivered_at=51.0)
    assert (await store.claim_due(1000.0, 10, 5.0)) == []


async def test_marking_unknown_key_is_a_no_op(store: Store) -> None:
    await store.mark_delivered("nope", 1.0)
    await store.mark_retry("nope", 1, 2.0, "x")
    await store.mark_parked("nope", 1, "x")
    assert await store.get_outbox_item("nope") is None


async def test_backlog(store: Store) -> None:
    assert await store.backlog() == Backlog(waiting=0, parked=0, oldest_created_at=None)
    await store.enqueue(
        [
            item("g1", created_at=30.0),
            item("g2", created_at=20.0),
            item("g-parked", created_at=5.0),
            item("g-done", created_at=1.0),
            item("r1", created_at=10.0, community=ROOM),
            # A reminder waits on purpose (until its time): not an alert waiting.
            item("g-remind", created_at=2.0, kind=OutboxKind.ESCALATION, next_try=2000.0),
        ]
    )
    await store.mark_parked("g-parked", 3, "err")
    await store.mark_delivered("g-done", 40.0)
    await store.claim_due(now=1000.0, limit=1, lease=5.0)  # claimed items are still waiting

    assert await store.backlog() == Backlog(waiting=3, parked=1, oldest_created_at=10.0)
    assert await store.backlog(GUILD) == Backlog(waiting=2, parked=1, oldest_created_at=20.0)
    assert await store.backlog(ROOM) == Backlog(waiting=1, parked=0, oldest_created_at=10.0)
    assert await store.backlog(OTHER_GUILD) == Backlog(0, 0, None)


# --- rate limits -----------------------------------------------------------------------------
async def test_reports_since_counts_one_persons_recent_reports(store: Store) -> None:
    await store.add_report(report("R-1", created_at=100.0), [])
    await store.add_report(report("R-2", created_at=200.0), [])
    await store.add_report(report("R-3", created_at=300.0, reporter=BOB, reporter_tag=BOB_TAG), [])
    assert await store.reports_since(ALICE_TAG, 100.0) == 2
    assert await store.reports_since(ALICE_TAG, 150.0) == 1
    assert await store.reports_since(ALICE_TAG, 201.0) == 0
    assert await store.reports_since(BOB_TAG, 0.0) == 1
    await store.forget_person(ALICE, 400.0)  # forgetting does not reset the count
    assert await store.reports_since(ALICE_TAG, 0.0) == 2
    assert await store.reports_since(BOB_TAG, 0.0) == 1


async def test_pseudonym_secret_is_made_once(store: Store) -> None:
    first, second = await asyncio.gather(store.pseudonym_secret(), store.pseudonym_secret())
    assert first == second == await store.pseudonym_secret()
    assert len(bytes.fromhex(first)) == 32


async def test_purge_sessions_deletes_idle_conversations_and_ended_windows(store: Store) -> None:
    await store.save_session(session(ALICE, updated_at=100.0, draft=Draft(details="what happened")))
    await store.save_session(session(BOB, updated_at=200.0))
    assert await store.count_hit("m:a", 60.0, 130.0) == 1  # window 120..180
    assert await store.count_hit("m:b", 3600.0, 140.0) == 1  # window 0..3600
    assert await store.purge_sessions(150.0, 200.0) == 1
    assert await store.load_session(ALICE) is None
    assert await store.load_session(BOB) is not None
    assert await store.count_hit("m:b", 3600.0, 150.0) == 2  # the open window is kept
    assert await store.count_hit("m:a", 60.0, 130.0) == 1  # the ended one was deleted
    assert await store.purge_sessions(150.0, 200.0) == 0


async def test_count_hit_at_once_gives_each_hit_its_own_count(store: Store) -> None:
    """Many hits at the same moment (a busy bot): each call gets the count with its own hit,
    in the order of the calls, for each key and window on its own."""
    calls = [("m:a", 61.0), ("m:b", 61.0), ("m:a", 62.0), ("m:a", 119.0), ("m:b", 90.0)] * 20
    counts = await asyncio.gather(*(store.count_hit(key, 60.0, now) for key, now in calls))
    seen: dict[tuple[str, float], int] = {}
    for (key, now), count in zip(calls, counts, strict=True):
        window = (key, now - now % 60.0)
        seen[window] = seen.get(window, 0) + 1
        assert count == seen[window], (key, now, count)
    assert await store.count_hit("m:a", 60.0, 100.0) == 61  # 3 x 20 before, in 60..120
    assert await store.count_hit("m:a", 60.0, 121.0) == 1  # a new window


async def test_count_hit_counts_per_key_and_fixed_window(store: Store) -> None:
    assert [await store.count_hit("m:a", 60.0, 120.0 + t) for t in (0, 1, 59)] == [1, 2, 3]
    assert await store.count_hit("m:b", 60.0, 130.0) == 1  # keys are separate
    assert await store.count_hit("m:a", 60.0, 180.0) == 1  # a new window starts from zero
    assert await store.count_hit("m:a", 3600.0, 180.0) == 1  # so does another window size


async def test_count_hit_is_exact_under_concurrency(store: Store) -> None:
    counts = await asyncio.gather(*(store.count_hit("m:a", 60.0, 61.0) for _ in range(40)))
    assert sorted(counts) == list(range(1, 41))


# --- community settings ----------------------------------------------------------------------
def config(community: CommunityId = GUILD, **changes: Any) -> CommunityConfig:
    base = CommunityConfig(
        community=community,
        name="Gamers 🎮",
        destination="chan-9",
        mention="role-3",
        locale="es",
        blocked=("discord:666", "discord:667"),
        updated_at=42.0,
    )
    return replace(base, **changes)


async def test_community_crud(store: Store) -> None:
    assert await store.get_community(GUILD) is None
    await store.put_community(config())
    assert await store.get_community(GUILD) == config()

    changed = config(name="Renamed", mention=None, blocked=(), updated_at=43.0)
    await store.put_community(changed)
    assert await store.get_community(GUILD) == changed

    await store.delete_community(GUILD)
    await store.delete_community(GUILD)
    assert await store.get_community(GUILD) is None


async def test_community_region_is_kept(store: Store) -> None:
    await store.put_community(config())
    assert (await store.get_community(GUILD)).region == ""  # type: ignore[union-attr]
    await store.put_community(config(region="UK"))
    assert await store.get_community(GUILD) == config(region="UK")
    listed = await store.list_communities(GUILD.platform)
    assert [c.region for c in listed] == ["UK"]


async def test_community_policy_room_is_kept(store: Store) -> None:
    await store.put_community(config())
    assert (await store.get_community(GUILD)).policy_room == ""  # type: ignore[union-attr]
    await store.put_community(config(policy_room="!list:example.org"))
    assert await store.get_community(GUILD) == config(policy_room="!list:example.org")
    await store.put_community(config(escalate_to="!oncall:example.org"))
    assert await store.get_community(GUILD) == config(escalate_to="!oncall:example.org")


async def test_list_communities_by_platform(store: Store) -> None:
    first, second = config(GUILD, name="Zeta"), config(OTHER_GUILD, name="Alpha")
    room = config(ROOM, destination="!mods:example.org")
    for each in (second, room, first):
        await store.put_community(each)
    assert await store.list_communities("discord") == [first, second]  # by community id
    assert await store.list_communities("matrix") == [room]
    assert await store.list_communities("telegram") == []


# --- audit log -------------------------------------------------------------------------------
async def test_audit_log(store: Store) -> None:
    entries = [
        AuditEntry(at=3.0, actor="mod#1", action="claim", reference="R-1", community=GUILD),
        AuditEntry(at=1.0, actor="admin", action="setup", community=ROOM),
        AuditEntry(at=2.0, actor="mod#2", action="resolve", reference="R-1"),
        AuditEntry(at=4.0, actor="mod#2", action="claim", reference="R-2"),
    ]
    for entry in entries:
        await store.audit(entry)
    assert await store.audit_log() == entries  # in the order written
    assert await store.audit_log("R-1") == [entries[0], entries[2]]
    assert await store.audit_log("R-404") == []


async def test_close_is_idempotent(store: Store) -> None:
    await store.close()
    await store.close()


async def test_memberships_are_remembered_per_pseudonym_and_platform(store: Store) -> None:
    secret = await store.pseudonym_secret()
    alice, bob = pseudonym(secret, ALICE), pseudonym(secret, BOB)
    other = CommunityId("discord", "100")
    await store.remember_membership(alice, GUILD, 100.0)
    await store.remember_membership(alice, other, 110.0)
    await store.remember_membership(alice, ROOM, 120.0)
    await store.remember_membership(alice, GUILD, 130.0)  # seen again: still one row
    await store.remember_membership(bob, other, 100.0)
    assert await store.known_communities(alice, "discord") == sorted(
        [GUILD, other], key=lambda c: c.key
    )
    assert await store.known_communities(alice, "matrix") == [ROOM]
    assert await store.known_communities(bob, "discord") == [other]
    assert await store.known_communities("nobody", "discord") == []


async def test_purge_memberships_keeps_recent_sightings(store: Store) -> None:
    secret = await store.pseudonym_secret()
    alice = pseudonym(secret, ALICE)
    other = CommunityId("discord", "100")
    await store.remember_membership(alice, GUILD, 100.0)
    await store.remember_membership(alice, other, 100.0)
    await store.remember_membership(alice, other, 200.0)  # seen later: kept longer
    await store.remember_membership(alice, GUILD, 50.0)  # an older sighting changes nothing
    assert await store.purge_memberships(150.0) == 1
    assert await store.known_communities(alice, "discord") == [other]
    assert await store.purge_memberships(150.0) == 0


async def test_forget_person_deletes_learned_memberships(store: Store) -> None:
    secret = await store.pseudonym_secret()
    await store.remember_membership(pseudonym(secret, ALICE), GUILD, 100.0)
    await store.remember_membership(pseudonym(secret, ALICE), ROOM, 100.0)
    await store.remember_membership(pseudonym(secret, BOB), GUILD, 100.0)
    await store.forget_person(ALICE, 130.0)
    assert await store.known_communities(pseudonym(secret, ALICE), "discord") == []
    assert await store.known_communities(pseudonym(secret, ALICE), "matrix") == []
    assert await store.known_communities(pseudonym(secret, BOB), "discord") == [GUILD]

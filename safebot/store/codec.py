"""Rows back into model values, and the JSON and key encodings both SQL stores write.

SQLite rows (``sqlite3.Row``) and PostgreSQL records (``asyncpg.Record``) are both read by
column name, so one reader serves both stores; what each store binds differs (0/1 integers
vs booleans) and stays in the store.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from safebot.model import (
    AuditEntry,
    CommunityConfig,
    CommunityId,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
)
from safebot.pseudonym import pseudonymize_blocked, pseudonymize_counter

__all__ = [
    "audit_entry",
    "community",
    "dumps",
    "key",
    "outbox_item",
    "plain_keys_left",
    "report",
]

Row = Any  # sqlite3.Row or asyncpg.Record: both index by column name


def dumps(value: object) -> str:
    """Compact JSON. ``ensure_ascii`` (the default) writes NUL and lone surrogates as \\u
    escapes, so JSON columns keep them exactly in both databases."""
    return json.dumps(value, separators=(",", ":"))


def key(value: PersonId | CommunityId | None) -> str | None:
    return value.key if value is not None else None


def report(row: Row) -> Report:
    return Report(
        reference=row["reference"],
        community=CommunityId.parse(row["community"]),
        community_name=row["community_name"],
        reporter=PersonId.parse(row["reporter"]) if row["reporter"] is not None else None,
        reveal=bool(row["reveal"]),
        category=row["category"],
        offender=row["offender"],
        details=row["details"],
        evidence=tuple(json.loads(row["evidence"])),
        locale=row["locale"],
        status=ReportStatus(row["status"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        handled_by=row["handled_by"],
        reporter_tag=row["reporter_tag"],
        urgent=tuple(reason for reason in row["urgent"].split(",") if reason),
    )


def outbox_item(row: Row) -> OutboxItem:
    delivered_at = row["delivered_at"]
    return OutboxItem(
        key=row["key"],
        kind=OutboxKind(row["kind"]),
        reference=row["reference"],
        community=CommunityId.parse(row["community"]),
        created_at=float(row["created_at"]),
        next_try=float(row["next_try"]),
        payload=json.loads(row["payload"]),
        attempts=int(row["attempts"]),
        delivered_at=float(delivered_at) if delivered_at is not None else None,
        parked=bool(row["parked"]),
        last_error=row["last_error"],
        posted=row["posted"],
    )


def community(row: Row) -> CommunityConfig:
    return CommunityConfig(
        community=CommunityId.parse(row["community"]),
        name=row["name"],
        destination=row["destination"],
        mention=row["mention"],
        locale=row["locale"],
        blocked=tuple(json.loads(row["blocked"])),
        updated_at=float(row["updated_at"]),
        region=row["region"],
        policy_room=row["policy_room"],
        escalate_to=row["escalate_to"],
    )


def audit_entry(row: Row) -> AuditEntry:
    community = row["community"]
    return AuditEntry(
        at=float(row["at"]),
        actor=row["actor"],
        action=row["action"],
        reference=row["reference"],
        community=CommunityId.parse(community) if community is not None else None,
    )


async def plain_keys_left(fetch: Callable[[str], Awaitable[Sequence[Row]]], secret: str) -> bool:
    """Whether a plain person key from before pseudonyms is still stored anywhere (a report
    without its reporter's pseudonym, a block list entry, a rate counter), so the store
    converts them at open, and otherwise writes nothing there."""
    if await fetch(
        "SELECT 1 FROM reports WHERE reporter IS NOT NULL AND reporter_tag IS NULL LIMIT 1"
    ):
        return True
    for row in await fetch("SELECT blocked FROM communities"):
        blocked = tuple(json.loads(row["blocked"]))
        if pseudonymize_blocked(secret, blocked) != blocked:
            return True
    keys = await fetch("SELECT key FROM rate_hits")
    return any(pseudonymize_counter(secret, r["key"]) != r["key"] for r in keys)

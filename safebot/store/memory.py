"""In-memory Store for tests and throwaway runs. Same semantics as the SQLite store.

No method awaits anything before it has finished its work, so every method is atomic with
respect to other coroutines without a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from safebot.model import (
    AuditEntry,
    CaseNote,
    CommunityConfig,
    CommunityId,
    OutboxItem,
    OutboxKind,
    PersonId,
    Report,
    ReportStatus,
    Session,
    name_removal,
)
from safebot.pseudonym import new_secret, pseudonym
from safebot.store.base import Backlog, DuplicateReference, Store, VersionConflict

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(self) -> None:
        # Sessions are kept as (JSON, version) exactly like the SQLite row, so a caller's
        # mutable ``vars`` dict is never shared and round trips behave identically.
        self._sessions: dict[str, tuple[str, int, float]] = {}
        self._reports: dict[str, Report] = {}
        self._outbox: dict[str, OutboxItem] = {}
        self._communities: dict[str, CommunityConfig] = {}
        self._audit: list[AuditEntry] = []
        self._case_notes: list[CaseNote] = []
        self._hits: dict[tuple[str, float], tuple[int, float]] = {}  # -> (count, ends at)
        self._secret: str | None = None
        self._members: dict[tuple[str, str], float] = {}  # (tag, community key) -> seen at

    # --- sessions -------------------------------------------------------------------------
    async def load_session(self, person: PersonId) -> Session | None:
        stored = self._sessions.get(person.key)
        if stored is None:
            return None
        return Session.from_json(person, stored[0], stored[1])

    async def save_session(self, session: Session) -> Session:
        stored = self._sessions.get(session.person.key)
        current = stored[1] if stored else 0
        if session.version != current:
            raise VersionConflict  # no person id in the message: callers may log it
        self._sessions[session.person.key] = (
            session.to_json(),
            current + 1,
            session.updated_at,
        )
        return session.evolve(version=current + 1)

    async def delete_session(self, person: PersonId) -> None:
        self._sessions.pop(person.key, None)

    # --- reports + outbox -----------------------------------------------------------------
    async def add_report(self, report: Report, outbox: Sequence[OutboxItem]) -> None:
        if report.reference in self._reports:
            raise DuplicateReference(report.reference)
        self._reports[report.reference] = _copy_report(report)
        self._enqueue(outbox)

    async def get_report(self, reference: str) -> Report | None:
        return self._reports.get(reference)

    async def update_report(
        self, report: Report, outbox: Sequence[OutboxItem], audit: AuditEntry | None
    ) -> None:
        if report.reference not in self._reports:
            raise KeyError(report.reference)
        self._reports[report.reference] = _copy_report(report)
        self._enqueue(outbox)
        if audit is not None:
            self._audit.append(audit)

    async def reports_for_community(self, community: CommunityId) -> list[Report]:
        found = [r for r in self._reports.values() if r.community == community]
        return sorted(found, key=lambda r: (r.created_at, r.reference))

    async def count_reports(self, community: CommunityId, status: ReportStatus) -> int:
        return sum(
            1 for r in self._reports.values() if r.community == community and r.status is status
        )

    async def add_case_note(self, note: CaseNote, audit: AuditEntry) -> None:
        if note.reference not in self._reports:
            raise KeyError(note.reference)
        self._case_notes.append(note)
        await self.audit(audit)

    async def case_notes(self, reference: str) -> list[CaseNote]:
        return [n for n in self._case_notes if n.reference == reference]

    async def reports_of(self, person: PersonId, limit: int) -> list[Report]:
        found = [r for r in self._reports.values() if r.reporter == person]
        return sorted(found, key=lambda r: (r.created_at, r.reference), reverse=True)[:limit]

    async def forget_person(self, person: PersonId, now: float) -> int:
        self._sessions.pop(person.key, None)
        if self._secret is not None:  # without a secret, nothing was remembered by pseudonym
            tag = pseudonym(self._secret, person)
            for key in [k for k in self._members if k[0] == tag]:
                del self._members[key]
        mine = [r for r in self._reports.values() if r.reporter == person]
        references = {r.reference for r in mine}
        for report in mine:
            self._reports[report.reference] = report.evolve(reporter=None)
        self._enqueue([name_removal(r.reference, r.community, now) for r in mine if r.reveal])
        for item in list(self._outbox.values()):
            if (
                item.kind == OutboxKind.STATUS
                and item.delivered_at is None
                and item.reference in references
            ):
                del self._outbox[item.key]
        return len(mine)

    async def purge_reports(self, created_before: float) -> int:
        old = {ref for ref, r in self._reports.items() if r.created_at < created_before}
        for reference in old:
            del self._reports[reference]
        for item in list(self._outbox.values()):
            if item.reference in old:
                del self._outbox[item.key]
        self._case_notes = [n for n in self._case_notes if n.reference not in old]
        return len(old)

    async def purge_sessions(self, updated_before: float, now: float) -> int:
        old = [key for key, stored in self._sessions.items() if stored[2] < updated_before]
        for key in old:
            del self._sessions[key]
        self._sweep_hits(now)
        return len(old)

    # --- outbox ---------------------------------------------------------------------------
    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        self._enqueue(items)

    def _enqueue(self, items: Sequence[OutboxItem]) -> None:
        for item in items:
            self._outbox.setdefault(item.key, _copy_item(item))

    async def claim_due(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        if limit <= 0:
            return []
        due = sorted(
            (i for i in self._outbox.values() if _pending(i) and i.next_try <= now),
            key=lambda i: (i.created_at, i.key),
        )[:limit]
        claimed = []
        for item in due:
            self._outbox[item.key] = replace(item, next_try=now + lease)
            claimed.append(_copy_item(self._outbox[item.key]))
        return claimed

    async def mark_delivered(self, key: str, now: float, posted: str | None = None) -> None:
        if (item := self._outbox.get(key)) is not None:
            self._outbox[key] = replace(item, delivered_at=now, posted=posted)

    async def mark_retry(self, key: str, attempts: int, next_try: float, error: str) -> None:
        if (item := self._outbox.get(key)) is not None:
            self._outbox[key] = replace(
                item, attempts=attempts, next_try=next_try, last_error=error
            )

    async def mark_parked(self, key: str, attempts: int, error: str) -> None:
        if (item := self._outbox.get(key)) is not None:
            self._outbox[key] = replace(item, attempts=attempts, parked=True, last_error=error)

    async def get_outbox_item(self, key: str) -> OutboxItem | None:
        item = self._outbox.get(key)
        return _copy_item(item) if item else None

    async def backlog(self, community: CommunityId | None = None) -> Backlog:
        undelivered = [
            i
            for i in self._outbox.values()
            if i.delivered_at is None
            and i.kind is not OutboxKind.ESCALATION  # reminders wait on purpose
            and (community is None or i.community == community)
        ]
        waiting = [i.created_at for i in undelivered if not i.parked]
        return Backlog(
            waiting=len(waiting),
            parked=len(undelivered) - len(waiting),
            oldest_created_at=min(waiting, default=None),
        )

    # --- rate limits ----------------------------------------------------------------------
    async def reports_since(self, reporter_tag: str, since: float) -> int:
        return sum(
            1
            for r in self._reports.values()
            if r.reporter_tag == reporter_tag and r.created_at >= since
        )

    async def pseudonym_secret(self) -> str:
        if self._secret is None:
            self._secret = new_secret()
        return self._secret

    async def count_hit(self, key: str, window: float, now: float) -> int:
        start = now - now % window
        self._sweep_hits(now)
        count = self._hits.get((key, start), (0, 0.0))[0] + 1
        self._hits[key, start] = (count, start + window)
        return count

    def _sweep_hits(self, now: float) -> None:
        for ended in [k for k, (_, ends) in self._hits.items() if ends <= now]:
            del self._hits[ended]

    # --- memberships learned from use ------------------------------------------------------
    async def remember_membership(self, tag: str, community: CommunityId, now: float) -> None:
        key = (tag, community.key)
        self._members[key] = max(now, self._members.get(key, now))

    async def known_communities(self, tag: str, platform: str) -> list[CommunityId]:
        found = [CommunityId.parse(c) for t, c in self._members if t == tag]
        return sorted((c for c in found if c.platform == platform), key=lambda c: c.key)

    async def purge_memberships(self, seen_before: float) -> int:
        old = [key for key, seen in self._members.items() if seen < seen_before]
        for key in old:
            del self._members[key]
        return len(old)

    # --- community settings ---------------------------------------------------------------
    async def get_community(self, community: CommunityId) -> CommunityConfig | None:
        return self._communities.get(community.key)

    async def put_community(self, config: CommunityConfig) -> None:
        self._communities[config.community.key] = replace(config, blocked=tuple(config.blocked))

    async def delete_community(self, community: CommunityId) -> None:
        self._communities.pop(community.key, None)

    async def list_communities(self, platform: str) -> list[CommunityConfig]:
        found = [c for c in self._communities.values() if c.community.platform == platform]
        return sorted(found, key=lambda c: c.community.key)

    # --- audit log ------------------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None:
        self._audit.append(entry)

    async def audit_log(self, reference: str | None = None) -> list[AuditEntry]:
        return [e for e in self._audit if reference is None or e.reference == reference]

    async def close(self) -> None:
        pass


def _pending(item: OutboxItem) -> bool:
    return item.delivered_at is None and not item.parked


def _copy_report(report: Report) -> Report:
    return replace(report, evidence=tuple(report.evidence))


def _copy_item(item: OutboxItem) -> OutboxItem:
    return replace(item, payload=dict(item.payload))


_conforms: type[Store] = MemoryStore

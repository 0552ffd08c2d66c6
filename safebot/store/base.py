"""Storage ports. Every store (memory, SQLite, PostgreSQL) passes one contract test suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from safebot.model import (
    AuditEntry,
    CaseNote,
    CommunityConfig,
    CommunityId,
    OutboxItem,
    PersonId,
    Report,
    ReportStatus,
    Session,
)

__all__ = ["Backlog", "DuplicateReference", "Store", "VersionConflict"]


class DuplicateReference(Exception):
    """A report with this reference already exists (the caller picks a new reference)."""


class VersionConflict(Exception):
    """The stored session changed since it was read (another process wrote it)."""


@dataclass(frozen=True, slots=True)
class Backlog:
    """Undelivered outbox items: how many are waiting, the oldest, how many are parked."""

    waiting: int
    parked: int
    oldest_created_at: float | None


class Store(Protocol):
    # --- sessions (optimistic versioning) -------------------------------------------------
    async def load_session(self, person: PersonId) -> Session | None:
        """The stored session with its version, or None."""
        ...

    async def save_session(self, session: Session) -> Session:
        """Write ``session`` if the stored version equals ``session.version`` (0 = not stored
        yet). Returns the session with the new version; raises VersionConflict otherwise."""
        ...

    async def delete_session(self, person: PersonId) -> None: ...

    # --- reports + outbox (one transaction) ------------------------------------------------
    async def add_report(self, report: Report, outbox: Sequence[OutboxItem]) -> None:
        """Store the report and its outbox items atomically. Raises DuplicateReference."""
        ...

    async def get_report(self, reference: str) -> Report | None: ...

    async def update_report(
        self, report: Report, outbox: Sequence[OutboxItem], audit: AuditEntry | None
    ) -> None:
        """Replace the report row, enqueue items (ignoring keys already present) and append the
        audit entry, atomically."""
        ...

    async def reports_for_community(self, community: CommunityId) -> list[Report]: ...

    async def count_reports(self, community: CommunityId, status: ReportStatus) -> int:
        """How many of the community's reports have ``status`` (counted where they are kept,
        not loaded)."""
        ...

    async def add_case_note(self, note: CaseNote, audit: AuditEntry) -> None:
        """Keep a moderator's note with its report, audited, in one transaction. Raises
        KeyError (writing nothing) if the report does not exist."""
        ...

    async def case_notes(self, reference: str) -> list[CaseNote]:
        """The report's notes, oldest first."""
        ...

    async def reports_of(self, person: PersonId, limit: int) -> list[Report]:
        """The person's own reports (still linked to them), newest first, at most ``limit``."""
        ...

    async def forget_person(self, person: PersonId, now: float) -> int:
        """In one transaction: delete the session, set reporter to None on the person's
        reports (their ``reporter_tag`` stays), drop pending status items for them, and queue
        ``name_removal`` for each of those reports that showed the person's name, and delete
        the communities learned for the person (``remember_membership``). Returns how many
        reports were unlinked."""
        ...

    async def purge_reports(self, created_before: float) -> int:
        """Delete reports created before the cutoff and their outbox items. Returns count."""
        ...

    async def purge_sessions(self, updated_before: float, now: float) -> int:
        """Delete conversations (drafts included) last written before the cutoff, and rate
        counter windows that ended by ``now``. Returns how many sessions went."""
        ...

    # --- outbox --------------------------------------------------------------------------
    async def enqueue(self, items: Sequence[OutboxItem]) -> None:
        """Add items; an item whose key already exists is ignored (idempotent)."""
        ...

    async def claim_due(self, now: float, limit: int, lease: float) -> list[OutboxItem]:
        """Items not delivered, not parked, with next_try <= now, oldest first. Claiming moves
        their next_try to now + lease so a crashed worker's claim expires by itself."""
        ...

    async def mark_delivered(self, key: str, now: float, posted: str | None = None) -> None:
        """The item got through; for an alert, ``posted`` is where (``send_alert``'s answer)."""
        ...

    async def mark_retry(self, key: str, attempts: int, next_try: float, error: str) -> None: ...

    async def mark_parked(self, key: str, attempts: int, error: str) -> None: ...

    async def get_outbox_item(self, key: str) -> OutboxItem | None: ...

    async def backlog(self, community: CommunityId | None = None) -> Backlog: ...

    # --- rate limits (shared by every process on the same database) -----------------------
    async def reports_since(self, reporter_tag: str, since: float) -> int:
        """How many reports the person with this pseudonym made at or after ``since``
        (forgotten reports included)."""
        ...

    async def pseudonym_secret(self) -> str:
        """The deployment's pseudonym secret (hex), created on first use and stored with the
        data, so every process on the same database derives the same pseudonyms."""
        ...

    async def count_hit(self, key: str, window: float, now: float) -> int:
        """Count one hit for ``key`` in the fixed window of ``window`` seconds holding ``now``
        and return the window's count so far (this hit included). Windows that ended are
        dropped along the way."""
        ...

    # --- memberships learned from use (shared by every process) ---------------------------
    async def remember_membership(self, tag: str, community: CommunityId, now: float) -> None:
        """The person with pseudonym ``tag`` used SafeBot inside ``community`` at ``now``."""
        ...

    async def known_communities(self, tag: str, platform: str) -> list[CommunityId]:
        """Communities on ``platform`` where the person was seen (not yet purged), sorted."""
        ...

    async def purge_memberships(self, seen_before: float) -> int:
        """Delete memberships last seen before the cutoff. Returns how many went."""
        ...

    # --- community settings --------------------------------------------------------------
    async def get_community(self, community: CommunityId) -> CommunityConfig | None: ...

    async def put_community(self, config: CommunityConfig) -> None: ...

    async def delete_community(self, community: CommunityId) -> None: ...

    async def list_communities(self, platform: str) -> list[CommunityConfig]: ...

    # --- audit log -----------------------------------------------------------------------
    async def audit(self, entry: AuditEntry) -> None: ...

    async def audit_log(self, reference: str | None = None) -> list[AuditEntry]: ...

    async def close(self) -> None: ...

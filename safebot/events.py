"""Normalized inbound events. Adapters translate platform events into these."""

from __future__ import annotations

from dataclasses import dataclass

from safebot.model import Community, PersonId

__all__ = [
    "ChoiceSelected",
    "CommandInvoked",
    "CommunitiesListed",
    "Event",
    "NoteAdded",
    "ReportRefused",
    "ReportSubmitted",
    "ReportSummary",
    "ReportsListed",
    "TextReceived",
]


@dataclass(frozen=True, slots=True)
class TextReceived:
    """The person typed something. Attachments are counted, never kept. ``node``: typed into
    a form shown at that step (a Discord modal), so it answers that step only."""

    person: PersonId
    text: str
    attachments: int = 0
    locale_hint: str | None = None
    node: str | None = None


@dataclass(frozen=True, slots=True)
class ChoiceSelected:
    """The person pressed a button (``node`` is the step the button was shown at, if known)."""

    person: PersonId
    choice: str
    node: str | None = None
    locale_hint: str | None = None


@dataclass(frozen=True, slots=True)
class CommandInvoked:
    """A slash/bang command: help, block, report, resources, forget, menu, crisis.

    ``community`` preselects a community for ``report``; ``evidence`` is a message link.
    """

    person: PersonId
    command: str
    community: Community | None = None
    evidence: str | None = None
    locale_hint: str | None = None


@dataclass(frozen=True, slots=True)
class CommunitiesListed:
    """The service's answer to a ListCommunities effect: where the person may report."""

    person: PersonId
    communities: tuple[Community, ...]


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """One of the person's own reports, as "my reports" lists it."""

    reference: str
    community_name: str
    status: str  # ReportStatus value
    open: bool  # not resolved: a note can still be added


@dataclass(frozen=True, slots=True)
class ReportsListed:
    """The service's answer to a ListReports effect: the person's own reports, newest first."""

    person: PersonId
    reports: tuple[ReportSummary, ...]


@dataclass(frozen=True, slots=True)
class NoteAdded:
    """The service's answer to an AddNote effect: whether the note is on its way."""

    person: PersonId
    reference: str
    ok: bool


@dataclass(frozen=True, slots=True)
class ReportSubmitted:
    """The service stored the report (and queued its alert) under ``reference``."""

    person: PersonId
    reference: str


@dataclass(frozen=True, slots=True)
class ReportRefused:
    """The service could not accept the report; ``reason`` is a message id to show."""

    person: PersonId
    reason: str


Event = (
    TextReceived
    | ChoiceSelected
    | CommandInvoked
    | CommunitiesListed
    | ReportsListed
    | NoteAdded
    | ReportSubmitted
    | ReportRefused
)

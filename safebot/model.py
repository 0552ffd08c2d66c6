"""Core value types: identities, reports, outbox items and the conversation session.

Everything here is a frozen dataclass. Adapters build the identities; the core treats
them as opaque values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "AuditEntry",
    "Category",
    "Community",
    "CommunityConfig",
    "CommunityId",
    "Draft",
    "OutboxItem",
    "OutboxKind",
    "PersonId",
    "Report",
    "ReportStatus",
    "Session",
    "name_removal",
    "valid_utf8",
]

_SURROGATE = re.compile("[\ud800-\udfff]")


def valid_utf8(text: str) -> str:
    """``text`` as UTF-8 can hold it: lone UTF-16 surrogates, which JSON decoders let through
    and databases and sockets refuse, become U+FFFD. Anything else is kept as it is."""
    return _SURROGATE.sub("\ufffd", text) if not text.isascii() else text


@dataclass(frozen=True, slots=True)
class PersonId:
    """A person on one platform. ``id`` is whatever the platform uses (snowflake, mxid)."""

    platform: str
    id: str

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, key: str) -> PersonId:
        platform, _, ident = key.partition(":")
        return cls(platform, ident)


@dataclass(frozen=True, slots=True)
class CommunityId:
    """A server (Discord guild) or room (Matrix) on one platform."""

    platform: str
    id: str

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, key: str) -> CommunityId:
        platform, _, ident = key.partition(":")
        return cls(platform, ident)


@dataclass(frozen=True, slots=True)
class Community:
    """A community as offered to a person: its id, its display name (untrusted text) and the
    region its moderators chose at setup ("" when none)."""

    id: CommunityId
    name: str
    region: str = ""


class Category(StrEnum):
    THREATS = "threats"
    MONEY = "money"
    MORE_IMAGES = "more_images"
    OTHER = "other"


class ReportStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    CLAIMED = "claimed"
    RESOLVED = "resolved"


class OutboxKind(StrEnum):
    ALERT = "alert"  # the moderator alert for a new report
    STATUS = "status"  # a status update sent privately to the reporter
    ALERT_UPDATE = "alert_update"  # the moderator alert edited/replied to after an action
    ESCALATION = "escalation"  # a reminder under an alert nobody has acknowledged yet
    NOTE = "note"  # a follow-up note from the reporter, posted under the alert


@dataclass(frozen=True, slots=True)
class Draft:
    """What a person has chosen so far in the report flow."""

    community: CommunityId | None = None
    community_name: str | None = None
    category: str | None = None
    offender: str | None = None
    details: str | None = None
    evidence: tuple[str, ...] = ()
    reveal: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "community": self.community.key if self.community else None,
            "community_name": self.community_name,
            "category": self.category,
            "offender": self.offender,
            "details": self.details,
            "evidence": list(self.evidence),
            "reveal": self.reveal,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Draft:
        community = data.get("community")
        return cls(
            community=CommunityId.parse(community) if community else None,
            community_name=data.get("community_name"),
            category=data.get("category"),
            offender=data.get("offender"),
            details=data.get("details"),
            evidence=tuple(data.get("evidence") or ()),
            reveal=data.get("reveal"),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """One person's conversation state. ``version`` guards against concurrent writers."""

    person: PersonId
    node: str
    locale: str
    region: str
    updated_at: float
    locale_chosen: bool = False
    region_chosen: bool = False  # the person picked a country: no community region overrides it
    vars: Mapping[str, str] = field(default_factory=dict)
    draft: Draft = field(default_factory=Draft)
    offered: tuple[Community, ...] = ()
    version: int = 0

    def evolve(self, **changes: Any) -> Session:
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(
            {
                "node": self.node,
                "locale": self.locale,
                "region": self.region,
                "updated_at": self.updated_at,
                "locale_chosen": self.locale_chosen,
                "region_chosen": self.region_chosen,
                "vars": dict(self.vars),
                "draft": self.draft.to_dict(),
                "offered": [[c.id.key, c.name, c.region] for c in self.offered],
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, person: PersonId, raw: str, version: int) -> Session:
        data = json.loads(raw)
        return cls(
            person=person,
            node=data["node"],
            locale=data["locale"],
            region=data["region"],
            updated_at=float(data["updated_at"]),
            locale_chosen=bool(data.get("locale_chosen", False)),
            region_chosen=bool(data.get("region_chosen", False)),
            vars=_renamed_vars(data.get("vars") or {}),
            draft=Draft.from_dict(data.get("draft") or {}),
            offered=tuple(
                Community(CommunityId.parse(row[0]), row[1], row[2] if len(row) > 2 else "")
                for row in data.get("offered") or ()
            ),
            version=version,
        )


def _renamed_vars(stored: Mapping[str, str]) -> dict[str, str]:
    """A stored conversation's variables under today's names: the app picked for the block
    walkthrough was once kept as "platform", which now means only the chat network."""
    found = dict(stored)
    if "platform" in found:
        found.setdefault("app", found.pop("platform"))
    return found


URGENCY: tuple[str, ...] = ("crisis", "deadline")
"""Why a report is urgent: the person used crisis or self-harm words (or was told to hurt
themselves) while talking to SafeBot; the person mentioned a deadline ("by tonight")."""


@dataclass(frozen=True, slots=True)
class Report:
    """A confirmed report. ``reporter`` becomes None when the person asks to be forgotten."""

    reference: str
    community: CommunityId
    community_name: str
    reporter: PersonId | None
    reveal: bool
    category: str
    offender: str | None
    details: str | None
    evidence: tuple[str, ...]
    locale: str
    status: ReportStatus
    created_at: float
    updated_at: float
    handled_by: str | None = None
    # The reporter's pseudonym (safebot.pseudonym). Kept after "forget me", so report limits
    # and moderator blocks still apply to the person without naming them.
    reporter_tag: str | None = None
    # Why moderators should look at it first (URGENCY reasons, in that order); () = not urgent.
    urgent: tuple[str, ...] = ()

    def evolve(self, **changes: Any) -> Report:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One durable delivery. ``key`` is the idempotency key: a redelivery carries the same key."""

    key: str
    kind: OutboxKind
    reference: str
    community: CommunityId
    created_at: float
    next_try: float
    payload: Mapping[str, str] = field(default_factory=dict)
    attempts: int = 0
    delivered_at: float | None = None
    parked: bool = False
    last_error: str | None = None
    # An alert, once posted: the platform's reference to the message (send_alert's answer),
    # so its updates and replies find it without searching the channel.
    posted: str | None = None


REMOVE_NAME = "remove_name"  # payload["reason"] of the alert update queued by "forget me"


def name_removal(reference: str, community: CommunityId, now: float) -> OutboxItem:
    """The alert update that takes a forgotten reporter's name off a posted alert. One per
    report, whatever happens: the key makes a repeated "forget me" queue it once."""
    return OutboxItem(
        key=f"forget:{reference}",
        kind=OutboxKind.ALERT_UPDATE,
        reference=reference,
        community=community,
        created_at=now,
        next_try=now,
        payload={"reason": REMOVE_NAME},
    )


@dataclass(frozen=True, slots=True)
class CommunityConfig:
    """Moderator settings of one community, written by the platform adapter's setup command."""

    community: CommunityId
    name: str
    destination: str  # moderator channel / room id, platform specific
    mention: str | None = None  # role id (Discord) or None
    locale: str = "en"
    blocked: tuple[str, ...] = ()  # pseudonyms of people refused from reporting here
    region: str = ""  # region id chosen at setup, for people who have not picked a country
    updated_at: float = 0.0
    # Matrix: a policy list room where bans moderators choose to share are written as
    # m.policy.rule.user rules ('' = none).
    policy_room: str = ""
    # Where the second reminder of an alert nobody acknowledged goes too: a role to ping
    # (Discord) or a room (Matrix); '' = only the moderators again.
    escalate_to: str = ""


@dataclass(frozen=True, slots=True)
class CaseNote:
    """A moderator's note on a report, kept with it (and deleted with it at retention)."""

    reference: str
    at: float
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit-log line: who did what to which report. Never carries report text."""

    at: float
    actor: str
    action: str
    reference: str | None = None
    community: CommunityId | None = None

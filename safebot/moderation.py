"""The moderator side, protocol-agnostic: alert content and moderator actions.

``build_alert`` turns a stored report into an ``Alert`` that adapters render natively (an embed,
an HTML message, a console box). ``apply_action`` is the pure state machine behind
acknowledge / claim / resolve.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from safebot.content import Content
from safebot.messages import Choice, Message, Span
from safebot.model import AuditEntry, OutboxItem, OutboxKind, Report, ReportStatus

__all__ = [
    "Action",
    "ActionResult",
    "Alert",
    "AlertField",
    "apply_action",
    "build_alert",
    "status_message",
]


class Action(StrEnum):
    ACK = "ack"
    CLAIM = "claim"
    RESOLVE = "resolve"


_RESULT_STATUS = {
    Action.ACK: ReportStatus.ACKNOWLEDGED,
    Action.CLAIM: ReportStatus.CLAIMED,
    Action.RESOLVE: ReportStatus.RESOLVED,
}
# Which statuses each action may move a report out of.
_ALLOWED_FROM = {
    Action.ACK: {ReportStatus.NEW},
    Action.CLAIM: {ReportStatus.NEW, ReportStatus.ACKNOWLEDGED, ReportStatus.CLAIMED},
    Action.RESOLVE: {ReportStatus.NEW, ReportStatus.ACKNOWLEDGED, ReportStatus.CLAIMED},
}


@dataclass(frozen=True, slots=True)
class AlertField:
    label: str
    value: str
    untrusted: bool = True  # escaped by adapters; only labels are trusted text
    long: bool = False  # free text that may run long (adapters give it more room)


@dataclass(frozen=True, slots=True)
class Alert:
    key: str  # idempotency key of the delivery
    reference: str
    title: str
    fields: tuple[AlertField, ...]
    guidance: str
    status: str  # "New", "Acknowledged by …" (handled_by is untrusted; kept separately)
    handled_by: str | None
    resolved: bool
    actions: tuple[Choice, ...]  # ack / claim / resolve with localized labels
    offender: str | None  # raw offender text: adapters may resolve it to a member id
    # The reporter asked to be forgotten: every copy of this alert that showed their name
    # must go (an edit alone is not enough where the platform keeps the old version).
    remove_name: bool = False
    # A note for the moderators the adapter adds (e.g. the reported person is a moderator).
    warning: str | None = None
    # Where the alert was posted, as the platform's send_alert answered (None before that,
    # and for alerts posted before SafeBot kept it): edits and replies go straight there.
    posted: str | None = None

    def as_message(self) -> Message:
        """A plain rendering for adapters without rich alerts (console, plain bodies)."""
        spans: list[Span] = [Span(f"**{self.title}**\n")]
        if self.warning:
            spans.append(Span(f"⚠ {self.warning}\n"))
        for f in self.fields:
            spans += [Span(f"{f.label}: "), Span(f.value, untrusted=f.untrusted), Span("\n")]
        spans.append(Span(self.status))
        if self.handled_by:
            spans += [Span(" "), Span(self.handled_by, untrusted=True)]
        spans.append(Span("\n\n" + self.guidance))
        return Message(tuple(spans), () if self.resolved else self.actions)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What a moderator action did: the updated report and what to queue, or a refusal."""

    ok: bool
    report: Report
    outbox: tuple[OutboxItem, ...] = ()
    audit: AuditEntry | None = None
    reason: str | None = None  # message id of the refusal


def build_alert(content: Content, report: Report, key: str, locale: str) -> Alert:
    loc = locale if locale in content.texts else content.default_locale

    def t(key: str) -> str:
        return content.text(loc, key)

    none = t("review.not_given")
    urgent = [
        AlertField(
            t("alert.urgent"),
            "; ".join(t(f"alert.urgent.{reason}") for reason in report.urgent),
            untrusted=False,
        )
    ]
    fields = [
        *(urgent if report.urgent else []),
        AlertField(t("alert.community"), report.community_name),
        AlertField(t("alert.category"), t(f"alert.category.{report.category}"), untrusted=False),
        AlertField(t("alert.offender"), report.offender or none),
        AlertField(t("alert.details"), report.details or none, long=True),
        AlertField(t("alert.evidence"), "\n".join(report.evidence) or none),
        AlertField(
            t("alert.reporter"),
            report.reporter.id if report.reveal and report.reporter else t("alert.anonymous"),
            untrusted=bool(report.reveal and report.reporter),
        ),
    ]
    status_key = f"alert.status.{report.status.value}"
    return Alert(
        key=key,
        reference=report.reference,
        title=t("alert.title.urgent" if report.urgent else "alert.title").replace(
            "{reference}", report.reference
        ),
        fields=tuple(fields),
        guidance=t("alert.guidance"),
        status=t(status_key),
        handled_by=report.handled_by,
        resolved=report.status is ReportStatus.RESOLVED,
        actions=tuple(Choice(a.value, t(f"alert.action.{a.value}")) for a in Action),
        offender=report.offender,
    )


def status_message(content: Content, report: Report) -> Message:
    """The private update sent to the reporter after a moderator action."""
    key = f"status.{report.status.value}"
    body = content.spans(report.locale, key, reference=report.reference)
    return Message((*body, Span("\n\n"), *content.spans(report.locale, "status.footer")))


def apply_action(report: Report, action: Action, moderator: str, now: float) -> ActionResult:
    """Move a report along new -> acknowledged -> claimed -> resolved.

    Each status change queues one private status update for the reporter (if still linked)
    and one alert update for the moderators, each with its own idempotency key.
    """
    if report.status not in _ALLOWED_FROM[action]:
        return ActionResult(False, report, reason=f"mod.already.{report.status.value}")
    if (
        action is Action.CLAIM
        and report.handled_by == moderator
        and (report.status is ReportStatus.CLAIMED)
    ):
        return ActionResult(False, report, reason="mod.already.claimed")
    status = _RESULT_STATUS[action]
    updated = report.evolve(status=status, handled_by=moderator, updated_at=now)
    serial = f"{status.value}:{int(now * 1000)}"
    items: list[OutboxItem] = [
        OutboxItem(
            key=f"update:{report.reference}:{serial}",
            kind=OutboxKind.ALERT_UPDATE,
            reference=report.reference,
            community=report.community,
            created_at=now,
            next_try=now,
            payload={"status": status.value},
        )
    ]
    if report.reporter is not None:
        items.append(
            OutboxItem(
                key=f"status:{report.reference}:{status.value}",
                kind=OutboxKind.STATUS,
                reference=report.reference,
                community=report.community,
                created_at=now,
                next_try=now,
                payload={"status": status.value},
            )
        )
    audit = AuditEntry(
        at=now,
        actor=moderator,
        action=action.value,
        reference=report.reference,
        community=report.community,
    )
    return ActionResult(True, updated, tuple(items), audit)

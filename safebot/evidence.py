"""The evidence pack: what moderators hand to a platform, a hotline or the police about one
report. Built from the stored report, its audit log and its case notes; never images (SafeBot
never has any), only what the person chose to share, and the reporter's name only if they
chose to share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from safebot.content import Content
from safebot.model import AuditEntry, CaseNote, Report

__all__ = ["EvidencePack", "evidence_pack"]


def _action(content: Content, locale: str, action: str) -> str:
    key = f"export.action.{action}"
    return content.text(locale, key) if content.has(key) else action


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True, slots=True)
class EvidencePack:
    reference: str
    fields: tuple[tuple[str, str], ...]
    """(label, value) pairs: community, category, status, the person's words, links..."""
    timeline: tuple[tuple[str, str, str], ...]
    """(when, who, what), oldest first."""
    notes: tuple[tuple[str, str, str], ...]
    """(when, author, text), oldest first."""
    steps: tuple[str, ...]
    """Where to report it next: the platform, then the region's hotlines and the police."""
    words: Mapping[str, str]
    """The pack's own headings, in the community's language."""

    def as_json(self) -> str:
        return json.dumps(
            {
                "reference": self.reference,
                "fields": dict(self.fields),
                "timeline": [{"at": w, "by": b, "what": t} for w, b, t in self.timeline],
                "notes": [{"at": w, "by": b, "text": t} for w, b, t in self.notes],
                "next_steps": list(self.steps),
                "images": self.words["export.no_images"],
            },
            ensure_ascii=False,
            indent=2,
        )

    def as_text(self) -> str:
        w = self.words
        lines = [w["export.title"], ""]
        lines += [f"{label}: {value}" for label, value in self.fields]
        lines += ["", w["export.timeline"]]
        lines += [f"  {when}  {who}: {what}" for when, who, what in self.timeline]
        lines += ["", w["export.notes"]]
        notes = [f"  {when}  {who}: {text}" for when, who, text in self.notes]
        lines += notes or [f"  {w['export.none']}"]
        lines += ["", w["export.next_steps"]]
        lines += [f"  {index}. {step}" for index, step in enumerate(self.steps, 1)]
        lines += ["", w["export.no_images"]]
        return "\n".join(lines) + "\n"


def evidence_pack(
    content: Content,
    report: Report,
    audit: Sequence[AuditEntry],
    notes: Sequence[CaseNote],
    region: str,
    locale: str = "en",
) -> EvidencePack:
    """The pack for ``report``; ``region`` picks the hotlines in the next steps (the
    community's region, else the deployment's default)."""

    def t(key: str, **values: str) -> str:
        text = content.text(locale, key)
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text

    none = t("review.not_given")
    reporter = (
        report.reporter.id
        if report.reveal and report.reporter is not None
        else t("alert.anonymous")
    )
    fields = [
        (t("alert.community"), report.community_name),
        (t("export.community_id"), report.community.key),
        (t("alert.category"), t(f"alert.category.{report.category}")),
        (t("export.status"), report.status.value),
        (t("export.reported_at"), _when(report.created_at)),
        (t("alert.offender"), report.offender or none),
        (t("alert.details"), report.details or none),
        (t("alert.evidence"), " ".join(report.evidence) or none),
        (t("alert.reporter"), reporter),
    ]
    if report.urgent:
        why = "; ".join(t(f"alert.urgent.{reason}") for reason in report.urgent)
        fields.insert(0, (t("alert.urgent"), why))
    timeline = tuple(
        (
            _when(e.at),
            e.actor,
            t(f"export.action.{e.action}")
            if content.has(f"export.action.{e.action}")
            else e.action,
        )
        for e in audit
    )
    steps = [t("export.platform_step", platform=report.community.platform.capitalize())]
    chosen = content.region(region)
    for resource in chosen.of_kind("report", "police"):
        steps.append(f"{resource.name}: {resource.url or resource.contact_for(locale)}")
    if chosen.emergency:
        steps.append(t("export.danger", number=chosen.emergency))
    return EvidencePack(
        reference=report.reference,
        fields=tuple(fields),
        timeline=timeline,
        notes=tuple((_when(n.at), n.author, n.text) for n in notes),
        steps=tuple(steps),
        words={
            key: t(key, reference=report.reference)
            for key in (
                "export.title",
                "export.timeline",
                "export.notes",
                "export.none",
                "export.next_steps",
                "export.no_images",
            )
        },
    )

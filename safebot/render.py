"""Builds the text blocks that come from data rather than from one message id."""

from __future__ import annotations

from safebot.content import Content, Resource
from safebot.messages import Span
from safebot.model import Draft, Session

__all__ = ["evidence_links", "generated"]

_PARAGRAPH = Span("\n\n")


def _join(blocks: list[tuple[Span, ...]]) -> tuple[Span, ...]:
    out: list[Span] = []
    for block in blocks:
        if not block:
            continue
        if out:
            out.append(_PARAGRAPH)
        out.extend(block)
    return tuple(out)


def _resource_lines(content: Content, locale: str, items: tuple[Resource, ...]) -> tuple[Span, ...]:
    lines: list[str] = []
    for res in items:
        contact = res.contact_for(locale)
        lines.append(f"• **{res.name}** ({contact}): {content.text(locale, f'res.{res.id}')}")
    return (Span("\n".join(lines)),) if lines else ()


def _emergency(content: Content, session: Session) -> tuple[Span, ...]:
    region = content.region(session.region)
    if region.emergency:
        return content.spans(session.locale, "crisis.emergency", number=region.emergency)
    return content.spans(session.locale, "crisis.emergency_local")


def _labelled_lines(content: Content, locale: str) -> tuple[Span, ...]:
    """One short line per crisis line, each with its country, for when no region is known."""
    lines: list[str] = []
    for region_id, res_id in content.no_region.get(locale) or content.no_region.get(
        content.default_locale, ()
    ):
        res = content.resource(region_id, res_id)
        if res is None:
            continue
        if region_id == content.default_region:
            where = content.text(locale, "crisis.anywhere")
        else:
            where = content.text(locale, content.region(region_id).label)
        lines.append(f"• **{where}**: {res.name}, {res.contact_for(locale)}")
    return (Span("\n".join(lines)),) if lines else ()


def _crisis(content: Content, session: Session) -> tuple[Span, ...]:
    loc = session.locale
    region = content.region(session.region)
    if region.id == content.default_region:
        # No region known: lines that work at once, each labelled with its country, and the
        # Country button (the node's choices) to get the numbers for where the person is.
        return _join(
            [
                content.spans(loc, "crisis.intro"),
                _emergency(content, session),
                _labelled_lines(content, loc),
                content.spans(loc, "crisis.pick_region"),
            ]
        )
    return _join(
        [
            content.spans(loc, "crisis.intro"),
            _emergency(content, session),
            _resource_lines(content, loc, region.of_kind("crisis")),
            content.spans(loc, "crisis.after"),
        ]
    )


def _resources(content: Content, session: Session) -> tuple[Span, ...]:
    loc = session.locale
    region = content.region(session.region)
    blocks = [
        content.spans(loc, "resources.region", region=content.text(loc, region.label)),
        _resource_lines(content, loc, region.resources),
    ]
    if region.id != content.default_region:
        fallback = content.region(content.default_region)
        blocks.append(content.spans(loc, "resources.anywhere"))
        blocks.append(_resource_lines(content, loc, fallback.of_kind("directory")))
    return _join(blocks)


def _takedown(content: Content, session: Session) -> tuple[Span, ...]:
    """Take-down tools for the age range the person gave (never stored beyond the chat)."""
    loc = session.locale
    age = session.vars.get("age")
    items = content.region(content.default_region).of_kind("takedown")
    region = content.region(session.region)
    if region.id != content.default_region:
        items += region.of_kind("takedown")
    return _resource_lines(content, loc, tuple(r for r in items if r.for_age(age)))


def _outside_help(content: Content, session: Session) -> tuple[Span, ...]:
    """After a report, or when there is no community: always a hotline to report to (the
    CyberTipline or the region's own), Take It Down and a crisis line."""
    loc = session.locale
    region = content.region(session.region)
    anywhere = content.region(content.default_region)
    items = list(region.of_kind("report", "police"))
    if not any("directory" not in r.kinds for r in region.of_kind("report")):
        # No national hotline known here: the CyberTipline takes reports from anyone.
        cybertip = content.resource("US", "us.cybertipline")
        if cybertip is not None:
            items.insert(0, cybertip)
    items += [r for r in anywhere.of_kind("takedown") if "under18" in r.ages]
    crisis = region.of_kind("crisis")
    if crisis and crisis[0] not in items:
        items.append(crisis[0])
    return _join(
        [
            content.spans(loc, "outside.intro"),
            content.spans(loc, "outside.platform"),
            _resource_lines(content, loc, tuple(items)),
            _emergency(content, session),
        ]
    )


def _platform_report(content: Content, session: Session) -> tuple[Span, ...]:
    app = content.apps.get(session.vars.get("app", ""))
    if app is None:
        return content.spans(session.locale, "platform_report.general")
    steps = content.steps(session.locale, f"report.{app.id}")
    numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    blocks: list[tuple[Span, ...]] = [(Span(numbered),)]
    if app.confidence == "unverified":
        blocks.append(content.spans(session.locale, "steps.general_note"))
    return _join(blocks)


def _review(content: Content, session: Session) -> tuple[Span, ...]:
    loc = session.locale
    draft: Draft = session.draft
    none = content.text(loc, "review.not_given")
    category = content.text(loc, f"category.{draft.category}") if draft.category else none
    lines = [
        content.spans(loc, "review.intro"),
        content.spans(loc, "review.audience", community=draft.community_name or "?"),
        content.spans(loc, "review.category", category=category),
        content.spans(loc, "review.offender", offender=draft.offender or none),
        content.spans(loc, "review.details", details=draft.details or none),
        content.spans(loc, "review.evidence", evidence="\n".join(draft.evidence) or none),
        content.spans(loc, "review.identity_shared" if draft.reveal else "review.identity_hidden"),
        content.spans(loc, "review.outro"),
    ]
    return _join(lines)


def _mine(content: Content, session: Session) -> tuple[Span, ...]:
    """The person's own reports: reference, community, status (listed in ``vars["mine"]``)."""
    loc = session.locale
    spans: list[Span] = []
    for line in session.vars.get("mine", "").splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        reference, status, _open, community = parts
        state = (
            content.text(loc, f"mine.status.{status}")
            if content.has(f"mine.status.{status}")
            else status
        )
        spans += [
            Span(f"{chr(10) if spans else ''}• **{reference}**, "),
            Span(community, untrusted=True),
            Span(f": {state}"),
        ]
    return tuple(spans)


_BUILDERS = {
    "@crisis": _crisis,
    "@resources": _resources,
    "@takedown": _takedown,
    "@outside_help": _outside_help,
    "@platform_report": _platform_report,
    "@review": _review,
    "@mine": _mine,
}


def generated(name: str, content: Content, session: Session) -> tuple[Span, ...]:
    return _BUILDERS[name](content, session)


def evidence_links(text: str, limit: int = 10, max_len: int = 500) -> tuple[str, ...]:
    """The http(s) links in a piece of text, deduplicated, in order."""
    found: list[str] = []
    for word in text.split():
        word = word.strip("<>()[]{}\"'.,;")
        if (
            word.lower().startswith(("https://", "http://"))
            and len(word) <= max_len
            and "." in word
            and word not in found
        ):
            found.append(word)
        if len(found) >= limit:
            break
    return tuple(found)

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
        lines.append(f"• **{res.name}** ({res.contact}): {content.text(locale, f'res.{res.id}')}")
    return (Span("\n".join(lines)),) if lines else ()


def _emergency(content: Content, session: Session) -> tuple[Span, ...]:
    region = content.region(session.region)
    if region.emergency:
        return content.spans(session.locale, "crisis.emergency", number=region.emergency)
    return content.spans(session.locale, "crisis.emergency_local")


def _crisis(content: Content, session: Session) -> tuple[Span, ...]:
    loc = session.locale
    region = content.region(session.region)
    blocks = [
        content.spans(loc, "crisis.intro"),
        _emergency(content, session),
        _resource_lines(content, loc, region.of_kind("crisis")),
    ]
    if region.id == content.default_region:
        blocks.append(content.spans(loc, "crisis.pick_region"))
    blocks.append(content.spans(loc, "crisis.after"))
    return _join(blocks)


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
    loc = session.locale
    items = content.region(content.default_region).of_kind("takedown")
    region = content.region(session.region)
    if region.id != content.default_region:
        items += region.of_kind("takedown")
    return _resource_lines(content, loc, items)


def _outside_help(content: Content, session: Session) -> tuple[Span, ...]:
    loc = session.locale
    region = content.region(session.region)
    items = region.of_kind("report", "police")
    return _join(
        [
            content.spans(loc, "outside.intro"),
            content.spans(loc, "outside.platform"),
            _resource_lines(content, loc, items),
            _emergency(content, session),
        ]
    )


def _platform_report(content: Content, session: Session) -> tuple[Span, ...]:
    platform = content.platforms.get(session.vars.get("platform", ""))
    if platform is None:
        return content.spans(session.locale, "platform_report.general")
    steps = content.steps(session.locale, f"report.{platform.id}")
    numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    blocks: list[tuple[Span, ...]] = [(Span(numbered),)]
    if platform.confidence == "unverified":
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


_BUILDERS = {
    "@crisis": _crisis,
    "@resources": _resources,
    "@takedown": _takedown,
    "@outside_help": _outside_help,
    "@platform_report": _platform_report,
    "@review": _review,
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

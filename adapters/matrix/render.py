"""Core messages and alerts as Matrix event content: a plain body plus an HTML body.

Every event carries ``m.mentions``: empty for ordinary messages (so nothing in it can ping,
whatever the text says), the moderators' user ids for alerts. Untrusted text is HTML-escaped.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable
from typing import Any

from safebot.adapters.matrix.threads import in_thread
from safebot.messages import Message, Span, join_spans, plain_text
from safebot.moderation import Alert

__all__ = [
    "MAX_EVENT",
    "REACTIONS",
    "alert_content",
    "event_size",
    "message_content",
    "notice",
    "status_content",
]

HTML_FORMAT = "org.matrix.custom.html"
# A homeserver refuses events over 65,536 bytes. Encrypted, the content travels base64-encoded
# (a third larger) inside an envelope, so a message's own content stays well under that.
MAX_EVENT = 40_000
REFERENCE_KEY = "org.safebot.reference"
ALERT_KEY = "org.safebot.key"
# Reactions moderators can use on an alert, and the action each one means.
REACTIONS = {
    "\u2705": "ack",  # ✅
    "\u270b": "claim",  # ✋
    "\u2611\ufe0f": "resolve",  # ☑️
    "\u2611": "resolve",
}
_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)


def _html_trusted(text: str) -> str:
    escaped = html.escape(text, quote=False)
    return _BOLD.sub(r"<strong>\1</strong>", escaped).replace("\n", "<br>")


def _html_untrusted(text: str) -> str:
    return html.escape(text, quote=True).replace("\n", "<br>")


def formatted(spans: Iterable[Span]) -> str:
    return join_spans(spans, trusted=_html_trusted, untrusted=_html_untrusted)


def message_content(message: Message) -> dict[str, Any]:
    """A reply to a person: m.notice, choices as numbered lines / an ordered list."""
    body = plain_text(message.spans)
    html_body = formatted(message.spans)
    if message.choices:
        body += "\n\n" + "\n".join(f"{i}. {c.label}" for i, c in enumerate(message.choices, 1))
        items = "".join(f"<li>{html.escape(c.label)}</li>" for c in message.choices)
        html_body += f"<ol>{items}</ol>"
    return {
        "msgtype": "m.notice",
        "body": body,
        "format": HTML_FORMAT,
        "formatted_body": html_body,
        "m.mentions": {},
    }


def event_size(spans: tuple[Span, ...]) -> int:
    """How many bytes spans take as a message's event content (plain and HTML bodies)."""
    content = message_content(Message(spans))
    return len(json.dumps(content, ensure_ascii=False).encode())


def preformatted(text: str) -> dict[str, Any]:
    """A notice shown as a block of fixed-width text (the evidence pack), nothing in it live."""
    return {
        "msgtype": "m.notice",
        "body": text,
        "format": HTML_FORMAT,
        "formatted_body": f"<pre><code>{html.escape(text)}</code></pre>",
        "m.mentions": {},
    }


def notice(text: str) -> dict[str, Any]:
    return message_content(Message((Span(text),)))


def _pills(users: list[str]) -> str:
    """Matrix mention links for ``users`` (clients show them as pills)."""
    return " ".join(
        f'<a href="https://matrix.to/#/{html.escape(u, quote=True)}">{html.escape(u)}</a>'
        for u in users
    )


def alert_content(alert: Alert, moderators: list[str], hint: str, key: str) -> dict[str, Any]:
    """The moderator alert. m.text (not m.notice) so the mentions notify: push rules mute
    notices before they look at mentions."""
    lines = [f"{alert.title}"]
    if alert.warning:
        lines.append(f"\u26a0\ufe0f {alert.warning}")
    items = []
    for f in alert.fields:
        lines.append(f"{f.label}: {f.value}")
        value = _html_untrusted(f.value) if f.untrusted else html.escape(f.value)
        items.append(f"<li><strong>{html.escape(f.label)}</strong>: {value}</li>")
    status = alert.status + (f" {alert.handled_by}" if alert.handled_by else "")
    html_status = html.escape(alert.status) + (
        f" {_html_untrusted(alert.handled_by)}" if alert.handled_by else ""
    )
    pills = _pills(moderators)
    body = "\n".join(
        [
            *([" ".join(moderators)] if moderators else []),
            *lines,
            status,
            "",
            plain_text((Span(alert.guidance),)),
            "",
            hint,
        ]
    )
    formatted_body = (
        (f"<p>{pills}</p>" if pills else "")
        + f"<h4>{html.escape(alert.title)}</h4>"
        + (
            f"<p><strong>\u26a0\ufe0f {html.escape(alert.warning)}</strong></p>"
            if alert.warning
            else ""
        )
        + f"<ul>{''.join(items)}</ul>"
        + f"<p>{html_status}</p><p>{_html_trusted(alert.guidance)}</p><p>{html.escape(hint)}</p>"
    )
    return {
        "msgtype": "m.text",
        "body": body,
        "format": HTML_FORMAT,
        "formatted_body": formatted_body,
        "m.mentions": {"user_ids": sorted(moderators)},
        REFERENCE_KEY: alert.reference,
        ALERT_KEY: key,
    }


def alert_reply_content(
    message: Message, moderators: list[str], thread_root: str | None, reference: str
) -> dict[str, Any]:
    """A message in an alert's thread, mentioning ``moderators`` (a reminder; m.text, so the
    mentions notify) or nobody (a note; m.notice). Untrusted spans are shown inert."""
    pills = _pills(moderators)
    content: dict[str, Any] = {
        "msgtype": "m.text" if moderators else "m.notice",
        "body": " ".join([*moderators, plain_text(message.spans)]),
        "format": HTML_FORMAT,
        "formatted_body": (f"{pills} " if pills else "") + formatted(message.spans),
        "m.mentions": {"user_ids": sorted(moderators)},
        REFERENCE_KEY: reference,
    }
    return in_thread(content, thread_root)


def status_content(alert: Alert, thread_root: str | None) -> dict[str, Any]:
    """A short update in the alert's thread (or a plain line if the alert is not found)."""
    status = f"{alert.reference}: {alert.status}" + (
        f" {alert.handled_by}" if alert.handled_by else ""
    )
    html_status = html.escape(f"{alert.reference}: {alert.status}") + (
        f" {_html_untrusted(alert.handled_by)}" if alert.handled_by else ""
    )
    content: dict[str, Any] = {
        "msgtype": "m.notice",
        "body": status,
        "format": HTML_FORMAT,
        "formatted_body": html_status,
        "m.mentions": {},
        REFERENCE_KEY: alert.reference,
    }
    return in_thread(content, thread_root)

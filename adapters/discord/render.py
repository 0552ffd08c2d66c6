"""Core messages and alerts as Discord payloads: text, embeds, buttons, select menus.

Untrusted text (anything a person or a platform supplied) is escaped so it can never mention,
ping or change formatting; every message also goes out with restrictive allowed_mentions.
"""

from __future__ import annotations

import hashlib

import discord

from safebot.adapters.discord.escape import escape, truncate
from safebot.messages import Choice, Span, join_spans
from safebot.moderation import Alert

__all__ = [
    "ALERT_FOOTER_PREFIX",
    "MAX_BUTTONS",
    "MAX_CONTENT",
    "NO_MENTIONS",
    "alert_embed",
    "alert_nonce",
    "escape",
    "label",
    "rendered_length",
    "text_of",
]

MAX_CONTENT = 2000
MAX_BUTTONS = 10  # more choices than this become a select menu
ALERT_FOOTER_PREFIX = "SafeBot "
NO_MENTIONS = discord.AllowedMentions.none()


def text_of(spans: tuple[Span, ...]) -> str:
    """Discord markdown: content's own markup kept, what people typed escaped."""
    return join_spans(spans, trusted=str, untrusted=escape)


def rendered_length(spans: tuple[Span, ...]) -> int:
    """How long spans are as a Discord message, escapes included."""
    return len(text_of(spans))


def label(choice: Choice) -> str:
    """Button and select labels are plain text on Discord (no markdown, no mentions)."""
    value = choice.label.strip() or "…"
    return value if len(value) <= 80 else value[:79] + "…"


def _field(value: str, limit: int = 1024) -> str:
    return truncate(escape(value), limit)


def alert_embed(alert: Alert) -> discord.Embed:
    colour = discord.Colour.green() if alert.resolved else discord.Colour.red()
    embed = discord.Embed(title=alert.title, colour=colour)
    details = ""
    for f in alert.fields:
        value = _field(f.value) if f.untrusted else f.value
        if f.long:  # the person's own account goes in the description (more room)
            details = f"**{f.label}**\n{_field(f.value, 3000)}"
            continue
        embed.add_field(name=f.label, value=value or "-", inline=False)
    if alert.warning:
        details = f"\u26a0\ufe0f **{alert.warning}**\n\n{details}"
    embed.description = details
    status = alert.status + (f" {escape(alert.handled_by)}" if alert.handled_by else "")
    embed.add_field(name="\u2139\ufe0f", value=status, inline=False)
    embed.add_field(name="\u26a0\ufe0f", value=alert.guidance[:1024], inline=False)
    embed.set_footer(text=f"{ALERT_FOOTER_PREFIX}{alert.key}")
    return embed


def alert_nonce(key: str) -> str:
    """Discord deduplicates sends with the same nonce for a few minutes (enforce_nonce)."""
    return hashlib.sha256(key.encode()).hexdigest()[:25]

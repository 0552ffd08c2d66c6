"""A test-side model of what Discord renders, independent of the adapter's escaper.

``live_constructs(text)`` lists every markdown construct, link, mention, emoji or timestamp
Discord would render in ``text``; ``shown(text)`` is the characters a reader sees (escapes and
zero-width spaces removed). Discord's rule: a backslash before any character that is not a
letter, digit or whitespace shows that character literally.
"""

from __future__ import annotations

import re

__all__ = ["SAMPLES", "live_constructs", "shown"]

ZWSP = "\u200b"
_ESCAPE = re.compile(r"\\([^0-9A-Za-z\s])")
_NEUTRAL = "\ue000"  # stands for an escaped character: it opens and closes nothing

#: One example of every construct Discord renders, each of which must come out inert.
SAMPLES: dict[str, str] = {
    "masked links": "[one](https://a.test/1) and [two](https://b.test/2) [three](<https://c.test>)",
    "bare link": "https://evil.test/path?q=1",
    "link in angle brackets": "<https://evil.test/x>",
    "heading": "# Big\n## Bigger\n### Biggest",
    "subtext": "-# small print",
    "unordered list": "- one\n* two\n+ three\n  - nested",
    "ordered list": "1. first\n2. second\n 10. tenth",
    "block quote": "> quoted\n>>> all the rest",
    "spoiler": "||hidden||",
    "inline code": "`code` and ``double``",
    "code block": "```py\nprint(1)\n```",
    "bold and italics": "**bold** *it* _it_ ***both***",
    "underline": "__under__",
    "strikethrough": "~~gone~~",
    "timestamp": "<t:1700000000:R> <t:1700000000>",
    "user mention": "<@123456789012345678> <@!123456789012345678>",
    "role mention": "<@&123456789012345678>",
    "channel mention": "<#123456789012345678>",
    "slash command mention": "</safety report:123456789012345678>",
    "guild navigation": "<id:customize>",
    "everyone": "@everyone @here",
    "custom emoji": "<:wave:123456789012345678> <a:dance:123456789012345678>",
    "emoji shortcode": ":skull: :smile:",
    "backslashes": "\\*not bold\\* \\\\**bold**",
}

_LIVE: dict[str, re.Pattern[str]] = {
    "masked link": re.compile(r"\[[^\]\n]*\]\("),
    "link": re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://"),
    "angle brackets (mention, emoji, timestamp, link)": re.compile(r"<[^<>\s]"),
    "heading or subtext": re.compile(r"^[ \t]*(?:#{1,3}|-#)(?:\s|$)", re.MULTILINE),
    "list": re.compile(r"^[ \t]*(?:[-*+]|\d+\.)(?:\s|$)", re.MULTILINE),
    "block quote": re.compile(r"^[ \t]*>", re.MULTILINE),
    "emphasis": re.compile(r"\*|_"),
    "strikethrough": re.compile(r"~~"),
    "spoiler": re.compile(r"\|\|"),
    "code": re.compile(r"`"),
    "emoji shortcode": re.compile(r":[A-Za-z0-9_+-]+:"),
    "everyone or here": re.compile(r"@(?:everyone|here)"),
}


def _unescaped_view(text: str) -> str:
    """The text as Discord's parser sees it for constructs: escaped characters neutral."""
    return _ESCAPE.sub(_NEUTRAL, text)


def live_constructs(text: str) -> list[str]:
    view = _unescaped_view(text)
    return [name for name, pattern in _LIVE.items() if pattern.search(view)]


def shown(text: str) -> str:
    return _ESCAPE.sub(r"\1", text).replace(ZWSP, "")

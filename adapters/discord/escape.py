"""Make untrusted text inert on Discord: it shows exactly the characters that were typed, and
nothing in it renders as markdown, a link, a mention, an emoji or a timestamp.

Discord's markdown treats a backslash followed by any character that is not a letter, a digit
or whitespace as that character, shown literally. So every character that can open or close a
construct gets a backslash: inline ones everywhere (emphasis, underline, strikethrough,
spoilers, code, masked links, ``<...>`` mentions, emoji, timestamps and links, ``:`` of bare
URLs and emoji shortcodes), and line ones where a line starts (headings ``#``, subtext ``-#``,
lists ``-``/``*``/``+``/``1.``, block quotes ``>``). A zero-width space after ``@`` and ``<``
also breaks ``@everyone``, ``@here`` and ``<@id>`` for anything that does not read markdown.

We do not use ``discord.utils.escape_markdown``: its link pattern is greedy, so with two masked
links in one text every link after the first stayed live.
"""

from __future__ import annotations

import re

__all__ = ["INLINE", "ZWSP", "escape", "truncate"]

ZWSP = "\u200b"
#: Characters escaped wherever they are.
INLINE = frozenset("\\*_~`|[]()<>:")
# After the inline pass ("*" and ">" are escaped already): what is left that opens a line.
_LINE_START = re.compile(r"^([ \t]*)([#+-]|\d+\.)", re.MULTILINE)


def _escape_line_start(match: re.Match[str]) -> str:
    indent, head = match.group(1), match.group(2)
    if head[-1] == ".":  # an ordered list item: "12." -> "12\."
        return f"{indent}{head[:-1]}\\."
    return f"{indent}\\{head}"


def escape(text: str) -> str:
    """``text`` as inert Discord text that renders as the same characters."""
    out = []
    for char in text:
        if char == "<":
            out.append("\\<" + ZWSP)
        elif char in INLINE:
            out.append("\\" + char)
        elif char == "@":
            out.append("@" + ZWSP)
        else:
            out.append(char)
    return _LINE_START.sub(_escape_line_start, "".join(out))


def truncate(escaped: str, limit: int) -> str:
    """Shorten escaped text to ``limit`` characters with an ellipsis, never leaving a
    backslash without the character it escapes (it would escape the ellipsis instead)."""
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    trailing = len(cut) - len(cut.rstrip("\\"))
    if trailing % 2:  # an escape cut in half
        cut = cut[:-1]
    return cut + "…"

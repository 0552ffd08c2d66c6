"""Outbound messages: text made of spans plus choices, rendered by each adapter.

Text from ``content/`` is trusted and may use two bits of markup: ``**bold**`` and lines that
start with ``• ``. Anything that came from a person or a platform (names, report details) is an
*untrusted* span: adapters escape it so it can never mention, ping or break formatting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from safebot.model import valid_utf8

__all__ = [
    "Choice",
    "Message",
    "Span",
    "clean_text",
    "join_spans",
    "plain_text",
    "split_template",
    "strip_markup",
]

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """Text from outside, made safe to store and show: no control characters, and no lone
    UTF-16 surrogates (which some JSON decoders let through and UTF-8 cannot encode)."""
    return _CONTROL.sub("", valid_utf8(text))


@dataclass(frozen=True, slots=True)
class Span:
    text: str
    untrusted: bool = False


@dataclass(frozen=True, slots=True)
class Choice:
    """A choice the person can make: a button where the platform has them, a number otherwise.

    ``label`` may be untrusted (a community name), so adapters always escape it.
    """

    id: str
    label: str


@dataclass(frozen=True, slots=True)
class Message:
    spans: tuple[Span, ...]
    choices: tuple[Choice, ...] = ()
    node: str | None = None  # the conversation step that offered the choices
    urgent: bool = False  # crisis resources: adapters may highlight it
    asks: str | None = None  # the answer this step wants typed (a form's field), if any

    @property
    def text(self) -> str:
        """Plain text with markup removed (for logs-free tests, consoles and plain bodies)."""
        return plain_text(self.spans)


def split_template(template: str, values: dict[str, str]) -> tuple[Span, ...]:
    """Fill ``{name}`` placeholders; every inserted value becomes an untrusted span."""
    spans: list[Span] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > pos:
            spans.append(Span(template[pos : match.start()]))
        name = match.group(1)
        if name in values:
            spans.append(Span(values[name], untrusted=True))
        else:
            spans.append(Span(match.group(0)))
        pos = match.end()
    if pos < len(template):
        spans.append(Span(template[pos:]))
    return tuple(spans)


def strip_markup(text: str) -> str:
    """Trusted text without its markup (content writes bold as ``**``)."""
    return text.replace("**", "")


def _unchanged(text: str) -> str:
    return text


def join_spans(
    spans: Iterable[Span],
    *,
    trusted: Callable[[str], str] = strip_markup,
    untrusted: Callable[[str], str] = _unchanged,
) -> str:
    """The one way spans become text: each adapter says how trusted text keeps or drops its
    markup and how untrusted text (what people typed) is made inert there."""
    return "".join(untrusted(s.text) if s.untrusted else trusted(s.text) for s in spans)


def plain_text(spans: Iterable[Span]) -> str:
    """Plain text: markup dropped, untrusted text as it is (for plain bodies and logs-free
    tests; a plain body shows no markup that could be injected)."""
    return join_spans(spans)

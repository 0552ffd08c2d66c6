"""Outbound messages: text made of spans plus choices, rendered by each adapter.

Text from ``content/`` is trusted and may use two bits of markup: ``**bold**`` and lines that
start with ``• ``. Anything that came from a person or a platform (names, report details) is an
*untrusted* span: adapters escape it so it can never mention, ping or break formatting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from safebot.model import valid_utf8

__all__ = [
    "Choice",
    "Measure",
    "Message",
    "Span",
    "clean_text",
    "fit",
    "join_spans",
    "plain_length",
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
    # What this screen means, for adapters that add to it (never read from node ids, which
    # are content and can be renamed): the person shares no community to report to...
    no_community: bool = False
    # ...or it confirms the report with this reference was sent.
    reported: str | None = None

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


Measure = Callable[[tuple[Span, ...]], int]


def plain_length(spans: tuple[Span, ...]) -> int:
    """How long spans are as plain text (a platform with no markup to add)."""
    return len(plain_text(spans))


# Where a long text is best cut: after a paragraph, then a line, then a word, then anywhere.
_BREAKS = (re.compile(r"\n\n"), re.compile(r"\n"), re.compile(r" "))


def fit(
    message: Message, limit: int | None, measure: Measure = plain_length
) -> tuple[Message, ...]:
    """``message`` as one or more messages that each measure at most ``limit`` once rendered
    (``measure`` renders the way the platform does, escapes included; None: no limit).

    Cuts fall between spans or inside one, at a paragraph break if one fits, else a line break,
    a space, and only then anywhere. A cut never falls inside what the platform adds when it
    renders (an escape, an entity), because the parts are rendered one by one. The choices, the
    step and the form go with the last part; every part of an urgent message stays urgent.
    """
    if limit is None or measure(message.spans) <= limit:
        return (message,)
    parts: list[tuple[Span, ...]] = []
    current: list[Span] = []
    queue = list(reversed(message.spans))
    while queue:
        span = queue.pop()
        if measure((*current, span)) <= limit:
            current.append(span)
            continue
        cut = _cut(current, span, limit, measure)
        if cut == 0 and current:  # nothing of it fits after what is there: start a new part
            parts.append(tuple(current))
            current = []
            queue.append(span)
            continue
        cut = max(cut, 1)  # a limit too small for one character: never loop forever
        head, tail = span.text[:cut].rstrip(" \n"), span.text[cut:].lstrip(" \n")
        piece = (*current, replace(span, text=head)) if head else tuple(current)
        if piece:
            parts.append(piece)
        current = []
        if tail:
            queue.append(replace(span, text=tail))
    if current:
        parts.append(tuple(current))
    last = len(parts) - 1
    return tuple(
        Message(spans, urgent=message.urgent) if index < last else replace(message, spans=spans)
        for index, spans in enumerate(parts)
    )


def _cut(current: list[Span], span: Span, limit: int, measure: Measure) -> int:
    """How much of ``span`` fits after ``current`` (0: none), cut at the best break."""

    def fits(end: int) -> bool:
        return measure((*current, replace(span, text=span.text[:end]))) <= limit

    for pattern in _BREAKS:
        ends = [m.end() for m in pattern.finditer(span.text)]
        best = _last_true(ends, fits)
        if best is not None and span.text[:best].strip():
            return best
    if current and current[-1].text.endswith("\n"):
        return 0  # the part already ends a line: begin the span in the next one instead
    best = _last_true(list(range(1, len(span.text) + 1)), fits)
    return best or 0


def _last_true(ends: list[int], fits: Callable[[int], bool]) -> int | None:
    """The largest of the sorted ``ends`` that fits (fitting only shrinks as ends grow)."""
    low, high, found = 0, len(ends) - 1, None
    while low <= high:
        middle = (low + high) // 2
        if fits(ends[middle]):
            found, low = ends[middle], middle + 1
        else:
            high = middle - 1
    return found

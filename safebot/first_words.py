"""The recogniser's pattern index: which words a rule's pattern can start with, read off the
pattern once at load time, so a message tries only the rules its words can start."""

from __future__ import annotations

from typing import Any

__all__ = ["PREFIX_KEY", "first_words", "is_anchored", "top_level_bar"]

# --- pattern index --------------------------------------------------------------------------
#
# Searching ~400 patterns from every position of every message is slow in Python's ``re``
# (tens of microseconds). Most patterns start with ``\b`` and a word from a small set
# ("\b(?:want|wanna)\W+..."), so at load time each pattern's possible FIRST WORDS are read off
# it: either whole words (the word ends inside the pattern) or word prefixes. A message then
# only tries a pattern with ``match`` at the start of a word that fits. This is an exact
# optimisation: a pattern the small reader below cannot follow (``^\W*...``, lookbehinds
# mid-word, inline flags, anything unusual) is simply searched the ordinary way.
#
# The reader is written here, for the plain subset of ``re`` syntax the rule files use, rather
# than borrowed from CPython's private ``re._parser``, which may change in any release.

PREFIX_KEY = 3  # word-prefix keys are cut to this many characters
_MAX_STARTS = 512  # give up (search normally) past this many first words
_MAX_CLASS = 12  # a [...] class with more word characters than this is not listed

_Partial = tuple[str, bool]  # text of the first word so far, "starts at a word start"
_Finished = tuple[str, bool, bool]  # text, starts at a word start, word is complete

# Parsed pattern pieces:
#   ("lit", ch)                   one literal character
#   ("class", chars, nonword)     a character set: the word characters it matches (None: too
#                                 many to list) and whether it can match a non-word character
#   ("bound",)                    \b
#   ("start",) / ("end",)         ^ / $
#   ("zero",)                     a lookahead or lookbehind (zero-width, ignored)
#   ("alt", [[piece, ...], ...])  a group: its alternatives
#   ("rep", low, high, piece)     a repeated piece (high None: no upper bound)
_Piece = tuple[Any, ...]

_NONWORD: _Piece = ("class", frozenset(), True)
_ANY: _Piece = ("class", None, True)
_DIGITS: _Piece = ("class", frozenset("0123456789"), False)
_ESCAPES: dict[str, _Piece] = {
    "b": ("bound",),
    "W": _NONWORD,
    "s": _NONWORD,
    "d": _DIGITS,
    "w": _ANY,
    "S": _ANY,
    "D": _ANY,
}


class _Unreadable(Exception):
    pass


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class _Reader:
    """Reads a pattern into pieces; raises _Unreadable on anything outside the plain subset."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def read(self) -> list[_Piece]:
        options = self._alternatives()
        if self.pos != len(self.text):
            raise _Unreadable
        return options[0] if len(options) == 1 else [("alt", options)]

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _next(self) -> str:
        ch = self._peek()
        if not ch:
            raise _Unreadable
        self.pos += 1
        return ch

    def _alternatives(self) -> list[list[_Piece]]:
        options = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            options.append(self._sequence())
        return options

    def _sequence(self) -> list[_Piece]:
        pieces: list[_Piece] = []
        while self._peek() not in ("", "|", ")"):
            pieces.append(self._quantified(self._atom()))
        return pieces

    def _atom(self) -> _Piece:
        ch = self._next()
        if ch == "(":
            zero = False
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self.text.startswith(("?=", "?!"), self.pos):
                self.pos, zero = self.pos + 2, True
            elif self.text.startswith(("?<=", "?<!"), self.pos):
                self.pos, zero = self.pos + 3, True
            elif self._peek() == "?":
                raise _Unreadable  # inline flags, named groups, conditionals
            options = self._alternatives()
            if self._next() != ")":
                raise _Unreadable
            return ("zero",) if zero else ("alt", options)
        if ch == "[":
            return self._class()
        if ch == "\\":
            return self._escape()
        if ch == ".":
            return _ANY
        if ch == "^":
            return ("start",)
        if ch == "$":
            return ("end",)
        if ch in "*+?{)":
            raise _Unreadable
        return ("lit", ch)

    def _escape(self) -> _Piece:
        ch = self._next()
        if ch in _ESCAPES:
            return _ESCAPES[ch]
        if ch.isalnum():
            raise _Unreadable  # \A, \Z, \B, \x.., \u...., back-references
        return ("lit", ch)

    def _class(self) -> _Piece:
        if self._peek() == "^":
            raise _Unreadable
        chars: set[str] = set()
        nonword, listed, first = False, True, True
        while True:
            ch = self._next()
            if ch == "]" and not first:
                break
            first = False
            if ch == "\\":
                piece = self._escape()
                if piece[0] != "class" and piece[0] != "lit":
                    raise _Unreadable
                if piece[0] == "lit":
                    chars.add(piece[1])
                else:
                    nonword = nonword or piece[2]
                    if piece[1] is None:
                        listed = False
                    else:
                        chars.update(piece[1])
                continue
            if self._peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self._next()
                if end == "\\" or ord(end) < ord(ch):
                    raise _Unreadable
                if ord(end) - ord(ch) >= _MAX_CLASS:
                    listed = False
                else:
                    chars.update(chr(c) for c in range(ord(ch), ord(end) + 1))
                continue
            chars.add(ch)
        word = frozenset(c for c in chars if _is_word_char(c))
        nonword = nonword or len(word) < len(chars)
        if not listed or len(word) > _MAX_CLASS:
            return ("class", None, True)
        return ("class", word, nonword)

    def _quantified(self, piece: _Piece) -> _Piece:
        ch = self._peek()
        if ch == "?":
            low, high = 0, 1
        elif ch == "*":
            low, high = 0, None
        elif ch == "+":
            low, high = 1, None
        elif ch == "{":
            end = self.text.find("}", self.pos)
            bounds = self.text[self.pos + 1 : end].split(",") if end > 0 else []
            if not 1 <= len(bounds) <= 2 or not all(b.isdigit() for b in bounds if b):
                raise _Unreadable
            low = int(bounds[0] or 0)
            high = None if len(bounds) == 2 and not bounds[1] else int(bounds[-1])
            self.pos = end
        else:
            return piece
        if piece[0] in ("zero", "bound", "start", "end"):
            raise _Unreadable
        self.pos += 1
        if self._peek() in ("?", "+"):
            self.pos += 1  # lazy or possessive: the same characters can match
        return ("rep", low, high, piece)


def _walk(pieces: list[_Piece], partials: list[_Partial]) -> tuple[list[_Partial], list[_Finished]]:
    """Follow a sequence of pieces from ``partials``: the first words still being read (open)
    and those finished (complete at a non-word character or ``\\b``, or cut short)."""
    finished: list[_Finished] = []
    current = partials
    for piece in pieces:
        if not current:
            break
        following: list[_Partial] = []
        for text, anchored in current:
            opened, done = _step(piece, text, anchored)
            following.extend(opened)
            finished.extend(done)
        current = list(dict.fromkeys(following))
        if len(current) + len(finished) > _MAX_STARTS:
            raise _Unreadable
    return current, finished


def _step(piece: _Piece, text: str, anchored: bool) -> tuple[list[_Partial], list[_Finished]]:
    stop: tuple[list[_Partial], list[_Finished]] = ([], [(text, anchored, False)])
    complete: tuple[list[_Partial], list[_Finished]] = ([], [(text, anchored, True)])
    kind = piece[0]
    if kind in ("bound", "start"):
        if not text:
            return [(text, True)], []
        return complete if kind == "bound" else stop
    if kind == "end":
        return stop
    if kind == "zero":
        return [(text, anchored)], []  # ignoring a zero-width test only allows more
    if kind == "lit":
        return ([(text + piece[1], anchored)], []) if _is_word_char(piece[1]) else complete
    if kind == "class":
        _, word_chars, nonword = piece
        if word_chars is None:
            return stop
        opened = [(text + ch, anchored) for ch in sorted(word_chars)]
        return opened, complete[1] if nonword else []
    if kind == "alt":
        opened, done = [], []
        for alternative in piece[1]:
            more_opened, more_done = _walk(alternative, [(text, anchored)])
            opened.extend(more_opened)
            done.extend(more_done)
        return opened, done
    _, low, high, sub = piece  # "rep"
    opened = [(text, anchored)] if low == 0 else []
    once_opened, done = _walk([sub], [(text, anchored)])
    if high == 1:
        opened.extend(once_opened)
    else:  # more copies may follow: what was read so far is only a prefix
        done = done + [(t, a, False) for t, a in once_opened]
    return opened, done


def first_words(pattern: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """``(words, prefixes)``: every match starts at the start of a word that is one of
    ``words`` or starts with one of ``prefixes``. None when that cannot be read off."""
    try:
        opened, finished = _walk(_Reader(pattern).read(), [("", False)])
    except (_Unreadable, RecursionError):
        return None
    finished = finished + [(text, anchored, False) for text, anchored in opened]
    if not finished or any(not text or not anchored for text, anchored, _ in finished):
        return None
    words = frozenset(text for text, _, whole in finished if whole)
    prefixes = frozenset(text[:PREFIX_KEY] for text, _, whole in finished if not whole)
    return words, prefixes


def is_anchored(pattern: str) -> bool:
    """The pattern can only match at the very start of the text (a leading ``^``)."""
    return pattern.startswith("^") and not top_level_bar(pattern)


def top_level_bar(pattern: str) -> bool:
    """Does ``pattern`` have a ``|`` outside any group or class?"""
    depth = 0
    in_class = escaped = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return True
    return False

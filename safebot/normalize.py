"""The recogniser's first stage: text in the form its rules are written against, and the
one-typo word matching its keywords use. Nothing here keeps or logs the text it sees."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["FUZZY_MIN_LEN", "WORD_RE", "normalize", "variants", "within_one_edit"]

FUZZY_MIN_LEN = 6
"""Keywords and words at least this long match with one edit (typo) allowed."""

# --- normalization ------------------------------------------------------------------------

# Apostrophe-like characters are removed ("don't" -> "dont", "he'll" -> "hell") so patterns
# never need them and match the common apostrophe-less spelling too. Some must go before
# NFKC, which turns the acute accent into a space plus a combining mark.
_APOSTROPHES = "'`´ʹʻʼʽˈ՚‘’‛′＇"
_PRE_NFKC = str.maketrans(dict.fromkeys(_APOSTROPHES, None))

# Look-alike letters from other scripts, after casefolding (Cyrillic, Greek).
_CONFUSABLES: dict[str, str] = {
    "а": "a",
    "в": "b",
    "е": "e",
    "ё": "e",
    "к": "k",
    "м": "m",
    "н": "h",
    "о": "o",
    "р": "p",
    "с": "c",
    "т": "t",
    "у": "y",
    "х": "x",
    "ѕ": "s",
    "і": "i",
    "ї": "i",
    "ј": "j",
    "ԁ": "d",
    "ԛ": "q",
    "ԝ": "w",
    "ӏ": "l",
    "α": "a",
    "β": "b",
    "ε": "e",
    "ι": "i",
    "κ": "k",
    "ν": "v",
    "ο": "o",
    "ρ": "p",
    "τ": "t",
    "υ": "u",
    "χ": "x",
}


class _FoldTable(dict[int, "str | None"]):
    """``str.translate`` table that decides each character once and remembers it.

    Drops combining marks (accents, after NFKD), format characters (zero-width, bidi
    controls, soft hyphen), other control characters, surrogates, private-use and
    unassigned code points and apostrophes; turns every kind of whitespace and ``_`` into a
    space; maps look-alike letters to ASCII.
    """

    __slots__ = ()
    _LIMIT = 50_000  # cache at most this many code points

    def __missing__(self, key: int) -> str | None:
        value = _fold_char(chr(key))
        if len(self) < self._LIMIT:
            self[key] = value
        return value


def _fold_char(ch: str) -> str | None:
    if ch in _APOSTROPHES:
        return None
    if ch.isspace() or ch == "_":
        return " "
    category = unicodedata.category(ch)
    if category[0] in "CM":  # Cc Cf Cs Co Cn, Mn Mc Me
        return None
    return _CONFUSABLES.get(ch, ch)


_FOLD = _FoldTable()
_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"}
# Leet only between two letters: "k1ll" -> "kill", "n00dz" -> "noodz"; "$500" and "1k" stay.
_LEET_RE = re.compile(r"(?<=[^\W\d_])[013457@$!]+(?=[^\W\d_])")
_REPEAT_RE = re.compile(r"([^\W\d_])\1{2,}")
WORD_RE = re.compile(r"[^\W_]+")


def _unleet(match: re.Match[str]) -> str:
    return "".join(_LEET[ch] for ch in match.group())


def normalize(text: str) -> str:
    """The form patterns are written against.

    NFKC, casefold, accents stripped (NFKD without combining marks), format/control
    characters and apostrophes removed, look-alike letters and in-word leet mapped to
    ASCII, runs of 3+ identical letters cut to 2, whitespace collapsed and stripped.
    Digits, ``$`` and other punctuation are kept.
    """
    if text.isascii():
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKC", text.translate(_PRE_NFKC)).casefold()
        text = unicodedata.normalize("NFKD", text)
    text = text.translate(_FOLD)
    if _LEET_RE.search(text) is not None:
        text = _LEET_RE.sub(_unleet, text)
    text = _REPEAT_RE.sub(r"\1\1", text)
    return " ".join(text.split())


# --- keyword matching ---------------------------------------------------------------------


def within_one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment (restricted Damerau-Levenshtein) distance <= 1."""
    la, lb = len(a), len(b)
    if la > lb:
        a, b, la, lb = b, a, lb, la
    if lb - la > 1:
        return False
    i = 0
    while i < la and a[i] == b[i]:
        i += 1
    if i == la:
        return True  # equal, or b has one extra character at the end
    if la == lb:
        if a[i + 1 :] == b[i + 1 :]:
            return True  # one substitution
        return i + 1 < la and a[i] == b[i + 1] and a[i + 1] == b[i] and a[i + 2 :] == b[i + 2 :]
    return a[i:] == b[i + 1 :]  # one insertion


def variants(word: str) -> list[str]:
    """The word and every one-character deletion of it (symmetric-delete candidates)."""
    return [word] + [word[:i] + word[i + 1 :] for i in range(len(word))]

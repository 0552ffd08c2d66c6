"""Keyed one-way pseudonyms of people, for what must outlive "forget me".

Report limits, moderator blocks and message-rate counters have to keep working after a person
asks to be forgotten, or forgetting would reset them. They are kept on ``pseudonym(secret,
person)``: an HMAC-SHA256 of the person key under a secret that belongs to the deployment and
is stored with its database. Without the secret, nobody can go from a member list to a
pseudonym; with only the pseudonym, nobody can go back to the person.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from safebot.model import PersonId, valid_utf8

__all__ = [
    "PREFIX",
    "is_pseudonym",
    "new_secret",
    "pseudonym",
    "pseudonymize_blocked",
    "pseudonymize_counter",
    "pseudonymize_key",
]

PREFIX = "p:"
_SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh deployment secret, as hex text (both databases store it as text)."""
    return secrets.token_hex(_SECRET_BYTES)


def pseudonym(secret: str, person: PersonId) -> str:
    digest = hmac.new(bytes.fromhex(secret), valid_utf8(person.key).encode("utf-8"), hashlib.sha256)
    return PREFIX + digest.hexdigest()


def is_pseudonym(value: str) -> bool:
    return value.startswith(PREFIX)


def pseudonymize_key(secret: str, value: str) -> str:
    """A stored person key from before pseudonyms (``discord:123``) as its pseudonym; a value
    that already is one is returned unchanged, so running this twice changes nothing."""
    if is_pseudonym(value):
        return value
    return pseudonym(secret, PersonId.parse(value))


def pseudonymize_blocked(secret: str, blocked: tuple[str, ...]) -> tuple[str, ...]:
    """A block list with every plain person key replaced by its pseudonym (order kept, no
    duplicates)."""
    return tuple(dict.fromkeys(pseudonymize_key(secret, k) for k in blocked))


def pseudonymize_counter(secret: str, key: str) -> str:
    """A rate counter key (``messages:<person key>``) with the person key as a pseudonym."""
    kind, _, rest = key.partition(":")
    if ":" not in rest or is_pseudonym(rest):
        return key  # not "<kind>:<platform>:<id>", or already converted
    return f"{kind}:{pseudonymize_key(secret, rest)}"

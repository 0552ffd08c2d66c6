"""Discord's errors, as the core's one delivery error (safebot.ports.DeliveryError): a reason a
moderator can read in the logs, and whether retrying can ever help."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import discord

from safebot.ports import DeliveryError

__all__ = ["IN_MODERATOR_CHANNEL", "TO_PERSON", "delivery_errors"]

IN_MODERATOR_CHANNEL = (
    "missing permission in the moderator channel",
    "moderator channel not found",
)
"""(forbidden, not found) for anything posted in the moderator channel."""
TO_PERSON = ("the person's DMs are closed", "the person's account is gone")
"""(forbidden, not found) for a private message; an account that is gone will not come back."""


@contextlib.contextmanager
def delivery_errors(reasons: tuple[str, str], *, gone_for_good: bool = False) -> Iterator[None]:
    """Turn Discord's errors inside the block into DeliveryError. ``gone_for_good``: a
    NotFound is permanent (the item is parked at once instead of retried)."""
    forbidden, not_found = reasons
    try:
        yield
    except discord.Forbidden:
        raise DeliveryError(forbidden) from None
    except discord.NotFound:
        raise DeliveryError(not_found, permanent=gone_for_good) from None
    except discord.HTTPException as exc:
        raise DeliveryError(f"discord error {exc.status}") from None

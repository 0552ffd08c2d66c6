"""Discord's ``enforce_nonce``: a message create with a nonce already used by the same author
in the same channel within the last few minutes returns that message instead of a new one."""

from __future__ import annotations

import time

__all__ = ["NONCE_WINDOW", "NonceMemory"]

NONCE_WINDOW = 300.0  # seconds; Discord documents "the past few minutes"


class NonceMemory:
    def __init__(self, window: float = NONCE_WINDOW) -> None:
        self.window = window
        self._seen: dict[tuple[int, int, str], tuple[int, float]] = {}

    def find(self, channel_id: int, author_id: int, nonce: object) -> int | None:
        """The id of the message sent with this nonce recently, if any."""
        hit = self._seen.get((channel_id, author_id, str(nonce)))
        if hit is None or time.monotonic() - hit[1] > self.window:
            return None
        return hit[0]

    def remember(self, channel_id: int, author_id: int, nonce: object, message_id: int) -> None:
        self._seen[(channel_id, author_id, str(nonce))] = (message_id, time.monotonic())

"""Records the fake keeps about what the bot did, plus the error types it raises."""

# ruff: noqa: ASYNC109  -- the wait helpers take `timeout=` by design (test ergonomics)
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._models import FakeMessage

if TYPE_CHECKING:
    from ._core import FakeDiscordCore


class FakeDiscordError(AssertionError):
    """Base class for failures the fake reports to the test."""


class ClientCrashed(FakeDiscordError):
    """A watched discord.py client task died (or stopped) while the test was waiting."""


class ClientLoggedError(FakeDiscordError):
    """discord.py logged an ERROR (e.g. an exception in an event handler, view or command)."""


class ApiError(Exception):
    """Raised inside REST handlers; rendered as Discord's JSON error body."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            data["errors"] = self.errors
        return data


def form_error(path: str, code: str, message: str) -> ApiError:
    """A 400 "Invalid Form Body" (50035) with one nested error at ``path`` ("a.0.b")."""
    errors: dict[str, Any] = {}
    node = errors
    for part in path.split("."):
        node = node.setdefault(part, {})
    node["_errors"] = [{"code": code, "message": message}]
    return ApiError(400, 50035, "Invalid Form Body", errors)


@dataclass
class RecordedRequest:
    method: str
    path: str  # relative to /api/v10, e.g. "/channels/123/messages"
    query: dict[str, str]
    json: Any
    headers: dict[str, str]
    files: list[tuple[str, bytes]] = field(default_factory=list)
    status: int = 0
    response: Any = None
    injected: bool = False  # answered by a fail_next() rule

    @property
    def reason(self) -> str | None:
        """The X-Audit-Log-Reason header, URL-decoded."""
        return self.headers.get("X-Audit-Log-Reason")

    def __repr__(self) -> str:
        return (
            f"<{self.method} {self.path} -> {self.status}{' (injected)' if self.injected else ''}>"
        )


@dataclass
class FailureRule:
    method: str
    path_regex: re.Pattern[str]
    status: int
    times: int
    json: Any
    headers: dict[str, str]
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (
            self.times > 0
            and self.method in ("*", method.upper())
            and self.path_regex.search(path) is not None
        )


class FakeInteraction:
    """One INTERACTION_CREATE the fake dispatched, and everything the bot did about it."""

    def __init__(
        self,
        fake: FakeDiscordCore,
        payload: dict[str, Any],
        *,
        created: float,
        message: FakeMessage | None = None,
    ) -> None:
        self.fake = fake
        self.payload = payload
        self.id = int(payload["id"])
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.created = created
        self.message = message  # the message holding the clicked component, if any
        self.callbacks: list[dict[str, Any]] = []  # accepted callback bodies (at most one)
        self.rejected_callbacks: list[dict[str, Any]] = []  # e.g. second acknowledgement
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []
        self.modal: dict[str, Any] | None = None
        self.choices: list[dict[str, Any]] | None = None  # autocomplete result
        self.original_edits: list[dict[str, Any]] = []

    @property
    def channel_id(self) -> int:
        return int(self.payload["channel_id"])

    @property
    def guild_id(self) -> int | None:
        g = self.payload.get("guild_id")
        return None if g is None else int(g)

    @property
    def user_id(self) -> int:
        user = self.payload["member"]["user"] if "member" in self.payload else self.payload["user"]
        return int(user["id"])

    @property
    def callback(self) -> dict[str, Any] | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def acknowledged(self) -> bool:
        return bool(self.callbacks)

    @property
    def response_type(self) -> int | None:
        cb = self.callback
        return None if cb is None else int(cb["type"])

    async def response(self, timeout: float = 2.0) -> dict[str, Any]:
        """Wait for the bot's callback (``{"type": 4|5|6|7|8|9, "data": {...}}``)."""

        def check() -> dict[str, Any] | None:
            return self.callback

        return await self.fake.wait_until(
            check, timeout=timeout, what=f"callback for interaction {self.id}"
        )

    async def wait_followup(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        timeout: float = 2.0,
    ) -> FakeMessage:
        """Wait for (and return) the first followup matching ``predicate``."""

        def check() -> FakeMessage | None:
            for msg in self.followups:
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self.fake.wait_until(
            check, timeout=timeout, what=f"followup for interaction {self.id}"
        )

    async def wait_original(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        timeout: float = 2.0,
    ) -> FakeMessage:
        """Wait until the original response exists (and matches ``predicate``).

        After a deferral (type 5) use e.g. ``predicate=lambda m: not m.flags & 128`` (LOADING)
        or ``lambda m: bool(m.content)`` to wait for the PATCH @original.
        """

        def check() -> FakeMessage | None:
            msg = self.original
            if msg is not None and (predicate is None or predicate(msg)):
                return msg
            return None

        return await self.fake.wait_until(
            check, timeout=timeout, what=f"original response of interaction {self.id}"
        )

    def __repr__(self) -> str:
        return (
            f"<FakeInteraction id={self.id} type={self.type} "
            f"response_type={self.response_type} followups={len(self.followups)}>"
        )

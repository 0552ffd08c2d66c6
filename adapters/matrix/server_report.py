"""Reporting to the homeserver's admins, on a moderator's request: the Matrix user the report
names (``POST /_matrix/client/v3/users/{userId}/report``) and the messages it links to
(``POST /_matrix/client/v3/rooms/{roomId}/report/{eventId}``). The reason names the category
and the SafeBot reference, never who sent the report.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from urllib.parse import quote

from nio import AsyncClient

log = logging.getLogger(__name__)

__all__ = ["ServerReport", "message_links", "report_to_server", "user_ids"]

_USER_ID = re.compile(r"@[a-z0-9._=/+-]+:[a-zA-Z0-9.:\[\]-]+")
_EVENT_LINK = re.compile(r"https://matrix\.to/#/(![^/?#\s]+)/(\$[^/?#\s]+)")
_MAX = 10  # users and messages reported at most per request


@dataclass(frozen=True, slots=True)
class ServerReport:
    users: tuple[str, ...]  # reported
    messages: int  # reported
    failed: int  # refused by the homeserver (unknown, not visible to the bot, rate-limited)


def user_ids(text: str | None, limit: int | None = _MAX) -> list[str]:
    """The Matrix user ids named in ``text``, in order, without repeats (at most ``limit``;
    None: all of them)."""
    return list(dict.fromkeys(_USER_ID.findall(text or "")))[:limit]


def message_links(links: tuple[str, ...]) -> list[tuple[str, str]]:
    """(room id, event id) of every matrix.to message link (room ids only, not aliases)."""
    found = [m.groups() for link in links for m in _EVENT_LINK.finditer(link)]
    return list(dict.fromkeys((room, event) for room, event in found))[:_MAX]


async def _post(client: AsyncClient, path: str, body: dict[str, object]) -> bool:
    response = await client.send(
        "POST",
        path,
        json.dumps(body),
        headers={
            "Authorization": f"Bearer {client.access_token}",
            "Content-Type": "application/json",
        },
    )
    ok = bool(response.status == 200)
    if not ok:
        log.warning("the homeserver refused a report (HTTP %d)", response.status)
    response.release()
    return ok


async def report_to_server(
    client: AsyncClient, users: list[str], messages: list[tuple[str, str]], reason: str
) -> ServerReport:
    reported: list[str] = []
    sent = failed = 0
    for user in users:
        path = f"/_matrix/client/v3/users/{quote(user, safe='')}/report"
        if await _post(client, path, {"reason": reason}):
            reported.append(user)
        else:
            failed += 1
    for room, event in messages:
        path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/report/{quote(event, safe='')}"
        if await _post(client, path, {"reason": reason, "score": -100}):
            sent += 1
        else:
            failed += 1
    return ServerReport(tuple(reported), sent, failed)

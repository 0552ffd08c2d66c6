"""The bot's Matrix login: its saved device, signed-out sessions, and private files.

A session can die while the bot runs or while it is down: someone chose "Sign out" for the
bot's device in Element, or an admin deleted it. The homeserver then answers every request
with ``M_UNKNOWN_TOKEN``. The adapter logs in again with the configured password (a new
device, so a new crypto store), or stops with :class:`SignedOut` when it has no password.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["SIGNED_OUT_MESSAGE", "SignedOut", "is_signed_out", "keep_private", "prepare_store"]

log = logging.getLogger(__name__)

_UNKNOWN_TOKEN = "M_UNKNOWN_TOKEN"

SIGNED_OUT_MESSAGE = (
    "the bot's Matrix session was signed out (its device was deleted) and no password is"
    " configured to log in again; set the password environment variable and start it again"
)


class SignedOut(Exception):
    """The access token is no longer valid."""


def is_signed_out(response: Any) -> bool:
    """True for an error response saying the access token is gone."""
    return getattr(response, "status_code", None) == _UNKNOWN_TOKEN


def keep_private(root: Path) -> None:
    """Directories 0700, files 0600, from ``root`` down (older installs were 0755/0644)."""
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(root, 0o700)
    for path in root.rglob("*"):
        if path.is_symlink():
            continue
        os.chmod(path, 0o700 if path.is_dir() else 0o600)


def prepare_store(store_dir: Path, user_id: str, device_id: str) -> None:
    """Create nio's crypto database file (named by user and device) with mode 0600 before
    nio opens it: SQLite gives its journal files the database file's mode."""
    store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = store_dir / f"{user_id}_{device_id}.db"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)

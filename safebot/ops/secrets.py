"""Where tokens and passwords come from: a file, systemd credentials, or the environment.

Each platform says where its own secrets are (e.g. adapters/discord/platform.py).
In this order, the first that has a value wins:

1. the file named in the settings (``[discord] token_file``, ``[matrix] password_file`` or
   ``access_token_file``); naming a file that cannot be read is an error, not a fallback;
2. ``$CREDENTIALS_DIRECTORY/<name>``, the directory systemd fills from ``LoadCredential=``
   (names: ``discord-token``, ``matrix-password``, ``matrix-token``);
3. the environment variable named in the settings (``token_env``, ``password_env``, ...).

A secret file that other users may read is used, with a warning. Nothing here ever logs a
secret's value.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SecretError", "SecretSource", "read_secret"]

log = logging.getLogger(__name__)


class SecretError(Exception):
    """A secret file named in the settings cannot be read."""


@dataclass(frozen=True, slots=True)
class SecretSource:
    file: str  # from the settings; "" for none
    credential: str  # the file name in $CREDENTIALS_DIRECTORY
    env: str  # the environment variable's name


def _read_file(path: Path) -> str:
    mode = path.stat().st_mode
    if stat.S_IMODE(mode) & 0o077:
        log.warning("secret file %s can be read by other users; chmod 600 it", path)
    return path.read_text(encoding="utf-8").strip()


def read_secret(source: SecretSource, environ: Mapping[str, str] | None = None) -> str | None:
    """The secret's value from the first source that has one, or None. Raises SecretError
    when the settings name a file that cannot be read or is empty."""
    env = os.environ if environ is None else environ
    if source.file:
        path = Path(source.file).expanduser()
        try:
            value = _read_file(path)
        except OSError as exc:
            raise SecretError(f"cannot read the secret file {path}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"the secret file {path} is empty")
        return value
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if directory:
        path = Path(directory) / source.credential
        try:
            value = _read_file(path)
        except FileNotFoundError:
            value = ""
        except OSError as exc:
            raise SecretError(f"cannot read the credential {path}: {exc.strerror}") from None
        if value:
            return value
    return env.get(source.env, "").strip() or None

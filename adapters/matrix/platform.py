"""Matrix as SafeBot's registry sees it (``safebot.platforms``): the ``[matrix]`` settings, the
password or access token, where the device and crypto store live, and the adapter's factory."""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from safebot.ops.secrets import SecretError, SecretSource, read_secret
from safebot.platforms import AdapterFactory, Platform, PlatformError
from safebot.settings import Settings
from safebot.store import sqlite_path

if TYPE_CHECKING:
    from safebot.app import Adapter
    from safebot.conversation import Engine
    from safebot.store import Store

__all__ = [
    "REGISTRATION",
    "MatrixSettings",
    "data_dir_for",
    "matrix_access_token",
    "matrix_password",
    "matrix_settings",
]

PASSWORD_CREDENTIAL = "matrix-password"  # file names under systemd's $CREDENTIALS_DIRECTORY
TOKEN_CREDENTIAL = "matrix-token"


@dataclass(frozen=True, slots=True)
class MatrixSettings:
    homeserver: str = ""
    user_id: str = ""
    password_env: str = "SAFEBOT_MATRIX_PASSWORD"
    access_token_env: str = "SAFEBOT_MATRIX_TOKEN"
    password_file: str = ""  # read the password (or access token) from a file instead
    access_token_file: str = ""
    device_id: str = ""
    data_dir: str = ""
    # In a room that is not a private 1:1 chat the bot says at most one neutral "write to me
    # in private" line per room per this many minutes.
    private_hint_minutes: float = 60.0


def matrix_settings(settings: Settings) -> MatrixSettings:
    return settings.section("matrix", MatrixSettings)


def matrix_password(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    m = matrix_settings(settings)
    return read_secret(SecretSource(m.password_file, PASSWORD_CREDENTIAL, m.password_env), environ)


def matrix_access_token(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    m = matrix_settings(settings)
    return read_secret(
        SecretSource(m.access_token_file, TOKEN_CREDENTIAL, m.access_token_env), environ
    )


def data_dir_for(settings: Settings) -> Path:
    """Where the device, crypto store and DM list live: [matrix] data_dir, or next to the
    SQLite file, or (PostgreSQL, memory) in the user's data directory."""
    if matrix_settings(settings).data_dir:
        return Path(matrix_settings(settings).data_dir)
    path = sqlite_path(settings.database_url)
    if path is None:
        return Path(platformdirs.user_data_dir("safebot", appauthor=False)) / "matrix"
    return Path(path).resolve().parent / "matrix"


def _prepare(settings: Settings, args: argparse.Namespace) -> AdapterFactory:
    if importlib.util.find_spec("nio") is None:
        raise PlatformError("this needs the matrix extra: pip install 'safebot[matrix]'")
    matrix = matrix_settings(settings)
    missing = [name for name in ("homeserver", "user_id") if not getattr(matrix, name)]
    if missing:
        raise PlatformError(f"set [matrix] {', '.join(missing)} in the config file.")
    try:
        password, access_token = matrix_password(settings), matrix_access_token(settings)
    except SecretError as exc:
        raise PlatformError(str(exc)) from None
    if not (password or access_token):
        raise PlatformError(
            f"set {matrix.password_env} (or {matrix.access_token_env} with [matrix] device_id)"
            " in the environment, or [matrix] password_file, or the matrix-password systemd"
            " credential."
        )

    def make(settings: Settings, engine: Engine, store: Store) -> Adapter:
        from safebot.adapters.matrix.adapter import MatrixAdapter

        return MatrixAdapter(
            settings,
            engine.content,
            homeserver=matrix.homeserver,
            user_id=matrix.user_id,
            data_dir=data_dir_for(settings),
            password=password,
            access_token=access_token,
            device_id=matrix.device_id or None,
        )

    return make


REGISTRATION = Platform(
    name="matrix",
    summary="run SafeBot as a Matrix bot with end-to-end encryption (matrix-nio)",
    settings=MatrixSettings,
    prepare=_prepare,
    secret_keys=("password", "access_token"),
)

"""Secrets from a file, from systemd credentials or from the environment, in that order."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safebot.adapters.discord.platform import DiscordSettings, discord_settings, discord_token
from safebot.adapters.matrix.platform import (
    MatrixSettings,
    matrix_access_token,
    matrix_password,
    matrix_settings,
)
from safebot.ops.secrets import SecretError
from safebot.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]


def secret_file(path: Path, value: str, mode: int = 0o600) -> Path:
    path.write_text(value + "\n")
    path.chmod(mode)
    return path


def test_environment_alone() -> None:
    env = {"SAFEBOT_DISCORD_TOKEN": " from-env "}
    assert discord_token(Settings(), env) == "from-env"
    assert discord_token(Settings(), {}) is None


def test_credentials_directory_beats_the_environment(tmp_path: Path) -> None:
    secret_file(tmp_path / "discord-token", "from-credentials")
    env = {"SAFEBOT_DISCORD_TOKEN": "from-env", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert discord_token(Settings(), env) == "from-credentials"


def test_a_credentials_directory_without_the_file_falls_back_to_the_environment(
    tmp_path: Path,
) -> None:
    env = {"SAFEBOT_DISCORD_TOKEN": "from-env", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert discord_token(Settings(), env) == "from-env"


def with_token_file(path: Path) -> Settings:
    return Settings().with_section("discord", DiscordSettings(token_file=str(path)))


def test_token_file_beats_credentials_and_environment(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    secret_file(tmp_path / "creds" / "discord-token", "from-credentials")
    token = secret_file(tmp_path / "token", "from-file")
    settings = with_token_file(token)
    env = {"SAFEBOT_DISCORD_TOKEN": "from-env", "CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}
    assert discord_token(settings, env) == "from-file"


def test_a_named_file_that_is_missing_or_empty_is_an_error(tmp_path: Path) -> None:
    env = {"SAFEBOT_DISCORD_TOKEN": "from-env"}
    missing = with_token_file(tmp_path / "nope")
    with pytest.raises(SecretError, match="cannot read"):
        discord_token(missing, env)
    empty_file = str(secret_file(tmp_path / "e", ""))
    empty = Settings().with_section("discord", DiscordSettings(token_file=empty_file))
    with pytest.raises(SecretError, match="empty"):
        discord_token(empty, env)


def test_matrix_password_and_access_token(tmp_path: Path) -> None:
    secret_file(tmp_path / "matrix-password", "pw-credential")
    secret_file(tmp_path / "matrix-token", "token-credential")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path), "SAFEBOT_MATRIX_PASSWORD": "pw-env"}
    assert matrix_password(Settings(), env) == "pw-credential"
    assert matrix_access_token(Settings(), env) == "token-credential"
    pw_file = secret_file(tmp_path / "pw", "pw-file")
    settings = Settings().with_section("matrix", MatrixSettings(password_file=str(pw_file)))
    assert matrix_password(settings, env) == "pw-file"
    assert matrix_password(Settings(), {"SAFEBOT_MATRIX_PASSWORD": "pw-env"}) == "pw-env"


def test_files_others_can_read_get_a_warning_without_the_value(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    private = secret_file(tmp_path / "private", "s3cret-private")
    shared = secret_file(tmp_path / "shared", "s3cret-shared", 0o640)
    with caplog.at_level(logging.DEBUG):
        discord_token(
            Settings().with_section("discord", DiscordSettings(token_file=str(private))), {}
        )
        assert not caplog.records
        value = discord_token(
            Settings().with_section("discord", DiscordSettings(token_file=str(shared))), {}
        )
    assert value == "s3cret-shared"  # used, with a warning
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "chmod 600" in record.getMessage()
    assert "s3cret" not in caplog.text


def test_the_settings_file_names_files_not_secrets(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[discord]\ntoken_file = "/run/t"\n[matrix]\npassword_file = "/run/p"\n')
    settings = load_settings(config)
    assert discord_settings(settings).token_file == "/run/t"
    assert matrix_settings(settings).password_file == "/run/p"


def test_run_discord_says_which_token_file_it_cannot_read(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[discord]\ntoken_file = "{tmp_path / "missing"}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "safebot.cli", "run", "discord", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "SAFEBOT_DISCORD_TOKEN": "from-env"},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"safebot run discord: cannot read the secret file {tmp_path / 'missing'}:"
        " No such file or directory"
    ]

"""deploy/: the systemd units pass ``systemd-analyze verify`` (where it exists) and are
hardened; the Dockerfile and compose file run the bot unprivileged with the settings, secret
names and paths the bot really reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from safebot.adapters.discord.platform import TOKEN_CREDENTIAL as DISCORD_TOKEN
from safebot.adapters.matrix.platform import PASSWORD_CREDENTIAL as MATRIX_PASSWORD
from safebot.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
UNITS = {"safebot-discord.service": DISCORD_TOKEN, "safebot-matrix.service": MATRIX_PASSWORD}
HARDENING = (
    "DynamicUser=yes",
    "StateDirectory=safebot",
    "UMask=0077",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "NoNewPrivileges=yes",
    "SystemCallFilter=@system-service",
    "CapabilityBoundingSet=",
)


def directives(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()[:1] not in ("", "#", "[")]


def with_real_safebot(unit: str, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this venv's ``safebot``, so verify can resolve it."""
    safebot = Path(sys.executable).parent / "safebot"
    if not safebot.exists():
        pytest.skip("no safebot script next to this Python (install the package)")
    text = (DEPLOY / unit).read_text()
    assert "ExecStart=/opt/safebot/.venv/bin/safebot " in text
    path = tmp_path / unit
    path.write_text(text.replace("/opt/safebot/.venv/bin/safebot", str(safebot)))
    return path


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_is_hardened_and_loads_its_credential(unit: str) -> None:
    lines = directives((DEPLOY / unit).read_text())
    for wanted in HARDENING:
        assert wanted in lines, wanted
    credential = UNITS[unit]
    assert f"LoadCredential={credential}:/etc/safebot/{credential}" in lines
    [start] = [line for line in lines if line.startswith("ExecStart=")]
    platform = unit.removeprefix("safebot-").removesuffix(".service")
    assert start.endswith(f"safebot run {platform} --config /etc/safebot/safebot.toml")
    assert not any(line.startswith("Environment=") and "TOKEN" in line for line in lines)


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_passes_systemd_analyze_verify(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    path = with_real_safebot(unit, tmp_path)
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 even for unknown keys, which it only warns about: no output at all.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    security = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    if security.returncode != 0 and found is None:
        return  # an older systemd without offline security analysis
    assert found, security.stdout + security.stderr
    assert float(found.group(1)) <= 2.0, security.stdout


def test_the_systemd_settings_file_is_valid() -> None:
    settings = load_settings(DEPLOY / "safebot.toml")
    assert settings.database_url.startswith("/var/lib/safebot/")  # the unit's StateDirectory
    assert settings.monitoring.host == "127.0.0.1" and settings.monitoring.port


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_the_bot_unprivileged_with_postgresql() -> None:
    data = compose()
    bot, db = data["services"]["bot"], data["services"]["db"]
    assert not str(bot["user"]).startswith(("0", "root"))
    assert bot["read_only"] is True and bot["cap_drop"] == ["ALL"]
    assert db["image"].startswith("postgres:")
    assert bot["depends_on"]["db"]["condition"] == "service_healthy"
    for name in (*bot["secrets"], *db["secrets"]):
        assert name in data["secrets"]


def test_compose_names_the_settings_and_secrets_the_bot_reads() -> None:
    data = compose()
    bot, db = data["services"]["bot"], data["services"]["db"]
    env = bot["environment"]
    # Environment the bot reads: the systemd credentials directory (safebot/ops/secrets.py)
    # and asyncpg's password file. Nothing else, and no secret values.
    assert set(env) == {"CREDENTIALS_DIRECTORY", "PGPASSFILE"}
    assert DISCORD_TOKEN in bot["secrets"] and env["CREDENTIALS_DIRECTORY"] == "/run/secrets"
    assert env["PGPASSFILE"] == "/run/secrets/pgpass" and "pgpass" in bot["secrets"]
    [mount] = bot["volumes"]
    source, target, mode = mount.split(":")
    assert mode == "ro" and target == "/etc/safebot/safebot.toml"
    assert bot["command"][-1] == target
    settings = load_settings(DEPLOY / source)
    match = re.fullmatch(r"postgresql://(\w+)@(\w+):5432/(\w+)", settings.database_url)
    assert match, settings.database_url
    user, host, database = match.groups()
    assert host == "db" and host in data["services"]
    assert (user, database) == (
        db["environment"]["POSTGRES_USER"],
        db["environment"]["POSTGRES_DB"],
    )


def test_dockerfile_runs_as_a_non_root_user_with_the_compose_paths() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "no USER line"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert users[-1] == compose()["services"]["bot"]["user"]
    settings = load_settings(DEPLOY / "docker" / "safebot.toml")
    assert f"127.0.0.1:{settings.monitoring.port}/healthz" in text
    assert '"/etc/safebot/safebot.toml"' in text
    assert "'.[discord,matrix,postgres]'" in text

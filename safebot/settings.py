"""All configuration in one place: one TOML file plus environment variables for secrets.

Every field has a default that works for the local console run. Secrets (tokens, passwords)
are never read from this file: it names the environment variable or the file that holds them
(safebot/ops/secrets.py reads them).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

__all__ = [
    "ConsoleSettings",
    "DiscordSettings",
    "LimitSettings",
    "MatrixSettings",
    "MonitoringSettings",
    "OutboxSettings",
    "Settings",
    "SettingsError",
    "default_database",
    "load_settings",
]


class SettingsError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


def default_database() -> str:
    """SQLite in the user's data directory (falls back to ./safebot.db if it can't be made)."""
    try:
        folder = Path(platformdirs.user_data_dir("safebot", appauthor=False))
        folder.mkdir(parents=True, exist_ok=True)
        return str(folder / "safebot.db")
    except OSError:
        return "safebot.db"


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    max_attempts: int = 12  # then the item is parked and reported
    base_delay: float = 2.0  # seconds; doubles each try, with jitter
    max_delay: float = 300.0
    lease: float = 60.0  # a claimed item is retried after this if its worker died
    batch: int = 20


@dataclass(frozen=True, slots=True)
class EscalationSettings:
    """An alert nobody has acknowledged is posted again, as a reply with a fresh ping."""

    after_minutes: float = 15.0  # the first reminder; 0 turns reminders off
    urgent_after_minutes: float = 5.0  # the first reminder for an urgent report
    again_minutes: float = 30.0  # the second (and last) reminder, this long after the first


@dataclass(frozen=True, slots=True)
class LimitSettings:
    messages_per_minute: int = 30  # per person; more get one kind "slow down" and are dropped
    reports_per_hour: int = 3  # per person


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    community: str = "Demo Server"
    moderator_channel: str = "#safety-team"
    person: str = "you"
    moderator: str = "mod"


@dataclass(frozen=True, slots=True)
class DiscordSettings:
    token_env: str = "SAFEBOT_DISCORD_TOKEN"
    token_file: str = ""  # read the token from this file instead (see safebot/ops/secrets.py)
    membership_minutes: float = 10.0  # how long a server's "member or not" answer is reused
    membership_checks_at_once: int = 8  # servers asked in parallel when offering servers
    # Up to this many configured servers, offering servers asks each one. Above it, only the
    # servers the person was seen using SafeBot in (membership_days) are asked.
    probe_all_up_to: int = 10


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


@dataclass(frozen=True, slots=True)
class MonitoringSettings:
    port: int = 0  # /healthz and /metrics over HTTP; 0 serves nothing
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = field(default_factory=default_database)
    default_locale: str = "en"
    # Where this deployment's people mostly are (a region id from content/resources.toml, e.g.
    # "US"): used when the person has not picked a country. Empty: guess from the client's
    # language, else the international lines.
    default_region: str = ""
    idle_timeout_minutes: float = 30.0
    retention_days: int = 90
    # Conversations (unfinished drafts included) not touched for this long are deleted by the
    # background purge. Longer than idle_timeout_minutes, after which they restart anyway.
    session_expiry_hours: float = 24.0
    # The communities a person was seen using SafeBot in are remembered this long (keyed by
    # pseudonym) so that a large deployment asks only about those (see [discord]).
    membership_days: int = 30
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    escalation: EscalationSettings = field(default_factory=EscalationSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    matrix: MatrixSettings = field(default_factory=MatrixSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)


_SECTIONS: dict[str, type[Any]] = {
    "outbox": OutboxSettings,
    "escalation": EscalationSettings,
    "limits": LimitSettings,
    "console": ConsoleSettings,
    "discord": DiscordSettings,
    "matrix": MatrixSettings,
    "monitoring": MonitoringSettings,
}


def _typed(cls: type[Any], raw: Mapping[str, Any], where: str, problems: list[str]) -> Any:
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    defaults = cls()
    for key, value in raw.items():
        if key in _SECTIONS and cls is Settings:
            if not isinstance(value, dict):
                problems.append(f"[{key}] must be a table")
                continue
            values[key] = _typed(_SECTIONS[key], value, key, problems)
            continue
        if key not in known:
            problems.append(f"{where}: unknown setting {key!r}")
            continue
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            problems.append(f"{where}.{key}: expected {expected.__name__}")
            continue
        values[key] = value
    return replace(defaults, **values)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (if given) and apply overrides. Raises SettingsError."""
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise SettingsError([f"config file not found: {path}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError([f"config file is not valid TOML: {exc}"]) from None
    for secret_key in ("token", "password", "access_token"):
        for section in ("discord", "matrix"):
            if secret_key in raw.get(section, {}):
                problems.append(
                    f"[{section}] {secret_key}: put secrets in the environment or in a"
                    " file named by token_file or password_file, not in this file"
                )
                raw[section].pop(secret_key)
    settings: Settings = _typed(Settings, raw, "settings", problems)
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    if settings.retention_days < 1:
        problems.append("retention_days must be at least 1")
    if settings.membership_days < 1:
        problems.append("membership_days must be at least 1")
    if settings.idle_timeout_minutes <= 0:
        problems.append("idle_timeout_minutes must be positive")
    if settings.session_expiry_hours * 60.0 < settings.idle_timeout_minutes:
        problems.append("session_expiry_hours must be at least idle_timeout_minutes")
    if settings.limits.messages_per_minute < 1 or settings.limits.reports_per_hour < 1:
        problems.append("limits must be at least 1")
    if settings.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        problems.append("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    if settings.log_format not in ("text", "json"):
        problems.append('log_format must be "text" or "json"')
    if not 0 <= settings.monitoring.port <= 65535:
        problems.append("monitoring.port must be between 0 (off) and 65535")
    escalation = settings.escalation
    if min(escalation.after_minutes, escalation.urgent_after_minutes) < 0 or (
        escalation.again_minutes <= 0
    ):
        problems.append("escalation: minutes must not be negative (again_minutes positive)")
    if settings.outbox.max_attempts < 1:
        problems.append("outbox.max_attempts must be at least 1")
    if problems:
        raise SettingsError(problems)
    return settings

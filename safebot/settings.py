"""All configuration in one place: one TOML file plus environment variables for secrets.

Every field has a default that works for the local console run. Secrets (tokens, passwords)
are never read from this file: it names the environment variable or the file that holds them
(safebot/ops/secrets.py reads them).

The core's own settings are below. Each platform brings its own section (``[discord]``,
``[matrix]``, ``[console]``): its adapter package declares the dataclass in its registry entry
(safebot/platforms.py), the loader checks the section against it, and the adapter reads it
with ``settings.section(name, kind)``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import platformdirs

if TYPE_CHECKING:
    from safebot.platforms import Platform

__all__ = [
    "LimitSettings",
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
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    # Each platform's own section by name (see the module's docstring); a platform whose
    # section is absent gets its defaults.
    sections: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str, kind: type[T]) -> T:
        """The ``[name]`` section as its platform's dataclass ``kind`` (defaults if absent)."""
        value = self.sections.get(name)
        if value is None:
            return kind()
        if not isinstance(value, kind):
            raise TypeError(f"settings section [{name}] is not a {kind.__name__}")
        return value

    def with_section(self, name: str, value: object) -> Settings:
        return replace(self, sections={**self.sections, name: value})


T = TypeVar("T")

_SECTIONS: dict[str, type[Any]] = {
    "outbox": OutboxSettings,
    "escalation": EscalationSettings,
    "limits": LimitSettings,
    "monitoring": MonitoringSettings,
}


def _typed(
    cls: type[Any],
    raw: Mapping[str, Any],
    where: str,
    problems: list[str],
    platforms: Mapping[str, type[Any]] | None = None,
) -> Any:
    known = {f.name: f for f in fields(cls) if f.name != "sections"}
    values: dict[str, Any] = {}
    sections: dict[str, Any] = {}
    defaults = cls()
    for key, value in raw.items():
        section = _SECTIONS.get(key) or (platforms or {}).get(key)
        if section is not None and cls is Settings:
            if not isinstance(value, dict):
                problems.append(f"[{key}] must be a table")
                continue
            parsed = _typed(section, value, key, problems)
            if key in _SECTIONS:
                values[key] = parsed
            else:
                sections[key] = parsed
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
    if sections:
        values["sections"] = sections
    return replace(defaults, **values)


def load_settings(
    path: str | Path | None = None,
    *,
    platforms: Mapping[str, Platform] | None = None,
    **overrides: Any,
) -> Settings:
    """Read the TOML file (if given) and apply overrides. ``platforms`` give the sections the
    file may have besides the core's (default: every installed platform). Raises
    SettingsError."""
    if platforms is None:
        from safebot.platforms import platforms as installed

        platforms = installed()
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
    for name, platform in platforms.items():
        section = raw.get(name)
        if not isinstance(section, dict):
            continue
        for secret_key in platform.secret_keys:
            if secret_key in section:
                problems.append(
                    f"[{name}] {secret_key}: put secrets in the environment or in a"
                    f" file named by {secret_key}_file, not in this file"
                )
                section.pop(secret_key)
    kinds = {name: platform.settings for name, platform in platforms.items()}
    settings: Settings = _typed(Settings, raw, "settings", problems, kinds)
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

"""Loads and validates everything under ``content/``: texts per locale, resources, platforms.

The files ship inside the installed package (the ``content`` package); ``Content.load()``
finds them whether SafeBot runs from a checkout or from ``pip install .``.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from safebot.messages import Span, split_template

__all__ = [
    "Content",
    "ContentError",
    "Platform",
    "Region",
    "Resource",
    "content_root",
]

log = logging.getLogger(__name__)

NOT_TEXT = frozenset({"intents.toml"})  # recogniser patterns, read by safebot.recognise
RESOURCE_KINDS = frozenset({"crisis", "report", "takedown", "helpline", "police", "directory"})
CONFIDENCE = frozenset({"verified", "secondary", "unverified"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ContentError(Exception):
    """The content files are inconsistent. ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True, slots=True)
class Resource:
    id: str
    name: str
    kinds: tuple[str, ...]
    contact: str
    url: str | None
    source: str
    checked: str
    confidence: str


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    label: str  # message id
    emergency: str
    resources: tuple[Resource, ...]

    def of_kind(self, *kinds: str) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if any(k in r.kinds for k in kinds))


@dataclass(frozen=True, slots=True)
class Platform:
    id: str
    name: str
    devices: tuple[str, ...]
    source: str
    checked: str
    confidence: str


def content_root() -> Traversable:
    """Where the content files are: the installed ``content`` package."""
    return resources.files("content")


def _load_toml(node: Traversable) -> dict[str, Any]:
    with node.open("rb") as fh:
        return tomllib.load(fh)


@dataclass(frozen=True, slots=True)
class Content:
    locales: tuple[str, ...]
    default_locale: str
    texts: Mapping[str, Mapping[str, str | tuple[str, ...]]]  # locale -> id -> text or steps
    regions: Mapping[str, Region]
    default_region: str
    locale_regions: Mapping[str, str]
    platforms: Mapping[str, Platform]
    root: Traversable | Path

    # --- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, root: Traversable | Path | None = None) -> Content:
        root = root if root is not None else content_root()
        problems: list[str] = []
        locales = tuple(
            sorted(
                entry.name
                for entry in root.iterdir()
                if entry.is_dir() and entry.joinpath("messages.toml").is_file()
            )
        )
        texts: dict[str, dict[str, str | tuple[str, ...]]] = {}
        for locale in locales:
            merged: dict[str, str | tuple[str, ...]] = {}
            files = sorted(
                (n for n in root.joinpath(locale).iterdir() if n.name.endswith(".toml")),
                key=lambda n: n.name,
            )
            for node in files:
                name = node.name
                if name in NOT_TEXT:
                    continue
                for key, value in _load_toml(node).items():
                    if key in merged:
                        problems.append(f"{locale}/{name}: id {key!r} defined twice")
                    if isinstance(value, str) and value.strip():
                        merged[key] = value.strip()
                    elif (
                        isinstance(value, list)
                        and value
                        and all(isinstance(v, str) and v.strip() for v in value)
                    ):
                        merged[key] = tuple(v.strip() for v in value)
                    else:
                        problems.append(f"{locale}/{name}: {key!r} is empty or not text")
            texts[locale] = merged

        facts = _load_toml(root.joinpath("resources.toml"))
        regions = {rid: _region(rid, raw, problems) for rid, raw in facts["regions"].items()}
        platforms = {
            pid: _platform(pid, raw, problems)
            for pid, raw in _load_toml(root.joinpath("platforms.toml"))["platforms"].items()
        }
        content = cls(
            locales=locales,
            default_locale="en",
            texts=texts,
            regions=regions,
            default_region=str(facts.get("defaults", {}).get("region", "INTL")),
            locale_regions=dict(facts.get("locale_regions", {})),
            platforms=platforms,
            root=root,
        )
        problems.extend(content.cross_check())
        if problems:
            raise ContentError(problems)
        return content

    def cross_check(self) -> list[str]:
        """Every locale has the same ids; every region/resource/platform has its texts."""
        problems: list[str] = []
        if self.default_locale not in self.texts:
            return [f"default locale {self.default_locale!r} has no messages"]
        reference = self.texts[self.default_locale]
        for locale, table in self.texts.items():
            for key in reference.keys() - table.keys():
                problems.append(f"{locale}: missing translation {key!r}")
            for key in table.keys() - reference.keys():
                problems.append(f"{locale}: {key!r} has no {self.default_locale} original")
            for key, value in table.items():
                original = reference.get(key)
                if original is not None and _placeholders(value) != _placeholders(original):
                    problems.append(f"{locale}: {key!r} placeholders differ from the original")
        if self.default_region not in self.regions:
            problems.append(f"default region {self.default_region!r} is not defined")
        for region in self.regions.values():
            if region.label not in reference:
                problems.append(f"region {region.id}: label {region.label!r} has no text")
            if not region.of_kind("crisis"):
                problems.append(f"region {region.id}: no crisis resource")
            for res in region.resources:
                if f"res.{res.id}" not in reference:
                    problems.append(f"resource {res.id}: no text 'res.{res.id}'")
        for target in self.locale_regions.values():
            if target not in self.regions:
                problems.append(f"locale_regions points at unknown region {target!r}")
        for platform in self.platforms.values():
            for what in ("block", "privacy"):
                for device in platform.devices:
                    if not isinstance(reference.get(f"{what}.{platform.id}.{device}"), tuple):
                        problems.append(f"platform {platform.id}: no steps {what}.{device}")
            if not isinstance(reference.get(f"report.{platform.id}"), tuple):
                problems.append(f"platform {platform.id}: no report steps")
        return problems

    # --- lookups -------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.texts[self.default_locale]

    def raw(self, locale: str, key: str) -> str | tuple[str, ...]:
        table = self.texts.get(locale) or self.texts[self.default_locale]
        value = table.get(key)
        if value is None:
            value = self.texts[self.default_locale][key]
        return value

    def text(self, locale: str, key: str) -> str:
        value = self.raw(locale, key)
        return value if isinstance(value, str) else "\n".join(value)

    def steps(self, locale: str, key: str) -> tuple[str, ...]:
        value = self.raw(locale, key)
        return value if isinstance(value, tuple) else (value,)

    def spans(self, locale: str, key: str, **values: str) -> tuple[Span, ...]:
        return split_template(self.text(locale, key), values)

    def region(self, region_id: str) -> Region:
        return self.regions.get(region_id) or self.regions[self.default_region]

    def region_for_hint(self, hint: str | None) -> str | None:
        """Guess a region from a client locale such as ``en-GB`` or ``pt-BR``."""
        if not hint:
            return None
        hint = hint.strip().replace("_", "-")
        return self.locale_regions.get(hint) or self.locale_regions.get(hint.split("-")[0])

    def locale_for_hint(self, hint: str | None) -> str | None:
        if not hint:
            return None
        base = hint.strip().split("-")[0].lower()
        return base if base in self.texts else None


def _placeholders(value: str | tuple[str, ...]) -> frozenset[str]:
    joined = value if isinstance(value, str) else "\n".join(value)
    return frozenset(re.findall(r"\{([a-z_]+)\}", joined))


def _fact_fields(kind: str, raw: Mapping[str, Any], problems: list[str]) -> tuple[str, str, str]:
    source = str(raw.get("source", "")).strip()
    checked = str(raw.get("checked", "")).strip()
    confidence = str(raw.get("confidence", "")).strip()
    if not source:
        problems.append(f"{kind}: no source")
    if not _DATE.match(checked):
        problems.append(f"{kind}: 'checked' must be a YYYY-MM-DD date")
    if confidence not in CONFIDENCE:
        problems.append(f"{kind}: confidence must be one of {sorted(CONFIDENCE)}")
    return source, checked, confidence


def _region(rid: str, raw: Mapping[str, Any], problems: list[str]) -> Region:
    items: list[Resource] = []
    for entry in raw.get("resources", []):
        res_id = str(entry.get("id", ""))
        source, checked, confidence = _fact_fields(f"resource {rid}/{res_id}", entry, problems)
        kinds = tuple(str(k) for k in entry.get("kinds", ()))
        if not kinds or not set(kinds) <= RESOURCE_KINDS:
            problems.append(f"resource {rid}/{res_id}: bad kinds {kinds}")
        if not entry.get("name") or not entry.get("contact"):
            problems.append(f"resource {rid}/{res_id}: name and contact are required")
        items.append(
            Resource(
                id=res_id,
                name=str(entry.get("name", "")),
                kinds=kinds,
                contact=str(entry.get("contact", "")),
                url=entry.get("url"),
                source=source,
                checked=checked,
                confidence=confidence,
            )
        )
    return Region(
        id=rid,
        label=str(raw.get("label", f"region.{rid}")),
        emergency=str(raw.get("emergency", "")),
        resources=tuple(items),
    )


def _platform(pid: str, raw: Mapping[str, Any], problems: list[str]) -> Platform:
    source, checked, confidence = _fact_fields(f"platform {pid}", raw, problems)
    return Platform(
        id=pid,
        name=str(raw.get("name", pid)),
        devices=tuple(raw.get("devices", ("desktop", "mobile"))),
        source=source,
        checked=checked,
        confidence=confidence,
    )

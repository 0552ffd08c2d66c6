"""Loads and validates everything under ``content/``: texts per locale, resources, and the
apps people may be contacted on (where to block and report someone).

The files ship inside the installed package as ``safebot.data`` (in a checkout,
``safebot/data`` links to ``content/``), so ``Content.load()`` finds them whether SafeBot
runs from a checkout or from ``pip install .``.
"""

from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from safebot.messages import Span, split_template

__all__ = [
    "App",
    "Content",
    "ContentError",
    "Region",
    "Resource",
    "content_root",
]

log = logging.getLogger(__name__)

NOT_TEXT = frozenset(
    {"intents.toml", "hints.toml", "urgency.toml"}
)  # patterns and words, not texts to say
CATEGORIES = ("money", "more_images", "threats")  # report categories a hint may pre-select
RESOURCE_KINDS = frozenset({"crisis", "report", "takedown", "helpline", "police", "directory"})
AGES = frozenset({"under18", "adult"})  # who a resource is for, when it depends on age
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
    contacts: Mapping[str, str] = field(default_factory=dict)  # locale -> contact, if different
    ages: tuple[str, ...] = ()  # empty: for everyone

    def contact_for(self, locale: str) -> str:
        return self.contacts.get(locale, self.contact)

    def for_age(self, age: str | None) -> bool:
        return not self.ages or age is None or age in self.ages


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    label: str  # message id
    emergency: str
    resources: tuple[Resource, ...]

    def of_kind(self, *kinds: str) -> tuple[Resource, ...]:
        return tuple(r for r in self.resources if any(k in r.kinds for k in kinds))


@dataclass(frozen=True, slots=True)
class App:
    """An app someone may be contacted on (Instagram, Discord...), with its block and report
    steps. Not a chat platform SafeBot runs on: those are safebot.platforms."""

    id: str
    name: str
    devices: tuple[str, ...]
    source: str
    checked: str
    confidence: str
    aliases: tuple[str, ...] = ()  # names people type for the app ("insta", "tik tok")


def content_root() -> Traversable:
    """Where the content files are: ``content/``, installed as ``safebot.data`` (the
    ``safebot/data`` link in a checkout)."""
    return resources.files("safebot.data")


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
    apps: Mapping[str, App]
    root: Traversable | Path
    # locale -> (region id, resource id) pairs shown on the crisis screen when no region is known
    no_region: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # locale -> (category, compiled phrases), in order: what the person said pre-selects it
    hints: Mapping[str, tuple[tuple[str, re.Pattern[str]], ...]] = field(default_factory=dict)
    # every locale's deadline patterns in one: a deadline makes a report urgent
    deadlines: re.Pattern[str] | None = None

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
        apps = {
            pid: _app(pid, raw, problems)
            for pid, raw in _load_toml(root.joinpath("apps.toml"))["apps"].items()
        }
        content = cls(
            locales=locales,
            default_locale="en",
            texts=texts,
            regions=regions,
            default_region=str(facts.get("defaults", {}).get("region", "INTL")),
            locale_regions=dict(facts.get("locale_regions", {})),
            apps=apps,
            root=root,
            no_region=_no_region(facts.get("no_region", {}), problems),
            hints={loc: _hints(root.joinpath(loc, "hints.toml"), loc, problems) for loc in locales},
            deadlines=_deadlines(root, locales, problems),
        )
        problems.extend(content.cross_check())
        if problems:
            raise ContentError(problems)
        return content

    def cross_check(self) -> list[str]:
        """Every locale has the same ids; every region/resource/app has its texts."""
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
        for locale in self.texts:
            lines = self.no_region.get(locale, ())
            if not lines:
                problems.append(f"{locale}: no crisis lines for when no region is known")
            for region_id, res_id in lines:
                found = [
                    r
                    for r in self.regions.get(region_id, Region("", "", "", ())).resources
                    if r.id == res_id
                ]
                if not found or "crisis" not in found[0].kinds:
                    problems.append(f"no_region {locale}: {region_id}/{res_id} is no crisis line")
        for target in self.locale_regions.values():
            if target not in self.regions:
                problems.append(f"locale_regions points at unknown region {target!r}")
        for app in self.apps.values():
            for what in ("block", "privacy"):
                for device in app.devices:
                    if not isinstance(reference.get(f"{what}.{app.id}.{device}"), tuple):
                        problems.append(f"app {app.id}: no steps {what}.{device}")
            if not isinstance(reference.get(f"report.{app.id}"), tuple):
                problems.append(f"app {app.id}: no report steps")
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

    def resource(self, region_id: str, resource_id: str) -> Resource | None:
        region = self.regions.get(region_id)
        found = [r for r in region.resources if r.id == resource_id] if region else []
        return found[0] if found else None

    def category_said_in(self, text: str) -> str | None:
        """The report category a message already points at ("he wants $500" -> money)."""
        folded = _fold_words(text)
        for table in self.hints.values():
            for category, pattern in table:
                if pattern.search(folded):
                    return category
        return None

    def deadline_in(self, text: str) -> bool:
        """Does ``text`` mention a deadline ("by tonight", "en 2 horas"), in any language?"""
        return self.deadlines is not None and self.deadlines.search(_fold_words(text)) is not None

    def app_named_in(self, text: str) -> str | None:
        """The app a message names ("block her on tiktok"), by name or alias, if exactly one."""
        folded = " " + re.sub(r"[^\w]+", " ", text.casefold()) + " "
        found = {
            app.id
            for app in self.apps.values()
            for name in (app.name, *app.aliases)
            if f" {name.casefold()} " in folded
        }
        return found.pop() if len(found) == 1 else None

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
        contacts = entry.get("contacts", {})
        if not isinstance(contacts, dict) or not all(
            isinstance(v, str) and v.strip() for v in contacts.values()
        ):
            problems.append(f"resource {rid}/{res_id}: contacts must map locales to text")
            contacts = {}
        if contacts:
            # A contact in another language is a fact of its own: it needs its own source.
            _fact_fields(
                f"resource {rid}/{res_id} contacts",
                {
                    "source": entry.get("contacts_source", ""),
                    "checked": entry.get("contacts_checked", ""),
                    "confidence": "verified",
                },
                problems,
            )
        ages = tuple(str(a) for a in entry.get("ages", ()))
        if not set(ages) <= AGES:
            problems.append(f"resource {rid}/{res_id}: ages must be among {sorted(AGES)}")
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
                contacts={str(k): str(v) for k, v in contacts.items()},
                ages=ages,
            )
        )
    return Region(
        id=rid,
        label=str(raw.get("label", f"region.{rid}")),
        emergency=str(raw.get("emergency", "")),
        resources=tuple(items),
    )


def _fold_words(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _phrase(phrase: str) -> str:
    """A phrase as a whole word: "pay" is not in "paycheck"; "$" still matches "$500"."""
    before = r"(?<!\w)" if phrase[:1].isalnum() else ""
    after = r"(?!\w)" if phrase[-1:].isalnum() else ""
    return before + re.escape(phrase) + after


def _hints(
    node: Traversable, locale: str, problems: list[str]
) -> tuple[tuple[str, re.Pattern[str]], ...]:
    if not node.is_file():
        problems.append(f"{locale}: no hints.toml")
        return ()
    out: list[tuple[str, re.Pattern[str]]] = []
    for category, phrases in _load_toml(node).items():
        if category not in CATEGORIES or not isinstance(phrases, list) or not phrases:
            problems.append(f"{locale}/hints.toml: {category!r} is not a category with phrases")
            continue
        words = "|".join(_phrase(_fold_words(str(p))) for p in phrases)
        out.append((category, re.compile(words)))
    return tuple(out)


def _deadlines(
    root: Traversable | Path, locales: Sequence[str], problems: list[str]
) -> re.Pattern[str] | None:
    patterns: list[str] = []
    for locale in locales:
        node = root.joinpath(locale, "urgency.toml")
        if not node.is_file():
            problems.append(f"{locale}: no urgency.toml")
            continue
        found = _load_toml(node).get("deadlines")
        if not isinstance(found, list) or not found:
            problems.append(f"{locale}/urgency.toml: no deadlines")
            continue
        for pattern in found:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                problems.append(f"{locale}/urgency.toml: {pattern!r}: {exc}")
                continue
            patterns.append(str(pattern))
    return re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None


def _no_region(
    raw: Mapping[str, Any], problems: list[str]
) -> dict[str, tuple[tuple[str, str], ...]]:
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for locale, entries in raw.items():
        pairs: list[tuple[str, str]] = []
        for entry in entries if isinstance(entries, list) else ():
            region_id, _, res_id = str(entry).partition("/")
            if not res_id:
                problems.append(f"no_region {locale}: {entry!r} is not REGION/resource")
                continue
            pairs.append((region_id, res_id))
        out[str(locale)] = tuple(pairs)
    return out


def _app(pid: str, raw: Mapping[str, Any], problems: list[str]) -> App:
    source, checked, confidence = _fact_fields(f"app {pid}", raw, problems)
    return App(
        id=pid,
        name=str(raw.get("name", pid)),
        devices=tuple(raw.get("devices", ("desktop", "mobile"))),
        source=source,
        checked=checked,
        confidence=confidence,
        aliases=tuple(str(a) for a in raw.get("aliases", ())),
    )

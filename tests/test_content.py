"""Content and flow files: complete, consistent, sourced, and validated at load."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTENT_DIR

from safebot.content import Content, ContentError
from safebot.flows import Flow, parse_flow

REPO = CONTENT_DIR.parent


def copy_content(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


def test_bundled_content_is_valid(content: Content, flow: Flow) -> None:
    assert set(content.locales) >= {"en", "es"}
    missing = {i for i in flow.message_ids() if not content.has(i)}
    assert not missing


def test_every_region_required_by_the_product(content: Content) -> None:
    required = {"US", "UK", "CA", "AU", "NL", "DE", "FR", "ES", "BR", "IN", "INTL"}
    required |= {"MX", "AR", "CL", "CO", "PE"}  # the Latin American countries es serves
    assert required <= set(content.regions)
    for region in content.regions.values():
        assert region.of_kind("crisis"), region.id
        assert region.of_kind("report", "police"), region.id
        for res in region.resources:
            assert res.source.startswith("http") and res.checked and res.confidence


def test_takedown_tools_are_there(content: Content) -> None:
    names = {r.name for r in content.region("INTL").of_kind("takedown")}
    assert any("Take It Down" in n for n in names) and any("StopNCII" in n for n in names)


def test_every_platform_has_steps_in_every_locale(content: Content) -> None:
    assert {"discord", "element", "instagram", "snapchat", "tiktok", "whatsapp"} <= set(
        content.apps
    )
    for locale in content.locales:
        for platform in content.apps.values():
            for device in platform.devices:
                assert content.steps(locale, f"block.{platform.id}.{device}")
                assert content.steps(locale, f"privacy.{platform.id}.{device}")


def test_missing_translation_fails(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    path = root / "es" / "messages.toml"
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith('"choice.menu"')]
    path.write_text("\n".join(lines))
    with pytest.raises(ContentError, match=r"missing translation 'choice\.menu'"):
        Content.load(root)


def test_placeholder_mismatch_fails(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    path = root / "es" / "messages.toml"
    text = path.read_text().replace("{reference}", "{referencia}", 1)
    path.write_text(text)
    with pytest.raises(ContentError, match="placeholders differ"):
        Content.load(root)


def test_resource_without_source_fails(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    path = root / "resources.toml"
    text = path.read_text()
    start = text.index("source =")
    end = text.index("\n", start)
    path.write_text(text[:start] + text[end + 1 :])
    with pytest.raises(ContentError, match="no source"):
        Content.load(root)


def test_resource_without_description_fails(tmp_path: Path) -> None:
    root = copy_content(tmp_path)
    for locale in ("en", "es"):
        path = root / locale / "resources.toml"
        lines = [ln for ln in path.read_text().splitlines() if not ln.startswith('"res.')]
        path.write_text("\n".join(lines))
    with pytest.raises(ContentError, match=r"no text 'res\."):
        Content.load(root)


def flow_raw() -> dict[str, Any]:
    with (CONTENT_DIR / "flows.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_dangling_target_fails() -> None:
    raw = flow_raw()
    raw["choices"]["todo"]["go"] = "nowhere"
    with pytest.raises(ContentError, match="'nowhere' does not exist"):
        parse_flow(raw)


def test_dangling_choice_fails() -> None:
    raw = flow_raw()
    raw["nodes"]["menu"]["choices"].append("no-such-choice")
    with pytest.raises(ContentError, match="'no-such-choice' does not exist"):
        parse_flow(raw)


def test_submit_outside_the_consent_step_fails() -> None:
    raw = flow_raw()
    raw["nodes"]["report.identity"]["choices"].append("report.confirm")
    with pytest.raises(ContentError, match="only belongs on a review node"):
        parse_flow(raw)


def test_review_reachable_without_choosing_a_community_fails() -> None:
    raw = flow_raw()
    raw["choices"]["report.go"]["go"] = "report.category"
    with pytest.raises(ContentError, match="without choosing a community"):
        parse_flow(raw)


@pytest.mark.parametrize("node", ["fallback", "crisis"])
def test_a_node_the_engine_needs_cannot_be_deleted(node: str) -> None:
    raw = flow_raw()
    del raw["nodes"][node]
    # Choices and intents that pointed at it would also be reported; the missing node must be.
    with pytest.raises(ContentError, match=f"node {node!r} is required"):
        parse_flow(raw)


@pytest.mark.parametrize("intent", ["menu", "stop"])
def test_an_intent_the_engine_needs_cannot_be_deleted(intent: str) -> None:
    raw = flow_raw()
    del raw["intents"][intent]
    with pytest.raises(ContentError, match=f"intent {intent!r} is required"):
        parse_flow(raw)


def test_unreachable_node_fails() -> None:
    raw = flow_raw()
    raw["nodes"]["island"] = {"say": ["menu.prompt"], "choices": ["menu"]}
    with pytest.raises(ContentError, match="island: cannot be reached"):
        parse_flow(raw)


def test_choice_labels_fit_on_buttons(content: Content, flow: Flow) -> None:
    for locale in content.locales:
        for choice in flow.choices.values():
            assert len(content.text(locale, choice.label)) <= 80, (locale, choice.id)


def test_wheel_ships_the_content(tmp_path: Path) -> None:
    """``pip install .`` (not only editable) must carry content/ so `safebot console` runs."""
    # Built from a clean copy: a build/ directory left in the tree by an earlier build would
    # otherwise put files in the wheel that the package list leaves out.
    source = tmp_path / "src"
    skip = shutil.ignore_patterns("build", "*.egg-info", ".*", "__pycache__", "tests", "bench")
    shutil.copytree(REPO, source, ignore=skip)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("safebot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in CONTENT_DIR.rglob("*.toml"):
        assert f"safebot/data/{path.relative_to(CONTENT_DIR).as_posix()}" in names
    assert "safebot/adapters/console/__init__.py" in names and "safebot/py.typed" in names
    # Every module, so no subpackage is left out; adapters/ installs as safebot/adapters/.
    for folder, installed in (("safebot", "safebot"), ("adapters", "safebot/adapters")):
        for path in (REPO / folder).rglob("*.py"):
            assert f"{installed}/{path.relative_to(REPO / folder).as_posix()}" in names, path
    # Nothing but safebot lands at the top of site-packages, where it could meet another
    # distribution's "adapters" or "content".
    assert {name.split("/")[0] for name in names if ".dist-info/" not in name} == {"safebot"}


def test_forget_me_says_what_it_cannot_delete(content: Content) -> None:
    """Before someone confirms "forget me", they are told plainly what stays: the report text
    moderators already have (without the name) and a code that keeps limits and blocks."""
    for locale, words in {
        "en": ("can't delete", "without your name", "doesn't say who you are"),
        "es": ("no puedo borrar", "sin tu nombre", "no dice quién eres"),
    }.items():
        text = content.text(locale, "forget.explain")
        for phrase in words:
            assert phrase in text, (locale, phrase)


def test_spanish_crisis_screen_without_a_region_names_latin_american_lines(
    content: Content,
) -> None:
    regions = {region for region, _ in content.no_region["es"]}
    assert {"MX", "AR", "CO", "ES", "US"} <= regions
    for hint, region in {"es-AR": "AR", "es-CO": "CO", "es-CL": "CL", "es-PE": "PE"}.items():
        assert content.region_for_hint(hint) == region

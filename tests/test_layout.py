"""The layout holds: the core names no platform library, and adapter modules do not import in
a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "module",
    [
        "safebot.service",
        "safebot.cli",
        "safebot.conversation",
        "safebot.store.sqlite",
        "safebot.recognise",
    ],
)
def test_the_core_imports_no_platform_library(module: str) -> None:
    loaded = _modules_after_import(module)
    assert not {name for name in loaded if name.split(".")[0] in {"discord", "nio"}}


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (TYPE_CHECKING blocks included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_discord_items_do_not_import_the_adapter() -> None:
    # The buttons and forms call the adapter through a Protocol, not an import circle.
    assert "adapters.discord.adapter" in _imports(ROOT / "adapters/discord/__init__.py")
    assert "adapters.discord.adapter" not in _imports(ROOT / "adapters/discord/items.py")

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
    assert "safebot.adapters.discord.adapter" in _imports(ROOT / "adapters/discord/__init__.py")
    assert "safebot.adapters.discord.adapter" not in _imports(ROOT / "adapters/discord/items.py")


def _code_words(path: Path) -> set[str]:
    """Names, attributes and string constants in ``path``'s code, docstrings left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    words: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings:  # SQL comments are comments too
                lines = node.value.splitlines()
                words.add("\n".join(x for x in lines if not x.strip().startswith("--")))
        elif isinstance(node, ast.Name):
            words.add(node.id)
        elif isinstance(node, ast.Attribute):
            words.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module:
            words.add(node.module)
    return words


# safebot/adapters and safebot/data are links to adapters/ and content/ (how they install
# under safebot): not the core.
CORE = sorted(
    path
    for path in (ROOT / "safebot").rglob("*.py")
    if path.relative_to(ROOT / "safebot").parts[0] not in {"adapters", "data"}
)


@pytest.mark.parametrize("path", CORE, ids=str)
def test_the_core_names_no_platform(path: Path) -> None:
    """Each adapter brings its settings, secrets, options and runner through the registry
    (safebot/platforms.py); the core's code never names one (comments and docstrings may)."""
    named = {
        word
        for word in _code_words(path)
        if any(p in word.lower() for p in ("discord", "matrix", "console", "adapters"))
    }
    assert not named, f"{path.relative_to(ROOT)} names {sorted(named)}"


def test_every_platform_is_registered_and_cheap_to_list() -> None:
    """The registry finds the three platforms by entry point, and listing them (which every
    command does) loads no platform library."""
    code = (
        "import sys; from safebot.platforms import platforms; "
        "print(sorted(platforms())); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'discord', 'nio'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split("\n")[:2] == ["['console', 'discord', 'matrix']", "[]"]


def test_the_adapters_and_the_content_are_reached_by_one_name() -> None:
    """They install under safebot (no top-level "adapters" or "content" in site-packages),
    and safebot/adapters and safebot/data link to the folders, so a checkout imports them by
    the same names. Importing a module by a second name would load it twice."""
    assert (ROOT / "safebot/adapters").resolve() == (ROOT / "adapters").resolve()
    assert (ROOT / "safebot/data").resolve() == (ROOT / "content").resolve()
    sources = [
        *CORE,
        *(ROOT / "adapters").rglob("*.py"),
        *(ROOT / "tests").rglob("*.py"),
        *(ROOT / "bench").rglob("*.py"),
    ]
    wrong = {
        f"{path.relative_to(ROOT)}: {module}"
        for path in sources
        for module in _imports(path)
        if module.split(".")[0] in {"adapters", "content"}
    }
    assert not wrong, sorted(wrong)

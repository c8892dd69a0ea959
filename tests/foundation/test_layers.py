"""The layers of DESIGN.md, kept by walking every import of every module.

- ``devices/`` knows bytes and devices: it never imports ``edge`` or ``cloud_sync``.
- ``cloud_sync/`` knows the protocol: it never imports ``devices``.
- ``edge/`` knows the warehouse and never slices device bytes: it may use the
  device layer's events, driver registry and code decoding, never its framers,
  payload dialects or transports (nor ``struct``, the tool for slicing frames).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "devices": ("edge", "cloud_sync"),
    "cloud_sync": ("devices",),
    "edge": ("devices.framing", "devices.dialects", "devices.transport", "struct"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _violations(package: str) -> list[str]:
    bad: list[str] = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in _imports(path):
            for banned in FORBIDDEN[package]:
                if name == banned or name.startswith(banned + "."):
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports(package: str) -> None:
    assert (ROOT / package / "__init__.py").exists()
    assert _violations(package) == []


def test_the_walker_sees_violations(tmp_path: Path) -> None:
    # The check must be able to fail: a module with each kind of import.
    sample = tmp_path / "m.py"
    sample.write_text(
        "import edge.store\nfrom cloud_sync import uploader\n"
        "import importlib\nimportlib.import_module('devices.framing.lines')\n"
    )
    names = [n for _, n in _imports(sample)]
    assert "edge.store" in names
    assert "cloud_sync.uploader" in names
    assert "devices.framing.lines" in names

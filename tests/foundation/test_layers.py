"""The layers of DESIGN.md and docs/architecture.md, kept by walking every import.

Every import of every module counts — at the top, inside functions (the CLI's
lazy imports) and under ``TYPE_CHECKING`` — because each is an arrow a reader
has to follow. The rules, most specific first:

- ``common/`` (error root, back-off, crash points) imports nothing of the project.
- ``devices/`` knows bytes: never ``edge``, ``cloud_sync`` or ``simulators``.
- ``cloud_sync/`` is the protocol, run by clouds without any box code: never
  ``edge``, ``devices`` or ``simulators``.
- ``edge/routing`` is pure: only itself and ``common``.
- ``edge/store`` owns SQLite: never the rest of ``edge`` (nor devices).
- ``edge/picking`` is the workflow: never the HTTP layer, the CLI or the wiring.
- ``edge/ops`` (the overview and hourly figures) is shown by the HTTP layer
  and the CLI: it never imports them, nor the wiring.
- ``edge/`` never slices device bytes: it may use the device layer's events,
  driver registry and code decoding, never its framers, payload dialects or
  transports (nor ``struct``, the tool for slicing frames); only the CLI (demo,
  ``pickedge sim``) may start simulators.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Rule:
    """Modules under ``scope`` (but not under ``exempt``) may not import ``banned``,
    unless the import is under ``allowed``."""

    scope: str
    banned: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()


PROJECT = ("common", "devices", "edge", "cloud_sync", "simulators", "tests", "bench")
EDGE_LAYERS = (
    "edge.api",
    "edge.cli",
    "edge.wiring",
    "edge.daemon",
    "edge.device_supervisor",
    "edge.disk",
    "edge.maintenance",
    "edge.alerting",
    "edge.masterdata",
    "edge.metrics",
    "edge.ops",
    "edge.peak",
    "edge.picking",
    "edge.shipping",
    "edge.batching",
    "edge.config",
    "edge.logs",
    "edge.errors",
    "edge.systemd",
)

RULES: tuple[Rule, ...] = (
    Rule("common", PROJECT, allowed=("common",)),
    Rule("devices", ("edge", "cloud_sync", "simulators", "tests", "bench")),
    Rule("cloud_sync", ("edge", "devices", "simulators", "tests", "bench")),
    Rule("edge.routing", PROJECT, allowed=("edge.routing", "common")),
    Rule("edge.batching", PROJECT, allowed=("edge.batching", "edge.routing", "common")),
    Rule("edge.store", (*EDGE_LAYERS, "edge.routing", "devices", "simulators", "tests")),
    Rule(
        "edge.picking",
        ("edge.api", "edge.cli", "edge.wiring", "edge.shipping", "simulators", "tests"),
    ),
    Rule("edge.shipping", ("edge.api", "edge.cli", "edge.wiring", "simulators", "tests")),
    # the alert rules read the floor and write alerts; nothing but the wiring starts them
    Rule("edge.alerting", ("edge.api", "edge.cli", "edge.wiring", "simulators", "tests")),
    # what a site engineer watches: reads of the store, shown by the API and the CLI
    Rule("edge.ops", ("edge.api", "edge.cli", "edge.wiring", "simulators", "tests")),
    Rule(
        "edge",
        ("devices.framing", "devices.dialects", "devices.transport", "struct", "tests", "bench"),
    ),
    # only the CLI (the demo, ``pickedge sim``) starts simulators
    Rule("edge", ("simulators",), exempt=("edge.cli",)),
)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ""
    if path.is_relative_to(ROOT):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            found.append((node.lineno, module))
            found.extend((node.lineno, f"{module}.{a.name}") for a in node.names)
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


def _broken(module: str, imported: str, rule: Rule) -> bool:
    if not _under(module, rule.scope) or any(_under(module, e) for e in rule.exempt):
        return False
    if any(_under(imported, ok) for ok in rule.allowed):
        return False
    return any(_under(imported, banned) for banned in rule.banned)


def _violations(rule: Rule) -> list[str]:
    bad: list[str] = []
    for path in sorted((ROOT / Path(*rule.scope.split("."))).rglob("*.py")):
        module = _module_name(path)
        for line, name in _imports(path):
            if _broken(module, name, rule):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return bad


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{r.scope}-{'-'.join(r.banned[:2])}")
def test_layer_imports(rule: Rule) -> None:
    assert (ROOT / Path(*rule.scope.split(".")) / "__init__.py").exists()
    assert _violations(rule) == []


def test_every_edge_package_is_named_in_the_rules() -> None:
    # A new edge module or package must be placed in the picture on purpose.
    known = {*EDGE_LAYERS, "edge.routing", "edge.store", "edge.web", "edge.__main__"}
    found = {
        f"edge.{p.stem if p.is_file() else p.name}"
        for p in (ROOT / "edge").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and p.name != "__pycache__")
    }
    assert found - known == set(), "add the new module to EDGE_LAYERS and docs/architecture.md"


@pytest.mark.parametrize(
    ("module", "imported", "broken"),
    [
        ("cloud_sync.uploader", "edge.store.db", True),
        ("cloud_sync.uploader", "common.backoff", False),
        ("devices.drivers.rfid", "cloud_sync.events", True),
        ("edge.routing.blocks", "edge.store", True),
        ("edge.routing.blocks", "edge.routing.model", False),
        ("edge.routing.model", "common.errors", False),
        ("edge.store.db", "edge.picking.service", True),
        ("edge.store.db", "edge.store.errors", False),
        ("edge.store.db", "cloud_sync.events", False),
        ("edge.picking.service", "edge.api.app", True),
        ("edge.picking.service", "edge.store", False),
        ("edge.alerting.engine", "edge.api.app", True),
        ("edge.alerting.engine", "edge.picking.stats", False),
        ("edge.api.app", "devices.framing.lines", True),
        ("edge.api.app", "simulators.cloud", True),
        ("edge.cli.demo", "simulators.cloud", False),
        ("common.errors", "edge.errors", True),
    ],
)
def test_the_rules_judge_arrows(module: str, imported: str, broken: bool) -> None:
    assert any(_broken(module, imported, rule) for rule in RULES) is broken


def test_the_walker_sees_every_kind_of_import(tmp_path: Path) -> None:
    # The check must be able to fail: a module with each kind of import.
    sample = tmp_path / "m.py"
    sample.write_text(
        "import edge.store\nfrom cloud_sync import uploader\n"
        "import importlib\nimportlib.import_module('devices.framing.lines')\n"
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from edge.config import Config\n"
        "def lazy():\n    from simulators.cloud import CloudSimulator\n"
    )
    names = [n for _, n in _imports(sample)]
    for expected in (
        "edge.store",
        "cloud_sync.uploader",
        "devices.framing.lines",
        "edge.config.Config",
        "simulators.cloud.CloudSimulator",
    ):
        assert expected in names

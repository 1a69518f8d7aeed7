"""The layering rules (docs/design.md, "Import rules"), checked on the source.

- the collector (kiemke.collector) imports no agent module;
- the rule engine (kiemke.compliance) imports neither the collector nor the agent;
- the agent (kiemke.agent) imports neither the collector nor the rule engine;
- the report schema and shared identifiers (kiemke.schema) import none of them.
Every import counts, at module level or inside a function, absolute or relative.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KIEMKE = Path(__file__).resolve().parents[1] / "kiemke"

RULES = {
    "kiemke.collector": ("kiemke.agent",),
    "kiemke.compliance": ("kiemke.collector", "kiemke.agent"),
    "kiemke.agent": ("kiemke.collector", "kiemke.compliance"),
    "kiemke.schema": ("kiemke.collector", "kiemke.compliance", "kiemke.agent"),
}


def module_name(path: Path, root: Path = KIEMKE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from kiemke import agent` imports kiemke.agent
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def violations(root: Path = KIEMKE) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        for layer, forbidden in RULES.items():
            if module != layer and not module.startswith(layer + "."):
                continue
            source = path.read_text("utf-8")
            for line, target in imported_modules(source, module, path.name == "__init__.py"):
                for bad in forbidden:
                    if target == bad or target.startswith(bad + "."):
                        out.append(f"{path.relative_to(root.parent)}:{line}: {module} "
                                   f"imports {target} ({layer} must not import {bad})")
                        break
    return out


def test_layers_import_only_what_they_may() -> None:
    found = violations()
    assert not found, "import rules broken (docs/design.md):\n" + "\n".join(found)


def test_every_layer_exists() -> None:
    for layer in RULES:
        assert (KIEMKE / layer.split(".")[1] / "__init__.py").is_file(), layer


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("import kiemke.agent.report\n", "kiemke.collector.x", "kiemke.agent.report"),
    ("from kiemke.agent.collectors.identity import normalize_serial\n",
     "kiemke.collector.assets.identifiers", "kiemke.agent.collectors.identity"),
    ("def f():\n    from kiemke.collector import app\n", "kiemke.compliance.rules",
     "kiemke.collector.app"),
    ("from ..agent import report\n", "kiemke.compliance.facts", "kiemke.agent"),
    ("from . import expr\n", "kiemke.compliance.rules", "kiemke.compliance.expr"),
])
def test_checker_sees_every_form_of_import(source: str, module: str, expected: str) -> None:
    targets = [t for _, t in imported_modules(source, module, is_package=False)]
    assert expected in targets


def test_checker_reports_a_violation(tmp_path: Path) -> None:
    root = tmp_path / "kiemke"
    (root / "compliance").mkdir(parents=True)
    (root / "compliance" / "__init__.py").write_text("")
    (root / "compliance" / "bad.py").write_text(
        "def late():\n    from kiemke.collector.db import tables\n    return tables\n")
    found = violations(root)
    assert found and all(f.startswith("kiemke/compliance/bad.py:2: kiemke.compliance.bad "
                                      "imports kiemke.collector.db") for f in found), found

"""openelb.kube cannot tell the embedded apiserver from a real one: it imports no lab code, and
no logic package (ipam, speaker ownership) imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import openelb.kube

PACKAGE = Path(openelb.kube.__file__).parent
ALLOWED = ("openelb.kube", "openelb.metrics", "openelb.config")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "openelb":
                names.update(f"openelb.{alias.name}" for alias in node.names)
    return names


def test_kube_imports_no_lab_and_no_other_openelb_layer() -> None:
    offenders = {}
    for path in sorted(PACKAGE.glob("*.py")):
        bad = {
            name
            for name in _imports(path)
            if name.startswith("openelb.")
            and not any(name == a or name.startswith(a + ".") for a in ALLOWED)
        }
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_ipam_does_not_import_kube() -> None:
    ipam = PACKAGE.parent / "ipam"
    users = [
        p.name for p in ipam.glob("*.py") if any(n.startswith("openelb.kube") for n in _imports(p))
    ]
    assert users == []

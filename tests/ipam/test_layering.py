"""IPAM is pure logic: it imports only the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import openelb.ipam

PACKAGE = Path(openelb.ipam.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_ipam_imports_nothing_but_the_standard_library_and_itself() -> None:
    offenders = {}
    for path in sorted(PACKAGE.glob("*.py")):
        foreign = {
            name
            for name in _imports(path)
            if not name.startswith("openelb.ipam")
            and name.split(".")[0] not in sys.stdlib_module_names
        }
        if foreign:
            offenders[path.name] = sorted(foreign)
    assert offenders == {}

"""Public exports, module metadata and layering."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import etcdanyio

pytestmark = pytest.mark.unit

PACKAGE = Path(etcdanyio.__file__).parent


def test_every_error_is_exported_with_a_clean_module() -> None:
    from etcdanyio import errors

    for name in errors.__all__:
        obj = getattr(etcdanyio, name)
        assert obj is getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert obj.__module__ == "etcdanyio"
    assert set(etcdanyio.__all__) >= set(errors.__all__)


def test_import_pulls_in_no_grpc_stack() -> None:
    code = (
        "import sys, etcdanyio\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('grpc', 'grpclib', 'google', 'h2', 'hyperframe', 'trio')]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == ""


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:
                found.add("." + module)
            elif node.level == 2:
                found.add(".." + module)
            else:
                found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_grpc_layer_knows_nothing_above_it() -> None:
    for path in (PACKAGE / "_grpc").glob("*.py"):
        for module in _imports(path):
            assert not module.startswith(".."), f"{path.name} imports {module}"
            assert not module.startswith("etcdanyio"), f"{path.name} imports {module}"
            assert not module.startswith(("grpclib", "grpc", "h2")), f"{path.name} imports {module}"


def test_testing_module_is_independent_of_the_client() -> None:
    imported = _imports(PACKAGE / "testing.py")
    assert not any(m.startswith((".", "etcdanyio")) for m in imported)

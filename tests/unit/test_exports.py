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
    assert _imports(PACKAGE / "testing.py") <= {
        "._testing_cluster",
        "._testing_process",
        "._public",
    }
    for path in PACKAGE.glob("_testing_*.py"):
        imported = _imports(path) - {"._testing_process"}
        assert not any(m.startswith((".", "etcdanyio")) for m in imported), path.name


def test_lazy_api_exports_exactly_all() -> None:
    from etcdanyio import _api

    # (pytest adds "@py_builtins" to the modules of a plugin's distribution: it rewrites them)
    exported = {name for name in vars(_api) if not name.startswith(("_", "@"))}
    assert exported == set(etcdanyio.__all__)
    assert sorted(etcdanyio.__all__) == etcdanyio.__all__


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=PACKAGE.parent,
    ).stdout
    return set(out.split())


def test_import_loads_the_api_only_when_used() -> None:
    bare = _modules_after("import etcdanyio, etcdanyio.testing")
    assert "etcdanyio.client" not in bare
    assert "asyncio" not in bare
    used = _modules_after("import etcdanyio\netcdanyio.open_etcd")
    assert "etcdanyio.client" in used
    # The generated messages wait for the first call that needs them.
    assert not {"betterproto2", "etcdanyio._pb.etcdserverpb", "importlib.metadata"} & used


def test_names_read_before_the_api_loads_are_the_public_objects() -> None:
    code = (
        "from etcdanyio.errors import CompactedError\n"
        "import etcdanyio\n"
        "assert etcdanyio.CompactedError is CompactedError\n"
        "assert CompactedError.__module__ == 'etcdanyio'\n"
        "assert etcdanyio.txn.put is __import__('etcdanyio.txn').txn.put\n"
        "assert 'open_etcd' in dir(etcdanyio)\n"
        "try:\n    etcdanyio.no_such_name\nexcept AttributeError: pass\nelse: raise SystemExit(1)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=PACKAGE.parent)


def test_every_module_can_be_imported_first() -> None:
    # The API loads lazily: a module imported directly must not meet a half-imported one.
    # (_grpc imports nothing above itself, so it cannot meet the lazy loader: left out.)
    # (_otel needs the optional opentelemetry-api: the `otel` extra.)
    modules = [
        f"etcdanyio.{p.stem}"
        for p in sorted(PACKAGE.glob("*.py"))
        if p.stem not in ("__init__", "_otel")
    ]
    for package in ("recipes", "sync"):
        modules += [
            f"etcdanyio.{package}.{p.stem}" for p in sorted((PACKAGE / package).glob("*.py"))
        ]
    script = (
        "import subprocess, sys\n"
        "for name in sys.argv[1:]:\n"
        "    code = f'import {name}; import etcdanyio; etcdanyio.open_etcd'\n"
        "    subprocess.run([sys.executable, '-c', code], check=True)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, *modules], check=True, timeout=300, cwd=PACKAGE.parent
    )

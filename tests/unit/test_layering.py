"""
Imports point down the layers of docs/architecture.md, ``TYPE_CHECKING`` imports included
(grimp reads them from the source like any other).

The rules that hold today are enforced here; the layering issue (#14) tightens them further
(the services on a core object instead of mixins that name ``Client`` for typing).
"""

from __future__ import annotations

import functools

import grimp
import pytest

pytestmark = pytest.mark.unit


@functools.cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("etcdanyio", include_external_packages=False)


def imports_of(prefix: str) -> dict[str, set[str]]:
    """Each module under ``prefix`` and the modules of ours it imports directly."""
    g = graph()
    return {
        module: set(g.find_modules_directly_imported_by(module))
        for module in g.modules
        if module == prefix or module.startswith(prefix + ".")
    }


def outside(prefix: str, allowed: frozenset[str] | set[str] = frozenset()) -> dict[str, set[str]]:
    """What modules under ``prefix`` import from outside it (and ``allowed``)."""
    found = {}
    for module, targets in imports_of(prefix).items():
        stray = {
            t
            for t in targets
            if not (t == prefix or t.startswith(prefix + ".")) and t not in allowed
        }
        if stray:
            found[module] = stray
    return found


def test_the_grpc_layer_imports_nothing_above_it() -> None:
    assert outside("etcdanyio._grpc") == {}


def test_generated_messages_import_nothing_else() -> None:
    assert outside("etcdanyio._pb") == {}


def test_errors_sit_on_the_grpc_layer_only() -> None:
    assert outside("etcdanyio.errors", {"etcdanyio._grpc"}) == {}


def test_leaf_modules_import_nothing_of_ours() -> None:
    for leaf in ("etcdanyio._keys", "etcdanyio._telemetry"):
        assert outside(leaf) == {}, leaf
    # the result types also read betterproto messages (from_pb, for the calls the codec does
    # not cover), and AlarmType shares the enum base of every public enum with Status (a leaf
    # of _grpc); etcdanyio.types only re-exports them
    allowed = {"etcdanyio._pb.mvccpb", "etcdanyio._pb.etcdserverpb", "etcdanyio._grpc._status"}
    assert outside("etcdanyio._types", allowed) == {}
    assert outside("etcdanyio.types", {"etcdanyio._types"}) == {}
    assert outside("etcdanyio._grpc._status") == {}


def test_the_async_client_never_imports_what_is_built_on_it() -> None:
    above = ("etcdanyio.sync", "etcdanyio._sync", "etcdanyio.recipes", "etcdanyio.testing")
    g = graph()
    for module in g.modules:
        if module.startswith(above) or module in ("etcdanyio", "etcdanyio._pytest_plugin"):
            continue
        stray = {t for t in g.find_modules_directly_imported_by(module) if t.startswith(above)}
        assert not stray, f"{module} imports {stray}"


def test_recipes_use_the_public_client() -> None:
    # The recipes are built like Go's concurrency/ on clientv3: the public API, plus the
    # shared argument checks.
    public = {
        "etcdanyio",
        "etcdanyio.client",
        "etcdanyio.lease",
        "etcdanyio.lock",
        "etcdanyio.election",
        "etcdanyio.txn",
        "etcdanyio.types",
        "etcdanyio.watch",
        "etcdanyio.errors",
        "etcdanyio._requests",
    }
    assert outside("etcdanyio.recipes", public) == {}


def test_opentelemetry_is_imported_only_by_its_observer() -> None:
    g = grimp.build_graph("etcdanyio", include_external_packages=True)
    importers = {
        m for m in g.find_modules_that_directly_import("opentelemetry") if m.startswith("etcdanyio")
    }
    assert importers <= {"etcdanyio._otel"}

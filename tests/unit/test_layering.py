"""
Imports point down the layers of docs/architecture.md, ``TYPE_CHECKING`` imports included
(grimp reads them from the source like any other).

Every module of the package is placed in one layer below (a new module fails the test until it
is placed). A module imports only from its own layer and the layers below, with one named
exception: the modules built on the public client name the ``Client`` class for typing, which
the client's factory methods (``client.lock()``, ``client.lease()``, ...) construct.
"""

from __future__ import annotations

import fnmatch
import functools

import grimp
import pytest

pytestmark = pytest.mark.unit

#: lowest first; a pattern matches dotted module names below ``etcdanyio``
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("transport", ("_pb", "_pb.*", "_grpc", "_grpc.*")),
    ("leaves", ("_keys", "_telemetry", "_public", "_lazy", "_errors", "_tls")),
    (
        "data, codec and rules",
        (
            "_error_table",
            "errors",
            "types",
            "_types",
            "_events",
            "_requests",
            "txn",
            "_txn",
            "_codec*",
            "_speedups",
            "_dns",
        ),
    ),
    (
        "machinery",
        (
            "_streams",
            "_watch_stream",
            "_watch_dispatch",
            "_keepalive",
            "_reconnect",
            "_cleanup",
            "_discovery",
        ),
    ),
    ("core", ("_service", "_core")),
    (
        "services and scopes",
        (
            "_kv",
            "_watch",
            "watch",
            "_lease_rpc",
            "_lease",
            "lease",
            "_cluster",
            "_maintenance",
            "_auth",
            "_http",
            "_election_rpc",
            "_election",
            "election",
            "_lock",
            "lock",
            "_concurrency",
            "_mirror",
            "_pager",
        ),
    ),
    ("client", ("_client", "client", "_api", "", "telemetry", "_otel")),
    (
        "built on the client",
        (
            "recipes",
            "recipes.*",
            "testing",
            "_testing*",
            "_pytest_plugin",
            "sync",
            "sync.*",
            "_sync*",
        ),
    ),
]

#: modules that are built on the public client and name ``Client`` for typing only
CLIENT_USERS = {
    "etcdanyio._cleanup",
    "etcdanyio._core",
    "etcdanyio._concurrency",
    "etcdanyio._lease",
    "etcdanyio._lease_rpc",
    "etcdanyio._lock",
    "etcdanyio._election",
    "etcdanyio._mirror",
}


@functools.cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("etcdanyio", include_external_packages=False)


def layer_of(module: str) -> int:
    name = module.removeprefix("etcdanyio").removeprefix(".")
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return index
    raise AssertionError(f"{module} is in no layer: place it in LAYERS (and the architecture map)")


def test_every_module_has_a_layer() -> None:
    for module in graph().modules:
        layer_of(module)


def test_imports_point_down() -> None:
    g = graph()
    upward = []
    for module in sorted(g.modules):
        mine = layer_of(module)
        for target in g.find_modules_directly_imported_by(module):
            if layer_of(target) <= mine:
                continue
            if target == "etcdanyio._client" and module in CLIENT_USERS:
                continue
            upward.append(
                f"{module} ({LAYERS[mine][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
            )
    assert upward == []


def direct(module: str) -> set[str]:
    return set(graph().find_modules_directly_imported_by(module))


def test_the_grpc_layer_and_generated_code_import_only_themselves() -> None:
    for package in ("etcdanyio._grpc", "etcdanyio._pb"):
        for module in graph().modules:
            if module == package or module.startswith(package + "."):
                stray = {t for t in direct(module) if not t.startswith(package)}
                assert stray == set(), module


def test_only_the_client_creates_the_core() -> None:
    importers = set(graph().find_modules_that_directly_import("etcdanyio._core"))
    assert importers <= {"etcdanyio._client"}


def test_services_see_the_core_only_through_its_protocol() -> None:
    services = LAYERS[5][1]
    for module in graph().modules:
        name = module.removeprefix("etcdanyio.")
        if name in services:
            assert "etcdanyio._core" not in direct(module), module


def test_errors_sit_on_the_grpc_layer_only() -> None:
    allowed = {"etcdanyio._errors", "etcdanyio._public", "etcdanyio._grpc"}
    for module in ("etcdanyio.errors", "etcdanyio._errors", "etcdanyio._error_table"):
        stray = {
            t for t in direct(module) if t not in allowed and not t.startswith("etcdanyio._grpc")
        }
        assert stray == set(), module


def test_recipes_use_the_public_client_and_the_named_machinery() -> None:
    # Like Go's concurrency/ on clientv3: the public API, plus the shared waits and clean-ups
    # (_concurrency) and the shared argument checks.
    allowed = {
        "etcdanyio._concurrency",
        "etcdanyio._keys",
        "etcdanyio._requests",
        "etcdanyio._public",
    }
    for module in graph().modules:
        if not module.startswith("etcdanyio.recipes"):
            continue
        for target in direct(module):
            if target.startswith("etcdanyio.recipes") or target in allowed:
                continue
            private = any(part.startswith("_") for part in target.split(".")[1:])
            assert not private or target == "etcdanyio._client", f"{module} imports {target}"


def test_the_async_client_never_imports_what_is_built_on_it() -> None:
    above = len(LAYERS) - 1
    for module in graph().modules:
        if layer_of(module) == above:
            continue
        stray = {t for t in direct(module) if layer_of(t) == above}
        assert not stray, f"{module} imports {stray}"


def test_opentelemetry_is_imported_only_by_its_observer() -> None:
    g = grimp.build_graph("etcdanyio", include_external_packages=True)
    importers = {
        m for m in g.find_modules_that_directly_import("opentelemetry") if m.startswith("etcdanyio")
    }
    assert importers <= {"etcdanyio._otel"}

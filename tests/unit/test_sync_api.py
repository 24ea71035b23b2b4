"""
The blocking API (``etcdanyio.sync``) mirrors the async one: every public coroutine method and
scope of the async classes has its sync counterpart with the same parameters, and the generated
wrappers are up to date with the async API.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import etcdanyio
import etcdanyio.sync
import etcdanyio.sync.recipes
from etcdanyio import election, lease, lock, recipes, watch

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

#: async class -> its sync counterpart
PAIRS = [
    (etcdanyio.Client, etcdanyio.sync.Client),
    (lease.Lease, etcdanyio.sync.Lease),
    (lock.Lock, etcdanyio.sync.Lock),
    (election.Election, etcdanyio.sync.Election),
    (election.Leadership, etcdanyio.sync.Leadership),
    (watch.Watch, etcdanyio.sync.Watch),
    (recipes.Barrier, etcdanyio.sync.recipes.Barrier),
    (recipes.DoubleBarrier, etcdanyio.sync.recipes.DoubleBarrier),
    (recipes.DoubleBarrierEntry, etcdanyio.sync.recipes.DoubleBarrierEntry),
    (recipes.Queue, etcdanyio.sync.recipes.Queue),
    (recipes.PriorityQueue, etcdanyio.sync.recipes.PriorityQueue),
    (recipes.RWLock, etcdanyio.sync.recipes.RWLock),
    (recipes.RWLockHold, etcdanyio.sync.recipes.RWLockHold),
    (recipes.MatchingWatch, etcdanyio.sync.recipes.MatchingWatch),
]

#: async members that have no meaning without an event loop (cancel scopes, the loop's clock),
#: and scopes not in the blocking API yet (see docs/sync.md)
ASYNC_ONLY = {
    "Lease": {"add_dependent", "remove_dependent", "deadline"},
    "Client": {"election_observe"},
    # a sync leadership holds no sync Lease: its lease ID is leader_key.lease
    "Leadership": {"lease"},
}


def _public(cls: type) -> dict[str, object]:
    return {
        name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_")
    }


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_every_public_async_member_has_a_sync_counterpart(async_cls: type, sync_cls: type) -> None:
    sync_members = _public(sync_cls)
    expected = set(_public(async_cls)) - ASYNC_ONLY.get(async_cls.__name__, set())
    missing = sorted(expected - set(sync_members))
    assert not missing, f"etcdanyio.sync.{sync_cls.__name__} lacks {missing}"


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_sync_methods_take_the_async_parameters(async_cls: type, sync_cls: type) -> None:
    for name, member in _public(async_cls).items():
        if name in ASYNC_ONLY.get(async_cls.__name__, set()):
            continue
        if not callable(member) or isinstance(member, (property, type)):
            continue
        async_params = inspect.signature(getattr(async_cls, name)).parameters
        sync_params = inspect.signature(getattr(sync_cls, name)).parameters
        for param in async_params.values():
            assert param.name in sync_params, f"{sync_cls.__name__}.{name} lacks {param.name}"
            mirrored = sync_params[param.name]
            assert mirrored.kind == param.kind, (name, param.name)
            assert mirrored.default == param.default, (name, param.name)
        if inspect.iscoroutinefunction(member) and "timeout" not in async_params:
            assert "timeout" in sync_params, f"{sync_cls.__name__}.{name} lacks timeout="


def test_every_recipe_has_a_sync_counterpart_but_stm() -> None:
    missing = set(recipes.__all__) - set(etcdanyio.sync.recipes.__all__)
    assert missing == {"STM", "STMConflictError", "Isolation", "KeyPattern", "stm"}


def test_scopes_are_context_managers() -> None:
    for cls in (etcdanyio.sync.Lease, etcdanyio.sync.Lock, etcdanyio.sync.Watch):
        assert hasattr(cls, "__enter__")
        assert hasattr(cls, "__exit__")
    assert hasattr(etcdanyio.sync.Campaign, "__enter__")
    assert hasattr(etcdanyio.sync.Observation, "__iter__")


def test_client_takes_the_parameters_of_open_etcd() -> None:
    async_params = inspect.signature(etcdanyio.open_etcd).parameters
    for function in (etcdanyio.sync.Client, etcdanyio.sync.open_etcd):
        sync_params = inspect.signature(function).parameters
        assert set(sync_params) == {*async_params, "backend"}
        for name, param in async_params.items():
            assert sync_params[name].default == param.default, name


def test_generated_wrappers_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_sync.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bad_backend_is_refused_before_any_thread() -> None:
    with pytest.raises(ValueError, match="backend"):
        etcdanyio.sync.Client("http://127.0.0.1:1", backend="curio")


def test_bad_argument_raises_from_the_constructor() -> None:
    with pytest.raises(ValueError, match="timeout"):
        etcdanyio.sync.Client("http://127.0.0.1:1", timeout=-1)

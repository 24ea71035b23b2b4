"""
Every public exception class survives ``pickle`` and ``copy.copy``: its message, ``.status``,
the three states of ``.applied`` and the fields of its class come back, so an error can cross a
process boundary (``ProcessPoolExecutor``, multiprocessing queues) as itself.
"""

from __future__ import annotations

import concurrent.futures
import copy
import inspect
import multiprocessing
import pickle
from typing import Any

import pytest

import etcdanyio
import etcdanyio.recipes
import etcdanyio.testing
from etcdanyio import (
    CompactedError,
    ConnectionFailedError,
    EtcdError,
    LeaseExpiredError,
    NoLeaderError,
    NotLeaderError,
    RpcError,
    SnapshotError,
    Status,
    WatchCompactedError,
)
from etcdanyio.recipes import BarrierFullError, STMConflictError

pytestmark = pytest.mark.unit


def _public_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module in (etcdanyio, etcdanyio.recipes, etcdanyio.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                found[f"{module.__name__}.{name}"] = obj
    return list(found.values())


PUBLIC_EXCEPTIONS = _public_exceptions()


def _make(cls: type[BaseException]) -> BaseException:
    """An instance of ``cls`` with every field set to something recognisable."""
    if issubclass(cls, CompactedError):
        return cls(Status.OUT_OF_RANGE, "etcdserver: compacted", applied=False, compact_revision=7)
    if issubclass(cls, RpcError):
        return cls(Status.FAILED_PRECONDITION, f"etcdserver: {cls.__name__}", applied=False)
    if issubclass(cls, WatchCompactedError):
        return cls(42, "compacted at 42")
    if issubclass(cls, LeaseExpiredError):
        return cls(0x1F, "lease 1f lost")
    if issubclass(cls, ConnectionFailedError):
        return cls("no endpoint", applied=None, causes=[ConnectionRefusedError(111, "refused")])
    if issubclass(cls, SnapshotError):
        return cls("truncated snapshot")
    if issubclass(cls, NotLeaderError):
        return cls("not the leader any more")
    if issubclass(cls, BarrierFullError):
        return cls(b"party", 3)
    if issubclass(cls, STMConflictError):
        return cls(5)
    if issubclass(cls, EtcdError):
        return cls("boom", applied=None)
    return cls("boom")


def _state(error: BaseException) -> tuple[Any, ...]:
    fields = dict(vars(error))
    causes = fields.pop("causes", None)
    return (
        type(error),
        error.args,
        str(error),
        fields,
        None if causes is None else [(type(c), c.args) for c in causes],
    )


def test_every_public_exception_is_covered() -> None:
    names = {cls.__name__ for cls in PUBLIC_EXCEPTIONS}
    # the families and a few of each, so that a broken discovery fails here
    assert {"EtcdError", "RpcError", "AuthError", "MemberError", "LeaseError"} <= names
    assert {"LockLostError", "LeadershipLostError", "NotLeaderError", "EtcdProcessError"} <= names
    assert len(PUBLIC_EXCEPTIONS) > 60


@pytest.mark.parametrize("cls", PUBLIC_EXCEPTIONS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("how", ["pickle", "copy"])
def test_round_trip(cls: type[BaseException], how: str) -> None:
    error = _make(cls)
    states = [False, None, True] if isinstance(error, EtcdError) else [None]
    for applied in states:
        if isinstance(error, EtcdError):
            error.applied = applied
        twin = pickle.loads(pickle.dumps(error)) if how == "pickle" else copy.copy(error)
        assert twin is not error
        assert _state(twin) == _state(error)
        if isinstance(error, EtcdError):
            assert isinstance(twin, EtcdError)
            assert twin.message == error.message
            assert twin.applied is applied
        if isinstance(error, RpcError):
            assert isinstance(twin, RpcError)
            assert twin.status is error.status
            assert repr(twin) == repr(error)


def test_fields_survive() -> None:
    watch = pickle.loads(pickle.dumps(WatchCompactedError(42)))
    assert (watch.compact_revision, watch.message, watch.applied) == (
        42,
        "watch revision compacted away (compact revision 42)",
        False,
    )
    compacted = pickle.loads(
        pickle.dumps(CompactedError(Status.OUT_OF_RANGE, "m", compact_revision=9))
    )
    assert compacted.compact_revision == 9
    lease = copy.copy(LeaseExpiredError(0xAB))
    assert lease.lease_id == 0xAB
    assert lease.applied is None
    failed = pickle.loads(pickle.dumps(ConnectionFailedError("x", causes=[OSError(5, "io")])))
    assert failed.applied is False
    assert [(type(c), c.errno) for c in failed.causes] == [(OSError, 5)]


def _raise_no_leader() -> None:
    raise NoLeaderError(Status.UNAVAILABLE, "etcdserver: no leader", applied=None)


@pytest.mark.timeout(60)
def test_no_leader_error_crosses_a_process_pool() -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        future = pool.submit(_raise_no_leader)
        with pytest.raises(NoLeaderError) as caught:
            future.result(timeout=50)
    assert caught.value.status is Status.UNAVAILABLE
    assert caught.value.message == "etcdserver: no leader"
    assert caught.value.applied is None

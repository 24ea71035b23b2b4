"""
``mypy --strict`` (run over ``tests/`` in CI) sees the sync API's results with the async API's
types: the ``assert_type`` calls below are checked statically; at run time they only check
that each expression is well-formed against a client that is never connected.
"""

from __future__ import annotations

import sys

import pytest

import etcdanyio
import etcdanyio.sync

if sys.version_info >= (3, 11):
    from typing import assert_type
else:
    from typing_extensions import assert_type

pytestmark = pytest.mark.unit


def _typed_uses(client: etcdanyio.sync.Client) -> None:
    """Never called: mypy checks the types it states."""
    assert_type(client.get("k"), "etcdanyio.KeyValue | None")
    assert_type(client.put("k", "v", timeout=1.0), etcdanyio.PutResult)
    assert_type(client.get_prefix("p"), etcdanyio.RangeResult)
    assert_type(client.txn(), etcdanyio.TxnResult)
    assert_type(client.delete("k"), etcdanyio.DeleteResult)
    assert_type(client.lease_grant(10), etcdanyio.LeaseGrantResult)
    assert_type(client.members(), "list[etcdanyio.Member]")
    assert_type(client.watch_once("k", timeout=1), etcdanyio.Event)
    with client.watch("k") as events:
        assert_type(events, etcdanyio.sync.Watch)
        assert_type(events.get(timeout=1.0), "etcdanyio.Event | None")
        for event in events:
            assert_type(event, etcdanyio.Event)
    with client.lease(10) as lease:
        assert_type(lease, etcdanyio.sync.Lease)
        assert_type(lease.remaining_ttl(), int)
        assert_type(lease.lost, "BaseException | None")
        assert_type(client.lock_acquire("n", lease=lease), bytes)
    with client.lock("n", ttl=10, timeout=5) as lock:
        assert_type(lock, etcdanyio.sync.Lock)
        assert_type(lock.is_acquired(), bool)
        assert_type(lock.is_owner(), etcdanyio.txn.Compare)
    with client.election("e").campaign(b"me") as leadership:
        assert_type(leadership, etcdanyio.sync.Leadership)
        assert_type(leadership.proclaim(b"v"), None)
    assert_type(client.election("e").leader(), "etcdanyio.KeyValue | None")
    assert_type(next(client.iter_prefix("p")), etcdanyio.KeyValue)
    assert_type(client.add_watch_callback("k", print), int)


def test_the_typed_uses_are_well_formed() -> None:
    assert callable(_typed_uses)

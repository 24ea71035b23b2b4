"""
etcd's v3election service called directly (``client.election_*``): namespaces, and
cancellation at random points of a waiting ``Campaign`` and of an ``Observe`` stream, which must
leave no task, socket or candidate behind and keep the leader and the connection intact.
"""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

import etcdanyio
from etcdanyio import EventType, LeaderKey

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from etcdanyio.testing import EtcdServer

pytestmark = pytest.mark.integration

#: cancellation points tried per backend
ITERATIONS = 25


@pytest.fixture
def name() -> str:
    return f"test_election_rpc/{uuid.uuid4().hex}"


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


async def test_namespaced_leader_keys(etcd_server: EtcdServer, name: str) -> None:
    with anyio.fail_after(10):
        async with (
            etcdanyio.open_etcd(etcd_server.endpoints, namespace=name + "/ns/") as scoped,
            etcdanyio.open_etcd(etcd_server.endpoints) as plain,
            scoped.lease(10) as lease,
        ):
            leader = await scoped.election_campaign("e", "v", lease=lease)
            assert leader == LeaderKey(b"e", b"e/%x" % lease.id, leader.revision, lease.id)
            seen = await plain.election_leader(name + "/ns/e")
            assert seen is not None
            assert seen.key == (name + "/ns/").encode() + leader.key
            ours = await scoped.election_leader("e")
            assert ours is not None
            assert ours.key == leader.key
            async with scoped.election_observe("e") as observed:
                assert (await anext(observed)).key == leader.key
            await scoped.election_proclaim(leader, "w")
            assert (await scoped.get(f"e/{lease.id:x}")) is not None
            await scoped.election_resign(leader)
            assert await plain.election_leader(name + "/ns/e") is None


async def test_bad_arguments_are_refused_before_sending(client: etcdanyio.Client) -> None:
    with pytest.raises(ValueError, match="empty"):
        await client.election_campaign("", "v", lease=1)
    with pytest.raises(TypeError, match="value"):
        await client.election_campaign("e", 3, lease=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="revision"):
        await client.election_resign(LeaderKey(b"e", b"e/1", 0, 1))
    with pytest.raises(ValueError, match="lease"):
        await client.election_proclaim(LeaderKey(b"e", b"e/1", 5, 0), "v")
    with pytest.raises(ValueError, match="empty"):
        await client.election_leader(b"")


async def test_cancelled_campaigns_and_observers_leave_nothing(
    client: etcdanyio.Client, name: str
) -> None:
    rng = random.Random()
    with anyio.fail_after(60):
        async with client.lease(30) as holder_lease:
            holder = await client.election_campaign(name, "holder", lease=holder_lease)
            for _ in range(ITERATIONS):
                delay = rng.uniform(0, 0.03)
                async with client.lease(30) as lease:
                    with anyio.move_on_after(delay):
                        await client.election_campaign(name, "waiter", lease=lease)
                        pytest.fail("won while another leads")  # pragma: no cover
                    with anyio.move_on_after(rng.uniform(0, 0.03)):
                        async with client.election_observe(name) as observed:
                            kv = await anext(observed)
                            assert kv.value == b"holder"
                            await anext(observed)  # nothing changes: cancelled here
                            pytest.fail("a change nobody made")  # pragma: no cover
                # The candidate's lease is gone, and with it any key it queued.
                keys = [kv.key for kv in await client.get_prefix(name + "/")]
                assert keys == [holder.key]
                current = await client.election_leader(name)
                assert current is not None
                assert (current.key, current.value) == (holder.key, b"holder")
            # A candidate cancelled while it waits is withdrawn by etcd at once.
            async with (
                client.lease(30) as lease,
                client.watch(name + "/", prefix=True) as events,
            ):
                async with anyio.create_task_group() as tg:

                    async def candidate() -> None:
                        await client.election_campaign(name, "late", lease=lease)

                    tg.start_soon(candidate)
                    queued = await anext(events)
                    assert (queued.type, queued.kv.lease) == (EventType.PUT, lease.id)
                    tg.cancel_scope.cancel()
                withdrawn = await anext(events)  # while its lease still lives
                assert (withdrawn.type, withdrawn.kv.key) == (EventType.DELETE, queued.kv.key)
            await client.election_resign(holder)
        assert await client.election_leader(name) is None

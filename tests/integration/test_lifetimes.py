"""
Lifetimes that do not fit one ``async with`` (issue #16): keeping an existing lease alive by
ID, revoking a lease from inside its block, try-locks, and leadership handed to other code.
Ground truth comes from the JSON-gateway oracle.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import pytest

import etcdanyio
from etcdanyio import LeaseExpiredError, LeaseNotFoundError, LockLostError, NotLeaderError

from ._kit.helpers import ask
from ._kit.oracle import Oracle

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from etcdanyio.testing import EtcdServer

pytestmark = pytest.mark.integration


@pytest.fixture
def oracle(etcd_server: EtcdServer) -> Oracle:
    return Oracle(etcd_server.endpoint)


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


@pytest.fixture
def name() -> str:
    return f"lifetimes/{uuid.uuid4().hex}"


async def answered(lease: etcdanyio.Lease, within: float = 5.0) -> None:
    """Wait until a keepalive of ``lease`` is answered (its local deadline moves)."""
    before = lease.deadline
    with anyio.fail_after(within):
        while lease.deadline == before:  # noqa: ASYNC110 -- no event to wait on: poll, bounded
            await anyio.sleep(0.01)


# -- keep an existing lease alive --------------------------------------------------------------


async def test_keepalive_adopts_a_lease_granted_elsewhere(
    client: etcdanyio.Client, oracle: Oracle
) -> None:
    lease_id = await ask(oracle.lease_grant, 30)
    with anyio.fail_after(10):
        async with client.keepalive(lease_id, interval=0.2) as lease:
            assert lease.id == lease_id
            await answered(lease)
            await answered(lease)  # every 0.2 s, not every 10 s
        # Not revoked on exit: it belongs to whoever granted it.
        assert await ask(oracle.lease_ttl, lease_id) > 0
        async with client.keepalive(lease_id, revoke=True):
            pass
        assert await ask(oracle.lease_ttl, lease_id) == -1


async def test_keepalive_of_a_missing_lease_raises(client: etcdanyio.Client) -> None:
    with anyio.fail_after(5), pytest.raises(LeaseNotFoundError):
        async with client.keepalive(0x7E57_0000_0001):
            pytest.fail("the block must not run")


async def test_keepalive_cancels_its_block_when_the_lease_is_lost(
    client: etcdanyio.Client, oracle: Oracle
) -> None:
    lease_id = await ask(oracle.lease_grant, 30)
    adopted = client.keepalive(lease_id, interval=0.1)

    async def body() -> None:
        async with adopted:
            await ask(oracle.lease_revoke, lease_id)
            await anyio.sleep_forever()  # cancelled by the loss

    with anyio.fail_after(10), pytest.raises(LeaseExpiredError):
        await body()
    assert adopted.lost is not None


async def test_an_adopted_lease_is_a_session_for_locks_and_campaigns(
    client: etcdanyio.Client, oracle: Oracle, name: str
) -> None:
    lease_id = await ask(oracle.lease_grant, 30)
    with anyio.fail_after(10):
        async with client.keepalive(lease_id) as session:
            async with client.lock(name, session=session) as lock:
                assert lock.key == f"{name}/{lease_id:x}".encode()
            election = client.election(name + "-e")
            async with election.campaign(b"adopted", session=session) as leadership:
                assert leadership.leader_key.lease == lease_id
        await ask(oracle.lease_revoke, lease_id)


async def test_keepalive_of_one_of_our_own_leases_shares_its_registration(
    client: etcdanyio.Client, oracle: Oracle
) -> None:
    with anyio.fail_after(10):
        async with client.lease(30) as own:
            async with client.keepalive(own.id, interval=0.2) as adopted:
                await answered(adopted)
            # Leaving the adopting block keeps the owner's lease alive.
            await answered(own)
        assert await ask(oracle.lease_ttl, own.id) == -1  # the owner revoked it


# -- revoke from inside --------------------------------------------------------------------


async def test_revoke_from_inside_ends_the_lease_and_exits_cleanly(
    client: etcdanyio.Client, oracle: Oracle, name: str
) -> None:
    with anyio.fail_after(10):
        async with client.lease(30) as lease:
            await client.put(name, "v", lease=lease)
            await lease.revoke()
            assert await client.get(name) is None  # its keys went with it
            assert await ask(oracle.lease_ttl, lease.id) == -1
            await lease.revoke()  # idempotent
            await anyio.lowlevel.checkpoint()  # the block goes on: not cancelled
        # ... and leaves without LeaseExpiredError.


async def test_revoke_from_inside_cancels_the_locks_on_the_session(
    client: etcdanyio.Client, name: str
) -> None:
    with anyio.fail_after(10):
        async with client.session(ttl=30) as session:

            async def body() -> None:
                async with client.lock(name, session=session):
                    await session.revoke()
                    await anyio.sleep_forever()  # cancelled: its lease is gone

            with pytest.raises(LockLostError):
                await body()


# -- try-lock ------------------------------------------------------------------------------


async def test_try_lock_fails_at_once_when_held_and_leaves_no_key(
    client: etcdanyio.Client, oracle: Oracle, name: str
) -> None:
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(client.endpoints) as other:
            async with client.lock(name, ttl=30):
                start = anyio.current_time()
                with pytest.raises(TimeoutError, match="held"):
                    async with other.lock(name, ttl=30, timeout=0):
                        pytest.fail("a held lock was taken")  # pragma: no cover
                assert anyio.current_time() - start < 2
                keys = [kv.key for kv in await ask(oracle.range_prefix, f"{name}/".encode())]
                assert len(keys) == 1  # only the holder's
            async with other.lock(name, ttl=30, timeout=0) as lock:
                assert await lock.is_acquired()


async def test_try_lock_within_one_client_on_a_shared_session(
    client: etcdanyio.Client, name: str
) -> None:
    with anyio.fail_after(10):
        async with client.session(ttl=30) as session, client.lock(name, session=session):
            with pytest.raises(TimeoutError):
                async with client.lock(name, session=session, timeout=0):
                    pytest.fail("a held lock was taken")  # pragma: no cover


# -- leadership handed to other code ---------------------------------------------------------


async def test_resumed_leadership_proclaims_and_resigns(
    client: etcdanyio.Client, name: str
) -> None:
    election = client.election(name)
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(client.endpoints) as other:
            async with election.campaign(b"v1", ttl=30) as leadership:
                key = leadership.leader_key
                assert (key.name, key.key, key.revision) == (
                    name.encode(),
                    leadership.key,
                    leadership.revision,
                )
                resumed = await other.election(name).resume(key)
                assert resumed.value == b"v1"
                await resumed.proclaim(b"v2")
                leader = await election.leader()
                assert leader is not None
                assert leader.value == b"v2"
                await resumed.resign()
                assert await election.leader() is None
                with pytest.raises(NotLeaderError):
                    await other.election(name).resume(key)  # it no longer leads
            with pytest.raises(ValueError, match="not a leader key"):
                await other.election(name + "-other").resume(key)

"""
Leases against a real etcd: the ``client.lease()`` scope, the low-level Lease calls, bad input,
and the lease scenarios S30-S33 of reliability.md §2.6 (through the fault proxy, or a 3-member
cluster whose leader is killed).

Ground truth (which leases exist, which keys are left) is read with the JSON-gateway oracle,
which shares no code with the client. Timings are measured against the moment the client saw a
keepalive answer: the test waits for :attr:`Lease.deadline` to move (it moves on each answer),
then injects the fault at once, so that answer is the last one before the fault.
"""

from __future__ import annotations

import contextlib
import re
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import pytest

import etcdanyio
from etcdanyio.testing import EtcdCluster

from ._kit.faultproxy import open_fault_proxy
from ._kit.oracle import Oracle

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from etcdanyio.testing import EtcdServer

from ._kit.helpers import ask

pytestmark = pytest.mark.integration

T = TypeVar("T")

LEASE_NOT_FOUND = "etcdserver: requested lease not found"
#: Slack on the client's local deadline: scheduling, and the 2 ms poll of ``wait_answer``.
SLACK = 0.7


@pytest.fixture
def prefix() -> bytes:
    return f"test_lease/{uuid.uuid4().hex}/".encode()


@pytest.fixture
def oracle(etcd_server: EtcdServer) -> Oracle:
    return Oracle(etcd_server.endpoint)


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


async def wait_answer(lease: etcdanyio.Lease, within: float = 3.0) -> float:
    """
    Wait until the client sees the next keepalive answer for ``lease``; return when it did.

    Each answer moves the lease's local deadline forward: poll it (the client has no event to
    wait on), bounded by ``within`` seconds.
    """
    before = lease.deadline
    with anyio.fail_after(within):
        while lease.deadline == before:  # noqa: ASYNC110 -- no event to wait on: poll, bounded
            await anyio.sleep(0.002)
    return anyio.current_time()


def keepalive_metrics(endpoint: str) -> dict[str, int]:
    """``started`` and ``handled`` LeaseKeepAlive streams and ``received`` keepalives, so far."""
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    totals = {"started": 0, "handled": 0, "received": 0}
    names = {
        "grpc_server_started_total": "started",
        "grpc_server_handled_total": "handled",
        "grpc_server_msg_received_total": "received",
    }
    for line in text.splitlines():
        match = re.match(r"(\w+)\{(.*)\} (\S+)$", line)
        if match and 'grpc_method="LeaseKeepAlive"' in match[2] and match[1] in names:
            totals[names[match[1]]] += int(float(match[3]))
    return totals


# -- the lease scope ----------------------------------------------------------------------------


async def test_lease_scope_cannot_be_entered_twice(client: etcdanyio.Client) -> None:
    with anyio.fail_after(5):
        lease = client.lease(ttl=5)
        async with lease:
            with pytest.raises(RuntimeError):
                async with lease:
                    pass  # pragma: no cover


async def test_lease_scope_body_error_propagates_and_revokes(
    client: etcdanyio.Client, oracle: Oracle, prefix: bytes
) -> None:
    with anyio.fail_after(5):
        error: KeyError | None = None
        try:
            async with client.lease(ttl=30) as lease:
                await client.put(prefix + b"k", b"v", lease=lease)
                raise KeyError("from the body")
        except KeyError as exc:
            error = exc
        assert error is not None
        assert error.args == ("from the body",)
        assert lease.id not in await ask(oracle.leases)
        assert await ask(oracle.get, prefix + b"k") is None


async def test_cancelled_lease_scope_leaves_nothing(
    client: etcdanyio.Client, oracle: Oracle, prefix: bytes
) -> None:
    with anyio.fail_after(5):

        async def hold(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            async with client.lease(ttl=60) as lease:
                await client.put(prefix + b"held", b"v", lease=lease)
                task_status.started(lease.id)
                await anyio.sleep_forever()

        async with anyio.create_task_group() as tg:
            lease_id = await tg.start(hold)
            assert lease_id in await ask(oracle.leases)
            tg.cancel_scope.cancel()  # from outside, while the body runs
        assert lease_id not in await ask(oracle.leases)
        assert await ask(oracle.get, prefix + b"held") is None


async def test_nothing_is_sent_from_an_already_cancelled_scope(
    client: etcdanyio.Client, oracle: Oracle, prefix: bytes
) -> None:
    with anyio.fail_after(10):
        await client.get(prefix)  # connected
        before = set(await ask(oracle.leases))
        for i in range(20):
            with anyio.CancelScope() as scope:
                scope.cancel()
                async with client.lease(ttl=60):
                    pytest.fail("the body of a cancelled scope ran")  # pragma: no cover
            with anyio.CancelScope() as scope:
                scope.cancel()
                await client.put(prefix + b"%d" % i, b"v")
        await client.put(prefix + b"sync", b"")  # anything sent before is applied by now
        leaked = set(await ask(oracle.leases)) - before
        for lease_id in leaked:  # do not leave them to other tests for 60 s
            with contextlib.suppress(Exception):
                await ask(oracle.lease_revoke, lease_id)
        applied = [kv.key for kv in await ask(oracle.range_prefix, prefix)]
        assert (leaked, applied) == (set(), [prefix + b"sync"])


async def test_lease_scope_cancelled_during_grant_leaves_no_lease(etcd_server: EtcdServer) -> None:
    oracle = Oracle(etcd_server.endpoint)
    with anyio.fail_after(10):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
        ):
            await client.get("sync")  # connected: the grant is the next thing sent
            before = set(await ask(oracle.leases))
            proxy.set_mode("delay", 0.2)  # the grant reaches etcd 0.2 s after it was sent ...
            with anyio.move_on_after(0.1):  # ... and the scope is cancelled before that
                async with client.lease(ttl=60):
                    pytest.fail("the body ran")  # pragma: no cover
            # Through the same, still delayed, pipe: etcd has seen everything sent before it.
            await client.put(b"test_lease/sync", b"")
            proxy.heal()
            leaked = set(await ask(oracle.leases)) - before
            for lease_id in leaked:  # do not leave it to other tests for 60 s
                with contextlib.suppress(Exception):
                    await ask(oracle.lease_revoke, lease_id)
            assert not leaked, f"leases left behind by a cancelled scope: {leaked}"


# -- low-level calls ----------------------------------------------------------------------------


async def test_grant_time_to_live_leases_keepalive_once_revoke(
    client: etcdanyio.Client, oracle: Oracle, prefix: bytes
) -> None:
    with anyio.fail_after(5):
        grant = await client.lease_grant(30)
        assert grant.id > 0
        assert grant.ttl == 30
        assert grant.header.revision > 0
        try:
            assert grant.id in await client.leases()
            assert grant.id in await ask(oracle.leases)
            await client.put(prefix + b"k", b"v", lease=grant.id)
            info = await client.lease_time_to_live(grant.id, keys=True)
            assert info.id == grant.id
            assert info.granted_ttl == 30
            assert 0 < info.ttl <= 30
            assert info.keys == [prefix + b"k"]
            assert (await client.lease_time_to_live(grant.id)).keys == []  # keys not asked for
            assert await client.lease_keepalive_once(grant.id) == 30
            # A chosen ID, and a TTL below the server's minimum is raised to it.
            chosen = grant.id + 1_000_003
            own = await client.lease_grant(1, id=chosen)
            assert own.id == chosen
            assert own.ttl >= 1
            assert chosen in await client.leases()
            await client.lease_revoke(chosen)
        finally:
            header = await client.lease_revoke(grant.id)
        assert header.revision > grant.header.revision  # the key's deletion is a new revision
        assert await ask(oracle.get, prefix + b"k") is None
        assert grant.id not in await client.leases()


async def test_unknown_lease_answers(client: etcdanyio.Client, oracle: Oracle) -> None:
    with anyio.fail_after(5):
        grant = await client.lease_grant(5)
        await ask(oracle.lease_revoke, grant.id)
        info = await client.lease_time_to_live(grant.id)
        assert info.ttl == -1  # etcd answers TTL -1, no error
        assert info.keys == []
        with pytest.raises(etcdanyio.LeaseNotFoundError) as keepalive:
            await client.lease_keepalive_once(grant.id)  # etcd answers TTL 0
        assert keepalive.value.applied is False
        with pytest.raises(etcdanyio.LeaseNotFoundError) as revoke:
            await client.lease_revoke(grant.id)
        assert revoke.value.message == LEASE_NOT_FOUND
        with pytest.raises(etcdanyio.LeaseNotFoundError):
            await client.put(b"test_lease/unknown", b"v", lease=grant.id)


BAD_TTLS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-1, ValueError),
    (9_000_000_001, ValueError),  # above etcd's maximum
    (2**64, ValueError),
    (True, TypeError),
    (1.5, TypeError),
    ("10", TypeError),
    (None, TypeError),
]
BAD_LEASE_IDS: list[tuple[Any, type[Exception]]] = [
    (0, ValueError),
    (-5, ValueError),
    (2**63, ValueError),
    (True, TypeError),
    ("1", TypeError),
    (1.0, TypeError),
]


async def test_bad_input_is_refused_before_io(etcd_server: EtcdServer) -> None:
    with anyio.fail_after(5):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
        ):
            await client.get("test_lease/connected")
            sent = proxy.bytes_up
            for ttl, error in BAD_TTLS:
                with pytest.raises(error):
                    client.lease(ttl)  # refused when the scope is made, not when entered
                with pytest.raises(error):
                    client.session(ttl)
                with pytest.raises(error):
                    await client.lease_grant(ttl)
                with pytest.raises(error):
                    async with client.lock("test_lease/lock", ttl=ttl):
                        pass  # pragma: no cover
                with pytest.raises(error):
                    async with client.election("test_lease/election").campaign(b"v", ttl=ttl):
                        pass  # pragma: no cover
            for lease_id, error in BAD_LEASE_IDS:
                with pytest.raises(error):
                    await client.lease_revoke(lease_id)
                with pytest.raises(error):
                    await client.lease_time_to_live(lease_id)
                with pytest.raises(error):
                    await client.lease_keepalive_once(lease_id)
            for lease_id, error in BAD_LEASE_IDS[1:]:  # 0 is "no lease" for a grant and a put
                with pytest.raises(error):
                    await client.lease_grant(5, id=lease_id)
                with pytest.raises(error):
                    await client.put("test_lease/k", b"v", lease=lease_id)
            assert proxy.bytes_up == sent  # nothing was sent


# -- S30-S33 ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_s30_blackhole_expires_the_lease_on_the_local_deadline(
    etcd_server: EtcdServer,
) -> None:
    """S30: no keepalive answered for TTL s: body cancelled and error raised at answer + TTL."""
    ttl = 3
    with anyio.fail_after(15):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
        ):
            answered = cancelled = 0.0
            completed = False
            error: etcdanyio.LeaseExpiredError | None = None
            try:
                async with client.lease(ttl=ttl) as lease:
                    answered = await wait_answer(lease)
                    proxy.set_mode("blackhole")
                    try:
                        await anyio.sleep(ttl + 1)  # the fault's duration
                        completed = True
                    finally:
                        cancelled = anyio.current_time()
            except etcdanyio.LeaseExpiredError as exc:  # as itself: an ExceptionGroup fails
                error = exc
            raised = anyio.current_time()
            assert type(error) is etcdanyio.LeaseExpiredError, repr(error)
            assert error.lease_id == lease.id
            assert not completed, "the body outlived its lease"
            assert ttl - 0.05 <= cancelled - answered <= ttl + SLACK
            assert lease.lost is not None
            proxy.heal()
            proxy.cut()  # the blackholed connection lost bytes: go on with a fresh one
            # Not renewed since the fault began: less than a second left, or expired already.
            assert (await client.lease_time_to_live(lease.id)).ttl <= 0
    # Outside the proxy's task group, or it comes out wrapped in an ExceptionGroup.
    assert raised - answered <= ttl + SLACK, f"raised {raised - answered:.2f} s late"


@pytest.mark.slow
async def test_s31_short_stall_is_survived(etcd_server: EtcdServer, prefix: bytes) -> None:
    """S31: a 1.5 s stall (below the TTL of 3 s), then heal: the lease lives on."""
    oracle = Oracle(etcd_server.endpoint)
    with anyio.fail_after(10):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
            client.lease(ttl=3) as lease,
        ):
            await client.put(prefix + b"k", b"v", lease=lease)
            # The last answer (or the grant) is at most TTL/3 old: 2 s of the TTL are left.
            proxy.set_mode("stall")
            await anyio.sleep(1.5)  # the fault's duration
            proxy.heal()
            await wait_answer(lease)  # the stream goes on
            assert lease.lost is None
            assert (await lease.time_to_live()).ttl > 0
            assert await ask(oracle.lease_ttl, lease.id) > 0
            assert await ask(oracle.get, prefix + b"k") is not None
        assert await ask(oracle.lease_ttl, lease.id) == -1  # revoked on exit


async def test_s32_revoked_elsewhere_ends_only_that_lease(
    client: etcdanyio.Client, oracle: Oracle
) -> None:
    """S32: a lease revoked by someone else is lost by the next keepalive; others live on."""
    ttl = 2
    with anyio.fail_after(10):
        async with client.lease(ttl=ttl) as other:
            revoked = 0.0
            error: etcdanyio.LeaseExpiredError | None = None
            try:
                async with client.lease(ttl=ttl) as doomed:  # on the same keepalive stream
                    await ask(oracle.lease_revoke, doomed.id)
                    revoked = anyio.current_time()
                    await anyio.sleep_forever()
            except etcdanyio.LeaseExpiredError as exc:
                error = exc
            assert type(error) is etcdanyio.LeaseExpiredError, repr(error)
            assert error.lease_id == doomed.id
            assert anyio.current_time() - revoked <= ttl / 3 + 0.5
            # The other lease is untouched: still answered on the same stream.
            assert other.lost is None
            await wait_answer(other)
            assert (await other.time_to_live()).ttl > 0
            assert client._core.keepalive_stream is not None
            assert client._core.keepalive_stream.leases == 1


@pytest.mark.slow
async def test_s33_leases_survive_killing_the_leader() -> None:
    """S33: 3 members, 3 leases of TTL 2; the leader (the client's member) is killed."""
    ttl = 2
    with anyio.fail_after(30):
        async with EtcdCluster(3) as cluster:
            leader = await cluster.aleader()
            # The client dials endpoints in order: the leader first, so its connection dies too.
            endpoints = [cluster.endpoints[leader]]
            endpoints += [e for i, e in enumerate(cluster.endpoints) if i != leader]
            async with (
                etcdanyio.open_etcd(endpoints) as client,
                contextlib.AsyncExitStack() as stack,
            ):
                leases = [await stack.enter_async_context(client.lease(ttl)) for _ in range(3)]
                for lease in leases:
                    await client.put(b"s33/%x" % lease.id, b"v", lease=lease)
                await wait_answer(leases[0])
                await anyio.to_thread.run_sync(cluster.kill, leader)
                killed = anyio.current_time()
                await cluster.aleader(timeout=5)  # a new leader among the other two
                # Answers keep coming, on a new stream through another member, past the TTL.
                while anyio.current_time() - killed < ttl + 0.5:
                    for lease in leases:
                        await wait_answer(lease, within=ttl)
                assert [lease.lost for lease in leases] == [None, None, None]
                oracle = Oracle(endpoints[1])
                for lease in leases:
                    assert (await lease.time_to_live()).ttl > 0
                    assert await ask(oracle.lease_keys, lease.id) == [b"s33/%x" % lease.id]
            # No LeaseExpiredError came out of the exit stack, and every lease is revoked.
            assert await ask(oracle.leases) == []


@pytest.mark.slow
async def test_lease_scopes_keep_alive_past_ttl_on_one_stream_and_revoke_on_exit(
    etcd_server: EtcdServer, client: etcdanyio.Client, oracle: Oracle, prefix: bytes
) -> None:
    """One lease of TTL 2 with keys, and 50 of TTL 1, held for 3 s on one keepalive stream."""
    with anyio.fail_after(15):
        before = await ask(keepalive_metrics, etcd_server.endpoint)
        async with contextlib.AsyncExitStack() as stack:
            lease = await stack.enter_async_context(client.lease(ttl=2))
            assert lease.id > 0
            assert lease.ttl == 2
            await client.put(prefix + b"a", b"1", lease=lease)
            await client.put(prefix + b"b", b"2", lease=lease.id)
            leases = [await stack.enter_async_context(client.lease(ttl=1)) for _ in range(50)]
            start = anyio.current_time()
            while anyio.current_time() - start < 3.0:  # 1.5 and 3 TTLs, answer by answer
                await wait_answer(leases[-1])
            assert [x.lost for x in [lease, *leases]] == [None] * 51
            info = await lease.time_to_live(keys=True)
            assert info.id == lease.id
            assert info.ttl > 0
            assert info.granted_ttl == 2
            assert sorted(info.keys) == [prefix + b"a", prefix + b"b"]
            assert await ask(oracle.lease_keys, lease.id) == [prefix + b"a", prefix + b"b"]
            ids = {x.id for x in [lease, *leases]}
            assert len(ids) == 51
            assert ids <= set(await ask(oracle.leases))
            assert await ask(oracle.lease_ttl, leases[0].id) >= 0
            assert client._core.keepalive_stream is not None
            assert client._core.keepalive_stream.leases == 51
            during = await ask(keepalive_metrics, etcd_server.endpoint)
            assert during["started"] - before["started"] == 1  # one stream for all of them
            assert during["handled"] == before["handled"]  # and it is still open
            # Each lease of TTL 1 renewed about every 1/3 s: at least 6 times in 3 TTLs.
            assert during["received"] - before["received"] >= 50 * 6
        # Revoked on exit: no lease and no key left.
        assert not ids & set(await ask(oracle.leases))
        assert await ask(oracle.range_prefix, prefix) == []
        assert (await client.lease_time_to_live(lease.id)).ttl == -1
        # The stream ended with the last lease.
        after = await ask(keepalive_metrics, etcd_server.endpoint)
        with anyio.fail_after(1):
            while after["handled"] == before["handled"]:
                after = await ask(keepalive_metrics, etcd_server.endpoint)
        assert after["started"] - before["started"] == 1
        assert after["handled"] - before["handled"] == 1

"""
``client.mirror()`` against real etcd: the mapping, read-your-writes and ``sync()``, the changes
stream, a slow consumer, compaction past the mirror (a partition longer than the compaction), a
member restart, failover in a three-member cluster, random interleavings of writes, compactions
and connection breaks, and cancellation at random points.

After every step the mirror is compared with a linearizable read at ``mirror.revision`` through
the JSON gateway (the oracle, which shares no code with the client), and the states rebuilt from
the changes stream are compared with the gateway's reads at each update's revision (taken before
any compaction could remove them).
"""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

import etcdanyio
from etcdanyio import EventType, txn
from etcdanyio.testing import EtcdCluster, EtcdServer

from ._kit.faultproxy import FaultProxy, open_fault_proxies, open_fault_proxy
from ._kit.oracle import Oracle

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.integration

#: a key's state as compared: value, create_revision, mod_revision, version
State = dict[bytes, tuple[bytes, int, int, int]]


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


@pytest.fixture
def prefix() -> bytes:
    return f"mirror/{uuid.uuid4().hex}/".encode()


# ------------------------------------------------------------------------------------ helpers


def _state(mirror: etcdanyio.Mirror) -> State:
    """The mirror's content (read without an await: one revision)."""
    return {
        k: (kv.value, kv.create_revision, kv.mod_revision, kv.version)
        for k, kv in ((k, mirror[k]) for k in mirror)
    }


async def _truth(oracle: Oracle, prefix: bytes, revision: int, strip: bytes = b"") -> State:
    """The gateway's linearizable read of ``prefix`` at ``revision``."""
    kvs = await anyio.to_thread.run_sync(
        lambda: oracle.range_prefix(strip + prefix, revision=revision)
    )
    return {
        kv.key[len(strip) :]: (kv.value, kv.create_revision, kv.mod_revision, kv.version)
        for kv in kvs
    }


async def _check(oracle: Oracle, mirror: etcdanyio.Mirror, prefix: bytes) -> int:
    """The mirror equals the store at ``mirror.revision``; returns that revision."""
    revision, state = mirror.revision, _state(mirror)
    assert state == await _truth(oracle, prefix, revision)
    return revision


class Replica:
    """Rebuilds the mirror's states from its changes stream, one per update."""

    def __init__(self, mirror: etcdanyio.Mirror, *, max_buffered: int = 10_000) -> None:
        self.state = _state(mirror)
        self.changes = mirror.changes(max_buffered=max_buffered)
        assert self.changes.revision == mirror.revision
        self.revision = mirror.revision
        self.states: dict[int, State] = {}
        self.resyncs: list[etcdanyio.MirrorUpdate] = []

    def apply(self, update: etcdanyio.MirrorUpdate) -> None:
        assert update.revision > self.revision or (
            update.resync and update.revision >= self.revision
        )
        if update.reset:
            self.state = {}
        if update.resync:
            self.resyncs.append(update)
        for event in update.events:
            kv = event.kv
            if not update.reset:  # prev_kv is the copy's previous entry
                before = self.state.get(kv.key)
                got = event.prev_kv
                assert (before is None) == (got is None)
                if got is not None and before is not None:
                    assert (got.value, got.mod_revision) == (before[0], before[2])
            if event.type is EventType.PUT:
                self.state[kv.key] = (
                    kv.value,
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                )
            else:
                del self.state[kv.key]
        self.revision = update.revision
        self.states[update.revision] = dict(self.state)

    async def follow(self, until: int) -> None:
        """Apply updates until the replica reached revision ``until``."""
        while self.revision < until:
            self.apply(await self.changes.__anext__())


async def _oput(oracle: Oracle, key: bytes, value: bytes) -> int:
    return await anyio.to_thread.run_sync(oracle.put, key, value)


# --------------------------------------------------------------------------------- the basics


async def test_mapping_read_your_writes_and_changes(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            await client.put(prefix + b"a", "1")
            await client.put(prefix + b"b", "2")
            await client.put(prefix + b"\xff", "binary")
            async with client.mirror(prefix, prefix=True, page_size=1) as mirror:
                await _check(oracle, mirror, prefix)
                assert len(mirror) == 3
                assert mirror[prefix + b"a"].value == b"1"
                assert mirror[(prefix + b"a").decode()].value == b"1"  # str keys
                assert (prefix + b"b").decode() in mirror
                assert mirror.get(prefix + b"zz") is None
                assert sorted(mirror) == [prefix + b"a", prefix + b"b", prefix + b"\xff"]
                with pytest.raises(KeyError):
                    mirror[prefix + b"missing"]
                with pytest.raises(TypeError):
                    mirror[5]  # type: ignore[index]
                replica = Replica(mirror)
                written = await client.put(prefix + b"a", "1b")
                await mirror.wait_for_revision(written.header.revision)
                assert mirror[prefix + b"a"].value == b"1b"
                # A transaction is one update, applied at once.
                result = await client.txn(
                    success=[txn.put(prefix + b"c", "3"), txn.delete(prefix + b"b")]
                )
                await mirror.wait_for_revision(result.header.revision)
                assert prefix + b"b" not in mirror
                assert mirror[prefix + b"c"].value == b"3"
                await replica.follow(result.header.revision)
                assert replica.states[result.header.revision] == _state(mirror)
                assert replica.resyncs == []
                # A write elsewhere: sync() proves freshness by a progress notification.
                elsewhere = await client.put(prefix[:-1] + b"-other", "x")
                assert await mirror.sync() >= elsewhere.header.revision
                assert mirror.revision >= elsewhere.header.revision
                assert mirror.resyncs == 0
                await _check(oracle, mirror, prefix)
            assert client._core.watch_stream is not None
            assert client._core.watch_stream.watchers == 0
            with pytest.raises(anyio.ClosedResourceError):
                await mirror.sync()


async def test_update_carries_every_event_of_a_revision(server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(10):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.mirror(prefix, prefix=True) as mirror,
        ):
            changes = mirror.changes()
            await client.put(prefix + b"x", "0")
            result = await client.txn(success=[txn.put(prefix + b"%d" % i, "v") for i in range(5)])
            first = await changes.__anext__()
            second = await changes.__anext__()
            assert [e.kv.key for e in first.events] == [prefix + b"x"]
            assert first.events[0].prev_kv is None
            assert second.revision == result.header.revision
            assert len(second.events) == 5
            assert not second.resync
            assert not second.reset


async def test_namespace_single_key_and_range(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(server.endpoint, namespace=prefix) as client:
            for key in ("a", "b", "c", "d"):
                await client.put(key, key.upper())
            async with (
                client.mirror("", prefix=True) as everything,
                client.mirror("b") as one,
                client.mirror("b", end="d") as some,
            ):
                assert sorted(everything) == [b"a", b"b", b"c", b"d"]
                assert list(one) == [b"b"]
                assert sorted(some) == [b"b", b"c"]
                done = await client.delete("c")
                await some.wait_for_revision(done.header.revision)
                assert sorted(some) == [b"b"]
                revision = everything.revision
                assert _state(everything) == await _truth(oracle, b"", revision, strip=prefix)


async def test_bad_arguments_raise_before_io(server: EtcdServer) -> None:
    async with etcdanyio.open_etcd(server.endpoint) as client:
        with pytest.raises(ValueError, match="page_size"):
            async with client.mirror("k", page_size=0):
                pass
        with pytest.raises(TypeError):
            async with client.mirror(5):  # type: ignore[arg-type]
                pass
        with pytest.raises(ValueError, match="prefix"):
            async with client.mirror("k", prefix=True, end="z"):
                pass
        async with client.mirror("k") as mirror:
            with pytest.raises(ValueError, match="max_buffered"):
                mirror.changes(max_buffered=0)
            with pytest.raises(TypeError):
                await mirror.wait_for_revision(1.5)  # type: ignore[arg-type]


async def test_initial_load_is_one_revision_under_concurrent_writes(
    server: EtcdServer, prefix: bytes
) -> None:
    oracle = Oracle(server.endpoint)
    with anyio.fail_after(20):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            for i in range(300):
                await client.put(prefix + b"%03d" % i, "0")
            stop = anyio.Event()

            async def writer() -> None:
                n = 0
                while not stop.is_set():
                    await client.put(prefix + b"%03d" % (n * 37 % 300), b"%d" % n)
                    n += 1

            async with anyio.create_task_group() as tg:
                tg.start_soon(writer)
                async with client.mirror(prefix, prefix=True, page_size=7) as mirror:
                    await _check(oracle, mirror, prefix)
                    await mirror.sync()
                    await _check(oracle, mirror, prefix)
                stop.set()


async def test_slow_consumer_gets_a_reset_and_never_holds_the_mirror_back(
    server: EtcdServer, prefix: bytes
) -> None:
    with anyio.fail_after(10):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.mirror(prefix, prefix=True) as mirror,
        ):
            slow = Replica(mirror, max_buffered=5)
            last = 0
            for i in range(20):
                last = (await client.put(prefix + b"%d" % (i % 8), b"%d" % i)).header.revision
            await mirror.wait_for_revision(last)  # the mirror is current; nobody read
            update = await slow.changes.__anext__()
            assert update.reset
            assert update.resync
            assert update.revision == mirror.revision
            slow.apply(update)
            assert slow.state == _state(mirror)
            assert slow.changes.resets == 1
            after = (await client.put(prefix + b"0", "after")).header.revision
            await slow.follow(after)
            assert slow.state == _state(mirror)


async def test_watch_catching_up(server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            first = (await client.put(prefix + b"k", "1")).header.revision
            await client.put(prefix + b"other", "x")
            async with client.watch(prefix + b"k") as now:
                assert not now.catching_up
            async with client.watch(prefix + b"k", start_revision=first) as w:
                assert w.catching_up  # history up to the creation revision may still come
                assert (await w.__anext__()).revision == first
                assert w.catching_up
                later = (await client.put(prefix + b"k", "2")).header.revision
                assert (await w.__anext__()).revision == later
                assert not w.catching_up


async def test_watch_resumed_from(server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(10):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
            client.watch(prefix, prefix=True) as w,
        ):
            first = (await client.put(prefix + b"k", "1")).header.revision
            assert (await w.__anext__()).revision == first
            assert w.resumed_from == 0
            proxy.cut()  # the client reconnects at once; the watch resumes after `first`
            later = await _oput(Oracle(server.endpoint), prefix + b"k", b"2")
            assert (await w.__anext__()).revision == later
            assert w.resumed_from == first + 1


# -------------------------------------------------------------------------------------- faults


async def test_partition_longer_than_compaction_resyncs_with_the_difference(
    server: EtcdServer, prefix: bytes
) -> None:
    oracle = Oracle(server.endpoint)
    with anyio.fail_after(20):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
            client.mirror(prefix, prefix=True) as mirror,
        ):
            for key in (b"same", b"changed", b"gone", b"back"):
                last = await _oput(oracle, prefix + key, b"before")
            await mirror.wait_for_revision(last)
            replica = Replica(mirror)
            before = await _check(oracle, mirror, prefix)
            proxy.refuse = True
            proxy.cut()
            await _oput(oracle, prefix + b"changed", b"after")
            await anyio.to_thread.run_sync(oracle.delete, prefix + b"gone")
            await anyio.to_thread.run_sync(oracle.delete, prefix + b"back")
            await _oput(oracle, prefix + b"back", b"before")  # same value, new revision
            await _oput(oracle, prefix + b"new", b"after")
            last = await _oput(oracle, prefix + b"changed", b"after2")
            await anyio.to_thread.run_sync(oracle.compact, last)
            proxy.heal()
            await mirror.wait_for_revision(last)
            assert mirror.resyncs == 1
            await _check(oracle, mirror, prefix)
            await replica.follow(last)
            (resync,) = replica.resyncs
            changed = {(e.type, e.kv.key[len(prefix) :]) for e in resync.events}
            assert changed == {
                (EventType.PUT, b"changed"),
                (EventType.DELETE, b"gone"),
                (EventType.PUT, b"back"),
                (EventType.PUT, b"new"),
            }
            assert len(resync.events) == 4  # nothing for b"same"
            assert replica.state == _state(mirror)
            assert mirror.revision > before


async def test_delete_at_the_compaction_revision_is_not_lost(
    server: EtcdServer, prefix: bytes
) -> None:
    # During a break, the next revision the mirror needs is a delete, and the store is
    # compacted at exactly that revision: etcd accepts the resumed watch from there but has
    # nothing to send for the delete. The mirror sees that the revision before is compacted
    # and re-lists.
    oracle = Oracle(server.endpoint)
    with anyio.fail_after(15):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
            client.mirror(prefix, prefix=True) as mirror,
        ):
            await client.put(prefix + b"doomed", "x")
            await client.put(prefix + b"kept", "x")
            await mirror.sync()
            replica = Replica(mirror)
            proxy.refuse = True
            proxy.cut()
            assert await anyio.to_thread.run_sync(oracle.delete, prefix + b"doomed") == 1
            deleted = await anyio.to_thread.run_sync(oracle.revision)
            assert deleted == mirror.revision + 1  # the revision the watch resumes from
            await anyio.to_thread.run_sync(oracle.compact, deleted)
            proxy.heal()
            after = await _oput(oracle, prefix + b"kept", b"y")
            await mirror.wait_for_revision(after)
            assert prefix + b"doomed" not in mirror
            await _check(oracle, mirror, prefix)
            await replica.follow(after)
            assert replica.state == _state(mirror)
            assert mirror.resyncs == 1


async def test_stuck_resume_after_a_break_still_syncs(server: EtcdServer, prefix: bytes) -> None:
    # While the connection is down the store moves on outside the range: the resumed watch
    # catches up on (empty) history and cannot take a progress notification, so sync() falls
    # back to a re-list, which finds nothing to change.
    with anyio.fail_after(15):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
            client.mirror(prefix + b"quiet/", prefix=True) as mirror,
        ):
            await client.put(prefix + b"quiet/k", "v")
            replica = Replica(mirror)
            await mirror.sync()
            proxy.refuse = True
            proxy.cut()
            oracle = Oracle(server.endpoint)
            for i in range(3):
                await _oput(oracle, prefix + b"loud", b"%d" % i)
            proxy.heal()
            revision = await mirror.sync()
            await replica.follow(revision)
            assert mirror.resyncs >= 1  # the re-list of the fallback
            assert all(not u.events for u in replica.resyncs)
            assert mirror[prefix + b"quiet/k"].value == b"v"


async def test_member_restart(prefix: bytes) -> None:
    with anyio.fail_after(30):
        async with EtcdServer() as member:
            oracle = Oracle(member.endpoint)
            async with (
                etcdanyio.open_etcd(member.endpoint) as client,
                client.mirror(prefix, prefix=True) as mirror,
            ):
                replica = Replica(mirror)
                truth: dict[int, State] = {}
                for i in range(10):
                    last = await _oput(oracle, prefix + b"%d" % (i % 4), b"before:%d" % i)
                    truth[last] = await _truth(oracle, prefix, last)
                await member.arestart()
                for i in range(10):
                    last = await _oput(oracle, prefix + b"%d" % (i % 4), b"after:%d" % i)
                    truth[last] = await _truth(oracle, prefix, last)
                await mirror.wait_for_revision(last)
                await _check(oracle, mirror, prefix)
                await replica.follow(last)
                assert replica.states == truth  # every intermediate state
                assert mirror.resyncs == 0


@pytest.mark.slow
async def test_failover_in_a_three_member_cluster(prefix: bytes) -> None:
    with anyio.fail_after(40):
        async with EtcdCluster(3) as cluster:
            oracle = Oracle(cluster.members[1].endpoint)
            async with (
                etcdanyio.open_etcd(cluster.endpoints, timeout=2.0) as client,
                client.mirror(prefix, prefix=True) as mirror,
            ):
                replica = Replica(mirror)
                truth: dict[int, State] = {}
                for i in range(5):
                    last = await _oput(oracle, prefix + b"%d" % i, b"before")
                    truth[last] = await _truth(oracle, prefix, last)
                await mirror.wait_for_revision(last)
                pinned = client._core.channel.current_endpoint
                index = [str(e) for e in map(str, cluster.endpoints)].index(str(pinned))
                await anyio.to_thread.run_sync(cluster.stop, index)
                oracle = Oracle(cluster.members[(index + 1) % 3].endpoint)
                for i in range(5):
                    last = await _oput(oracle, prefix + b"%d" % i, b"after")
                    truth[last] = await _truth(oracle, prefix, last)
                revision = await mirror.sync()
                assert revision >= last
                await _check(oracle, mirror, prefix)
                await replica.follow(last)
                assert {r: s for r, s in replica.states.items() if r in truth} == truth
                assert set(replica.states) <= set(truth) | {u.revision for u in replica.resyncs}


@pytest.mark.slow
async def test_partition_longer_than_compaction_in_a_three_member_cluster(prefix: bytes) -> None:
    # The client is cut off from every member; meanwhile the store moves on and is compacted
    # past the mirror. It comes back through another member than the one it watched on.
    with anyio.fail_after(40):
        async with (
            EtcdCluster(3) as cluster,
            open_fault_proxies(*cluster.endpoints) as proxies,
            etcdanyio.open_etcd([p.endpoint for p in proxies], timeout=2.0) as client,
            client.mirror(prefix, prefix=True) as mirror,
        ):
            oracle = Oracle(cluster.members[1].endpoint)
            for i in range(4):
                last = await _oput(oracle, prefix + b"%d" % i, b"before")
            await mirror.wait_for_revision(last)
            replica = Replica(mirror)
            pinned = str(client._core.channel.current_endpoint)
            for proxy in proxies:
                proxy.refuse = True
                proxy.cut()
            await anyio.to_thread.run_sync(oracle.delete, prefix + b"0")
            for i in range(1, 3):
                last = await _oput(oracle, prefix + b"%d" % i, b"after")
            await anyio.to_thread.run_sync(oracle.compact, last)
            for proxy in proxies:
                if proxy.endpoint != pinned:
                    proxy.heal()
            revision = await mirror.sync()
            assert revision >= last
            assert str(client._core.channel.current_endpoint) != pinned
            await _check(oracle, mirror, prefix)
            await replica.follow(revision)
            assert replica.state == _state(mirror)
            (resync,) = replica.resyncs
            assert {(e.type, e.kv.key[len(prefix) :]) for e in resync.events} == {
                (EventType.DELETE, b"0"),
                (EventType.PUT, b"1"),
                (EventType.PUT, b"2"),
            }


# ------------------------------------------------------------------- random interleavings


async def _step(
    writer: etcdanyio.Client,
    proxy: FaultProxy,
    rng: random.Random,
    keys: list[bytes],
    steps: int,
    roll: float,
) -> int:
    """One random operation; the revision of a write (0 for none)."""
    if roll < 0.4:
        return (await writer.put(rng.choice(keys), b"%d" % steps)).header.revision
    if roll < 0.55:
        return (await writer.delete(rng.choice(keys))).header.revision
    if roll < 0.7:
        ops = [
            txn.put(k, b"t%d" % steps) if rng.random() < 0.6 else txn.delete(k)
            for k in rng.sample(keys, 3)
        ]
        return (await writer.txn(success=ops)).header.revision
    if roll < 0.78:
        current = (await writer.get_range(keys[0], keys[0] + b"\0", count_only=True)).header
        with contextlib.suppress(etcdanyio.CompactedError):  # compacted already
            await writer.compact(current.revision)
    elif roll < 0.88:
        proxy.refuse = True  # a break; long enough to be compacted past, often
        proxy.cut()
    else:
        proxy.heal()
    return 0


async def test_random_interleavings(server: EtcdServer, prefix: bytes) -> None:
    # Random puts, deletes, transactions, compactions and connection breaks (some long
    # enough to be compacted past); after every step the mirror equals the store at its
    # revision, and the changes stream rebuilds every state it did not skip by a resync.
    seed = int(os.environ.get("MIRROR_SEED") or random.SystemRandom().randrange(2**32))
    print(f"seed={seed} (MIRROR_SEED={seed} replays it)")  # noqa: T201
    rng = random.Random(seed)
    rng.seed(seed)
    oracle = Oracle(server.endpoint)
    keys = [prefix + b"%d" % i for i in range(6)]
    with anyio.fail_after(30):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            etcdanyio.open_etcd(server.endpoint) as writer,
            etcdanyio.open_etcd(proxy.endpoint) as client,
            client.mirror(prefix, prefix=True, page_size=2) as mirror,
        ):
            replica = Replica(mirror)
            truth: dict[int, State] = {}
            cut = False
            deadline = anyio.current_time() + 3.0
            steps = 0
            while anyio.current_time() < deadline:
                steps += 1
                roll = rng.random()
                revision = 0
                with contextlib.suppress(etcdanyio.UnavailableError, TimeoutError):
                    revision = await _step(writer, proxy, rng, keys, steps, roll)
                cut = proxy.refuse
                if revision:
                    truth[revision] = await _truth(oracle, prefix, revision)
                if not cut:
                    await mirror.sync()
                    await _check(oracle, mirror, prefix)
                    await replica.follow(mirror.revision)
                    assert replica.state == _state(mirror)
            proxy.heal()
            await mirror.sync()
            await _check(oracle, mirror, prefix)
            await replica.follow(mirror.revision)
    resynced = {u.revision for u in replica.resyncs}
    for revision, state in replica.states.items():
        # (a write whose outcome the writer did not learn has no truth recorded)
        if revision in truth:
            assert state == truth[revision]
    assert resynced <= set(replica.states)
    # Every write's state was seen, unless a resync skipped over it.
    skipped = [r for r in truth if r > replica.changes.revision and r not in replica.states]
    for r in skipped:
        assert any(u.revision > r for u in replica.resyncs)
    print(f"steps={steps} resyncs={mirror.resyncs} skipped={len(skipped)}")  # noqa: T201


# --------------------------------------------------------------------------------- cancellation


async def test_cancelled_at_random_points_leaves_nothing_behind(
    server: EtcdServer, prefix: bytes
) -> None:
    rng = random.Random()
    async with etcdanyio.open_etcd(server.endpoint) as client:
        for i in range(50):
            await client.put(prefix + b"%d" % i, "v")
        for _ in range(40):
            with anyio.move_on_after(rng.uniform(0, 0.03)):
                async with client.mirror(prefix, prefix=True, page_size=5) as mirror:
                    changes = mirror.changes()
                    await client.put(prefix + b"0", "w")
                    await mirror.sync()
                    await changes.__anext__()
            assert client._core.watch_stream is None or client._core.watch_stream.watchers == 0

"""
The recipes of :mod:`etcdanyio.recipes` against a real etcd: STM, the read/write
lock, barriers and queues, each under its own random name.

Concurrency tests record what every task saw and check the recipe's promise on
the record: money is conserved, readers share and writers do not, nobody passes
a barrier early, each queue item is delivered exactly once.
"""

from __future__ import annotations

import contextlib
import random
import re
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

import etcdanyio
from etcdanyio import LeaseExpiredError, LockLostError
from etcdanyio.recipes import (
    STM,
    Barrier,
    BarrierFullError,
    DoubleBarrier,
    Isolation,
    PriorityQueue,
    Queue,
    RWLock,
    STMConflictError,
    stm,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from etcdanyio.testing import EtcdServer

pytestmark = pytest.mark.integration

#: Every test finishes well within this (seconds); a hang fails instead of stalling the run.
BOUND = 15


@pytest.fixture
def name() -> str:
    return f"test_recipes/{uuid.uuid4().hex}"


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


async def keys_under(client: etcdanyio.Client, prefix: str) -> list[bytes]:
    return await client.get_keys(prefix)


# -- STM ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("isolation", ["serializable_snapshot", "serializable", "repeatable_read"])
async def test_stm_concurrent_transfers_conserve_money(
    client: etcdanyio.Client, name: str, isolation: str
) -> None:
    accounts = [f"{name}/acct/{i}" for i in range(5)]
    for account in accounts:
        await client.put(account, "100")
    attempts: list[int] = []
    outcomes: list[bool] = []

    async def transfer(source: str, target: str, amount: int) -> bool:
        async def apply(tx: STM) -> bool:
            attempts.append(tx.attempt)
            have = int(await tx.get(source) or b"0")
            other = int(await tx.get(target) or b"0")
            if have < amount:
                return False  # refuse an overdraft: nothing written
            tx.put(source, str(have - amount))
            tx.put(target, str(other + amount))
            return True

        return await stm(client, apply, isolation=isolation)

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(20):
            source, target = rng.sample(accounts, 2)
            outcomes.append(await transfer(source, target, rng.randint(1, 80)))

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            for seed in range(8):
                tg.start_soon(worker, seed)
        balances = []
        for account in accounts:
            kv = await client.get(account)
            assert kv is not None
            balances.append(int(kv.value))
    assert sum(balances) == 500, balances
    assert min(balances) >= 0, balances
    assert len(outcomes) == 160
    assert any(outcomes)
    # The tasks really did conflict, and conflicting attempts were run again.
    assert max(attempts) > 1


@pytest.mark.parametrize(
    ("isolation", "expected"),
    [
        # The second read sees the snapshot of the first; the commit notices b moved on.
        ("serializable_snapshot", [(1, b"1", b"1"), (2, b"1", b"2")]),
        ("serializable", [(1, b"1", b"1"), (2, b"1", b"2")]),
        # Without a snapshot, b is read as it is now: nothing to conflict with.
        ("repeatable_read", [(1, b"1", b"2")]),
        ("read_committed", [(1, b"1", b"2")]),
    ],
)
async def test_stm_reads_see_a_snapshot(
    client: etcdanyio.Client,
    name: str,
    isolation: str,
    expected: list[tuple[int, bytes, bytes]],
) -> None:
    a, b, c = f"{name}/a", f"{name}/b", f"{name}/c"
    await client.put(a, "1")
    await client.put(b, "1")
    seen: list[tuple[int, bytes | None, bytes | None]] = []

    async def apply(tx: STM) -> int:
        first = await tx.get(a)
        if tx.attempt == 1:
            await client.put(b, "2")  # committed after the first read
        second = await tx.get(b)
        seen.append((tx.attempt, first, second))
        tx.put(c, (first or b"") + (second or b""))
        return tx.attempt

    with anyio.fail_after(BOUND):
        attempts = await stm(client, apply, isolation=isolation)
        result = await client.get(c)
    assert seen == expected
    assert attempts == len(expected)
    assert result is not None
    assert result.value == b"12"


@pytest.mark.parametrize(
    ("isolation", "runs"), [(Isolation.SERIALIZABLE_SNAPSHOT, 2), (Isolation.SERIALIZABLE, 1)]
)
async def test_stm_write_write_conflict(
    client: etcdanyio.Client, name: str, isolation: Isolation, runs: int
) -> None:
    """Only serializable snapshot refuses to overwrite a key written after its snapshot."""
    a, w = f"{name}/a", f"{name}/w"
    await client.put(a, "1")
    await client.put(w, "0")

    async def apply(tx: STM) -> int:
        await tx.get(a)
        assert tx.revision > 0
        if tx.attempt == 1:
            await client.put(w, "theirs")  # w is written, never read, by us
        tx.put(w, "ours")
        return tx.attempt

    with anyio.fail_after(BOUND):
        assert await stm(client, apply, isolation=isolation) == runs
        result = await client.get(w)
    assert result is not None
    assert result.value == b"ours"


async def test_stm_gives_up_after_max_retries(client: etcdanyio.Client, name: str) -> None:
    a, out = f"{name}/a", f"{name}/out"
    await client.put(a, "0")
    runs = 0

    async def apply(tx: STM) -> None:
        nonlocal runs
        runs += 1
        await tx.get(a)
        await client.put(a, str(runs))  # someone always gets in between
        tx.put(out, "never")

    with anyio.fail_after(BOUND), pytest.raises(STMConflictError) as info:
        await stm(client, apply, max_retries=2)
    assert info.value.attempts == runs == 3
    assert await client.get(out) is None


async def test_stm_error_in_apply_writes_nothing(client: etcdanyio.Client, name: str) -> None:
    async def apply(tx: STM) -> None:
        tx.put(f"{name}/x", "1")
        raise ValueError("changed my mind")

    with anyio.fail_after(BOUND), pytest.raises(ValueError, match="changed my mind"):
        await stm(client, apply)
    assert await client.get(f"{name}/x") is None


async def test_stm_buffered_writes_deletes_and_prefetch(
    client: etcdanyio.Client, name: str
) -> None:
    x, y, z = f"{name}/x", f"{name}/y", f"{name}/z"
    put = await client.put(x, "1")
    await client.put(z, "gone soon")

    async def apply(tx: STM) -> bytes | None:
        assert await tx.rev(x) == put.header.revision
        tx.put(y, "2")
        assert await tx.get(y) == b"2"  # our own write, before the commit
        tx.delete(z)
        assert await tx.get(z) is None
        assert await tx.get(f"{name}/missing") is None
        return await tx.get(x)

    with anyio.fail_after(BOUND):
        assert await stm(client, apply, prefetch=[x, z]) == b"1"
        assert await client.get_keys(f"{name}/") == [x.encode(), y.encode()]

    with pytest.raises(ValueError, match="isolation"):
        await stm(client, apply, isolation="snapshot-ish")
    with pytest.raises(ValueError, match="max_retries"):
        await stm(client, apply, max_retries=-1)


async def test_stm_compacted_snapshot_starts_over(client: etcdanyio.Client, name: str) -> None:
    a, b = f"{name}/a", f"{name}/b"
    await client.put(a, "1")
    await client.put(b, "1")

    async def apply(tx: STM) -> int:
        await tx.get(a)
        if tx.attempt == 1:
            # The snapshot is compacted away before the second read.
            latest = await client.put(f"{name}/bump", "")
            await client.compact(latest.header.revision)
        # Swallowing the error must not let this attempt commit.
        with contextlib.suppress(Exception):
            await tx.get(b)
        tx.put(f"{name}/out", str(tx.attempt))
        return tx.attempt

    with anyio.fail_after(BOUND):
        assert await stm(client, apply) == 2
        out = await client.get(f"{name}/out")
    assert out is not None
    assert out.value == b"2"


# -- RWLock ---------------------------------------------------------------------------------


async def test_rwlock_readers_share(client: etcdanyio.Client, name: str) -> None:
    lock = RWLock(client, name, ttl=10)
    inside = 0
    everybody_in = anyio.Event()

    async def reader() -> None:
        nonlocal inside
        async with lock.read() as hold:
            assert re.fullmatch(rb".*/read/\d+", hold.key)
            inside += 1
            if inside == 3:
                everybody_in.set()
            await everybody_in.wait()  # only possible if all three hold it at once

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(reader)
        assert await keys_under(client, f"{name}/") == []


async def test_rwlock_writers_exclude_everybody(client: etcdanyio.Client, name: str) -> None:
    log: list[tuple[str, str]] = []

    async def user(kind: str, index: int, lock: RWLock) -> None:
        for _ in range(3):
            async with lock.read() if kind == "read" else lock.write():
                log.append(("in", kind))
                for _ in range(index % 3 + 1):
                    await client.get(f"{name}/data")  # let the others run meanwhile
                log.append(("out", kind))

    with anyio.fail_after(BOUND):
        async with client.session(ttl=10) as session, anyio.create_task_group() as tg:
            shared = RWLock(client, name, session=session)
            own = RWLock(client, name, ttl=10)  # the same lock, leases of its own
            for index in range(3):
                tg.start_soon(user, "write", index, shared if index % 2 else own)
            for index in range(4):
                tg.start_soon(user, "read", index, own if index % 2 else shared)
        assert await keys_under(client, f"{name}/") == []

    readers = writers = 0
    for event, kind in log:
        if event == "in" and kind == "write":
            assert readers == writers == 0, log
            writers += 1
        elif event == "in":
            assert writers == 0, log
            readers += 1
        elif kind == "write":
            writers -= 1
        else:
            readers -= 1
    assert len(log) == 2 * 3 * 7


async def test_rwlock_is_fair(client: etcdanyio.Client, name: str) -> None:
    """A reader that comes after a waiting writer waits for that writer."""
    lock = RWLock(client, name, ttl=10)
    log: list[str] = []

    async def writer() -> None:
        async with lock.write():
            log.append("writer in")
            await client.get(f"{name}/data")
            log.append("writer out")

    async def late_reader() -> None:
        async with lock.read():
            log.append("late reader in")

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg, lock.read():
            for task, kind in ((writer, b"write"), (late_reader, b"read")):
                async with client.watch(f"{name}/{kind.decode()}/", prefix=True) as events:
                    tg.start_soon(task)
                    await events.__anext__()  # its key exists: it is queued
            await client.get(f"{name}/data")
            log.append("first reader out")
    assert log == ["first reader out", "writer in", "writer out", "late reader in"]


async def test_rwlock_cancelled_waiters_leave_no_key(client: etcdanyio.Client, name: str) -> None:
    lock = RWLock(client, name, ttl=10)
    with anyio.fail_after(BOUND):
        async with lock.write() as holder:
            assert re.fullmatch(rb".*/write/\d+", holder.key)
            assert holder.is_owner().key == holder.key
            with pytest.raises(TimeoutError):
                async with lock.read(timeout=0.3):
                    pytest.fail("a reader got in while a writer held the lock")

            async def waiter(kind: str) -> None:
                async with lock.read() if kind == "read" else lock.write():
                    pytest.fail("a waiter got in while a writer held the lock")

            for kind in ("read", "write"):
                async with (
                    anyio.create_task_group() as tg,
                    client.watch(f"{name}/{kind}/", prefix=True) as events,
                ):
                    tg.start_soon(waiter, kind)
                    await events.__anext__()  # queued
                    tg.cancel_scope.cancel()
            assert await keys_under(client, f"{name}/") == [holder.key]
        assert await keys_under(client, f"{name}/") == []


async def test_rwlock_lost_lease_cancels_the_holder(client: etcdanyio.Client, name: str) -> None:
    async def revoke_while_holding(lock: RWLock, session: etcdanyio.Lease | None) -> None:
        async with lock.write() as hold:
            assert hold.lease is not None
            assert session is None or hold.lease is session
            await client.lease_revoke(hold.lease.id)
            await anyio.sleep_forever()

    async def session_block() -> None:
        async with client.session(ttl=2) as session:
            with pytest.raises(LockLostError):
                await revoke_while_holding(RWLock(client, name, session=session), session)

    with anyio.fail_after(BOUND):
        # A lease of its own: the error comes out as itself.
        with pytest.raises(LeaseExpiredError) as info:
            await revoke_while_holding(RWLock(client, name, ttl=2), None)
        assert type(info.value) is LockLostError

        # A shared session: the hold raises, and so does the session's own block.
        with pytest.raises(LeaseExpiredError) as outer:
            await session_block()
        assert type(outer.value) is LeaseExpiredError
        assert await keys_under(client, f"{name}/") == []


# -- Barrier ------------------------------------------------------------------------------------


async def test_barrier_blocks_until_released(client: etcdanyio.Client, name: str) -> None:
    barrier = Barrier(client, name)
    released: list[int] = []

    async def waiter(index: int) -> None:
        await barrier.wait()
        released.append(index)

    with anyio.fail_after(BOUND):
        await barrier.wait()  # not held: returns at once
        assert await barrier.release() is False
        assert await barrier.hold() is True
        assert await barrier.hold() is False  # held already
        async with anyio.create_task_group() as tg:
            for index in range(3):
                tg.start_soon(waiter, index)
            for _ in range(5):
                await anyio.wait_all_tasks_blocked()
                await client.get(name)
            assert released == []
            assert await barrier.release() is True
        assert sorted(released) == [0, 1, 2]

        # Held with a lease: the end of the lease releases it.
        async with anyio.create_task_group() as tg, client.lease(10) as lease:
            assert await barrier.hold(lease=lease)
            tg.start_soon(waiter, 3)
            await anyio.wait_all_tasks_blocked()
            assert 3 not in released
        assert 3 in released
        assert await client.get(name) is None


# -- DoubleBarrier ------------------------------------------------------------------------------


async def test_double_barrier_n_participants_two_rounds(
    client: etcdanyio.Client, name: str
) -> None:
    count = 4
    log: list[tuple[str, int, int]] = []
    keys: list[bytes] = []

    async def participant(index: int, lock: DoubleBarrier) -> None:
        for round_ in range(2):
            log.append(("enter", round_, index))
            async with lock.enter() as entry:
                keys.append(entry.key)
                log.append(("in", round_, index))
                for _ in range(index):
                    await client.get(f"{name}/data")  # leave at different times
                log.append(("out", round_, index))
            log.append(("left", round_, index))

    with anyio.fail_after(BOUND):
        async with client.session(ttl=10) as session, anyio.create_task_group() as tg:
            for index in range(count):
                barrier = DoubleBarrier(
                    client, name, count, **({"session": session} if index % 2 else {"ttl": 10})
                )
                tg.start_soon(participant, index, barrier)
        assert await keys_under(client, f"{name}/") == []

    assert all(re.fullmatch(rb".*/waiters/\d+", key) for key in keys)
    for round_ in range(2):

        def where(event: str, round_: int = round_) -> list[int]:
            return [i for i, (e, r, _) in enumerate(log) if (e, r) == (event, round_)]

        assert len(where("in")) == count
        # Nobody is let in before everybody came, nobody leaves before everybody is done.
        assert max(where("enter")) < min(where("in")), log
        assert max(where("out")) < min(where("left")), log


async def test_double_barrier_refuses_one_too_many(client: etcdanyio.Client, name: str) -> None:
    inside = 0
    both_in = anyio.Event()
    go = anyio.Event()

    async def participant() -> None:
        nonlocal inside
        async with DoubleBarrier(client, name, 2, ttl=10).enter():
            inside += 1
            if inside == 2:
                both_in.set()
            await go.wait()

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as tg:
            tg.start_soon(participant)
            tg.start_soon(participant)
            await both_in.wait()
            with pytest.raises(BarrierFullError):
                async with DoubleBarrier(client, name, 2, ttl=10).enter():
                    pytest.fail("a third participant got into a barrier for two")
            assert len(await keys_under(client, f"{name}/waiters/")) == 2
            go.set()
        assert await keys_under(client, f"{name}/") == []


async def test_double_barrier_cancelled_entry_leaves_no_key(
    client: etcdanyio.Client, name: str
) -> None:
    barrier = DoubleBarrier(client, name, 3, ttl=10)

    async def participant() -> None:
        async with barrier.enter():
            pytest.fail("entered a barrier for three alone")

    with anyio.fail_after(BOUND):
        async with (
            anyio.create_task_group() as tg,
            client.watch(f"{name}/waiters/", prefix=True) as events,
        ):
            tg.start_soon(participant)
            await events.__anext__()  # it is waiting inside enter()
            tg.cancel_scope.cancel()
        assert await keys_under(client, f"{name}/") == []

    with pytest.raises(ValueError, match="count"):
        DoubleBarrier(client, name, 0)


async def test_double_barrier_lost_lease_ends_the_wait(client: etcdanyio.Client, name: str) -> None:
    entry = DoubleBarrier(client, name, 2, ttl=2).enter()
    caught: list[BaseException] = []

    async def wait_alone() -> None:
        async with entry:
            pytest.fail("entered a barrier for two alone")

    async def participant() -> None:
        with pytest.raises(LeaseExpiredError) as info:
            await wait_alone()
        caught.append(info.value)

    with anyio.fail_after(BOUND):
        async with (
            anyio.create_task_group() as tg,
            client.watch(f"{name}/waiters/", prefix=True) as events,
        ):
            tg.start_soon(participant)
            await events.__anext__()  # it is waiting inside enter()
            assert entry.lease is not None
            await client.lease_revoke(entry.lease.id)
        assert await keys_under(client, f"{name}/") == []
    assert [type(error) for error in caught] == [LeaseExpiredError]  # as itself, no group


# -- Queue --------------------------------------------------------------------------------------


async def test_queue_is_fifo_for_one_consumer(client: etcdanyio.Client, name: str) -> None:
    queue = Queue(client, name)
    items = [f"item-{i}".encode() for i in range(20)]
    with anyio.fail_after(BOUND):
        for item in items:
            await queue.enqueue(item)
        assert await queue.size() == 20
        assert all(re.fullmatch(rb".*/\d+", key) for key in await keys_under(client, f"{name}/"))
        assert [await queue.dequeue() for _ in items] == items
        assert await queue.size() == 0
        with pytest.raises(anyio.WouldBlock):
            await queue.dequeue_nowait()

        # An empty queue: dequeue waits for the next item.
        got: list[bytes] = []
        async with anyio.create_task_group() as tg:

            async def consumer() -> None:
                got.append(await queue.dequeue())

            tg.start_soon(consumer)
            for _ in range(3):
                await anyio.wait_all_tasks_blocked()
                await client.get(name)
            assert got == []
            await queue.enqueue("late")
        assert got == [b"late"]
        await queue.enqueue("")
        assert await queue.dequeue_nowait() == b""  # an empty value is an item too


async def test_queue_delivers_every_item_exactly_once(client: etcdanyio.Client, name: str) -> None:
    queue = Queue(client, name)
    producers, per_producer, consumers = 3, 30, 4
    total = producers * per_producer
    got: dict[int, list[bytes]] = {c: [] for c in range(consumers)}
    delivered = 0

    async def producer(p: int) -> None:
        for i in range(per_producer):
            await queue.enqueue(f"{p}:{i}")

    async def consumer(c: int, done: anyio.Event) -> None:
        nonlocal delivered
        while True:
            got[c].append(await queue.dequeue())
            delivered += 1
            if delivered == total:
                done.set()

    with anyio.fail_after(BOUND):
        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            for c in range(consumers):
                tg.start_soon(consumer, c, done)
            for p in range(producers):
                tg.start_soon(producer, p)
            await done.wait()
            tg.cancel_scope.cancel()
        assert await queue.size() == 0

    everything = [item for items in got.values() for item in items]
    assert sorted(everything) == sorted(
        f"{p}:{i}".encode() for p in range(producers) for i in range(per_producer)
    )
    # Each consumer sees each producer's items in the order they were produced.
    for items in got.values():
        for p in range(producers):
            mine = [int(item.split(b":")[1]) for item in items if item.startswith(b"%d:" % p)]
            assert mine == sorted(mine)


async def test_priority_queue_serves_by_priority_then_arrival(
    client: etcdanyio.Client, name: str
) -> None:
    queue = PriorityQueue(client, name)
    arrivals = [(5, "a"), (1, "b"), (3, "c"), (1, "d"), (0, "e"), (5, "f"), (3, "g")]
    with anyio.fail_after(BOUND):
        for priority, value in arrivals:
            await queue.enqueue(value, priority)
        assert f"{name}/00001/0000000000000001".encode() in await keys_under(client, f"{name}/")
        served = [await queue.dequeue() for _ in arrivals]
        assert served == [b"e", b"b", b"d", b"c", b"g", b"a", b"f"]

        got: list[bytes] = []
        async with anyio.create_task_group() as tg:

            async def consumer() -> None:
                got.append(await queue.dequeue())

            tg.start_soon(consumer)
            await anyio.wait_all_tasks_blocked()
            await queue.enqueue("late", 7)
        assert got == [b"late"]

    with pytest.raises(ValueError, match="priority"):
        await queue.enqueue("x", 70000)
    with pytest.raises(TypeError, match="priority"):
        await queue.enqueue("x", "1")  # type: ignore[arg-type]


# -- Found while building the recipes -----------------------------------------------------------


async def test_lock_with_its_own_lease_raises_lock_lost(
    client: etcdanyio.Client, name: str
) -> None:
    async def revoke_while_holding() -> None:
        async with client.lock(name, ttl=2) as lock:
            assert lock.lease is not None
            await client.lease_revoke(lock.lease.id)
            await anyio.sleep_forever()

    with anyio.fail_after(BOUND), pytest.raises(LeaseExpiredError) as info:
        await revoke_while_holding()
    assert type(info.value) is LockLostError

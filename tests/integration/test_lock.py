"""
Locks against a real etcd: mutual exclusion, FIFO fairness, fencing with ``is_owner()``, the lock
scenarios S34-S37 of reliability.md §2.6, shared sessions, interop with ``etcdctl lock`` both
ways, and the server-side v3lock service.

The queue under a lock's prefix is observed with a watch (each contender's PUT says it has
enqueued), so no test sleeps to wait for a state. Ground truth (keys and leases left behind) is
read with the JSON-gateway oracle, which shares no code with the client.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import uuid
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import etcdanyio
from etcdanyio import EventType, LeaseExpiredError, LockLostError, txn
from etcdanyio.testing import find_etcd_binary

from ._kit.faultproxy import FaultProxy, open_fault_proxy
from ._kit.oracle import Oracle

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from etcdanyio.testing import EtcdServer

from ._kit.helpers import ask

pytestmark = pytest.mark.integration

T = TypeVar("T")

#: Slack on the client's local deadline: scheduling, and the 2 ms poll of ``wait_answer``.
SLACK = 0.7


@pytest.fixture
def name() -> str:
    return f"test_lock/{uuid.uuid4().hex}"


@pytest.fixture
def oracle(etcd_server: EtcdServer) -> Oracle:
    return Oracle(etcd_server.endpoint)


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


async def next_put(events: etcdanyio.Watch) -> etcdanyio.KeyValue:
    """The next contender to enqueue: the next PUT under the watched prefix."""
    async for event in events:
        if event.type is EventType.PUT:
            return event.kv
    raise AssertionError("the watch ended")  # pragma: no cover


async def next_delete(events: etcdanyio.Watch) -> etcdanyio.KeyValue:
    """The next key to leave the queue."""
    async for event in events:
        if event.type is EventType.DELETE:
            return event.kv
    raise AssertionError("the watch ended")  # pragma: no cover


async def wait_answer(lease: etcdanyio.Lease, within: float = 3.0) -> float:
    """Wait until the client sees the next keepalive answer for ``lease``; return when."""
    before = lease.deadline
    with anyio.fail_after(within):
        while lease.deadline == before:  # noqa: ASYNC110 -- no event to wait on: poll, bounded
            await anyio.sleep(0.002)
    return anyio.current_time()


async def keys_under(oracle: Oracle, prefix: str) -> list[bytes]:
    return [kv.key for kv in await ask(oracle.range_prefix, prefix.encode())]


# -- etcdctl ------------------------------------------------------------------------------------


class Etcdctl:
    """A running ``etcdctl`` whose standard output is read line by line."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._stdout = BufferedByteReceiveStream(process.stdout)

    async def readline(self) -> bytes:
        return await self._stdout.receive_until(b"\n", 65536)

    def interrupt(self) -> None:
        """SIGTERM: etcdctl unlocks (or resigns) and exits."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)


@asynccontextmanager
async def etcdctl(endpoint: str, *args: str) -> AsyncIterator[Etcdctl]:
    """Run ``etcdctl --endpoints=endpoint args...`` for the block; stop it on exit."""
    argv = [find_etcd_binary("etcdctl"), f"--endpoints={endpoint}", "--dial-timeout=2s", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    env["ETCDCTL_API"] = "3"
    process = await anyio.open_process(argv, env=env, stderr=subprocess.DEVNULL)
    async with process:
        try:
            yield Etcdctl(process)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                if process.returncode is None:
                    process.terminate()
                await process.wait()
            if process.returncode is None:  # pragma: no cover -- stuck: do not leak it
                process.kill()


# -- exclusion, fairness, fencing ---------------------------------------------------------------


async def test_mutual_exclusion_among_tasks(client: etcdanyio.Client, name: str) -> None:
    inside = 0
    entries: list[tuple[int, int]] = []  # (task, lock revision) in order of entry
    fenced = name + "-fenced"

    async def contender(task: int) -> None:
        nonlocal inside
        for _ in range(3):
            async with client.lock(name, ttl=10) as lock:
                inside += 1
                try:
                    assert inside == 1, "two holders at once"
                    entries.append((task, lock.revision))
                    await anyio.lowlevel.checkpoint()  # let the others run while we hold it
                    result = await client.txn(
                        compare=[lock.is_owner()], success=[txn.put(fenced, b"%d" % task)]
                    )
                    assert result.succeeded
                finally:
                    inside -= 1

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for task in range(5):
                tg.start_soon(contender, task)
    assert len(entries) == 15
    revisions = [revision for _, revision in entries]
    assert revisions == sorted(revisions)
    assert len(set(revisions)) == 15


async def test_fifo_in_order_of_arrival(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    order: list[int] = []

    async def waiter(i: int) -> None:
        async with client.lock(name, ttl=10):
            order.append(i)

    with anyio.fail_after(10):
        async with (
            client.watch(name + "/", prefix=True) as events,
            anyio.create_task_group() as tg,
            client.lock(name, ttl=10) as holder,
        ):
            assert (await next_put(events)).key == holder.key
            revisions = []
            for i in range(5):
                tg.start_soon(waiter, i)
                kv = await next_put(events)  # waiter i is in the queue before i + 1 starts
                revisions.append(kv.create_revision)
            assert order == []  # nobody got in while the holder holds it
            assert len(await keys_under(oracle, name + "/")) == 6
            # Leaving the block releases the holder's lock; the task group then waits.
    assert order == [0, 1, 2, 3, 4]
    assert revisions == sorted(revisions)
    assert await keys_under(oracle, name + "/") == []


async def test_fenced_writes_with_is_owner(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    fenced = (name + "-fenced").encode()
    with anyio.fail_after(5):
        lock = client.lock(name, ttl=10)
        with pytest.raises(RuntimeError):
            lock.is_owner()  # not held yet
        async with lock:
            assert lock.lease is not None
            assert lock.key == b"%s/%x" % (name.encode(), lock.lease.id)
            found = await ask(oracle.range_prefix, lock.key)
            assert [(kv.key, kv.create_revision) for kv in found] == [(lock.key, lock.revision)]
            result = await client.txn(compare=[lock.is_owner()], success=[txn.put(fenced, b"1")])
            assert result.succeeded
            assert await ask(oracle.lease_keys, lock.lease.id) == [lock.key]
        assert await ask(oracle.get, lock.key) is None  # released on exit
        assert lock.lease.id not in await ask(oracle.leases)  # its own lease revoked
        stale = await client.txn(compare=[lock.is_owner()], success=[txn.put(fenced, b"2")])
        assert not stale.succeeded
        assert await ask(oracle.get, fenced) == (b"1", result.header.revision)


async def test_body_error_propagates_and_releases(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    with anyio.fail_after(5):
        with pytest.raises(KeyError, match="from the body"):
            async with client.lock(name, ttl=10):
                raise KeyError("from the body")
        assert await keys_under(oracle, name + "/") == []
        async with client.lock(name, ttl=10):  # free again at once
            pass


async def test_bad_lock_arguments(client: etcdanyio.Client) -> None:
    with anyio.fail_after(5):
        with pytest.raises(ValueError, match="empty"):
            client.lock("")
        with pytest.raises(TypeError):
            client.lock(5)  # type: ignore[arg-type]
        for timeout in (-1, math.nan, math.inf, -math.inf):  # 0 is a try-lock
            with pytest.raises(ValueError, match="timeout"):
                client.lock("test_lock/x", timeout=timeout)
        for wrong in (True, "1", 1j):
            with pytest.raises(TypeError, match="timeout"):
                client.lock("test_lock/x", timeout=wrong)  # type: ignore[arg-type]
        session = client.session(ttl=10)
        with pytest.raises(RuntimeError, match="not active"):  # made, but not entered
            async with client.lock("test_lock/x", session=session):
                pass  # pragma: no cover


async def test_session_must_be_a_lease(client: etcdanyio.Client) -> None:
    with anyio.fail_after(5):
        with pytest.raises(TypeError):
            async with client.lock("test_lock/x", session=5):  # type: ignore[arg-type]
                pass  # pragma: no cover
        with pytest.raises(TypeError):
            async with client.election("test_lock/x").campaign(
                b"v",
                session=5,  # type: ignore[arg-type]
            ):
                pass  # pragma: no cover


# -- S34-S37 ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_s34_lite_fenced_counter_with_a_reset(
    etcd_server: EtcdServer, name: str, oracle: Oracle
) -> None:
    """S34 lite: 5 holders x 10 fenced increments, each on its own client; one proxy reset."""
    holders, rounds = 5, 10
    counter = name + "-counter"
    ok = unknown = failed_attempts = inside = max_inside = 0
    reset_done = False

    async def holder(proxy: FaultProxy) -> None:
        nonlocal ok, unknown, failed_attempts, inside, max_inside, reset_done
        done = 0
        async with etcdanyio.open_etcd(proxy.endpoint) as client:
            while done < rounds:
                try:
                    async with client.lock(name, ttl=5) as lock:
                        inside += 1
                        max_inside = max(max_inside, inside)
                        try:
                            kv = await client.get(counter)
                            value = int(kv.value) if kv is not None else 0
                            try:
                                result = await client.txn(
                                    compare=[lock.is_owner()],
                                    success=[txn.put(counter, b"%d" % (value + 1))],
                                )
                            except (etcdanyio.EtcdError, TimeoutError):
                                unknown += 1  # may or may not have been applied
                                raise
                            if result.succeeded:
                                ok += 1
                                done += 1
                            if ok == holders * rounds // 2 and not reset_done:
                                reset_done = True
                                proxy.reset()  # every connection, half-way through
                        finally:
                            inside -= 1
                except (etcdanyio.EtcdError, TimeoutError):
                    failed_attempts += 1

    with anyio.fail_after(30):
        async with open_fault_proxy(etcd_server.endpoint) as proxy, anyio.create_task_group() as tg:
            for _ in range(holders):
                tg.start_soon(holder, proxy)
    assert reset_done
    assert max_inside == 1
    assert ok == holders * rounds
    found = await ask(oracle.get, counter.encode())
    assert found is not None
    assert ok <= int(found[0]) <= ok + unknown
    assert await keys_under(oracle, name + "/") == []


@pytest.mark.slow
async def test_s35_partitioned_holder_loses_the_lock_before_the_waiter_gets_it(
    etcd_server: EtcdServer, name: str, oracle: Oracle
) -> None:
    """S35: the holder's proxy blackholed for TTL + 1 s while another waits."""
    ttl = 2
    fenced = name + "-fenced"
    times: dict[str, float] = {}
    outcome: list[BaseException] = []
    holder_key: list[bytes] = []
    waiter_saw: list[object] = []
    holder_in, holder_done, waiter_done = anyio.Event(), anyio.Event(), anyio.Event()
    holder_lock: etcdanyio.Lock | None = None

    async def holder(client: etcdanyio.Client) -> None:
        nonlocal holder_lock
        holder_lock = client.lock(name, ttl=ttl)
        try:
            async with holder_lock as lock:
                holder_key.append(lock.key)
                holder_in.set()
                try:
                    await anyio.sleep_forever()
                finally:
                    times["cancelled"] = anyio.current_time()
        except LockLostError as exc:
            outcome.append(exc)
        times["raised"] = anyio.current_time()
        holder_done.set()

    async def waiter(client: etcdanyio.Client) -> None:
        async with client.lock(name, ttl=10) as lock:
            times["waiter_in"] = anyio.current_time()
            waiter_saw.append(await ask(oracle.get, holder_key[0]))
            result = await client.txn(compare=[lock.is_owner()], success=[txn.put(fenced, "w")])
            waiter_saw.append(result.succeeded)
        waiter_done.set()

    with anyio.fail_after(20):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as holder_client,
            etcdanyio.open_etcd(etcd_server.endpoint) as waiter_client,
            waiter_client.watch(name + "/", prefix=True) as events,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(holder, holder_client)
            await holder_in.wait()
            assert (await next_put(events)).key == holder_key[0]
            tg.start_soon(waiter, waiter_client)
            await next_put(events)  # the waiter is queued behind the holder
            assert holder_lock is not None
            assert holder_lock.lease is not None
            answered = await wait_answer(holder_lock.lease)
            proxy.set_mode("blackhole")
            await anyio.sleep(ttl + 1)  # the fault's duration
            proxy.heal()
            proxy.cut()  # the blackholed connection lost bytes: go on with a fresh one
            await waiter_done.wait()
            await holder_done.wait()
            # A read (retried) first: it lets the client notice the cut connection, so
            # the write below is not lost with it (a sent write is never retried).
            await holder_client.get(fenced)
            # The old holder's fenced write, after healing, fails its compare.
            stale = await holder_client.txn(
                compare=[holder_lock.is_owner()], success=[txn.put(fenced, "stale")]
            )
            assert not stale.succeeded
    assert [type(exc) for exc in outcome] == [LockLostError], outcome
    assert ttl - 0.05 <= times["cancelled"] - answered <= ttl + SLACK
    assert times["cancelled"] < times["waiter_in"]  # the holder knew before the waiter got in
    assert waiter_saw == [None, True]  # the holder's key was gone when the waiter got in
    found = await ask(oracle.get, fenced.encode())
    assert found is not None
    assert found[0] == b"w"
    assert await keys_under(oracle, name + "/") == []
    assert times["raised"] - answered <= ttl + SLACK, (
        f"LockLostError raised {times['raised'] - answered:.2f} s after the last answer"
    )


async def test_s36_cancelled_waiters_leave_no_key_and_no_lease(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    """S36: waiters cancelled by fail_after(0.3) and by timeout= while another holds."""
    with anyio.fail_after(10):
        async with (
            client.watch(name + "/", prefix=True) as events,
            client.lock(name, ttl=10) as holder,
        ):
            assert (await next_put(events)).key == holder.key
            by_scope = client.lock(name, ttl=10)
            with pytest.raises(TimeoutError), anyio.fail_after(0.3):
                async with by_scope:
                    pytest.fail("entered while another holds the lock")  # pragma: no cover
            by_timeout = client.lock(name, ttl=10, timeout=0.3)
            start = anyio.current_time()
            with pytest.raises(TimeoutError):
                async with by_timeout:
                    pytest.fail("entered while another holds the lock")  # pragma: no cover
            assert 0.3 <= anyio.current_time() - start < 2.5
            for waiter in (by_scope, by_timeout):
                # It was queued, then left the queue; its lease is revoked.
                assert waiter.lease is not None
                put = await next_put(events)
                assert put.key == waiter.key
                assert put.lease == waiter.lease.id
                assert (await next_delete(events)).key == waiter.key
                assert waiter.lease.id not in await ask(oracle.leases)
            assert await keys_under(oracle, name + "/") == [holder.key]


async def test_s37_waiter_whose_lease_is_revoked_never_enters(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    """S37: the waiter's lease is revoked, then the holder leaves: the waiter must not enter."""
    entered = False
    outcome: list[BaseException] = []

    async def waiter() -> None:
        nonlocal entered
        try:
            async with client.lock(name, ttl=30):
                entered = True
        except LeaseExpiredError as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with (
            client.watch(name + "/", prefix=True) as events,
            anyio.create_task_group() as tg,
            client.lock(name, ttl=30) as holder,
        ):
            assert (await next_put(events)).key == holder.key
            tg.start_soon(waiter)
            queued = await next_put(events)
            await ask(oracle.lease_revoke, queued.lease)
            assert (await next_delete(events)).key == queued.key
            # Leaving releases the holder: the waiter would be next, had its lease lived.
    assert not entered
    assert len(outcome) == 1, outcome
    assert isinstance(outcome[0], LeaseExpiredError)
    assert outcome[0].lease_id == queued.lease
    assert await keys_under(oracle, name + "/") == []


async def test_lock_lost_while_held_cancels_the_body(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    """The lock's lease revoked elsewhere while held: body cancelled, LockLostError as itself."""
    ttl = 2
    completed = False
    error: LockLostError | None = None
    with anyio.fail_after(10):
        try:
            async with client.lock(name, ttl=ttl) as lock:
                assert lock.lease is not None
                await ask(oracle.lease_revoke, lock.lease.id)
                revoked = anyio.current_time()
                await anyio.sleep(ttl)  # longer than it may take to notice
                completed = True
        except LockLostError as exc:  # as itself: an ExceptionGroup fails the test
            error = exc
        assert type(error) is LockLostError, repr(error)
        assert lock.lease is not None
        assert error.lease_id == lock.lease.id
        assert anyio.current_time() - revoked <= ttl / 3 + 0.5
        assert not completed
        assert await keys_under(oracle, name + "/") == []


async def test_session_shared_by_two_locks(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    """
    Two locks on one session; losing it cancels both (each raises LockLostError) and the
    session's own block raises LeaseExpiredError.

    The locks run in tasks outside the session's block: inside it, they are cancelled along
    with the whole block, and only the session reports the loss.
    """
    ttl = 2
    lost: list[LockLostError] = []
    keys: list[bytes] = []
    revoked = 0.0

    async def hold(lock_name: str, session: etcdanyio.Lease, *, task_status: Any) -> None:
        try:
            async with client.lock(lock_name, session=session) as lock:
                assert lock.lease is session
                keys.append(lock.key)
                task_status.started()
                await anyio.sleep_forever()
        except LockLostError as exc:
            lost.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            error: LeaseExpiredError | None = None
            try:
                async with client.session(ttl=ttl) as session:
                    # Leaving a lock leaves its session alone.
                    async with client.lock(name + "-c", session=session):
                        pass
                    assert session.lost is None
                    assert session.id in await ask(oracle.leases)
                    await tg.start(hold, name + "-a", session)
                    await tg.start(hold, name + "-b", session)
                    assert sorted(await ask(oracle.lease_keys, session.id)) == sorted(keys)
                    await ask(oracle.lease_revoke, session.id)
                    revoked = anyio.current_time()
                    await anyio.sleep_forever()
            except LeaseExpiredError as exc:
                error = exc
            assert type(error) is LeaseExpiredError, repr(error)
            assert error.lease_id == session.id
            assert anyio.current_time() - revoked <= ttl / 3 + 0.5
        assert [type(exc) for exc in lost] == [LockLostError, LockLostError], lost
        assert [exc.lease_id for exc in lost] == [session.id, session.id]
        for lock_name in ("-a", "-b", "-c"):
            assert await keys_under(oracle, name + lock_name + "/") == []


async def test_one_session_two_tasks_one_lock(client: etcdanyio.Client, name: str) -> None:
    """'At most one holder at a time' also holds for two tasks sharing a session."""
    first_in, release_first, second_in = anyio.Event(), anyio.Event(), anyio.Event()
    both_inside = False

    async def hold(session: etcdanyio.Lease, entered: anyio.Event, release: anyio.Event) -> None:
        async with client.lock(name, session=session):
            entered.set()
            await release.wait()

    with anyio.fail_after(10):
        async with client.session(ttl=10) as session, anyio.create_task_group() as tg:
            tg.start_soon(hold, session, first_in, release_first)
            await first_in.wait()
            released = anyio.Event()
            released.set()
            tg.start_soon(hold, session, second_in, released)
            with anyio.move_on_after(0.3):  # a window in which the second must not get in
                await second_in.wait()
            both_inside = second_in.is_set()
            release_first.set()
            await second_in.wait()  # it gets in after the first leaves
    assert not both_inside, "both tasks held the lock at the same time"


# -- interop with etcdctl -----------------------------------------------------------------------


async def test_etcdctl_lock_excludes_ours(
    etcd_server: EtcdServer, client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    entered: list[object] = []

    async def ours(theirs: bytes) -> None:
        async with client.lock(name, ttl=10):
            entered.append(await ask(oracle.get, theirs))

    with anyio.fail_after(15):
        async with (
            client.watch(name + "/", prefix=True) as events,
            etcdctl(etcd_server.endpoint, "lock", name) as ctl,
        ):
            theirs = await ctl.readline()  # etcdctl prints its key once it holds the lock
            assert theirs.startswith(name.encode() + b"/")
            assert (await next_put(events)).key == theirs
            async with anyio.create_task_group() as tg:
                tg.start_soon(ours, theirs)
                await next_put(events)  # we are queued behind etcdctl
                await anyio.sleep(0.3)  # a window in which we must not get in
                assert entered == []
                ctl.interrupt()  # etcdctl unlocks and exits
                assert (await next_delete(events)).key == theirs
    assert entered == [None]  # we got in only after etcdctl's key was gone


async def test_our_lock_excludes_etcdctl(
    etcd_server: EtcdServer, client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    release, printed = anyio.Event(), anyio.Event()
    seen: list[object] = []

    async def hold(*, task_status: anyio.abc.TaskStatus[etcdanyio.Lock]) -> None:
        async with client.lock(name, ttl=10) as lock:
            task_status.started(lock)
            await release.wait()

    async def read(ctl: Etcdctl) -> None:
        line = await ctl.readline()  # etcdctl prints its key once it holds the lock
        seen.append(line)
        seen.append(await keys_under(oracle, name + "/"))
        printed.set()

    with anyio.fail_after(15):
        async with (
            client.watch(name + "/", prefix=True) as events,
            anyio.create_task_group() as tg,
        ):
            lock = await tg.start(hold)
            assert (await next_put(events)).key == lock.key
            async with etcdctl(etcd_server.endpoint, "lock", name) as ctl:
                tg.start_soon(read, ctl)
                theirs = await next_put(events)  # etcdctl is queued behind us
                assert theirs.create_revision > lock.revision
                await anyio.sleep(0.3)  # a window in which etcdctl must not get in
                assert seen == []
                release.set()
                await printed.wait()
                ctl.interrupt()
    assert seen == [theirs.key, [theirs.key]]  # etcdctl got in once ours was gone


# -- the v3lock service -------------------------------------------------------------------------


async def test_v3lock_acquire_release_and_cancelled_waiter(
    client: etcdanyio.Client, name: str, oracle: Oracle
) -> None:
    with anyio.fail_after(10):
        with pytest.raises(ValueError, match="lease"):
            await client.lock_acquire(name, lease=0)
        with pytest.raises(ValueError, match="empty"):
            await client.lock_acquire("", lease=1)
        async with (
            client.lease(ttl=10) as first,
            client.lease(ttl=10) as second,
            client.watch(name + "/", prefix=True) as events,
        ):
            key = await client.lock_acquire(name, lease=first)
            assert key == b"%s/%x" % (name.encode(), first.id)
            assert (await next_put(events)).key == key
            assert await client.lock_acquire(name, lease=first.id) == key  # same lease: re-entry

            # A waiting lock_acquire, cancelled: etcd removes its key.
            async with anyio.create_task_group() as tg:

                async def wait_for_lock() -> None:
                    await client.lock_acquire(name, lease=second)
                    pytest.fail("acquired while the lock is held")  # pragma: no cover

                tg.start_soon(wait_for_lock)
                waiting = await next_put(events)
                assert waiting.lease == second.id
                tg.cancel_scope.cancel()
            assert (await next_delete(events)).key == waiting.key
            assert await keys_under(oracle, name + "/") == [key]

            # client.lock() uses the same queue: it cannot get in either.
            with pytest.raises(TimeoutError):
                async with client.lock(name, ttl=10, timeout=0.3):
                    pytest.fail("entered a lock held through v3lock")  # pragma: no cover

            await client.lock_release(key)
            assert await keys_under(oracle, name + "/") == []
            other = await client.lock_acquire(name, lease=second)  # free now
            assert other == b"%s/%x" % (name.encode(), second.id)
            await client.lock_release(other)
        assert await keys_under(oracle, name + "/") == []

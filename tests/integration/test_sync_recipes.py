"""
The recipes of ``etcdanyio.sync.recipes`` against real etcd, on both loops: queues across
threads, a barrier, a read/write lock, a double barrier of three threads, a matching watch.
"""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

import pytest

import etcdanyio.sync
from etcdanyio.sync.recipes import (
    Barrier,
    DoubleBarrier,
    PriorityQueue,
    Queue,
    RWLock,
    watch_matching,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from etcdanyio.testing import EtcdServer

pytestmark = pytest.mark.integration


@pytest.fixture(params=["asyncio", "trio"])
def client(
    etcd_server: EtcdServer, request: pytest.FixtureRequest
) -> Iterator[etcdanyio.sync.Client]:
    with etcdanyio.sync.open_etcd(
        etcd_server.endpoints, backend=request.param, timeout=10
    ) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    return f"test_sync_recipes/{uuid.uuid4().hex}/"


def test_queues(client: etcdanyio.sync.Client, prefix: str) -> None:
    queue = Queue(client, prefix + "q")
    taken: list[bytes] = []
    consumer = threading.Thread(target=lambda: taken.extend(queue.dequeue() for _ in range(3)))
    consumer.start()
    for item in ("a", "b", "c"):
        queue.enqueue(item)
    consumer.join(20)
    assert taken == [b"a", b"b", b"c"]
    assert queue.size() == 0
    with pytest.raises(TimeoutError):
        queue.dequeue(timeout=0.2)
    priority = PriorityQueue(client, prefix + "p")
    priority.enqueue("low", 5)
    priority.enqueue("high", 1)
    assert [priority.dequeue(), priority.dequeue()] == [b"high", b"low"]


def test_barrier(client: etcdanyio.sync.Client, prefix: str) -> None:
    barrier = Barrier(client, prefix + "b")
    assert barrier.hold()
    assert not barrier.hold()
    passed = threading.Event()

    def wait() -> None:
        barrier.wait(timeout=20)
        passed.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not passed.wait(0.2)  # held: the waiter waits
    assert barrier.release()
    waiter.join(20)
    assert passed.is_set()


def test_rwlock(client: etcdanyio.sync.Client, prefix: str) -> None:
    lock = RWLock(client, prefix + "rw", ttl=10)
    with lock.read() as first, lock.read() as second:
        assert first.mode == second.mode == "read"
        with pytest.raises(TimeoutError), lock.write(timeout=0.3):
            pass
        assert client.txn(compare=[first.is_owner(), second.is_owner()]).succeeded
    with lock.write(timeout=10) as writer:
        assert writer.mode == "write"
        with pytest.raises(TimeoutError), lock.read(timeout=0.3):
            pass
    assert client.get_prefix(prefix + "rw/").kvs == []


def test_double_barrier(client: etcdanyio.sync.Client, prefix: str) -> None:
    barrier = DoubleBarrier(client, prefix + "db", 3, ttl=10)
    inside = threading.Barrier(3, timeout=20)
    errors: list[BaseException] = []

    def participant() -> None:
        try:
            with barrier.enter():
                inside.wait()  # all three are in at once
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=participant) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []


def test_watch_matching(client: etcdanyio.sync.Client, prefix: str) -> None:
    with watch_matching(client, prefix, rf"{prefix}jobs/[0-9]+/done$") as events:
        client.put(prefix + "jobs/1/started", "x")
        client.put(prefix + "jobs/1/done", "y")
        event = events.get(timeout=10)
        assert event is not None
        assert event.kv.key == (prefix + "jobs/1/done").encode()
        assert events.get(timeout=0.1) is None

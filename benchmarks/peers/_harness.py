"""
The workloads every driver runs, their timing, and the JSON line they print.

This module runs inside each peer's own virtual environment, so it imports the
standard library only. A driver wraps its client in a small adapter (an
:class:`AsyncPeer` or a :class:`SyncPeer`: put, get, compare-and-swap, ...) and
hands it to :func:`run_async` or :func:`run_sync`; the loops, the concurrency,
the watch bookkeeping and the measurement are all here, so every client runs
exactly the same workload shape.

What is measured, between ``Timer.start()`` and ``Timer.stop()``:

- wall time (``time.perf_counter``) and this process's CPU time
  (``time.process_time``: user + system, every thread, so grpcio's C-core
  threads and a synchronous client's worker threads count too; etcd's does not);
- after the workload, the process's peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``):
  interpreter, libraries, connections and whatever the workload needed.

Setup that is not the workload (the initial value of the compare-and-swap key,
creating watchers) happens outside the timer; one short warm-up run precedes
every measured run except the watch ones, whose sentinel round-trip warms the
path instead.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.metadata
import json
import os
import resource
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
    from contextlib import AbstractAsyncContextManager, AbstractContextManager

VALUE = b"v" * 64
#: concurrent workloads: this many callers share one client
CONCURRENCY = 64
#: watch workloads: events are written in transactions of this many puts (one revision
#: each), by this many concurrent writers, so that etcd's commit latency (fsync) does not
#: cap the rate of events below what the clients can take
WATCH_TXN = 100
WATCH_WRITERS = 8
SERIAL_KEYS = 100
RANGE_PREFIX = b"bench/range/"
RANGE_KEYS = 10_000
#: every watcher must have seen the sentinel within this; the events, within WATCH_DEADLINE
SENTINEL_WAIT = 0.2
WATCH_DEADLINE = 120.0
LEASE_TTL = 60

WORKLOADS = (
    "serial-put",
    "serial-get",
    "concurrent-put",
    "concurrent-get",
    "txn-cas",
    "lease",
    "watch-1",
    "watch-100",
    "range-10k",
)


def serial_key(i: int) -> bytes:
    """The keys of the serial and concurrent gets (written by the runner beforehand)."""
    return b"bench/serial/%d" % (i % SERIAL_KEYS)


def concurrent_key(i: int) -> bytes:
    return b"bench/concurrent/%d" % (i % 1000)


def range_key(i: int) -> bytes:
    """The keys of the range read (written by the runner beforehand)."""
    return RANGE_PREFIX + b"%05d" % i


def cas_value(i: int) -> bytes:
    return b"%064d" % i  # 64 bytes, like every other value


class AsyncPeer(Protocol):
    """What an asynchronous driver adapts its client to. Keys and values are bytes."""

    async def put(self, key: bytes, value: bytes) -> None: ...

    async def get(self, key: bytes) -> None:
        """A linearizable get, unless the driver marks ``serial-get`` incomparable."""

    async def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        """One transaction: if the value is ``old``, put ``new``; ``True`` if it did."""

    async def lease_grant_revoke(self) -> None: ...

    async def read_range(self, prefix: bytes) -> int:
        """Get every key under ``prefix``, touch each key and value; return how many."""

    async def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Put all ``items`` in one transaction (the watch workloads' writer)."""

    def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> AbstractAsyncContextManager[None]:
        """
        Run ``count`` watchers of ``prefix`` for the duration of the block; each
        touches every event's key and value, as a real consumer would (some
        clients decode lazily), and calls ``deliver(index, n)`` for the ``n``
        events it is handed at once (1 for clients that hand out single events,
        a response's worth for the others).
        """


class SyncPeer(Protocol):
    """What a synchronous driver adapts its client to; the same calls, blocking."""

    def put(self, key: bytes, value: bytes) -> None: ...
    def get(self, key: bytes) -> None: ...
    def cas(self, key: bytes, old: bytes, new: bytes) -> bool: ...
    def lease_grant_revoke(self) -> None: ...
    def read_range(self, prefix: bytes) -> int: ...
    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None: ...

    def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> AbstractContextManager[None]:
        """As :meth:`AsyncPeer.watchers`; ``deliver`` may be called from any thread."""


class AsyncEvent(Protocol):
    def set(self) -> None: ...
    async def wait(self) -> object: ...


class AsyncLoop(Protocol):
    """The little of an event loop the async workloads need: asyncio's, or anyio's."""

    async def gather(self, jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None: ...
    def event(self) -> AsyncEvent: ...
    async def wait(self, event: AsyncEvent, limit: float) -> bool: ...
    async def sleep(self, seconds: float) -> None: ...


class AsyncioLoop:
    """:class:`AsyncLoop` on plain asyncio, for the peers (none of them use anyio)."""

    async def gather(self, jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        await asyncio.gather(*(job() for job in jobs))

    def event(self) -> AsyncEvent:
        return asyncio.Event()

    async def wait(self, event: AsyncEvent, limit: float) -> bool:
        try:
            await asyncio.wait_for(event.wait(), limit)
        except asyncio.TimeoutError:
            return False
        return True

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Settable(Protocol):
    def set(self) -> None: ...


class Timer:
    """
    Wall and process CPU seconds between :meth:`start` and :meth:`stop`.

    :param limit: after this many seconds :meth:`expired` says so, and the
        loops that can stop early (all but the watch ones) stop, so that a slow
        client cannot stretch the whole run; they count the operations they did
    """

    def __init__(self, limit: float = float("inf")) -> None:
        self.wall = self.cpu = 0.0
        self._wall = self._cpu = 0.0
        self._limit = limit
        self._deadline = float("inf")

    def start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        self._deadline = self._wall + self._limit

    def expired(self) -> bool:
        return time.perf_counter() > self._deadline

    def stop(self) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall


class Deliveries:
    """
    Counts watch deliveries per watcher: ``all_seen`` is set once every watcher
    got something (the sentinel), ``done`` once the expected total arrived.

    Thread-safe when given a lock (synchronous clients deliver from their own
    threads); the asynchronous ones deliver on the event loop and need none.
    """

    def __init__(self, watchers: int, all_seen: Settable, lock: threading.Lock | None) -> None:
        self.counts = [0] * watchers
        self.unseen = watchers
        self.total = 0
        self.target = 0
        self.baseline = 0
        self._all_seen = all_seen
        self._done: Settable | None = None
        self._lock = lock

    def __call__(self, index: int, n: int) -> None:
        if self._lock is None:
            self._add(index, n)
        else:
            with self._lock:
                self._add(index, n)

    def _add(self, index: int, n: int) -> None:
        if not self.counts[index]:
            self.unseen -= 1
            if not self.unseen:
                self._all_seen.set()
        self.counts[index] += n
        self.total += n
        if self._done is not None and self.total >= self.target:
            self._done.set()

    def expect(self, more: int, done: Settable) -> None:
        """From now on, set ``done`` once ``more`` further events have arrived."""
        if self._lock is None:
            self.baseline, self.target, self._done = self.total, self.total + more, done
        else:
            with self._lock:
                self.baseline, self.target, self._done = self.total, self.total + more, done

    def missing(self) -> str:
        return f"{self.total - self.baseline} of {self.target - self.baseline} events arrived"


def _watch_prefix() -> bytes:
    return b"bench/watch/%d-%d/" % (os.getpid(), time.monotonic_ns())


def _watch_batches(prefix: bytes, events: int) -> list[list[tuple[bytes, bytes]]]:
    keys = [prefix + b"%08d" % i for i in range(events)]
    return [[(k, VALUE) for k in keys[s : s + WATCH_TXN]] for s in range(0, events, WATCH_TXN)]


# ----------------------------------------------------------------- asynchronous


async def _serial_async(op: Callable[[int], Awaitable[object]], timer: Timer, n: int) -> int:
    done = 0
    timer.start()
    while done < n:
        await op(done)
        done += 1
        if timer.expired():
            break
    timer.stop()
    return done


async def _concurrent_async(
    loop: AsyncLoop, op: Callable[[int], Awaitable[object]], timer: Timer, n: int
) -> int:
    per_task = max(1, n // CONCURRENCY)
    done = [0] * CONCURRENCY

    async def worker(task: int) -> None:
        for i in range(task * per_task, (task + 1) * per_task):
            await op(i)
            done[task] += 1
            if timer.expired():
                break

    jobs = [functools.partial(worker, task) for task in range(CONCURRENCY)]
    timer.start()
    await loop.gather(jobs)
    timer.stop()
    return sum(done)


async def _cas_async(peer: AsyncPeer, timer: Timer, n: int) -> int:
    key = b"bench/cas/%d-%d" % (os.getpid(), time.monotonic_ns())
    await peer.put(key, cas_value(0))
    done = 0
    timer.start()
    while done < n:
        if not await peer.cas(key, cas_value(done), cas_value(done + 1)):
            raise RuntimeError(f"compare-and-swap {done} failed")
        done += 1
        if timer.expired():
            break
    timer.stop()
    return done


async def _range_async(peer: AsyncPeer, timer: Timer, n: int) -> int:
    done = 0
    timer.start()
    while done < n:
        if (got := await peer.read_range(RANGE_PREFIX)) != RANGE_KEYS:
            raise RuntimeError(f"range read returned {got} keys, expected {RANGE_KEYS}")
        done += 1
        if timer.expired():
            break
    timer.stop()
    return done


async def _watch_async(
    peer: AsyncPeer, loop: AsyncLoop, timer: Timer, watchers: int, events: int
) -> int:
    prefix = _watch_prefix()
    batches = _watch_batches(prefix, events)
    all_seen, done = loop.event(), loop.event()
    deliveries = Deliveries(watchers, all_seen, None)
    async with peer.watchers(prefix, watchers, deliveries):
        # Some clients cannot tell when the server confirmed a watch: write a
        # sentinel until every watcher has seen one, then (if it took several)
        # let the stragglers land before counting from a baseline.
        for attempt in range(100):
            await peer.put(prefix + b"~sentinel", b"%d" % attempt)
            if await loop.wait(all_seen, SENTINEL_WAIT):
                break
        else:
            raise RuntimeError(f"{deliveries.unseen} of {watchers} watchers saw no sentinel")
        if attempt:
            await loop.sleep(SENTINEL_WAIT)
        deliveries.expect(watchers * events, done)

        async def write(first: int) -> None:
            for batch in batches[first::WATCH_WRITERS]:
                await peer.put_many(batch)

        writers = [functools.partial(write, first) for first in range(WATCH_WRITERS)]
        timer.start()
        await loop.gather(writers)
        if not await loop.wait(done, WATCH_DEADLINE):
            raise RuntimeError(deliveries.missing())
        timer.stop()
    return watchers * events


async def _run_async_workload(
    peer: AsyncPeer, loop: AsyncLoop, workload: str, timer: Timer, n: int
) -> int:
    async def put(i: int) -> None:
        await peer.put(serial_key(i), VALUE)

    async def put_concurrent(i: int) -> None:
        await peer.put(concurrent_key(i), VALUE)

    async def get(i: int) -> None:
        await peer.get(serial_key(i))

    async def lease(_: int) -> None:
        await peer.lease_grant_revoke()

    if workload == "serial-put":
        return await _serial_async(put, timer, n)
    if workload == "serial-get":
        return await _serial_async(get, timer, n)
    if workload == "concurrent-put":
        return await _concurrent_async(loop, put_concurrent, timer, n)
    if workload == "concurrent-get":
        return await _concurrent_async(loop, get, timer, n)
    if workload == "txn-cas":
        return await _cas_async(peer, timer, n)
    if workload == "lease":
        return await _serial_async(lease, timer, n)
    if workload == "watch-1":
        return await _watch_async(peer, loop, timer, 1, n)
    if workload == "watch-100":
        return await _watch_async(peer, loop, timer, 100, n)
    if workload == "range-10k":
        return await _range_async(peer, timer, n)
    raise ValueError(f"unknown workload {workload!r}")


async def run_async(
    peer: AsyncPeer, loop: AsyncLoop, args: argparse.Namespace, info: DriverInfo
) -> NoReturn:
    """Warm up, run ``args.workload`` once measured, print its JSON line, exit."""
    if args.workload in info.unsupported:
        emit_unsupported(args.workload, info)
    if not args.workload.startswith("watch"):
        warm_up = Timer(args.max_seconds / 10)
        await _run_async_workload(peer, loop, args.workload, warm_up, warm_up_ops(args.ops))
    timer = Timer(args.max_seconds)
    ops = await _run_async_workload(peer, loop, args.workload, timer, args.ops)
    emit(args.workload, ops, timer, info)


# ------------------------------------------------------------------ synchronous


def _serial_sync(op: Callable[[int], object], timer: Timer, n: int) -> int:
    done = 0
    timer.start()
    while done < n:
        op(done)
        done += 1
        if timer.expired():
            break
    timer.stop()
    return done


def _concurrent_threads(op: Callable[[int], object], timer: Timer, n: int) -> int:
    """CONCURRENCY threads, started before the timer and released together."""
    per_thread = max(1, n // CONCURRENCY)
    done = [0] * CONCURRENCY
    go = threading.Event()
    errors: list[BaseException] = []

    def worker(task: int) -> None:
        go.wait()
        try:
            for i in range(task * per_thread, (task + 1) * per_thread):
                op(i)
                done[task] += 1
                if timer.expired():
                    break
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(CONCURRENCY)]
    for thread in threads:
        thread.start()
    timer.start()
    go.set()
    for thread in threads:
        thread.join()
    timer.stop()
    if errors:
        raise errors[0]
    return sum(done)


def _cas_sync(peer: SyncPeer, timer: Timer, n: int) -> int:
    key = b"bench/cas/%d-%d" % (os.getpid(), time.monotonic_ns())
    peer.put(key, cas_value(0))
    done = 0
    timer.start()
    while done < n:
        if not peer.cas(key, cas_value(done), cas_value(done + 1)):
            raise RuntimeError(f"compare-and-swap {done} failed")
        done += 1
        if timer.expired():
            break
    timer.stop()
    return done


def _range_sync(peer: SyncPeer, timer: Timer, n: int) -> int:
    done = 0
    timer.start()
    while done < n:
        if (got := peer.read_range(RANGE_PREFIX)) != RANGE_KEYS:
            raise RuntimeError(f"range read returned {got} keys, expected {RANGE_KEYS}")
        done += 1
        if timer.expired():
            break
    timer.stop()
    return done


def _watch_sync(peer: SyncPeer, timer: Timer, watchers: int, events: int) -> int:
    prefix = _watch_prefix()
    batches = _watch_batches(prefix, events)
    all_seen, done = threading.Event(), threading.Event()
    deliveries = Deliveries(watchers, all_seen, threading.Lock())
    with peer.watchers(prefix, watchers, deliveries):
        for attempt in range(100):  # see _watch_async
            peer.put(prefix + b"~sentinel", b"%d" % attempt)
            if all_seen.wait(SENTINEL_WAIT):
                break
        else:
            raise RuntimeError(f"{deliveries.unseen} of {watchers} watchers saw no sentinel")
        if attempt:
            time.sleep(SENTINEL_WAIT)
        deliveries.expect(watchers * events, done)
        errors: list[BaseException] = []

        def write(first: int) -> None:
            try:
                for batch in batches[first::WATCH_WRITERS]:
                    peer.put_many(batch)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        writers = [threading.Thread(target=write, args=(k,)) for k in range(WATCH_WRITERS)]
        timer.start()
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        if errors:
            raise errors[0]
        if not done.wait(WATCH_DEADLINE):
            raise RuntimeError(deliveries.missing())
        timer.stop()
    return watchers * events


def _run_sync_workload(peer: SyncPeer, workload: str, timer: Timer, n: int) -> int:
    def put(i: int) -> None:
        peer.put(serial_key(i), VALUE)

    def put_concurrent(i: int) -> None:
        peer.put(concurrent_key(i), VALUE)

    def get(i: int) -> None:
        peer.get(serial_key(i))

    def lease(_: int) -> None:
        peer.lease_grant_revoke()

    if workload == "serial-put":
        return _serial_sync(put, timer, n)
    if workload == "serial-get":
        return _serial_sync(get, timer, n)
    if workload == "concurrent-put":
        return _concurrent_threads(put_concurrent, timer, n)
    if workload == "concurrent-get":
        return _concurrent_threads(get, timer, n)
    if workload == "txn-cas":
        return _cas_sync(peer, timer, n)
    if workload == "lease":
        return _serial_sync(lease, timer, n)
    if workload == "watch-1":
        return _watch_sync(peer, timer, 1, n)
    if workload == "watch-100":
        return _watch_sync(peer, timer, 100, n)
    if workload == "range-10k":
        return _range_sync(peer, timer, n)
    raise ValueError(f"unknown workload {workload!r}")


def run_sync(peer: SyncPeer, args: argparse.Namespace, info: DriverInfo) -> NoReturn:
    """As :func:`run_async`, for a blocking client; concurrency uses threads."""
    if args.workload in info.unsupported:
        emit_unsupported(args.workload, info)
    if not args.workload.startswith("watch"):
        warm_up = Timer(args.max_seconds / 10)
        _run_sync_workload(peer, args.workload, warm_up, warm_up_ops(args.ops))
    timer = Timer(args.max_seconds)
    ops = _run_sync_workload(peer, args.workload, timer, args.ops)
    emit(args.workload, ops, timer, info)


# -------------------------------------------------------------- command line


class DriverInfo:
    """
    What a driver says about its client, printed with every result.

    :param distributions: the installed distributions whose versions to report
    :param notes: workload -> caveat shown in the table
    :param unsupported: workload -> why the client cannot run it ("n/a")
    :param incomparable: workloads this client runs with weaker semantics, so
        they are not counted when choosing the best peer
    """

    def __init__(
        self,
        distributions: Sequence[str],
        *,
        notes: Mapping[str, str] | None = None,
        unsupported: Mapping[str, str] | None = None,
        incomparable: Collection[str] = (),
    ) -> None:
        self.distributions = tuple(distributions)
        self.notes = dict(notes or {})
        self.unsupported = dict(unsupported or {})
        self.incomparable = frozenset(incomparable)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run one benchmark workload, print JSON.")
    parser.add_argument("--endpoint", default="http://127.0.0.1:2379", help="etcd client URL")
    parser.add_argument("--workload", choices=(*WORKLOADS, "versions"), default="versions")
    parser.add_argument("--ops", type=int, default=1000, help="operations (watch: events)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=float("inf"),
        help="stop a measured run early after this long (not the watch workloads)",
    )
    parser.add_argument("--backend", default="asyncio", help="etcdanyio only: asyncio or trio")
    args = parser.parse_args(argv)
    host, _, port = args.endpoint.rpartition("://")[2].rpartition(":")
    args.host, args.port = host or "127.0.0.1", int(port or 2379)
    return args


def warm_up_ops(ops: int) -> int:
    return max(1, min(ops // 10, 4 * CONCURRENCY))


def versions(info: DriverInfo) -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in info.distributions:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "?"
    return found


def _finish(record: dict[str, object]) -> NoReturn:
    print(json.dumps(record), flush=True)
    sys.stderr.flush()
    # Leave at once: teardown is not measured, and some clients' teardown can
    # block on their own reader threads (a watch stream, a thread pool).
    os._exit(0)


def emit(workload: str, ops: int, timer: Timer, info: DriverInfo) -> NoReturn:
    _finish(
        {
            "workload": workload,
            "ops": ops,
            "wall": timer.wall,
            "cpu": timer.cpu,
            "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "note": info.notes.get(workload, ""),
            "comparable": workload not in info.incomparable,
        }
    )


def emit_unsupported(workload: str, info: DriverInfo) -> NoReturn:
    _finish({"workload": workload, "unsupported": info.unsupported[workload]})


def emit_versions(info: DriverInfo) -> NoReturn:
    """The answer to ``--workload versions``: proves the client imports, names versions."""
    _finish({"versions": versions(info)})

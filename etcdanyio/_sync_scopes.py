"""
The scopes of :mod:`etcdanyio.sync`: watches, leases, locks, elections as ``with`` blocks.

Each is the async scope, entered and held open by a task on the client's event loop
(:class:`Holder`) while the ``with`` body runs in the calling thread. A loss (lease expired,
lock or leadership lost) cancels the async block but cannot cancel a thread's body: it is
reported instead, by ``lost`` / ``lost_event``, by guards that fail (``lock.is_owner()`` in a
transaction), and by the error the async scope raises (``LeaseExpiredError``,
``LockLostError``, ``LeadershipLostError``), re-raised when the ``with`` block exits.
"""

from __future__ import annotations

import collections
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._sync_generated import ElectionCalls, LeadershipCalls, LeaseCalls, LockCalls, WatchCalls
from ._sync_loop import ClientClosedError, wait_lock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from typing_extensions import Self

    from . import _mirror
    from . import election as _election
    from . import lease as _lease
    from . import lock as _lock
    from . import watch as _watch
    from ._election_rpc import LeaderKey
    from ._pager import RangePager
    from ._sync_loop import Loop
    from .txn import Compare
    from .types import KeyValue

T = TypeVar("T")

__all__ = [
    "Campaign",
    "Election",
    "Holder",
    "Leadership",
    "Lease",
    "Lock",
    "Mirror",
    "Observation",
    "RangeIterator",
    "Watch",
]


class Holder(Generic[T]):
    """
    An async context manager entered by a task of the loop and held open until :meth:`exit`.

    ``body`` runs inside the block on the loop (default: wait for :meth:`exit`). If the block
    ends by itself (the async scope cancelled its body on a loss), ``lost_event`` is set.
    """

    def __init__(
        self,
        loop: Loop[Any],
        context: AbstractAsyncContextManager[T],
        body: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self._loop = loop
        self._context = context
        self._body = body
        self._signal = threading.Lock()  # released once entered, or once entering failed
        self._signal.acquire()
        self._done = threading.Lock()  # released once the async block has exited
        self._done.acquire()
        self._exit: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self._exit_requested = False
        self.value: T | None = None
        self.entered = False
        self.finished = False
        self.error: BaseException | None = None
        #: set when the async block ended on its own while the ``with`` body ran
        self.lost_event = threading.Event()

    def enter(self) -> T:
        self._loop.spawn(self._hold)
        wait_lock(self._signal, self._loop, self._cancel)
        if not self.entered:
            error = self.error or ClientClosedError("the etcdanyio.sync client is closed")
            self.error = None
            raise error
        return self.value  # type: ignore[return-value]

    def _cancel(self) -> None:
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()

    async def _hold(self) -> None:
        exit_event = self._exit = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._cancelled:
                    scope.cancel()
                async with self._context as value:
                    self.value = value
                    self.entered = True
                    self._signal.release()
                    if self._body is None:
                        await exit_event.wait()
                    else:
                        await self._body(value)
        except Exception as exc:
            self.error = exc
        finally:
            self.finished = True
            self._scope = None
            if not self.entered:
                self._signal.release()
            elif not self._exit_requested:
                self.lost_event.set()
            self._done.release()

    def exit(self) -> BaseException | None:
        """Leave the async block (if still open); return the error it raised, if any."""
        self._exit_requested = True
        if not self.finished:
            exit_event = self._exit
            if exit_event is not None:
                self._loop.cancel_soon(exit_event.set)
        wait_lock(self._done, self._loop, self._cancel)
        error, self.error = self.error, None
        return error

    def cancel(self) -> None:
        """Cancel the async block (thread-safe) and wait for it to end; errors are dropped."""
        self._exit_requested = True
        self._loop.cancel_soon(self._cancel)
        wait_lock(self._done, self._loop, self._cancel)
        self.error = None


class _Scope:
    """A ``with`` block over a :class:`Holder`: the async error is raised on exit."""

    _holder: Holder[Any] | None = None
    _lost: threading.Event | None = None

    def _hold(self, holder: Holder[T]) -> T:
        self._holder = holder
        self._lost = holder.lost_event
        try:
            return holder.enter()
        except BaseException:
            self._holder = None  # never entered: nothing to leave
            raise

    def _leave(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        error = holder.exit()
        if error is not None:
            raise error

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    @property
    def lost_event(self) -> threading.Event:
        """Set as soon as the scope is lost (the async block ended while the body ran)."""
        if self._lost is None:
            raise RuntimeError("the scope was never entered")
        return self._lost


class Lease(LeaseCalls, _Scope):
    """
    A lease held for a ``with`` block: granted on entry, kept alive by the client's loop,
    revoked on exit. If it is lost meanwhile, ``lost`` / ``lost_event`` say so at once, puts
    with it fail, and :class:`~etcdanyio.LeaseExpiredError` is raised when the block exits.
    """

    def __init__(self, loop: Loop[Any], timeout: float | None, lease: _lease.Lease) -> None:
        self._loop = loop
        self._timeout = timeout
        self._async = lease

    def __repr__(self) -> str:
        return f"etcdanyio.sync.{self._async!r}"

    @property
    def id(self) -> int:
        """The lease ID (valid inside the block)."""
        return self._async.id

    @property
    def ttl(self) -> int:
        """The TTL the server granted."""
        return self._async.ttl

    @property
    def lost(self) -> BaseException | None:
        """Why the lease was lost (``None`` while it is alive)."""
        return self._async.lost

    def check(self) -> None:
        """Raise :class:`~etcdanyio.LeaseExpiredError` if the lease is already lost."""
        self._async.check()

    def __enter__(self) -> Self:
        if self._holder is not None:
            raise RuntimeError("lease is already entered")
        self._hold(Holder(self._loop, self._async))
        return self


class Lock(LockCalls, _Scope):
    """
    A distributed lock held for a ``with`` block. If its lease is lost while held, ``lost`` /
    ``lost_event`` say so at once, ``is_owner()`` guards fail, and
    :class:`~etcdanyio.LockLostError` is raised when the block exits.
    """

    def __init__(
        self,
        loop: Loop[Any],
        timeout: float | None,
        lock: _lock.Lock,
        holds: _LockHolds | None = None,
        reentrant: bool = False,
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._async = lock
        self._holds = holds
        self._reentrant = reentrant
        self._outer: Lock | None = None

    @property
    def name(self) -> bytes:
        return self._async.name

    @property
    def key(self) -> bytes:
        """The ownership key (without the client's namespace)."""
        return self._async.key

    @property
    def revision(self) -> int:
        """The key's create revision: a fencing token for guarded writes."""
        return self._async.revision

    @property
    def lost(self) -> BaseException | None:
        """Why the lock's lease was lost (``None`` while it is held)."""
        lease = self._async.lease
        return lease.lost if lease is not None else None

    def is_owner(self) -> Compare:
        """A compare that holds while this lock is held: guard writes with it."""
        return self._async.is_owner()

    def __enter__(self) -> Self:
        if self._holder is not None or self._outer is not None:
            raise RuntimeError("lock is already entered")
        holds = self._holds
        if holds is not None and self._reentrant:
            outer = holds.get(self.name)
            if outer is not None:
                # This thread holds it already in an enclosing block: run under that hold.
                self._outer, self._async = outer, outer._async
                return self
        self._hold(Holder(self._loop, self._async))
        if holds is not None:
            holds.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._outer is not None:
            self._outer = None
            return
        if self._holds is not None:
            self._holds.discard(self)
        self._leave()


class _LockHolds:
    """The locks each thread holds with ``reentrant=True``, by name (re-entry is per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _map(self) -> dict[bytes, Lock]:
        held: dict[bytes, Lock] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        return held

    def get(self, name: bytes) -> Lock | None:
        return self._map().get(name)

    def add(self, lock: Lock) -> None:
        self._map().setdefault(lock.name, lock)

    def discard(self, lock: Lock) -> None:
        held = self._map()
        if held.get(lock.name) is lock:
            del held[lock.name]


class Leadership(LeadershipCalls):
    """What a won campaign holds: its key, revision and value; ``proclaim()``, ``resign()``."""

    def __init__(
        self, loop: Loop[Any], timeout: float | None, leadership: _election.Leadership
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._async = leadership
        self.lost_event = threading.Event()

    @property
    def key(self) -> bytes:
        return self._async.key

    @property
    def revision(self) -> int:
        return self._async.revision

    @property
    def value(self) -> bytes:
        return self._async.value

    @property
    def name(self) -> bytes:
        return self._async.name

    @property
    def leader_key(self) -> LeaderKey:
        """This leadership as plain values, for :meth:`Election.resume` elsewhere."""
        return self._async.leader_key

    @property
    def lost(self) -> BaseException | None:
        """Why the leadership's lease was lost (``None`` while leading, or when resumed)."""
        return self._async._lease.lost if self._async._lease is not None else None

    def is_leader(self) -> Compare:
        """A compare that holds while this campaign leads: guard writes with it."""
        return self._async.is_leader()


class Campaign(_Scope):
    """``with election.campaign(value) as leadership:`` -- waits to win, leads for the block."""

    def __init__(
        self, loop: Loop[Any], timeout: float | None, context: AbstractAsyncContextManager[Any]
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._context = context

    def __enter__(self) -> Leadership:
        if self._holder is not None:
            raise RuntimeError("campaign is already entered")
        leadership = Leadership(
            self._loop, self._timeout, self._hold(Holder(self._loop, self._context))
        )
        assert self._lost is not None
        leadership.lost_event = self._lost
        return leadership


class Election(ElectionCalls):
    """An election named ``name``; compatible with ``etcdctl elect name``."""

    def __init__(self, loop: Loop[Any], timeout: float | None, election: _election.Election):
        self._loop = loop
        self._timeout = timeout
        self._async = election

    @property
    def name(self) -> bytes:
        return self._async.name

    def resume(self, leader_key: LeaderKey, *, timeout: float | None = None) -> Leadership:
        """
        The leadership that ``leader_key`` names, to proclaim or resign with, as
        :meth:`etcdanyio.Election.resume`.

        :raises NotLeaderError: if that key no longer leads
        """
        leadership = self._loop.run(
            self._async.resume(leader_key), self._timeout if timeout is None else timeout
        )
        return Leadership(self._loop, self._timeout, leadership)

    def campaign(
        self, value: str | bytes, *, ttl: int = 60, session: Lease | None = None
    ) -> Campaign:
        """
        Wait to become the leader, then lead for the ``with`` block; leaving it resigns. If the
        lease is lost while leading, ``leadership.lost`` / ``lost_event`` say so and
        :class:`~etcdanyio.LeadershipLostError` is raised when the block exits.
        """
        context = self._async.campaign(
            value, ttl=ttl, session=session._async if session is not None else None
        )
        return Campaign(self._loop, self._timeout, context)

    def observe(self, *, max_buffered: int = 16) -> Observation:
        """
        The current leader, then every change (``None``: nobody leads), for a ``with`` block:
        ``with election.observe() as leaders: for kv in leaders: ...``.
        """
        return Observation(self._loop, self._async.observe(max_buffered=max_buffered))


class _Iterated(_Scope, Generic[T]):
    """A scope whose value is an async iterator, read from the calling thread in chunks."""

    def __init__(self, loop: Loop[Any], context: AbstractAsyncContextManager[Any]) -> None:
        self._loop = loop
        self._context = context
        self._iterator: Any = None

    def _enter(self) -> None:
        if self._holder is not None:
            raise RuntimeError("already entered")
        self._iterator = self._hold(Holder(self._loop, self._context))

    def _check(self) -> None:
        if self._holder is None:
            raise RuntimeError("the block is not active")


class Observation(_Iterated["KeyValue | None"]):
    """Blocking iteration over an election's leaders (``None``: nobody leads)."""

    def __enter__(self) -> Self:
        self._enter()
        return self

    def __iter__(self) -> Iterator[KeyValue | None]:
        self._check()
        while True:
            try:
                yield self._loop.run(self._iterator.__anext__(), None)
            except StopAsyncIteration:
                return


class Watch(WatchCalls, _Iterated["_watch.Event"]):
    """
    An established watch: iterate it for events (blocking), or :meth:`get` one with a
    timeout; :meth:`get_batch` for whole server responses (progress notifications too).
    """

    def __init__(
        self, loop: Loop[Any], timeout: float | None, context: AbstractAsyncContextManager[Any]
    ) -> None:
        _Iterated.__init__(self, loop, context)
        self._timeout = timeout
        self._pending: collections.deque[_watch.Event] = collections.deque()
        self._batches: Any = None

    def __enter__(self) -> Self:
        self._enter()
        self._async = self._iterator
        self._batches = self._async.batches()
        return self

    @property
    def revision(self) -> int:
        """Every change up to this revision has been received (delivered or buffered)."""
        return self._async.revision

    @property
    def catching_up(self) -> bool:
        """Whether the watch is still sending history it missed (see the async ``Watch``)."""
        return self._async.catching_up

    @property
    def resumed_from(self) -> int:
        """The revision the latest resume started from (see the async ``Watch``)."""
        return self._async.resumed_from

    @property
    def created_revision(self) -> int:
        """The store's revision when the watch was established."""
        return self._async.created_revision

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> _watch.Event:
        event = self.get()
        assert event is not None
        return event

    def get(self, timeout: float | None = None) -> _watch.Event | None:
        """
        The next event; ``None`` if none came within ``timeout`` seconds (``None``: wait).

        :raises WatchCompactedError: if the watch cannot go on without a gap
        """
        self._check()
        if not self._pending:
            batch = self.get_batch(timeout, progress=False)
            if batch is None:
                return None
            self._pending.extend(batch.events)
        return self._pending.popleft()

    def batches(self) -> Iterator[_watch.WatchBatch]:
        """Iterate (blocking) over whole responses, progress notifications included."""
        while True:
            batch = self.get_batch()
            assert batch is not None
            yield batch

    def get_batch(
        self, timeout: float | None = None, *, progress: bool = True
    ) -> _watch.WatchBatch | None:
        """
        The next whole server response (with ``progress=True`` also progress notifications,
        which have no events); ``None`` on timeout. Not mixed with :meth:`get` mid-batch.
        """
        self._check()
        if self._pending:
            raise RuntimeError("get_batch() cannot take over in the middle of a batch")
        return self._loop.run(_next_batch(self._batches, timeout, progress), None)


async def _next_batch(
    batches: AsyncIterator[_watch.WatchBatch], limit: float | None, progress: bool
) -> _watch.WatchBatch | None:
    with anyio.move_on_after(limit):
        while True:
            batch = await batches.__anext__()
            if batch.events or progress:
                return batch
    return None


class RangeIterator:
    """A blocking iterator over a range, read page by page (``.revision``: its revision)."""

    def __init__(self, loop: Loop[Any], pager: RangePager, page_size: int) -> None:
        self._loop = loop
        self._pager = pager
        self._page_size = page_size
        self._buffer: collections.deque[KeyValue] = collections.deque()
        self._done = False

    @property
    def revision(self) -> int:
        """The revision every page is read at (0 until the first page is read)."""
        return self._pager.revision

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> KeyValue:
        if not self._buffer:
            if self._done:
                raise StopIteration
            page = self._loop.run(_take(self._pager, self._page_size), None)
            if len(page) < self._page_size:
                self._done = True
            self._buffer.extend(page)
            if not self._buffer:
                raise StopIteration
        return self._buffer.popleft()


async def _take(pager: RangePager, count: int) -> list[KeyValue]:
    items: list[KeyValue] = []
    async for kv in pager:
        items.append(kv)
        if len(items) >= count:
            break
    return items


class Mirror(_Scope):
    """
    ``with client.mirror("config/", prefix=True) as mirror:`` -- the blocking face of
    :meth:`etcdanyio.Client.mirror`. The copy is kept by the client's loop; every read hops onto
    the loop, so that a thread never sees half a transaction (each read is consistent at
    :attr:`revision`; take :meth:`snapshot` for several reads at one revision).
    """

    def __init__(
        self, loop: Loop[Any], timeout: float | None, context: AbstractAsyncContextManager[Any]
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._context = context
        self._async: _mirror.Mirror | None = None

    def __enter__(self) -> Self:
        if self._holder is not None:
            raise RuntimeError("mirror is already entered")
        self._async = self._hold(Holder(self._loop, self._context))
        return self

    def _open(self) -> _mirror.Mirror:
        if self._async is None or self._holder is None:
            raise RuntimeError("the mirror is not open")
        return self._async

    def _read(self, read: Callable[[_mirror.Mirror], T]) -> T:
        mirror = self._open()

        async def on_loop() -> T:
            return read(mirror)

        return self._loop.run(on_loop(), self._timeout)

    @property
    def revision(self) -> int:
        """The store revision the copy equals."""
        return self._read(lambda m: m.revision)

    def snapshot(self) -> tuple[int, dict[bytes, KeyValue]]:
        """The revision and a copy of the whole content at it, in one hop."""
        return self._read(lambda m: (m.revision, dict(m._data)))

    def __getitem__(self, key: bytes | str) -> KeyValue:
        return self._read(lambda m: m[key])

    def get(self, key: bytes | str, default: KeyValue | None = None) -> KeyValue | None:
        return self._read(lambda m: m.get(key, default))

    def __contains__(self, key: object) -> bool:
        return self._read(lambda m: key in m)

    def __len__(self) -> int:
        return self._read(len)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys())

    def keys(self) -> list[bytes]:
        """The keys, copied in one hop."""
        return self._read(lambda m: list(m._data))

    def wait_for_revision(self, revision: int, *, timeout: float | None = None) -> None:
        """Block until the copy reflects ``revision`` (see the async mirror)."""
        mirror = self._open()
        self._loop.run(
            mirror.wait_for_revision(revision), self._timeout if timeout is None else timeout
        )

    def sync(self, *, timeout: float | None = None) -> int:
        """Block until the copy is current as of now on the server; return its revision."""
        mirror = self._open()
        return self._loop.run(mirror.sync(), self._timeout if timeout is None else timeout)

    def changes(self, *, max_buffered: int = 10_000) -> Iterator[_mirror.MirrorUpdate]:
        """
        What changed from now on, in revision order: a blocking iterator (see the async
        mirror). The consumer is registered at once, before this returns.
        """
        mirror = self._open()
        changes = self._read(lambda m: m.changes(max_buffered=max_buffered))
        return self._iterate(mirror, changes)

    def _iterate(
        self, mirror: _mirror.Mirror, changes: _mirror.MirrorChanges
    ) -> Iterator[_mirror.MirrorUpdate]:
        while True:
            try:
                yield self._loop.run(changes.__anext__(), None)
            except StopAsyncIteration:
                return
            if self._holder is None or mirror._closed:
                return

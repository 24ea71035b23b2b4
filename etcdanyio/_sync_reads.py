"""
The reading scopes of :mod:`etcdanyio.sync`: a watch, a paged range and a mirror, read from the
calling thread while the client's loop keeps the async object (see
:class:`~etcdanyio._sync_holder.Holder`).
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ._sync_generated import WatchCalls
from ._sync_holder import Holder, Iterated, Scope

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator
    from contextlib import AbstractAsyncContextManager

    from typing_extensions import Self

    from . import _mirror
    from . import watch as _watch
    from ._pager import RangePager
    from ._sync_loop import Loop
    from .types import KeyValue

T = TypeVar("T")

__all__ = ["Mirror", "RangeIterator", "Watch"]


class Watch(WatchCalls, Iterated["_watch.Event"]):
    """
    An established watch: iterate it for events (blocking), or :meth:`get` one with a
    timeout; :meth:`get_batch` for whole server responses (progress notifications too).
    """

    def __init__(
        self, loop: Loop[Any], timeout: float | None, context: AbstractAsyncContextManager[Any]
    ) -> None:
        Iterated.__init__(self, loop, context)
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


class Mirror(Scope):
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

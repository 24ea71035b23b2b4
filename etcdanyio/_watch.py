"""
Watches as the user sees them: ``client.watch()``, ``client.watch_once()`` and the
:class:`Watch` handle they give.

The arguments are checked here, before anything is sent; the watches themselves run on
the client's one shared stream (:mod:`etcdanyio._watch_stream`).
"""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._events import Event, Filter
from ._requests import check_int, key_range
from ._service import Service
from ._watch_stream import Watcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

    from typing_extensions import Self

    from ._events import WatchBatch

__all__ = ["Watch", "WatchMixin"]


class Watch:
    """
    An established watch; iterate it for events, or :meth:`batches` for batches.

    Iteration ends only when the block exits; it raises
    :class:`~etcdanyio.WatchCompactedError` if the watch cannot go on without
    a gap (its next revision was compacted away), after every event before
    the gap.
    """

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher
        self._pending: list[Event] = []
        self._index = 0

    def __repr__(self) -> str:
        watcher = self._watcher
        state = "failed" if watcher.error is not None else "closed" if watcher.closed else "active"
        return (
            f"Watch(key={watcher.key!r}, range_end={watcher.range_end!r}, "
            f"revision={self.revision}, {state})"
        )

    @property
    def revision(self) -> int:
        """Every change up to this revision has been received (delivered or buffered)."""
        return self._watcher.next_revision - 1

    @property
    def catching_up(self) -> bool:
        """
        ``True`` while the watch (re)sends history it missed, after its creation with an
        older ``start_revision`` or a resume after a break, until an event past the
        store's revision at that (re)creation arrives. Meanwhile a requested progress
        notification is not taken (etcd before 3.5.8 answers it with the store's
        revision even while history is still coming), so :meth:`request_progress`
        cannot advance :attr:`revision`.
        """
        watcher = self._watcher
        return watcher.next_revision <= watcher.synced_after

    @property
    def resumed_from(self) -> int:
        """
        The revision the latest resume (after a break, or a pause for a slow consumer)
        asked history from; 0 if the watch was never resumed.

        etcd accepts a watch from exactly its compaction revision although compaction
        removed a delete made at that revision: a resume is only known to be gap-free
        if ``resumed_from - 1`` is not compacted (a read at that revision succeeds).
        """
        return self._watcher.resumed_from

    @property
    def created_revision(self) -> int:
        """The store's revision when the watch was established."""
        return self._watcher.created_revision

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        while self._index >= len(self._pending):
            batch = await self._watcher.next_batch()
            self._pending = batch.events
            self._index = 0
        event = self._pending[self._index]
        self._index += 1
        return event

    def batches(self) -> _Batches:
        """Iterate over whole responses (and progress notifications) instead of events."""
        if self._index < len(self._pending):
            raise RuntimeError("batches() cannot take over in the middle of a batch")
        return _Batches(self._watcher)

    async def request_progress(self) -> None:
        """
        Ask the server for a progress notification (etcd 3.4+): a batch with no
        events whose ``revision`` says how far the watch has got.
        """
        await self._watcher.request_progress()


class _Batches:
    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchBatch:
        return await self._watcher.next_batch(progress=True)


class WatchMixin(Service):
    """``client.watch()`` and ``client.watch_once()``."""

    @asynccontextmanager
    async def watch(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        end: str | bytes | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
        progress_notify: bool = False,
        filters: Iterable[Filter | str] = (),
        fragment: bool = False,
        max_buffered: int = 10_000,
    ) -> AsyncIterator[Watch]:
        """
        Watch ``key`` (or a range, with ``prefix=True`` or ``end=``) for changes.

        The block starts once the server confirmed the watch: every change
        committed after that is delivered, in order, each once, even across
        reconnects. Leaving the block cancels the watch on the server.

        :param start_revision: deliver history from this revision on (``None``: from now)
        :param prev_kv: give each event the key as it was before (``event.prev_kv``)
        :param progress_notify: let the server send periodic progress notifications
            (see :meth:`Watch.batches`)
        :param filters: ``Filter.NO_PUT`` / ``Filter.NO_DELETE``, or their names (``"no_put"``,
            ``"noput"``, ``"NOPUT"``, ...)
        :param fragment: let etcd split huge responses (they are reassembled here)
        :param max_buffered: events buffered for a slow consumer before the watch is
            paused on the server (and resumed once half of them were read, losing nothing).
            What already arrived is kept, so at most ``max_buffered`` events plus one
            response are held (etcd sends at most 1,000 revisions in a response to a watch
            catching up)
        :raises WatchCompactedError: from the iterator, after every event before the
            gap, if ``start_revision`` is compacted (etcd confirms such a watch, then
            cancels it) or the watch falls behind compaction while resuming
        :raises PermissionDeniedError: if the user may not watch the range
        """
        start, range_end = key_range(key, end, prefix=prefix)
        if start_revision is not None:
            check_int(start_revision, "start_revision", minimum=1)
        check_int(max_buffered, "max_buffered", minimum=1)
        watcher = Watcher(
            self._core.watches(),
            key=self._core.ns.key(start),
            range_end=self._core.ns.range_end(range_end),
            start_revision=start_revision or 0,
            prev_kv=bool(prev_kv),
            progress_notify=bool(progress_notify),
            filters=[_filter(f) for f in filters],
            fragment=bool(fragment),
            max_buffered=max_buffered,
        )
        stream = watcher.stream
        with (
            anyio.fail_after(self._core.timeout) if self._core.timeout else contextlib.nullcontext()
        ):
            await stream.add(watcher)
        try:
            yield Watch(watcher)
        finally:
            stream.remove(watcher)

    async def watch_once(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        end: str | bytes | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
        filters: Iterable[Filter | str] = (),
        progress_notify: bool = False,
        fragment: bool = False,
    ) -> Event:
        """
        The first event on ``key`` (or range); bound the wait with a cancel scope.

        Takes the options of :meth:`watch`; progress notifications carry no event, so
        ``progress_notify`` only keeps the server's side of the watch informed.
        """
        async with self.watch(
            key,
            prefix=prefix,
            end=end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=filters,
            progress_notify=progress_notify,
            fragment=fragment,
        ) as events:
            return await events.__anext__()


#: filter names, also as etcd's proto spells them (``NOPUT``) and etcetra's/etcd3gw's
_FILTER_NAMES = {name.replace("_", ""): member for name, member in Filter.__members__.items()}


def _filter(value: object) -> int:
    if isinstance(value, Filter):
        return int(value)
    if isinstance(value, str):
        member = _FILTER_NAMES.get(value.upper().replace("_", ""))
        if member is not None:
            return int(member)
    raise ValueError(
        "filters must hold Filter.NO_PUT/NO_DELETE or their names "
        f"('no_put', 'noput', ...), got {value!r}"
    )

"""
Watches: the public handle and its events.

.. code-block:: python

    async with client.watch("config/", prefix=True) as events:
        async for event in events:
            print(event.type, event.kv.key, event.kv.value)

All watches of a client share one gRPC Watch stream (see
:mod:`etcdanyio._watch_stream`). When the body of ``async with`` starts, the
watch is established on the server: every change committed after that point
is delivered, in revision order, each exactly once, even across reconnects.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ._grpc._status import NamedIntEnum

if TYPE_CHECKING:
    from typing_extensions import Self

    from ._watch_stream import Watcher
    from .types import KeyValue

__all__ = ["Event", "EventType", "Filter", "Watch", "WatchBatch"]


class EventType(NamedIntEnum):
    """What happened to a key."""

    PUT = 0
    DELETE = 1


class Filter(NamedIntEnum):
    """Events the server should not send (``filters=``)."""

    NO_PUT = 0
    NO_DELETE = 1


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One change to one key."""

    type: EventType
    #: the key after the change (for a DELETE: the key, with ``mod_revision`` of the delete)
    kv: KeyValue
    #: the key before the change, when the watch asked for ``prev_kv=True``
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        """The revision of the change."""
        return self.kv.mod_revision


@dataclasses.dataclass(frozen=True, slots=True)
class WatchBatch:
    """
    The events of one server response, delivered together (all events of one
    revision are always in one batch), or a progress notification (no events).
    """

    events: list[Event]
    #: every change up to this revision has been delivered
    revision: int

    @property
    def is_progress(self) -> bool:
        """Whether this is a progress notification (a batch without events)."""
        return not self.events


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

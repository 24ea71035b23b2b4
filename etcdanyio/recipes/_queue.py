"""
Work queues (Go's ``recipes.Queue`` and ``recipes.PriorityQueue``).

.. code-block:: python

    jobs = Queue(client, "jobs")
    await jobs.enqueue(b"resize 42.png")
    job = await jobs.dequeue()  # blocks (on a watch) until an item is there

Every item is one key; taking it is a transaction that deletes it only if it
is unchanged, so of several consumers exactly one gets each item. A take is
shielded from cancellation, so a cancelled consumer never drops an item; only
a take whose outcome is unknown because the connection was lost in flight may
have removed an item without delivering it. The keys are those of Go's
recipes, so Go and Python producers and consumers can share a queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .. import EventType, Filter, SortOrder, SortTarget, WatchCompactedError, txn
from .._concurrency import create_unique
from .._keys import to_bytes, to_key
from .._requests import check_int

if TYPE_CHECKING:
    from ..client import Client
    from ..types import KeyValue

__all__ = ["PriorityQueue", "Queue"]

#: How many items at the head of a queue a consumer reads (and tries in turn) at once.
_BATCH = 8

#: How long taking an item may hold off a cancellation (seconds); past it, the take's
#: outcome is unknown and ``TimeoutError`` is raised.
TAKE_TIMEOUT = 10.0

#: The lowest and highest priority of a :class:`PriorityQueue` (Go's ``uint16``).
MAX_PRIORITY = 0xFFFF


class _Queue:
    """Taking items from the head of a queue; subclasses say where items live and their order."""

    _client: Client
    #: items are the keys under this prefix
    _items: bytes
    #: what orders the items: ``SortTarget.CREATE`` (arrival) or ``SortTarget.KEY``
    _order: SortTarget

    async def _take(self, kv: KeyValue) -> bool:
        """Delete ``kv`` if nobody took it yet; ``True`` if it is ours now."""
        # Shielded: a consumer cancelled in the middle of a take would otherwise leave its
        # outcome unknown and the item possibly deleted yet never delivered. This way the
        # item is ours (and returned; the cancellation hits at the caller's next await)
        # or it is still in the queue.
        with anyio.fail_after(TAKE_TIMEOUT, shield=True):
            result = await self._client.txn(
                compare=[txn.mod_revision(kv.key) == kv.mod_revision],
                success=[txn.delete(kv.key)],
            )
        return result.succeeded

    async def _take_head(self) -> tuple[KeyValue | None, bool, int]:
        """
        Try to take one of the first items: ``(item, anything_seen, revision)``,
        where ``revision`` is the revision of the read.
        """
        head = await self._client.get_prefix(
            self._items, sort_target=self._order, sort_order=SortOrder.ASCEND, limit=_BATCH
        )
        for kv in head.kvs:
            if await self._take(kv):
                return kv, True, head.header.revision
        return None, bool(head.kvs), head.header.revision

    async def _next_put(self, revision: int) -> KeyValue | None:
        """The first item put after ``revision`` (``None``: look again, history was compacted)."""
        try:
            async with self._client.watch(
                self._items,
                prefix=True,
                start_revision=revision + 1,
                filters=[Filter.NO_DELETE],
            ) as events:
                async for event in events:
                    if event.type is EventType.PUT:
                        return event.kv
        except WatchCompactedError:
            return None
        raise AssertionError("unreachable: a watch iterates until its block exits")

    async def dequeue(self) -> bytes:
        """
        Take the first item and return its value, waiting (on a watch, without
        polling) until there is one. Bound the wait with a cancel scope.

        Cancellation takes nothing, or, if it comes while an item is being
        taken, lets the take finish and returns the item first (the caller's
        next ``await`` raises it): an item taken is never lost.

        :raises TimeoutError: if taking an item took longer than ``TAKE_TIMEOUT``
            (its outcome is then unknown)
        """
        while True:
            item, seen, revision = await self._take_head()
            if item is not None:
                return item.value
            if seen:
                continue  # others took what we saw: look again at once
            new = await self._next_put(revision)
            # In arrival order, the first new item is the head: try it without another read.
            if new is not None and self._order is SortTarget.CREATE and await self._take(new):
                return new.value

    async def dequeue_nowait(self) -> bytes:
        """
        Take the first item and return its value.

        :raises anyio.WouldBlock: if the queue is empty
        """
        while True:
            item, seen, _ = await self._take_head()
            if item is not None:
                return item.value
            if not seen:
                raise anyio.WouldBlock

    async def size(self) -> int:
        """How many items the queue holds now."""
        return (await self._client.get_prefix(self._items, count_only=True)).count


class Queue(_Queue):
    """
    A multi-producer, multi-consumer FIFO queue named ``name``.

    Items are the keys ``name/<nanoseconds>`` and are served in the order they
    were enqueued (their create revisions).
    """

    def __init__(self, client: Client, name: str | bytes) -> None:
        self._client = client
        #: the queue's name; its items live under ``name + b"/"``
        self.name = to_key(name, "queue name")
        self._items = self.name + b"/"
        self._order = SortTarget.CREATE

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    async def enqueue(self, value: str | bytes) -> None:
        """Append ``value`` to the queue."""
        await create_unique(self._client, self.name, to_bytes(value, "value"))


class PriorityQueue(_Queue):
    """
    A multi-producer, multi-consumer queue named ``name`` whose items are
    served by priority, lowest number first, and in order of arrival within a
    priority.

    Items are the keys ``name/<priority:05d>/<sequence:016d>``; the sequence of
    each priority is guarded by the key ``__name/<priority:05d>``.
    """

    def __init__(self, client: Client, name: str | bytes) -> None:
        self._client = client
        #: the queue's name; its items live under ``name + b"/"``
        self.name = to_key(name, "queue name")
        self._items = self.name + b"/"
        self._order = SortTarget.KEY

    def __repr__(self) -> str:
        return f"PriorityQueue({self.name!r})"

    async def enqueue(self, value: str | bytes, priority: int) -> None:
        """
        Add ``value`` with ``priority`` (0 is served first, 65535 last).

        :raises ValueError: if ``priority`` is outside 0..65535
        """
        data = to_bytes(value, "value")
        if check_int(priority, "priority", minimum=0) > MAX_PRIORITY:
            raise ValueError(f"priority must be at most {MAX_PRIORITY}, got {priority}")
        level = self._items + b"%05d" % priority
        guard = b"__" + level
        while True:
            last = await self._client.get_prefix(
                level + b"/",
                sort_target=SortTarget.KEY,
                sort_order=SortOrder.DESCEND,
                limit=1,
                keys_only=True,
            )
            sequence = int(last.kvs[0].key.rsplit(b"/", 1)[1]) + 1 if last.kvs else 0
            # The guard key is rewritten with every item of this priority: if it changed
            # since our read, somebody took the same sequence number (or a later one).
            result = await self._client.txn(
                compare=[txn.mod_revision(guard) < last.header.revision + 1],
                success=[txn.put(guard, b""), txn.put(level + b"/%016d" % sequence, data)],
            )
            if result.succeeded:
                return

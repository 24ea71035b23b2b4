"""
Barriers (Go's ``recipes.Barrier`` and ``recipes.DoubleBarrier``).

.. code-block:: python

    barrier = Barrier(client, "deploy/freeze")
    await barrier.hold()  # from now on, wait() blocks...
    await barrier.release()  # ...until this

    rendezvous = DoubleBarrier(client, "jobs/stage-2", count=4)
    async with rendezvous.enter():  # starts once 4 participants entered
        ...
    # ends once all 4 have left

The keys are those of Go's recipes (``key`` for a barrier; ``key/waiters/<n>``
and ``key/ready`` for a double barrier), so Go and Python processes can meet
at the same barrier.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from .. import LeaseExpiredError, SortOrder, SortTarget, txn
from .._concurrency import create_unique, delete_own, hold_lease, wait_deleted, wait_put
from .._keys import to_key
from .._requests import check_int

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ..client import Client
    from ..lease import Lease
    from ..types import KeyValue

__all__ = ["Barrier", "BarrierFullError", "DoubleBarrier", "DoubleBarrierEntry"]


class BarrierFullError(Exception):
    """Raised when entering a double barrier that its ``count`` participants already entered."""

    def __init__(self, key: bytes, count: int) -> None:
        super().__init__(f"double barrier {key!r} already has its {count} participants")
        self.key = key
        self.count = count

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.count))  # pickle and copy rebuild it from its fields


class Barrier:
    """
    A barrier on one key: while the key exists, :meth:`wait` blocks.

    Held by whoever created the key, released by deleting it (by anyone).
    """

    def __init__(self, client: Client, key: str | bytes) -> None:
        self._client = client
        #: the barrier's key
        self.key = to_key(key, "barrier key")

    def __repr__(self) -> str:
        return f"Barrier({self.key!r})"

    async def hold(self, *, lease: Any = None) -> bool:
        """
        Create the barrier key, so that :meth:`wait` blocks.

        :param lease: attach the key to this ``Lease`` (or lease ID): the barrier
            is released when the lease ends
        :return: ``False`` if the barrier was already held (then nothing changes)
        """
        result = await self._client.txn(
            compare=[txn.create_revision(self.key) == 0],
            success=[txn.put(self.key, b"", lease=lease)],
        )
        return result.succeeded

    async def release(self) -> bool:
        """Delete the barrier key, unblocking every waiter; ``False`` if it was not held."""
        return (await self._client.delete(self.key)).deleted > 0

    async def wait(self) -> None:
        """
        Return once the barrier is not held (at once if it is not held now).

        Bound the wait with a cancel scope.
        """
        found = await self._client.get_range(self.key, self.key + b"\0", keys_only=True)
        if found.kvs:
            await wait_deleted(self._client, self.key, found.header.revision)


class DoubleBarrier:
    """
    A rendezvous of ``count`` participants on ``key``: :meth:`enter` waits until
    ``count`` participants entered, and leaving waits until every one of them left.

    Each participant's key carries a lease (its own, or ``session``), so a
    participant that dies does not block the others beyond its lease's TTL.

    :param count: how many participants meet (at least 1)
    :param ttl: the TTL of the lease each entry takes for itself (not with ``session=``)
    :param session: use this lease (``client.session()``) instead
    """

    def __init__(
        self,
        client: Client,
        key: str | bytes,
        count: int,
        *,
        ttl: int = 60,
        session: Lease | None = None,
    ) -> None:
        self._client = client
        #: the barrier's key; participants live under ``key + b"/waiters/"``
        self.key = to_key(key, "barrier key")
        #: how many participants meet
        self.count = check_int(count, "count", minimum=1)
        self._ttl = check_int(ttl, "ttl", minimum=1)
        self._session = session
        self._waiters = self.key + b"/waiters"
        self._ready = self.key + b"/ready"

    def __repr__(self) -> str:
        return f"DoubleBarrier({self.key!r}, count={self.count})"

    def enter(self) -> DoubleBarrierEntry:
        """
        One participant, for an ``async with`` block.

        The block starts once ``count`` participants entered. Leaving it normally
        waits until every participant of this round finished its block (Go's
        ``Leave``: the first to arrive leaves last). Leaving it with an exception,
        or a cancelled wait, deletes our key at once (shielded, bounded) without
        waiting. The barrier can be used for round after round; unlike Go's
        recipe, a participant still leaving one round never waits for somebody
        who already entered the next.

        :raises BarrierFullError: from the ``async with`` if ``count`` participants
            entered already
        :raises LeaseExpiredError: if the lease is lost meanwhile (the block is
            cancelled first)
        """
        return DoubleBarrierEntry(self)

    async def _entered(self) -> list[KeyValue]:
        """The participants' keys, in order of arrival."""
        found = await self._client.get_prefix(
            self._waiters + b"/",
            sort_target=SortTarget.CREATE,
            sort_order=SortOrder.ASCEND,
            keys_only=True,
        )
        return found.kvs


class DoubleBarrierEntry(anyio.AsyncContextManagerMixin):
    """
    One participant of a :class:`DoubleBarrier` (from :meth:`DoubleBarrier.enter`).

    :ivar key: our key under ``key/waiters/`` (inside the block)
    :ivar revision: its create revision: our place in the order of arrival
    :ivar lease: the lease it carries (inside the block)
    """

    def __init__(self, barrier: DoubleBarrier) -> None:
        self._barrier = barrier
        self.key = b""
        self.revision = 0
        self.lease: Lease | None = None
        self._entered = False
        #: the revision at which the barrier opened (``key/ready`` was put)
        self._opened_at = 0

    async def _enter(self, lease: Lease) -> None:
        barrier = self._barrier
        client = barrier._client
        # Refuse before adding a key when the barrier is known to be full.
        if len(await barrier._entered()) >= barrier.count:
            raise BarrierFullError(barrier.key, barrier.count)
        self.key, self.revision = await create_unique(client, barrier._waiters, b"", lease)
        entered = await barrier._entered()
        if len(entered) >= barrier.count:
            last = entered[barrier.count - 1]
            if self.revision > last.create_revision:
                raise BarrierFullError(barrier.key, barrier.count)
            if self.revision == last.create_revision:
                # We complete the party: let everybody in.
                self._opened_at = (await client.put(barrier._ready, b"")).header.revision
                return
        self._opened_at = await wait_put(client, barrier._ready, self.revision)

    async def _leave(self) -> None:
        barrier = self._barrier
        client = barrier._client
        while True:
            # Only this round's participants: keys created before the barrier opened.
            # (Go's recipe looks at every key, so a fast participant entering the next
            # round could make a slow one of this round wait for it: a deadlock.)
            found = await client.get_prefix(
                barrier._waiters + b"/", max_create_revision=self._opened_at, keys_only=True
            )
            if not found.kvs:
                return
            lowest = min(found.kvs, key=lambda kv: kv.create_revision)
            highest = max(found.kvs, key=lambda kv: kv.create_revision)
            if lowest.key == self.key:
                if len(found.kvs) == 1:
                    # The last one out resets the barrier for the next round.
                    await client.txn(success=[txn.delete(barrier._ready), txn.delete(self.key)])
                    return
                # The first to arrive leaves last: wait for the others, newest first.
                await wait_deleted(client, highest.key, found.header.revision)
            else:
                if any(kv.key == self.key for kv in found.kvs):
                    await client.delete(self.key)
                # Everybody else waits for the first to arrive, which leaves last.
                await wait_deleted(client, lowest.key, found.header.revision)

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[DoubleBarrierEntry]:
        if self._entered:
            raise RuntimeError("this entry was already used; call enter() again")
        self._entered = True
        barrier = self._barrier
        client = barrier._client
        async with hold_lease(client, barrier._ttl, barrier._session) as lease:
            self.lease = lease
            with anyio.CancelScope() as scope:
                lease.add_dependent(scope)
                try:
                    try:
                        await self._enter(lease)
                        yield self
                        await self._leave()
                    except BaseException:
                        if self.key:
                            await delete_own(client, self.key, lease)
                        raise
                finally:
                    lease.remove_dependent(scope)
            if lease.lost is not None:
                raise LeaseExpiredError(
                    lease.id, f"double barrier {barrier.key!r} lost its lease: {lease.lost}"
                ) from lease.lost

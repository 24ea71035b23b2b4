"""
A fair read/write lock (Go's ``recipes.RWMutex``).

.. code-block:: python

    rw = RWLock(client, "catalog")
    async with rw.read():  # shared with other readers
        ...
    async with rw.write():  # alone
        ...

Every contender creates a key with its lease: ``name/read/<nanoseconds>`` or
``name/write/<nanoseconds>``, the layout of Go's recipe, so Go and Python
contenders on the same name exclude each other. Contenders are served in
order of their keys' create revisions: a reader waits until no writer that
came before it is left, a writer until nobody that came before it is left.
"""

from __future__ import annotations

import contextlib
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Literal

import anyio

from .. import LeaseExpiredError, LockLostError, txn
from .._concurrency import create_unique, delete_own, hold_lease, wait_for_predecessors
from .._keys import to_key
from .._requests import check_int, check_optional_seconds

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ..client import Client
    from ..lease import Lease

__all__ = ["RWLock", "RWLockHold"]


class RWLock:
    """
    A distributed read/write lock named ``name``: many readers or one writer.

    The object only names the lock; :meth:`read` and :meth:`write` return the
    scopes that hold it, and any number of them may be used concurrently.

    :param ttl: the TTL of the lease each hold takes for itself (not with ``session=``)
    :param session: hold on this lease (``client.session()``) instead; losing it
        cancels every hold that uses it
    """

    def __init__(
        self,
        client: Client,
        name: str | bytes,
        *,
        ttl: int = 60,
        session: Lease | None = None,
    ) -> None:
        self._client = client
        #: the lock's name; its keys live under ``name + b"/"``
        self.name = to_key(name, "lock name")
        self._ttl = check_int(ttl, "ttl", minimum=1)
        self._session = session

    def __repr__(self) -> str:
        return f"RWLock({self.name!r})"

    def read(self, *, timeout: float | None = None) -> RWLockHold:
        """
        The lock held shared, for an ``async with`` block: it waits until every
        writer that asked before it has left.

        :param timeout: bounds only the wait; expiry raises ``TimeoutError``
        """
        return RWLockHold(self, "read", check_optional_seconds(timeout, "timeout"))

    def write(self, *, timeout: float | None = None) -> RWLockHold:
        """
        The lock held exclusively, for an ``async with`` block: it waits until
        every reader and writer that asked before it has left.

        :param timeout: bounds only the wait; expiry raises ``TimeoutError``
        """
        return RWLockHold(self, "write", check_optional_seconds(timeout, "timeout"))


class RWLockHold(anyio.AsyncContextManagerMixin):
    """
    One hold of an :class:`RWLock` (from :meth:`RWLock.read` or :meth:`RWLock.write`).

    The block starts once the lock is held. A wait that is cancelled or times
    out deletes its key (shielded, bounded), so it leaves no trace. If the
    lease is lost while the block runs, the block is cancelled and
    :class:`~etcdanyio.LockLostError` (a :class:`~etcdanyio.LeaseExpiredError`)
    is raised from the ``async with``. Leaving the block deletes the key.

    :ivar mode: ``"read"`` or ``"write"``
    :ivar key: our key (inside the block)
    :ivar revision: its create revision: a fencing token (inside the block)
    :ivar lease: the lease the key carries (inside the block)
    """

    def __init__(self, lock: RWLock, mode: Literal["read", "write"], timeout: float | None) -> None:
        self._lock = lock
        self.mode = mode
        self._timeout = timeout
        self.key = b""
        self.revision = 0
        self.lease: Lease | None = None
        self._entered = False

    def __repr__(self) -> str:
        return f"RWLockHold({self._lock.name!r}, {self.mode!r}, key={self.key!r})"

    def is_owner(self) -> txn.Compare:
        """A compare that holds while this hold has its key: guard writes with it."""
        if not self.key:
            raise RuntimeError("the lock is not held")
        return txn.create_revision(self.key) == self.revision

    async def _acquire(self, lease: Lease) -> None:
        client = self._lock._client
        prefix = self._lock.name + b"/"
        # Readers wait for earlier writers only; writers for everybody earlier.
        blockers = prefix + b"write/" if self.mode == "read" else prefix
        with anyio.fail_after(self._timeout) if self._timeout else contextlib.nullcontext():
            self.key, self.revision = await create_unique(
                client, prefix + self.mode.encode(), b"", lease
            )
            try:
                await wait_for_predecessors(client, blockers, self.revision)
                # If the lease expired while we waited, our key is gone with it.
                mine = await client.get(self.key)
                if mine is None or mine.create_revision != self.revision:
                    lease.check()
                    raise LeaseExpiredError(lease.id, "lock key vanished while waiting")
            except BaseException:
                await delete_own(client, self.key, lease)
                raise

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[RWLockHold]:
        if self._entered:
            raise RuntimeError("this hold was already used; call read() or write() again")
        self._entered = True
        lock = self._lock
        try:
            async with hold_lease(lock._client, lock._ttl, lock._session) as lease:
                self.lease = lease
                with anyio.CancelScope() as scope:
                    lease.add_dependent(scope)
                    try:
                        await self._acquire(lease)
                        try:
                            yield self
                        finally:
                            await delete_own(lock._client, self.key, lease)
                    finally:
                        lease.remove_dependent(scope)
                if lease.lost is not None:
                    raise LeaseExpiredError(lease.id) from lease.lost
        except LeaseExpiredError as exc:
            # Our own lease's block raises plain LeaseExpiredError: say that the lock was lost.
            if isinstance(exc, LockLostError) or self.lease is None or self.lease.lost is None:
                raise
            raise LockLostError(
                self.lease.id, f"{self.mode} lock {lock.name!r} lost: {self.lease.lost}"
            ) from self.lease.lost

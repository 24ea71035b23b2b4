"""Distributed locks (the public module is :mod:`etcdanyio.lock`)."""

from __future__ import annotations

import contextlib
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from . import txn
from ._cleanup import Write
from ._concurrency import (
    check_session,
    enqueue,
    held_by_predecessor,
    remove_key,
    wait_for_predecessors,
)
from ._keys import to_bytes, to_key
from ._lazy import v3lockpb  # imported on first use
from ._requests import check_optional_seconds, lease_id
from ._service import Service
from .errors import LeaseExpiredError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ._cleanup import Hold
    from ._client import Client
    from ._lease import Lease

_LOCK = "/v3lockpb.Lock/Lock"
_UNLOCK = "/v3lockpb.Lock/Unlock"

logger = logging.getLogger("etcdanyio.lock")


class LockLostError(LeaseExpiredError):
    """Raised from a lock's block when its lease was lost while the lock was held."""


class Lock(anyio.AsyncContextManagerMixin):
    """
    A held lock for the duration of an ``async with`` block.

    :ivar key: the ownership key (bytes, without the client's namespace)
    :ivar revision: its create revision: a fencing token for guarded writes
    """

    def __init__(
        self,
        client: Client,
        name: str | bytes,
        *,
        ttl: int = 60,
        timeout: float | None = None,
        session: Lease | None = None,
        reentrant: bool = False,
    ) -> None:
        raw = to_bytes(name, "lock name")
        if not raw:
            raise ValueError("lock name must not be empty")
        timeout = check_optional_seconds(timeout, "timeout", zero=True)
        check_session(session)
        self._client = client
        self.name = raw
        self.prefix = raw + b"/"
        self._ttl = ttl
        self._timeout = timeout
        self._session = session
        self._reentrant = bool(reentrant)
        self._held = False
        self.key = b""
        self.revision = 0
        self.lease: Lease | None = None

    def __repr__(self) -> str:
        if not self._held:
            return f"Lock(name={self.name!r}, held=False)"
        return f"Lock(name={self.name!r}, key={self.key!r}, revision={self.revision}, held=True)"

    def is_owner(self) -> txn.Compare:
        """A compare that holds while this lock is held: guard writes with it."""
        if not self.key:
            raise RuntimeError("the lock is not held")
        return txn.create_revision(self.key) == self.revision

    async def is_acquired(self) -> bool:
        """
        Whether the lock is held right now as etcd sees it: inside the block and its key still
        there with the revision it was acquired at (python-etcd3's and aetcd's
        ``is_acquired()``). The answer may be stale by the time it arrives: to act on ownership
        atomically, guard the write with :meth:`is_owner` in a transaction instead.

        .. versionadded:: 0.1
        """
        if not self._held:
            return False
        kv = await self._client.get(self.key)
        return kv is not None and kv.create_revision == self.revision

    async def refresh(self) -> int:
        """
        Renew the lock's lease now and return its TTL (python-etcd3's and aetcd's
        ``refresh()``). Rarely needed: the lease is kept alive while the block runs.

        :raises RuntimeError: if the lock is not held
        :raises LeaseNotFoundError: if the lease is gone

        .. versionadded:: 0.1
        """
        if not self._held or self.lease is None:
            raise RuntimeError("the lock is not held")
        return await self.lease.keepalive_once()

    def _remaining(self, start: float) -> float | None:
        if not self._timeout:
            return None  # no limit, or a try-lock (which never waits)
        return max(self._timeout - (anyio.current_time() - start), 0.0)

    async def _acquire(self, lease: Lease, wait_limit: float | None, hold: Hold) -> None:
        client = self._client
        self.key = self.prefix + b"%x" % lease.id
        write = Write()
        try:
            if self._timeout == 0:  # a try-lock: enqueue, look once, never wait
                self.revision, _ = await enqueue(client, self.key, b"", lease, write)
                if await held_by_predecessor(client, self.prefix, self.revision):
                    raise TimeoutError(f"lock {self.name!r} is held")
            limit = anyio.fail_after(wait_limit) if wait_limit is not None else None
            with limit or contextlib.nullcontext():
                if self._timeout != 0:
                    self.revision, _ = await enqueue(client, self.key, b"", lease, write)
                    await wait_for_predecessors(client, self.prefix, self.revision)
            # Our key must still be there: if the session expired meanwhile, it is not.
            mine = await client.get(self.key)
            if mine is None or mine.create_revision != self.revision:
                lease.check()
                raise LeaseExpiredError(lease.id, "lock key vanished while waiting: session lost")
        except BaseException:
            if write.may_exist:
                # A put with the lock's own lease is made harmless by the lease's revoke (a
                # late one fails); a session's lease lives on, so a late put is looked for.
                shared = lease is self._session
                await remove_key(client, self.key, lease, hold, unknown=write.unknown and shared)
            raise

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[Lock]:
        holds = self._client._core.lock_holds
        hold_key = (self.name, anyio.get_current_task().id)
        outer = holds.get(hold_key) if self._reentrant else None
        if outer is not None:
            # This task holds the lock already, in a block that encloses this one: run under
            # that hold (it is released only when the outer block exits, after this one).
            self.key, self.revision, self.lease = outer.key, outer.revision, outer.lease
            self._held = True
            try:
                yield self
            finally:
                self._held = False
            return
        held = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._session is not None:
                    lease = self._session
                    lease.check()
                else:
                    lease = await stack.enter_async_context(self._client.lease(self._ttl))
                self.lease = lease
                with anyio.CancelScope() as scope:
                    lease.add_dependent(scope)
                    try:
                        # Tasks sharing a session share its lease, so etcd would take the
                        # second one's key for re-entry: serialise them here.
                        start = anyio.current_time()
                        key = self.prefix + b"%x" % lease.id
                        with (
                            anyio.fail_after(self._timeout)
                            if self._timeout
                            else (contextlib.nullcontext())
                        ):
                            hold = await stack.enter_async_context(
                                self._client._core.key_guards.hold(key, wait=self._timeout != 0)
                            )
                        await self._acquire(lease, self._remaining(start), hold)
                        held = self._held = True
                        holds.setdefault(hold_key, self)
                        try:
                            yield self
                        finally:
                            self._held = False
                            if holds.get(hold_key) is self:
                                del holds[hold_key]
                            await remove_key(self._client, self.key, lease, hold)
                    finally:
                        lease.remove_dependent(scope)
                if lease.lost is not None:
                    logger.warning("lock lost name=%r key=%r: %s", self.name, self.key, lease.lost)
                    raise LockLostError(lease.id, f"lock {self.name!r} lost: {lease.lost}") from (
                        lease.lost
                    )
        except LeaseExpiredError as exc:
            # The lock's own lease raises plain LeaseExpiredError from its block; once
            # the lock was held, that is the loss of the lock.
            if not held or isinstance(exc, LockLostError):
                raise
            raise LockLostError(exc.lease_id, f"lock {self.name!r} lost: {exc.message}") from exc


class LockMixin(Service):
    """``client.lock()`` and the server-side v3lock service."""

    async def lock_acquire(self, name: str | bytes, *, lease: Lease | int) -> bytes:
        """
        Take the lock ``name`` with etcd's v3lock service (``Lock`` RPC); return its key.

        Blocks until the lock is held; cancelling the wait removes the waiter's
        key on the server. The lease is required and must be kept alive (a
        ``client.lease()`` or ``client.session()``): with lease 0 the server
        would grant a 60 s lease it never renews, and the lock would vanish.
        Prefer :meth:`lock`, which also fences and cleans up.
        """
        raw = to_bytes(name, "lock name")
        if not raw:
            raise ValueError("lock name must not be empty")
        lease_value = lease_id(lease)
        if not lease_value:
            raise ValueError("the v3lock service needs a kept-alive lease, got lease 0")
        request = v3lockpb.LockRequest(name=self._core.ns.key(raw), lease=lease_value)
        response = await self._core.call(_LOCK, request, v3lockpb.LockResponse, repeatable=False)
        return self._core.ns.strip(response.key)

    async def lock_release(self, key: str | bytes) -> None:
        """Release a lock taken with :meth:`lock_acquire` (``Unlock`` RPC)."""
        request = v3lockpb.UnlockRequest(key=self._core.ns.key(to_key(key)))
        await self._core.call(
            _UNLOCK, request, v3lockpb.UnlockResponse, repeatable=True, write=True
        )

    def lock(
        self,
        name: str | bytes,
        *,
        ttl: int = 60,
        timeout: float | None = None,
        session: Lease | None = None,
        reentrant: bool = False,
    ) -> Lock:
        """
        A distributed lock for an ``async with`` block (fair: first come, first served).

        :param ttl: the TTL of the lock's own lease (ignored with ``session=``)
        :param timeout: bounds only the wait; expiry raises ``TimeoutError`` and
            leaves no key behind (so does any cancellation of the wait). ``0``: a try-lock
            (aetcd's and etcd3-py's ``acquire(blocking=False)``) that takes the lock if it is
            free and otherwise raises ``TimeoutError`` at once, without waiting
        :param session: hold the lock on this lease (``client.session()``) instead
            of a lease of its own
        :param reentrant: if the calling task already holds the lock ``name`` through this
            client (in an enclosing block), run the block at once under that hold instead of
            waiting for it (which would deadlock). Per task, like ``threading.RLock`` per
            thread: other tasks, and other clients, still wait
        :raises LockLostError: if the lease is lost while the lock is held (the
            block is cancelled first)
        """
        return Lock(
            self,  # type: ignore[arg-type]
            name,
            ttl=ttl,
            timeout=timeout,
            session=session,
            reentrant=reentrant,
        )

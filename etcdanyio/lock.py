"""
Distributed locks: the fair, revision-ordered recipe of etcd's Go client.

.. code-block:: python

    with anyio.fail_after(5):  # a cancel scope bounds the wait
        async with client.lock("reindex", ttl=10) as lock:
            await client.txn(compare=[lock.is_owner()], success=[txn.put("x", "1")])

A lock named ``N`` lives under the prefix ``N/``; each contender puts the key
``N/<lease ID in hex>`` with its lease, and the one with the lowest create
revision holds the lock. Waiters wait for their immediate predecessor only.
This is the layout of ``etcdctl lock N`` and Go's ``concurrency.NewMutex``, so
they exclude each other both ways.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio

from . import txn
from ._cleanup import Write, cleanup_scope
from ._keys import to_bytes, to_key
from ._lazy import v3lockpb  # imported on first use
from ._requests import SortOrder, SortTarget, check_optional_seconds, lease_id
from .errors import EtcdError, LeaseExpiredError
from .lease import Lease
from .types import RangeResult
from .watch import EventType, Filter

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    import betterproto2

    from ._cleanup import Hold
    from ._keys import Namespace
    from .client import Client

__all__ = ["Lock", "LockLostError"]

M = TypeVar("M", bound="betterproto2.Message")
_LOCK = "/v3lockpb.Lock/Lock"
_UNLOCK = "/v3lockpb.Lock/Unlock"

logger = logging.getLogger("etcdanyio.lock")


class LockLostError(LeaseExpiredError):
    """Raised from a lock's block when its lease was lost while the lock was held."""


async def wait_for_predecessors(client: Client, prefix: bytes, revision: int) -> None:
    """
    Return once no key under ``prefix`` has a create revision below ``revision``.

    Waits for the immediate predecessor's deletion only, then looks again: no
    thundering herd when the holder leaves.
    """
    while True:
        before = await client.get_prefix(
            prefix,
            max_create_revision=revision - 1,
            sort_target=SortTarget.CREATE,
            sort_order=SortOrder.DESCEND,
            limit=1,
            keys_only=True,
        )
        if not before.kvs:
            return
        predecessor = before.kvs[0].key
        async with client.watch(
            predecessor,
            start_revision=before.header.revision + 1,
            filters=[Filter.NO_PUT],
        ) as events:
            async for event in events:
                if event.type is EventType.DELETE:
                    break


async def held_by_predecessor(client: Client, prefix: bytes, revision: int) -> bool:
    """Whether a key under ``prefix`` was created before ``revision`` (one read, no wait)."""
    # Not count_only: etcd counts the keys of the range before the revision filters.
    before = await client.get_prefix(
        prefix, max_create_revision=revision - 1, limit=1, keys_only=True
    )
    return bool(before.kvs)


async def enqueue(
    client: Client, key: bytes, value: bytes, lease: Lease, write: Write
) -> tuple[int, bytes]:
    """
    Put ``key`` (if absent); return its create revision (the place in the queue)
    and its value (``value``, or what the key already held).

    The put is seen through (``write``): cancelled in flight, it still gets its answer
    before the cancellation is delivered, so that the key's clean-up never races it.
    """
    result = await write.run(
        lambda: client.txn(
            compare=[txn.create_revision(key) == 0],
            success=[txn.put(key, value, lease=lease)],
            failure=[txn.get(key)],
        )
    )
    if result.succeeded:
        return result.header.revision, value
    existing = result.responses[0]
    if not isinstance(existing, RangeResult) or not existing.kvs:
        # Our key exists (the compare failed) yet the get found none: it expired meanwhile.
        raise LeaseExpiredError(lease.id, "lock key vanished while it was being created")
    return existing.kvs[0].create_revision, existing.kvs[0].value


async def remove_key(
    client: Client, key: bytes, lease: Lease, hold: Hold, *, unknown: bool = False
) -> None:
    """
    Delete our ``key`` (a lock or campaign key) on leaving, shielded, under its own bound,
    never raising. If that fails, if the lease was lost (do not make the caller wait), or if
    the put that creates the key had no answer (``unknown``: etcd may still apply it), a
    background clean-up of the client finishes the job and keeps the key's guard until then.
    """
    if not unknown and lease.lost is None:
        try:
            with cleanup_scope() as scope:
                await client.delete(key)
            if not scope.cancelled_caught:
                return
        except (EtcdError, TimeoutError, anyio.ClosedResourceError) as exc:
            logger.info("delete of %r failed, retrying in the background: %r", key, exc)
    client._cleanups.delete(
        key, release=hold.hand_off(), expires_at=lease.deadline, write_unknown=unknown
    )


def check_session(session: object) -> None:
    if session is not None and not isinstance(session, Lease):
        raise TypeError(
            f"session must be a Lease from client.session(), got {session!r} "
            f"({type(session).__name__})"
        )


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
        holds = self._client._lock_holds()
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
                                self._client._key_guards.hold(key, wait=self._timeout != 0)
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


class LockMixin:
    """``client.lock()`` and the server-side v3lock service."""

    _ns: Namespace
    _held_locks: dict[tuple[bytes, int], Lock]

    def _lock_holds(self) -> dict[tuple[bytes, int], Lock]:
        """The locks held through this client, by ``(name, task ID)`` (for ``reentrant=``)."""
        holds: dict[tuple[bytes, int], Lock] | None = getattr(self, "_held_locks", None)
        if holds is None:
            holds = self._held_locks = {}
        return holds

    async def _call(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
        write: bool | None = None,
    ) -> M:
        raise NotImplementedError

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
        request = v3lockpb.LockRequest(name=self._ns.key(raw), lease=lease_value)
        response = await self._call(_LOCK, request, v3lockpb.LockResponse, repeatable=False)
        return self._ns.strip(response.key)

    async def lock_release(self, key: str | bytes) -> None:
        """Release a lock taken with :meth:`lock_acquire` (``Unlock`` RPC)."""
        request = v3lockpb.UnlockRequest(key=self._ns.key(to_key(key)))
        await self._call(_UNLOCK, request, v3lockpb.UnlockResponse, repeatable=True, write=True)

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

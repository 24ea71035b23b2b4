"""
The shared machinery of locks, elections and the recipes (Go's ``concurrency/key.go``).

Everything here works on the public client; what a scope leaves to the background (a key to
delete after a cancellation) goes to the client's named shared machinery on its core
(``client._core.cleanups``, ``client._core.key_guards``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from . import txn
from ._cleanup import Write, now_or_later
from ._lease import Lease
from ._requests import SortOrder, SortTarget
from .errors import LeaseExpiredError, WatchCompactedError
from .types import RangeResult
from .watch import EventType, Filter

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._cleanup import Hold
    from ._client import Client

logger = logging.getLogger("etcdanyio.lock")


def check_session(session: object) -> None:
    """``session=`` is ``None`` or a :class:`~etcdanyio.Lease`."""
    if session is not None and not isinstance(session, Lease):
        raise TypeError(
            f"session must be a Lease from client.session(), got {session!r} "
            f"({type(session).__name__})"
        )


@asynccontextmanager
async def hold_lease(client: Client, ttl: int, session: Lease | None) -> AsyncIterator[Lease]:
    """``session`` (checked alive), or a lease of our own held for the block."""
    if session is not None:
        session.check()
        yield session
    else:
        async with client.lease(ttl) as lease:
            yield lease


async def last_before(client: Client, prefix: bytes, revision: int) -> tuple[bytes | None, int]:
    """
    The key under ``prefix`` created last before ``revision`` (or ``None``), and the
    revision of the read.
    """
    found = await client.get_prefix(
        prefix,
        max_create_revision=revision - 1,
        sort_target=SortTarget.CREATE,
        sort_order=SortOrder.DESCEND,
        limit=1,
        keys_only=True,
    )
    return (found.kvs[0].key if found.kvs else None), found.header.revision


async def held_by_predecessor(client: Client, prefix: bytes, revision: int) -> bool:
    """Whether a key under ``prefix`` was created before ``revision`` (one read, no wait)."""
    # Not count_only: etcd counts the keys of the range before the revision filters.
    before = await client.get_prefix(
        prefix, max_create_revision=revision - 1, limit=1, keys_only=True
    )
    return bool(before.kvs)


async def wait_deleted(client: Client, key: bytes, revision: int) -> None:
    """
    Return once ``key``, which existed at ``revision``, has been deleted.

    Also returns if the history after ``revision`` was compacted meanwhile: the
    caller looks at the current state again either way.
    """
    with contextlib.suppress(WatchCompactedError):
        async with client.watch(
            key, start_revision=revision + 1, filters=[Filter.NO_PUT]
        ) as events:
            async for event in events:
                if event.type is EventType.DELETE:
                    return


async def wait_for_predecessors(client: Client, prefix: bytes, revision: int) -> None:
    """
    Return once no key under ``prefix`` has a create revision below ``revision`` (Go's
    ``waitDeletes``).

    Waits for the immediate predecessor's deletion only, then looks again: no
    thundering herd when the holder leaves.
    """
    while True:
        predecessor, seen_at = await last_before(client, prefix, revision)
        if predecessor is None:
            return
        await wait_deleted(client, predecessor, seen_at)


async def wait_put(client: Client, key: bytes, revision: int) -> int:
    """Return once ``key`` is put at ``revision`` or later, with the revision of that put."""
    while True:
        try:
            async with client.watch(
                key, start_revision=revision, filters=[Filter.NO_DELETE]
            ) as events:
                async for event in events:
                    if event.type is EventType.PUT:
                        return event.kv.mod_revision
        except WatchCompactedError:
            # The history we wanted is gone: look at the key instead, then watch from now.
            found = await client.get_range(key, key + b"\0", min_mod_revision=revision)
            if found.kvs:
                return found.kvs[0].mod_revision
            revision = found.header.revision + 1


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
    Delete our ``key`` (a lock or campaign key) on leaving (:func:`~._cleanup.now_or_later`).
    If the lease was lost or the put that creates the key had no answer (``unknown``: etcd may
    still apply it), a background clean-up of the client does it, keeping the key's guard
    until then.
    """
    await now_or_later(
        f"delete of {key!r}",
        lambda: client.delete(key),
        lambda: client._core.cleanups.delete(
            key, release=hold.hand_off(), expires_at=lease.deadline, write_unknown=unknown
        ),
        now=not unknown and lease.lost is None,
        log=logger,
    )


async def create_unique(
    client: Client, prefix: bytes, value: bytes = b"", lease: Lease | None = None
) -> tuple[bytes, int]:
    """
    Create ``prefix/<nanoseconds>`` (a fresh key, like Go's ``newUniqueKV``) and
    return it with its create revision. A name already taken is tried again.

    A key with ``lease`` is cleaned up (:func:`delete_own`) if the caller is cancelled or the
    call fails: its put is seen through first (:class:`~._cleanup.Write`), so that the delete
    never races the put (or, without an answer, is retried in the background until the put
    can no longer apply). A key without a lease is the caller's to keep (a queue item).
    """
    while True:
        key = b"%s/%d" % (prefix, time.time_ns())
        absent, put = [txn.create_revision(key) == 0], [txn.put(key, value, lease=lease)]
        if lease is None:
            result = await client.txn(absent, put)
        else:
            write = Write()
            try:
                result = await write.run(functools.partial(client.txn, absent, put))
            except BaseException:
                if write.may_exist:
                    await delete_own(client, key, lease, unknown=write.unknown)
                raise
        if result.succeeded:
            return key, result.header.revision


async def delete_own(client: Client, key: bytes, lease: Lease, *, unknown: bool = False) -> None:
    """
    Delete our unique ``key`` (a recipe's) if it still carries ``lease`` (so never someone
    else's), as :func:`remove_key` does.
    """
    await now_or_later(
        f"delete of {key!r}",
        lambda: client.txn(compare=[txn.lease(key) == lease.id], success=[txn.delete(key)]),
        lambda: client._core.cleanups.delete(key, expires_at=lease.deadline, write_unknown=unknown),
        now=not unknown and lease.lost is None,
        log=logger,
    )

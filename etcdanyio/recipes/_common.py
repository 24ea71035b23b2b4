"""Building blocks shared by the recipes, all on the public client API."""

from __future__ import annotations

import contextlib
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from .. import EtcdError, EventType, Filter, SortOrder, SortTarget, WatchCompactedError, txn
from .._requests import check_optional_seconds

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..client import Client
    from ..lease import Lease

#: How long deleting our own key on exit or cancellation may take (shielded).
CLEANUP_TIMEOUT = 2.0


def as_bytes(value: object, what: str) -> bytes:
    """``value`` as bytes (``str`` is encoded as UTF-8), checked before any I/O."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"{what} must be str or bytes, got {value!r} ({type(value).__name__})")


def as_name(value: object, what: str) -> bytes:
    """A non-empty key or key prefix as bytes."""
    name = as_bytes(value, what)
    if not name:
        raise ValueError(f"{what} must not be empty")
    return name


def check_int(value: object, what: str, *, minimum: int) -> int:
    """An ``int`` (not a bool) of at least ``minimum``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{what} must be at least {minimum}, got {value}")
    return value


def check_timeout(timeout: object) -> float | None:
    """``None`` or a positive, finite number of seconds."""
    return check_optional_seconds(timeout, "timeout")


@asynccontextmanager
async def hold_lease(client: Client, ttl: int, session: Lease | None) -> AsyncIterator[Lease]:
    """``session`` (checked alive), or a lease of our own held for the block."""
    if session is not None:
        session.check()
        yield session
    else:
        async with client.lease(ttl) as lease:
            yield lease


async def create_unique(
    client: Client, prefix: bytes, value: bytes = b"", lease: Lease | None = None
) -> tuple[bytes, int]:
    """
    Create ``prefix/<nanoseconds>`` (a fresh key, like Go's ``newUniqueKV``) and
    return it with its create revision. A name already taken is tried again.

    If the call fails or is cancelled after the request may have been sent, the
    key is deleted again (shielded, bounded) when it carries ``lease``.
    """
    while True:
        key = b"%s/%d" % (prefix, time.time_ns())
        try:
            result = await client.txn(
                compare=[txn.create_revision(key) == 0],
                success=[txn.put(key, value, lease=lease)],
            )
        except BaseException:
            if lease is not None:
                await delete_own(client, key, lease)
            raise
        if result.succeeded:
            return key, result.header.revision


async def delete_own(client: Client, key: bytes, lease: Lease) -> None:
    """
    Delete ``key`` if it still carries ``lease`` (so never someone else's), shielded
    and bounded; if this fails, the lease removes the key when it ends anyway.
    """
    with anyio.move_on_after(CLEANUP_TIMEOUT, shield=True), contextlib.suppress(EtcdError):
        await client.txn(compare=[txn.lease(key) == lease.id], success=[txn.delete(key)])


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

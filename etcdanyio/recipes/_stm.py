"""
Software transactional memory over etcd (Go's ``concurrency.NewSTM``).

.. code-block:: python

    async def transfer(tx: STM) -> bool:
        a = int(await tx.get("acct/a") or b"0")
        b = int(await tx.get("acct/b") or b"0")
        if a < 10:
            return False
        tx.put("acct/a", str(a - 10))
        tx.put("acct/b", str(b + 10))
        return True

    moved = await stm(client, transfer)

``apply`` reads through the transaction and buffers its writes; the commit is
one etcd transaction guarded by what was read. On a conflict, ``apply`` runs
again from scratch on fresh data, until a run commits.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, TypeVar

from .. import CompactedError, txn
from .._keys import to_key
from .._requests import check_int
from ..types import RangeResult

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from ..client import Client
    from ..types import KeyValue

__all__ = ["STM", "Isolation", "STMConflictError", "stm"]

T = TypeVar("T")


class Isolation(str, enum.Enum):
    """How :func:`stm` isolates a transaction (Go's ``concurrency.Isolation``)."""

    #: Reads see one snapshot (the revision of the first read); the commit fails if a
    #: key read changed, or a key written was changed by anyone after the snapshot.
    SERIALIZABLE_SNAPSHOT = "serializable_snapshot"
    #: Reads see one snapshot; the commit fails if a key read changed.
    SERIALIZABLE = "serializable"
    #: Each key is read once, at the latest revision then (from the local member);
    #: the commit fails if a key read changed.
    REPEATABLE_READ = "repeatable_read"
    #: Each key is read once, at the latest revision then; the commit never fails.
    READ_COMMITTED = "read_committed"


_SNAPSHOT = (Isolation.SERIALIZABLE_SNAPSHOT, Isolation.SERIALIZABLE)


class STMConflictError(Exception):
    """Raised by :func:`stm` when every attempt allowed by ``max_retries`` conflicted."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"stm gave up after {attempts} conflicting attempts")
        #: how many times ``apply`` ran
        self.attempts = attempts

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.attempts,))  # pickle and copy rebuild it from its fields


class _Retry(Exception):
    """This attempt cannot commit: run ``apply`` again (the snapshot was compacted)."""


class STM:
    """
    One attempt of a transaction, handed to ``apply``: read with :meth:`get`,
    write with :meth:`put` and :meth:`delete`.

    Writes are buffered until the commit, and a read of a key written in this
    attempt returns the buffered value. Reads and writes must not be used
    after ``apply`` returned.
    """

    def __init__(
        self,
        client: Client,
        isolation: Isolation,
        attempt: int,
        prefetched: dict[bytes, KeyValue | None],
        prefetched_revision: int,
    ) -> None:
        self._client = client
        self._isolation = isolation
        #: which run of ``apply`` this is (1 for the first)
        self.attempt = attempt
        self._reads: dict[bytes, KeyValue | None] = {}
        self._writes: dict[bytes, txn.Put | txn.Delete] = {}
        self._prefetched = prefetched
        self._prefetched_revision = prefetched_revision
        self._revision = 0
        self._doomed = False

    @property
    def revision(self) -> int:
        """The revision the reads see (with a snapshot isolation), ``0`` before the first read."""
        return self._revision

    async def get(self, key: str | bytes) -> bytes | None:
        """The key's value, or ``None`` if it does not exist (or was deleted in this attempt)."""
        name = to_key(key, "key")
        written = self._writes.get(name)
        if written is not None:
            return written.value if isinstance(written, txn.Put) else None
        kv = await self._fetch(name)
        return None if kv is None else kv.value

    async def rev(self, key: str | bytes) -> int:
        """The key's ``mod_revision`` as read (``0`` if it does not exist); adds it to the reads."""
        kv = await self._fetch(to_key(key, "key"))
        return 0 if kv is None else kv.mod_revision

    def put(self, key: str | bytes, value: str | bytes, *, lease: Any = None) -> None:
        """Write ``key`` when the transaction commits (``lease``: a ``Lease`` or an ID)."""
        op = txn.put(key, value, lease=lease)
        self._writes[op.key] = op

    def delete(self, key: str | bytes) -> None:
        """Delete ``key`` when the transaction commits."""
        op = txn.delete(to_key(key, "key"))
        self._writes[op.key] = op

    async def _fetch(self, key: bytes) -> KeyValue | None:
        if key in self._reads:
            return self._reads[key]
        snapshot = self._isolation in _SNAPSHOT
        if snapshot and not self._revision:
            # The first read fixes the snapshot: the revision of the prefetched reads, if any.
            self._revision = self._prefetched_revision
        if key in self._prefetched:
            kv = self._prefetched.pop(key)
        else:
            try:
                found = await self._client.get_range(
                    key,
                    key + b"\0",
                    revision=self._revision if snapshot else 0,
                    serializable=self._isolation is Isolation.REPEATABLE_READ,
                )
            except CompactedError as exc:
                # The snapshot is too old to read: this attempt can only start over.
                self._doomed = True
                raise _Retry from exc
            kv = found.kvs[0] if found.kvs else None
            if snapshot and not self._revision:
                self._revision = found.header.revision
        self._reads[key] = kv
        return kv

    async def _commit(self) -> tuple[bool, dict[bytes, KeyValue | None], int]:
        """Try to commit; on a conflict, also return the keys read, as of now."""
        compare: list[txn.Compare] = []
        if self._isolation is not Isolation.READ_COMMITTED:
            # Every key read is still as read (mod_revision 0: still absent).
            compare = [
                txn.mod_revision(key) == (0 if kv is None else kv.mod_revision)
                for key, kv in self._reads.items()
            ]
        if self._isolation is Isolation.SERIALIZABLE_SNAPSHOT and self._revision:
            # Nobody wrote what we write after our snapshot (a write-write conflict).
            compare += [txn.mod_revision(key) < self._revision + 1 for key in self._writes]
        if self._isolation in _SNAPSHOT:
            # Reading the keys again on failure saves the next attempt a round trip.
            failure: list[txn.Op] = [txn.get(key) for key in self._reads]
        else:
            failure = []
        result = await self._client.txn(
            compare=compare, success=list(self._writes.values()), failure=failure
        )
        if result.succeeded:
            return True, {}, 0
        prefetched: dict[bytes, KeyValue | None] = {}
        if failure:
            for key, response in zip(self._reads, result.responses, strict=True):
                assert isinstance(response, RangeResult)
                prefetched[key] = response.kvs[0] if response.kvs else None
        return False, prefetched, result.header.revision

    def _needs_commit(self) -> bool:
        if self._writes:
            return True
        # Snapshot reads are consistent by themselves; repeatable reads must be checked.
        return self._isolation is Isolation.REPEATABLE_READ and bool(self._reads)


async def stm(
    client: Client,
    apply: Callable[[STM], Awaitable[T]],
    *,
    isolation: Isolation | str = Isolation.SERIALIZABLE_SNAPSHOT,
    max_retries: int | None = None,
    prefetch: Iterable[str | bytes] = (),
) -> T:
    """
    Run ``apply`` as a transaction and return what it returned.

    ``apply(tx)`` reads with ``await tx.get(key)`` and writes with
    ``tx.put(key, value)`` / ``tx.delete(key)``; the writes are applied in one
    etcd transaction, guarded by the keys read (and, with the default
    ``"serializable_snapshot"``, by the keys written not having changed since
    the snapshot). If the guard fails, ``apply`` runs again on fresh data. So
    it may run several times: keep its side effects inside the transaction.

    A transaction touches at most 128 keys (etcd's ``--max-txn-ops``).

    Cancellation during the commit leaves its outcome unknown, as for any
    write; an exception from ``apply`` aborts the transaction (nothing is
    written) and propagates.

    :param isolation: an :class:`Isolation` or its value: ``"serializable_snapshot"``,
        ``"serializable"``, ``"repeatable_read"`` or ``"read_committed"``
    :param max_retries: how many times ``apply`` may run again after a conflict
        (``None``: until it commits)
    :param prefetch: keys to read in one request before ``apply`` runs
    :return: the value ``apply`` returned in the attempt that committed
    :raises STMConflictError: if ``max_retries`` conflicting retries were not enough
    :raises ValueError: if ``isolation`` or ``max_retries`` is not valid (``TypeError``
        for a ``max_retries`` that is not an int)
    """
    try:
        level = Isolation(isolation)
    except ValueError:
        names = ", ".join(repr(i.value) for i in Isolation)
        raise ValueError(
            f"isolation must be an Isolation or one of {names}, got {isolation!r}"
        ) from None
    if max_retries is not None:
        check_int(max_retries, "max_retries", minimum=0)
    wanted = [to_key(key, "prefetch key") for key in prefetch]
    prefetched: dict[bytes, KeyValue | None] = {}
    prefetched_revision = 0
    if wanted:
        result = await client.txn(success=[txn.get(key) for key in wanted])
        prefetched_revision = result.header.revision
        for key, response in zip(wanted, result.responses, strict=True):
            assert isinstance(response, RangeResult)
            prefetched[key] = response.kvs[0] if response.kvs else None
    attempt = 0
    while True:
        attempt += 1
        tx = STM(client, level, attempt, prefetched, prefetched_revision)
        prefetched, prefetched_revision = {}, 0
        try:
            value = await apply(tx)
        except _Retry:
            pass
        else:
            if not tx._doomed:
                # (A doomed attempt failed a read that only a fresh attempt can cure;
                # never commit it, even if ``apply`` swallowed the error.)
                if not tx._needs_commit():
                    return value
                committed, prefetched, prefetched_revision = await tx._commit()
                if committed:
                    return value
        if max_retries is not None and attempt > max_retries:
            raise STMConflictError(attempt)

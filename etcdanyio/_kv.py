"""The KV service: put, range reads, deletes, transactions, compaction."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from . import _txn
from ._keys import Namespace, to_bytes
from ._lazy import etcdserverpb as pb  # imported on first use
from ._pager import RangePager
from ._requests import check_int, get_args, key_range, put_args, range_fields
from ._service import Service
from ._speedups import codec as _codec
from ._txn import check_txn, encode_txn
from .types import (
    CompactResult,
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    ResponseHeader,
    TxnResult,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .txn import Compare, Op


_RANGE = "/etcdserverpb.KV/Range"
_PUT = "/etcdserverpb.KV/Put"
_DELETE = "/etcdserverpb.KV/DeleteRange"
_TXN = "/etcdserverpb.KV/Txn"
_COMPACT = "/etcdserverpb.KV/Compact"


def _strip_kv(ns: Namespace, kv: KeyValue) -> KeyValue:
    return dataclasses.replace(kv, key=ns.strip(kv.key))


def strip_result(ns: Namespace, result: Any) -> Any:
    """``result`` with the namespace removed from every key in it."""
    if not ns:
        return result
    if isinstance(result, RangeResult):
        return dataclasses.replace(result, kvs=[_strip_kv(ns, kv) for kv in result.kvs])
    if isinstance(result, PutResult):
        if result.prev_kv is None:
            return result
        return dataclasses.replace(result, prev_kv=_strip_kv(ns, result.prev_kv))
    if isinstance(result, DeleteResult):
        return dataclasses.replace(result, prev_kvs=[_strip_kv(ns, kv) for kv in result.prev_kvs])
    if isinstance(result, TxnResult):
        return dataclasses.replace(
            result, responses=[strip_result(ns, r) for r in result.responses]
        )
    return result


class KVMixin(Service):
    """Key-value calls."""

    async def put(
        self,
        key: str | bytes,
        value: str | bytes | None = None,
        *,
        lease: Any = None,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
    ) -> PutResult:
        """
        Set ``key`` to ``value``.

        :param lease: a ``Lease`` or a lease ID to attach the key to
        :param prev_kv: return the key as it was before (``.prev_kv``)
        :param ignore_value: keep the current value (pass no value); the key must exist
        :param ignore_lease: keep the current lease (pass no lease); the key must exist
        :return: the result, with ``.header.revision`` of the write
        :raises LeaseNotFoundError: if the lease does not exist
        """
        key_, value_, lease_, prev_kv_, ignore_value_, ignore_lease_ = put_args(
            key, value, lease, prev_kv, ignore_value, ignore_lease
        )
        core = self._core
        ns = core.ns
        request = _codec.encode_put(
            ns.key(key_), value_, lease_, prev_kv_, ignore_value_, ignore_lease_
        )
        raw = await core.call_raw(_PUT, request, repeatable=False)
        return strip_result(ns, _codec.decode_put_response(raw, core.wire_ids))  # type: ignore[no-any-return]

    async def _range(self, key: bytes, range_end: bytes, **options: Any) -> RangeResult:
        return await self._send_range(
            _codec.encode_range(**range_fields(self._core.ns, key, range_end, **options))
        )

    async def _send_range(self, request: bytes) -> RangeResult:
        """Send an encoded RangeRequest; the result with the namespace stripped."""
        core = self._core
        result = _codec.decode_range_response(
            await core.call_raw(_RANGE, request, repeatable=True), core.wire_ids
        )
        return strip_result(core.ns, result)  # type: ignore[no-any-return]

    async def get(
        self, key: str | bytes, *, revision: int = 0, serializable: bool = False
    ) -> KeyValue | None:
        """
        The key's current value (or at ``revision``), or ``None`` if it does not exist.

        :meth:`get_result` reads the same and also gives the response header (the revision
        the read saw).

        :param serializable: serve from the local member without consensus (may be stale)
        :raises CompactedError: if ``revision`` has been compacted
        """
        result = await self._send_range(self._encode_get(key, revision, serializable))
        return result.kvs[0] if result.kvs else None

    async def get_result(
        self, key: str | bytes, *, revision: int = 0, serializable: bool = False
    ) -> RangeResult:
        """
        Read one key as :meth:`get` does, with the whole response: ``.header.revision`` is the
        store's revision when the read was served (what optimistic concurrency compares
        against, also when the key does not exist), and the result is a sequence of zero or
        one ``KeyValue`` (``result[0]`` if ``result``).

        :param serializable: serve from the local member without consensus (may be stale)
        :raises CompactedError: if ``revision`` has been compacted

        .. versionadded:: 0.1
        """
        return await self._send_range(self._encode_get(key, revision, serializable))

    def _encode_get(self, key: str | bytes, revision: int, serializable: bool) -> bytes:
        """The RangeRequest of :meth:`get` and :meth:`get_result`, validated."""
        start, revision, serializable = get_args(key, revision, serializable)
        return _codec.encode_range(self._core.ns.key(start), b"", 0, revision, 0, 0, serializable)

    async def get_prefix(self, prefix: str | bytes, **options: Any) -> RangeResult:
        """
        The keys that start with ``prefix``, in key order (``b""``: every key).

        Takes the options of :meth:`get_range`.
        """
        start, end = key_range(prefix, prefix=True, what="prefix")
        return await self._range(start, end, **options)

    async def get_range(
        self,
        start: str | bytes,
        end: str | bytes,
        *,
        limit: int = 0,
        revision: int = 0,
        sort_order: Any = None,
        sort_target: Any = None,
        serializable: bool = False,
        keys_only: bool = False,
        count_only: bool = False,
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
    ) -> RangeResult:
        """
        The keys in ``[start, end)``; ``end=b"\\0"`` means "to the last key".

        :param limit: the most keys to return; 0 means no limit (see ``.more``)
        :param revision: read as of this revision (0: the latest)
        :param sort_order: ``SortOrder`` or ``"ascend"``/``"descend"``
        :param sort_target: ``SortTarget`` or ``"key"``, ``"version"``, ``"create"``,
            ``"mod"``, ``"value"``
        :param keys_only: return keys without values
        :param count_only: return only ``.count``
        :raises CompactedError: if ``revision`` has been compacted
        :raises ValueError: if ``end`` does not sort after ``start``, or an option is negative
        """
        key, range_end = key_range(start, to_bytes(end, "range end"))
        return await self._range(
            key,
            range_end,
            limit=limit,
            revision=revision,
            sort_order=sort_order,
            sort_target=sort_target,
            serializable=serializable,
            keys_only=keys_only,
            count_only=count_only,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )

    async def get_all(self, **options: Any) -> RangeResult:
        """Every key (of the namespace), with the options of :meth:`get_range`."""
        return await self.get_prefix(b"", **options)

    async def get_keys(self, prefix: str | bytes = b"", *, revision: int = 0) -> list[bytes]:
        """The keys that start with ``prefix``, without their values."""
        result = await self.get_prefix(prefix, keys_only=True, revision=revision)
        return [kv.key for kv in result.kvs]

    def iter_prefix(
        self,
        prefix: str | bytes,
        *,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> RangePager:
        """
        Iterate over every key that starts with ``prefix``, ``page_size`` keys per
        request, all read at one revision (``async for kv in client.iter_prefix(p)``).

        The iterator's ``.revision`` says which revision the walk reads.
        """
        start, end = key_range(prefix, prefix=True, what="prefix")
        return RangePager(
            self,
            start,
            end,
            page_size=page_size,
            revision=check_int(revision, "revision"),
            options={"keys_only": keys_only, "serializable": serializable},
        )

    def iter_range(
        self,
        start: str | bytes,
        end: str | bytes,
        *,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> RangePager:
        """Like :meth:`iter_prefix`, over the keys in ``[start, end)``."""
        key, range_end = key_range(start, to_bytes(end, "range end"))
        return RangePager(
            self,
            key,
            range_end,
            page_size=page_size,
            revision=check_int(revision, "revision"),
            options={"keys_only": keys_only, "serializable": serializable},
        )

    async def _delete(self, key: bytes, range_end: bytes, prev_kv: bool) -> DeleteResult:
        request = _codec.encode_delete_range(
            self._core.ns.key(key), self._core.ns.range_end(range_end), bool(prev_kv)
        )
        core = self._core
        raw = await core.call_raw(_DELETE, request, repeatable=False)
        result = _codec.decode_delete_range_response(raw, core.wire_ids)
        return strip_result(core.ns, result)  # type: ignore[no-any-return]

    async def delete(self, key: str | bytes, *, prev_kv: bool = False) -> DeleteResult:
        """Delete ``key``; ``.deleted`` is 0 if it did not exist."""
        start, _ = key_range(key)
        return await self._delete(start, b"", prev_kv)

    async def delete_prefix(self, prefix: str | bytes, *, prev_kv: bool = False) -> DeleteResult:
        """Delete every key that starts with ``prefix`` (``b""``: every key)."""
        start, end = key_range(prefix, prefix=True, what="prefix")
        return await self._delete(start, end, prev_kv)

    async def delete_range(
        self, start: str | bytes, end: str | bytes, *, prev_kv: bool = False
    ) -> DeleteResult:
        """Delete the keys in ``[start, end)`` (``end=b"\\0"``: to the last key)."""
        key, range_end = key_range(start, to_bytes(end, "range end"))
        return await self._delete(key, range_end, prev_kv)

    async def txn(
        self,
        compare: Sequence[Compare] = (),
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
    ) -> TxnResult:
        """
        Run ``success`` if every comparison holds, else ``failure``, atomically.

        Build the lists with :mod:`etcdanyio.txn`. A transaction is never retried
        once sent, even when it only reads.

        :return: ``.succeeded`` and one typed result per operation (``.responses``)
        :raises DuplicateKeyError: if two operations write the same key
        """
        core = self._core
        request = encode_txn(core.ns, *check_txn(compare, success, failure))
        raw = await core.call_raw(_TXN, request, repeatable=False)
        return strip_result(core.ns, _codec.decode_txn_response(raw, core.wire_ids))  # type: ignore[no-any-return]

    async def compact(self, revision: int, *, physical: bool = False) -> CompactResult:
        """
        Discard the history before ``revision``.

        :param physical: return only once the space is really freed on the member
        :raises CompactedError: if ``revision`` is already compacted
        :raises FutureRevisionError: if ``revision`` does not exist yet
        """
        request = pb.CompactionRequest(
            revision=check_int(revision, "revision", minimum=1), physical=bool(physical)
        )
        response = await self._core.call(_COMPACT, request, pb.CompactionResponse, repeatable=False)
        return CompactResult(ResponseHeader.from_pb(response.header))

    async def create(self, key: str | bytes, value: str | bytes, *, lease: Any = None) -> bool:
        """Put ``key`` only if it does not exist; ``True`` if it was created."""
        result = await self.txn(
            compare=[_txn.create_revision(key) == 0],
            success=[_txn.put(key, value, lease=lease)],
        )
        return result.succeeded

    async def replace(
        self, key: str | bytes, old: str | bytes, new: str | bytes, *, lease: Any = None
    ) -> bool:
        """
        Set ``key`` to ``new`` only if its value is ``old`` (one transaction); ``True`` if it
        was replaced.

        :param lease: a ``Lease`` or lease ID to attach the new value to; ``None`` detaches the
            key from any lease, as every put without ``ignore_lease`` does
        :raises LeaseNotFoundError: if the lease does not exist
        """
        to_bytes(new, "new value")
        result = await self.txn(
            compare=[_txn.value(key) == old], success=[_txn.put(key, new, lease=lease)]
        )
        return result.succeeded

"""The KV service: put, get, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from ._keys import prefix_range_end, to_bytes, to_key
from ._pb import etcdserverpb as pb
from .types import DeleteResult, KeyValue, PutResult, RangeResult

if TYPE_CHECKING:
    import betterproto2

M = TypeVar("M", bound="betterproto2.Message")

_RANGE = "/etcdserverpb.KV/Range"
_PUT = "/etcdserverpb.KV/Put"
_DELETE = "/etcdserverpb.KV/DeleteRange"


def _lease_id(lease: object) -> int:
    if lease is None:
        return 0
    lease_id = getattr(lease, "id", lease)
    if not isinstance(lease_id, int) or isinstance(lease_id, bool):
        raise TypeError(
            f"lease must be a Lease or an int ID, got {lease!r} ({type(lease).__name__})"
        )
    if lease_id < 0:
        raise ValueError(f"lease ID must not be negative, got {lease_id}")
    return lease_id


def _check_revision(revision: object) -> int:
    if not isinstance(revision, int) or isinstance(revision, bool):
        raise TypeError(f"revision must be an int, got {revision!r} ({type(revision).__name__})")
    if revision < 0:
        raise ValueError(f"revision must not be negative, got {revision}")
    return revision


class KVMixin:
    """Key-value calls; relies only on ``self._call``."""

    async def _call(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
    ) -> M:
        raise NotImplementedError

    async def put(
        self,
        key: str | bytes,
        value: str | bytes,
        *,
        lease: Any = None,
        prev_kv: bool = False,
    ) -> PutResult:
        """
        Set ``key`` to ``value``.

        :param lease: a ``Lease`` or a lease ID to attach the key to
        :param prev_kv: return the key as it was before (``.prev_kv``)
        :return: the result, with ``.header.revision`` of the write
        :raises LeaseNotFoundError: if the lease does not exist
        """
        request = pb.PutRequest(
            key=to_key(key), value=to_bytes(value, "value"), lease=_lease_id(lease), prev_kv=prev_kv
        )
        return PutResult.from_pb(await self._call(_PUT, request, pb.PutResponse, repeatable=False))

    async def get(
        self, key: str | bytes, *, revision: int = 0, serializable: bool = False
    ) -> KeyValue | None:
        """
        The key's current value (or at ``revision``), or ``None`` if it does not exist.

        :param serializable: serve from the local member without consensus (may be stale)
        :raises CompactedError: if ``revision`` has been compacted
        """
        request = pb.RangeRequest(
            key=to_key(key), revision=_check_revision(revision), serializable=serializable
        )
        response = await self._call(_RANGE, request, pb.RangeResponse, repeatable=True)
        return KeyValue.from_pb(response.kvs[0]) if response.kvs else None

    async def get_prefix(
        self,
        prefix: str | bytes,
        *,
        limit: int = 0,
        revision: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
    ) -> RangeResult:
        """
        The keys that start with ``prefix``, in key order.

        :param prefix: key prefix; ``b""`` means every key
        :param limit: the most keys to return; 0 means no limit (see ``.more``)
        """
        start = to_bytes(prefix, "prefix") or b"\0"
        if isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be a non-negative int, got {limit!r}")
        request = pb.RangeRequest(
            key=start,
            range_end=prefix_range_end(to_bytes(prefix, "prefix")),
            limit=limit,
            revision=_check_revision(revision),
            keys_only=keys_only,
            count_only=count_only,
            serializable=serializable,
        )
        return RangeResult.from_pb(
            await self._call(_RANGE, request, pb.RangeResponse, repeatable=True)
        )

    async def delete(self, key: str | bytes, *, prev_kv: bool = False) -> DeleteResult:
        """Delete ``key``; ``.deleted`` is 0 if it did not exist."""
        request = pb.DeleteRangeRequest(key=to_key(key), prev_kv=prev_kv)
        return DeleteResult.from_pb(
            await self._call(_DELETE, request, pb.DeleteRangeResponse, repeatable=False)
        )

    async def delete_prefix(self, prefix: str | bytes, *, prev_kv: bool = False) -> DeleteResult:
        """Delete every key that starts with ``prefix`` (``b""``: every key)."""
        raw = to_bytes(prefix, "prefix")
        request = pb.DeleteRangeRequest(
            key=raw or b"\0", range_end=prefix_range_end(raw), prev_kv=prev_kv
        )
        return DeleteResult.from_pb(
            await self._call(_DELETE, request, pb.DeleteRangeResponse, repeatable=False)
        )

"""The Lease service: grant, revoke, time-to-live, list, keepalive; ``client.lease()``."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any

import anyio

from . import _codec_calls as calls
from ._error_table import lease_not_found, translate
from ._grpc import GrpcError, TransportError
from ._lazy import etcdserverpb as pb  # imported on first use
from ._lease import Lease
from ._requests import check_int, check_optional_seconds, lease_id
from ._service import Service
from ._speedups import codec

if TYPE_CHECKING:
    from ._types import LeaseGrantResult, LeaseTimeToLiveResult
    from .types import ResponseHeader


_GRANT = "/etcdserverpb.Lease/LeaseGrant"
_REVOKE = "/etcdserverpb.Lease/LeaseRevoke"
_TTL = "/etcdserverpb.Lease/LeaseTimeToLive"
_LEASES = "/etcdserverpb.Lease/LeaseLeases"
_KEEPALIVE = "/etcdserverpb.Lease/LeaseKeepAlive"

#: etcd's largest TTL (seconds)
MAX_TTL = 9_000_000_000


def _check_ttl(ttl: object) -> int:
    value = check_int(ttl, "ttl", minimum=1)
    if value > MAX_TTL:
        raise ValueError(f"ttl must be at most {MAX_TTL} s, got {value}")
    return value


class LeaseMixin(Service):
    """Lease calls."""

    def lease(self, ttl: int, *, id: int = 0, interval: float | None = None) -> Lease:
        """
        A lease for an ``async with`` block: granted on entry, kept alive while
        the block runs, revoked on exit (or by :meth:`Lease.revoke` from inside).

        If the lease is lost meanwhile (expired, revoked elsewhere, or no
        keepalive answered within its TTL), the block is cancelled and
        :class:`~etcdanyio.LeaseExpiredError` is raised from the ``async with``.

        :param ttl: seconds; etcd raises a TTL below its minimum silently
        :param id: ask for this lease ID (0: a random one, so that a grant whose answer
            was lost can be found and revoked)
        :param interval: seconds between keepalives (default: a third of the TTL)
        """
        _check_ttl(ttl)
        check_int(id, "id")
        return Lease(self, ttl, lease_id=id, interval=_check_interval(interval))  # type: ignore[arg-type]

    def keepalive(
        self, lease_id: Any, *, interval: float | None = None, revoke: bool = False
    ) -> Lease:
        """
        Keep an existing lease alive for an ``async with`` block: one granted elsewhere (by
        another process, :meth:`lease_grant`, Go's ``Grant``), adopted by its ID (Go's
        ``KeepAlive(id)``, etcd3-py's ``Lease(ID=..., new=False)``).

        Kept alive on the client's shared keepalive stream like :meth:`lease`; if it is lost,
        the block is cancelled and :class:`~etcdanyio.LeaseExpiredError` raised. Leaving the
        block stops the keepalives but does **not** revoke the lease (it expires after its
        TTL) unless ``revoke=True`` or :meth:`Lease.revoke` was called. The result can be
        passed as ``session=`` to locks and campaigns.

        :param lease_id: the lease's ID (or a :class:`Lease`)
        :param interval: seconds between keepalives (default: a third of the TTL)
        :param revoke: revoke the lease when the block exits
        :raises LeaseNotFoundError: on entry, if the lease does not exist

        .. versionadded:: 0.1
        """
        return Lease(
            self,  # type: ignore[arg-type]
            1,
            lease_id=_lease_id(lease_id),
            adopt=True,
            revoke=bool(revoke),
            interval=_check_interval(interval),
        )

    def session(self, ttl: int = 60) -> Lease:
        """
        A lease to share between locks and elections (``session=``): losing it
        cancels every scope that depends on it.
        """
        return self.lease(ttl)

    async def lease_grant(self, ttl: int, *, id: int = 0) -> LeaseGrantResult:
        """
        Grant a lease of ``ttl`` seconds (not kept alive: see :meth:`lease`).

        Not retried once sent (a retry could grant a second lease), unless an
        ``id`` is given.
        """
        request = calls.encode_lease_grant(_check_ttl(ttl), check_int(id, "id"))
        raw = await self._core.call_raw(_GRANT, request, repeatable=bool(id), write=True)
        return calls.decode_lease_grant_response(raw, self._core.wire_ids)

    async def lease_revoke(self, lease_id: Any) -> ResponseHeader:
        """Revoke a lease: its keys are deleted. :raises LeaseNotFoundError: if it is gone."""
        request = calls.encode_lease_revoke(_lease_id(lease_id))
        raw = await self._core.call_raw(_REVOKE, request, repeatable=True, write=True)
        return calls.decode_lease_revoke_response(raw, self._core.wire_ids)

    async def lease_time_to_live(
        self, lease_id: Any, *, keys: bool = False
    ) -> LeaseTimeToLiveResult:
        """The lease's remaining TTL (``-1``: it does not exist); its keys with ``keys=True``."""
        request = calls.encode_lease_time_to_live(_lease_id(lease_id), bool(keys))
        raw = await self._core.call_raw(_TTL, request, repeatable=True)
        result = calls.decode_lease_time_to_live_response(raw, self._core.wire_ids)
        if result.keys:
            result = dataclasses.replace(result, keys=[self._core.ns.strip(k) for k in result.keys])
        return result

    async def leases(self) -> list[int]:
        """The IDs of every lease (etcd 3.3+)."""
        response = await self._core.call(
            _LEASES, pb.LeaseLeasesRequest(), pb.LeaseLeasesResponse, repeatable=True
        )
        return [status.id for status in response.leases]

    async def lease_keepalive_once(self, lease_id: Any) -> int:
        """
        Renew a lease once; return its new TTL.

        :raises LeaseNotFoundError: if it expired or was revoked
        """
        lease = _lease_id(lease_id)
        try:
            with (
                anyio.fail_after(self._core.timeout)
                if self._core.timeout
                else contextlib.nullcontext()
            ):
                async with self._core.channel.open_call(
                    _KEEPALIVE, metadata=self._core.stream_metadata()
                ) as call:
                    await call.send_message(codec.encode_lease_keepalive(lease))
                    data = await call.recv_message()
        except (GrpcError, TransportError) as exc:
            raise translate(exc, write=False) from exc
        ttl = codec.decode_lease_keepalive(data or b"")[1]
        if ttl <= 0:
            raise lease_not_found()
        return ttl


def _check_interval(interval: object) -> float | None:
    return check_optional_seconds(interval, "interval")


def _lease_id(lease: Any) -> int:
    value = lease_id(lease)
    if not value:
        raise ValueError("lease ID must not be 0")
    return value

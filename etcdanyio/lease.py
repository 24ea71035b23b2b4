"""
Leases as scopes.

.. code-block:: python

    async with client.lease(ttl=10) as lease:  # granted; kept alive meanwhile
        await client.put("service/a", "10.0.0.1", lease=lease)
    # revoked on exit

If etcd reports the lease gone while the block runs (expired, revoked
elsewhere), or no keepalive was answered within its TTL, the block is
cancelled and :class:`~etcdanyio.LeaseExpiredError` is raised from the
``async with`` as itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from .errors import EtcdError, LeaseExpiredError, RpcError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ._keepalive import Registration
    from ._lease import LeaseMixin
    from .types import ResponseHeader

__all__ = ["Lease", "LeaseGrantResult", "LeaseTimeToLiveResult"]

#: How long revoking a lease on exit may take (shielded).
REVOKE_TIMEOUT = 2.0


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseGrantResult:
    """What :meth:`Client.lease_grant` returns: the new lease's ID and granted TTL."""

    header: ResponseHeader
    #: the lease ID
    id: int
    #: the TTL the server granted (it may raise a short one to its minimum)
    ttl: int


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseTimeToLiveResult:
    """What :meth:`Client.lease_time_to_live` returns: a lease's remaining and granted TTL."""

    header: ResponseHeader
    #: the lease ID
    id: int
    #: seconds left; -1 if the lease does not exist (expired or revoked)
    ttl: int
    #: the TTL granted at creation (or at the last keepalive)
    granted_ttl: int
    #: the keys attached, if ``keys=True`` was asked
    keys: list[bytes]


class Lease(anyio.AsyncContextManagerMixin):
    """
    A lease held for the duration of an ``async with`` block.

    Granted before the body runs, kept alive on the client's shared keepalive
    stream, revoked (shielded, bounded) when the block exits. Pass it as
    ``lease=`` to :meth:`Client.put` and to transaction puts.
    """

    def __init__(self, client: LeaseMixin, ttl: int, *, lease_id: int = 0) -> None:
        self._client = client
        self._requested_ttl = ttl
        self._requested_id = lease_id
        #: the lease ID (valid inside the block)
        self.id = 0
        #: the TTL granted by the server
        self.ttl = 0
        self._registration: Registration | None = None
        self._entered = False

    def __repr__(self) -> str:
        return f"Lease(id={self.id:#x}, ttl={self.ttl})"

    @property
    def lost(self) -> BaseException | None:
        """Why the lease was lost (``None`` while it is alive)."""
        return self._registration.lost if self._registration is not None else None

    @property
    def deadline(self) -> float:
        """The local deadline (``anyio.current_time()`` scale) by which the next answer is due."""
        return self._registration.deadline if self._registration is not None else 0.0

    def add_dependent(self, scope: anyio.CancelScope) -> None:
        """Cancel ``scope`` too if the lease is lost (used by locks and elections)."""
        if self._registration is None:
            raise RuntimeError("the lease is not active")
        self._registration.add(scope)

    def remove_dependent(self, scope: anyio.CancelScope) -> None:
        """Stop cancelling ``scope`` when the lease is lost (undoes :meth:`add_dependent`)."""
        if self._registration is not None:
            self._registration.discard(scope)

    def check(self) -> None:
        """Raise :class:`LeaseExpiredError` if the lease is already lost."""
        if self._registration is None:
            raise RuntimeError("the lease is not active")
        if self._registration.lost is not None:
            raise LeaseExpiredError(self.id) from self._registration.lost

    async def time_to_live(self, *, keys: bool = False) -> LeaseTimeToLiveResult:
        """The lease's remaining TTL (and, with ``keys=True``, its keys)."""
        return await self._client.lease_time_to_live(self.id, keys=keys)

    async def keepalive_once(self) -> int:
        """Renew the lease now; return the new TTL."""
        return await self._client.lease_keepalive_once(self.id)

    async def remaining_ttl(self) -> int:
        """
        Seconds left before the lease expires, as etcd counts them; ``-1`` once it is gone
        (aetcd's and python-etcd3's ``remaining_ttl()``).

        .. versionadded:: 0.1
        """
        return (await self.time_to_live()).ttl

    async def granted_ttl(self) -> int:
        """
        The TTL etcd granted, in seconds (aetcd's and python-etcd3's ``granted_ttl()``).

        .. versionadded:: 0.1
        """
        return (await self.time_to_live()).granted_ttl

    async def keys(self) -> list[bytes]:
        """
        The keys attached to the lease (aetcd's and python-etcd3's ``keys()``).

        .. versionadded:: 0.1
        """
        return (await self.time_to_live(keys=True)).keys

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncGenerator[Lease]:
        if self._entered:
            raise RuntimeError("lease is already entered")
        self._entered = True
        client = self._client
        # A client-chosen ID makes the grant safe to retry, and lets a grant cancelled
        # in flight be revoked instead of leaking for its whole TTL.
        lease_id = self._requested_id or random.SystemRandom().randrange(1, 2**63)
        sent_at = anyio.current_time()
        try:
            grant = await client.lease_grant(self._requested_ttl, id=lease_id)
        except RpcError as exc:
            if self._requested_id or exc.message != "etcdserver: lease already exists":
                raise
            # A retry of our own grant that had been applied: the lease is ours.
            info = await client.lease_time_to_live(lease_id)
            grant = LeaseGrantResult(info.header, lease_id, info.granted_ttl)
        except BaseException:
            with (
                anyio.move_on_after(REVOKE_TIMEOUT, shield=True),
                contextlib.suppress(EtcdError),
            ):
                await client.lease_revoke(lease_id)
            raise
        self.id, self.ttl = grant.id, grant.ttl
        keepalive = self._client._keepalive()
        with anyio.CancelScope() as scope:
            registration = self._registration = keepalive.register(
                grant.id, grant.ttl, sent_at, scope
            )
            try:
                yield self
            finally:
                keepalive.unregister(registration)
                if registration.lost is None:
                    # Unreachable: then it expires by itself.
                    with (
                        anyio.move_on_after(REVOKE_TIMEOUT, shield=True),
                        contextlib.suppress(EtcdError),
                    ):
                        await client.lease_revoke(grant.id)
                else:
                    # Lost: report it now, not after a revoke that may hang until it
                    # times out; the revoke (in case the server still has it) runs on.
                    with contextlib.suppress(RuntimeError):  # the client is closing
                        client._tg.start_soon(_revoke_quietly, client, grant.id)
        if registration.lost is not None:
            raise LeaseExpiredError(grant.id, _describe(registration.lost)) from registration.lost


async def _revoke_quietly(client: LeaseMixin, lease_id: int) -> None:
    # A background task of the client: it must not fail the client's task group,
    # also not when the client closed before it ran.
    with (
        anyio.move_on_after(REVOKE_TIMEOUT),
        contextlib.suppress(EtcdError, anyio.ClosedResourceError),
    ):
        await client.lease_revoke(lease_id)


def _describe(cause: BaseException) -> str:
    return f"lease lost: {cause}"

"""Leases as scopes (the public module is :mod:`etcdanyio.lease`)."""

from __future__ import annotations

import logging
import random
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._cleanup import Write, now_or_later
from ._error_table import lease_not_found
from ._keepalive import LeaseLost
from ._types import LeaseGrantResult, LeaseTimeToLiveResult
from .errors import LeaseExistsError, LeaseExpiredError, LeaseNotFoundError

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from ._client import Client
    from ._keepalive import Registration


logger = logging.getLogger("etcdanyio.lease")


class Lease(anyio.AsyncContextManagerMixin):
    """
    A lease held for the duration of an ``async with`` block.

    Granted before the body runs, kept alive on the client's shared keepalive
    stream, revoked (shielded, bounded) when the block exits. Pass it as
    ``lease=`` to :meth:`Client.put` and to transaction puts.
    """

    def __init__(
        self,
        client: Client,
        ttl: int,
        *,
        lease_id: int = 0,
        adopt: bool = False,
        revoke: bool = True,
        interval: float | None = None,
    ) -> None:
        self._client = client
        self._requested_ttl = ttl
        self._requested_id = lease_id
        #: keep alive the existing lease ``lease_id`` instead of granting one
        self._adopt = adopt
        #: revoke the lease when the block exits
        self._revoke_on_exit = revoke
        self._interval = interval
        #: the lease ID (valid inside the block)
        self.id = 0
        #: the TTL granted by the server
        self.ttl = 0
        self._registration: Registration | None = None
        self._own_scope: anyio.CancelScope | None = None
        self._entered = False
        self._revoked = False

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

    async def revoke(self) -> None:
        """
        End the lease now: etcd deletes its keys, and the scopes that depend on it (locks and
        campaigns on this session) are cancelled and raise their lost-lease error. This
        block goes on, and exits without :class:`LeaseExpiredError`: it was its decision.
        If the revoke fails, the lease stays kept alive and the error is raised.

        .. versionadded:: 0.1
        """
        registration = self._registration
        if registration is None:
            raise RuntimeError("the lease is not active")
        if self._revoked:
            return
        own = self._own_scope
        assert own is not None  # set with the registration
        # Our own block must not be cancelled by etcd's "TTL 0" answers that may follow.
        registration.discard(own)
        self._revoked = True
        try:
            await self._client.lease_revoke(self.id)
        except LeaseNotFoundError:
            pass  # gone already: the outcome the caller asked for
        except BaseException:
            self._revoked = False
            registration.add(own)
            raise
        registration.owners = 1  # nobody keeps a revoked lease alive: drop it for all
        self._client._core.keepalives().unregister(registration)
        registration.lose(LeaseLost("revoked by Lease.revoke()"), deliberate=True)

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
        sent_at = anyio.current_time()
        if self._adopt:
            grant = await self._adopt_existing()
        else:
            # A client-chosen ID makes the grant safe to retry, and lets a grant whose outcome
            # is unknown be found and revoked later instead of leaking for its whole TTL.
            lease_id = self._requested_id or random.SystemRandom().randrange(1, 2**63)
            ttl = self._requested_ttl
            grant_write = Write()
            try:
                grant = await grant_write.run(lambda: self._grant(lease_id))
            except BaseException:
                # Seen through (_cleanup.Write): a grant that was answered is revoked after it
                # was applied, never before; one whose answer never came is looked for a while.
                if grant_write.may_exist:
                    await _revoke(client, lease_id, sent_at + ttl, unknown=grant_write.unknown)
                raise
        self.id, self.ttl = grant.id, grant.ttl
        keepalive = self._client._core.keepalives()
        with anyio.CancelScope() as scope:
            self._own_scope = scope
            registration = self._registration = keepalive.register(
                grant.id, grant.ttl, sent_at, scope, interval=self._interval
            )
            try:
                yield self
            finally:
                if not self._revoked:
                    keepalive.unregister(registration, scope)
                if self._revoked or not self._revoke_on_exit:
                    pass  # revoked from inside, or kept for its owner
                elif registration.lost is None:
                    await _revoke(client, grant.id, registration.deadline)
                else:
                    # Lost: report it now, not after a revoke that may hang until it times
                    # out; the revoke (in case the server still has it) runs on.
                    client._core.cleanups.revoke(grant.id, expires_at=registration.deadline)
        if registration.lost is not None and not self._revoked:
            raise LeaseExpiredError(grant.id, _describe(registration.lost)) from registration.lost

    async def _adopt_existing(self) -> LeaseGrantResult:
        info = await self._client.lease_time_to_live(self._requested_id)
        if info.ttl < 0:
            raise lease_not_found()
        # Until the first keepalive is answered, the lease lasts what etcd said is left.
        return LeaseGrantResult(info.header, self._requested_id, max(info.ttl, 1))

    async def _grant(self, lease_id: int) -> LeaseGrantResult:
        client = self._client
        try:
            return await client.lease_grant(self._requested_ttl, id=lease_id)
        except LeaseExistsError:
            if self._requested_id:
                raise
        # A retry of our own grant that had been applied: the lease is ours.
        info = await client.lease_time_to_live(lease_id)
        return LeaseGrantResult(info.header, lease_id, info.granted_ttl)


async def _revoke(
    client: Client, lease_id: int, expires_at: float, *, unknown: bool = False
) -> None:
    """
    Revoke ``lease_id`` now (:func:`~._cleanup.now_or_later`); what could not be done is left
    to a background task of the client, until the lease would have expired.
    """
    await now_or_later(
        f"revoke of lease {lease_id:x}",
        lambda: client.lease_revoke(lease_id),
        lambda: client._core.cleanups.revoke(
            lease_id, expires_at=expires_at, grant_unknown=unknown
        ),
        now=not unknown,
        done_on=(LeaseNotFoundError,),  # expired, or revoked elsewhere
        log=logger,
    )


def _describe(cause: BaseException) -> str:
    return f"lease lost: {cause}"

"""
etcd's v3election service, call for call (``Campaign``, ``Proclaim``, ``Leader``, ``Observe``,
``Resign``): the election recipe run by the server, next to the v3lock calls
(``client.lock_acquire``).

The server runs Go's ``concurrency.Election`` with the lease the caller names, so these calls
use the keys of ``client.election()``, ``etcdctl elect`` and Go's ``NewElection``: they all
take part in the same elections. A :class:`LeaderKey` is plain data: hand it to another task or
process, which can then proclaim or resign with it.
"""

from __future__ import annotations

import dataclasses
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from ._error_table import is_deadline_answer, let_deadline_fire, translate
from ._grpc import GrpcError, TransportError
from ._keys import to_bytes
from ._lazy import v3electionpb as epb  # imported on first use
from ._requests import check_int, lease_id
from ._service import Service
from .errors import ElectionNoLeaderError
from .types import KeyValue

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from typing_extensions import Self

    from ._grpc._call import Call
    from ._keys import Namespace
    from ._lease import Lease

__all__ = ["ElectionObservation", "LeaderKey"]


_SERVICE = "/v3electionpb.Election/"


@dataclasses.dataclass(frozen=True, slots=True)
class LeaderKey:
    """
    What a won campaign holds (v3election's ``LeaderKey``): enough to proclaim or resign from
    any task, process or client of the same cluster (and namespace).
    """

    #: the election's name
    name: bytes
    #: the leader's key in etcd (``name/<lease ID in hex>``)
    key: bytes
    #: the key's create revision: a fencing token
    revision: int
    #: the lease the key is attached to; leadership ends when it does
    lease: int


class ElectionObservation:
    """The leaders of an election as they change: ``async for kv in observation``."""

    def __init__(self, call: Call, ns: Namespace) -> None:
        self._call = call
        self._ns = ns

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> KeyValue:
        try:
            raw = await self._call.recv_message()
        except (GrpcError, TransportError) as exc:
            if isinstance(exc, GrpcError) and is_deadline_answer(exc):
                # The stream carries the caller's deadline as grpc-timeout: when etcd ends it
                # for that deadline, let the caller's own scope fire instead.
                await let_deadline_fire()
            raise translate(exc, write=False) from exc
        if raw is None:
            raise StopAsyncIteration
        kv = epb.LeaderResponse.parse(raw).kv
        if kv is None:  # never seen from etcd; keep the type total
            raise StopAsyncIteration
        return dataclasses.replace(KeyValue.from_pb(kv), key=self._ns.strip(kv.key))


class ElectionRpcMixin(Service):
    """The v3election calls."""

    def _election_name(self, name: object) -> bytes:
        raw = to_bytes(name, "election name")
        if not raw:
            raise ValueError("election name must not be empty")
        return self._core.ns.key(raw)

    def _leader_key(self, leader: object) -> epb.LeaderKey:
        if not isinstance(leader, LeaderKey):
            raise TypeError(
                f"leader must be a LeaderKey (from election_campaign), got {leader!r} "
                f"({type(leader).__name__})"
            )
        return epb.LeaderKey(
            name=self._election_name(leader.name),
            key=self._core.ns.key(to_bytes(leader.key, "leader key")),
            rev=check_int(leader.revision, "leader revision", minimum=1),
            lease=check_int(leader.lease, "leader lease", minimum=1),
        )

    async def election_campaign(
        self, name: str | bytes, value: str | bytes, *, lease: Lease | int
    ) -> LeaderKey:
        """
        Campaign in the election ``name`` with etcd's v3election service (``Campaign`` RPC);
        return once this campaign leads.

        Cancelling the wait withdraws the candidate on the server (its key is deleted). The
        lease is required and must be kept alive (a ``client.lease()``, or one you keep alive
        yourself): with lease 0 the server would grant a 60 s lease it never renews. Prefer
        ``client.election(name).campaign()``, which also resigns on exit.

        :return: the :class:`LeaderKey`, to proclaim or resign with from anywhere
        :raises LeaseNotFoundError: if the lease does not exist

        .. versionadded:: 0.1
        """
        raw_value = to_bytes(value, "value")
        lease_value = lease_id(lease)
        if not lease_value:
            raise ValueError("the v3election service needs a kept-alive lease, got lease 0")
        request = epb.CampaignRequest(
            name=self._election_name(name), lease=lease_value, value=raw_value
        )
        response = await self._core.call(
            _SERVICE + "Campaign", request, epb.CampaignResponse, repeatable=False
        )
        leader = response.leader or epb.LeaderKey()
        return LeaderKey(
            self._core.ns.strip(leader.name),
            self._core.ns.strip(leader.key),
            leader.rev,
            leader.lease,
        )

    async def election_proclaim(self, leader: LeaderKey, value: str | bytes) -> None:
        """
        Announce a new value as the leader ``leader`` (``Proclaim`` RPC), without a new
        election.

        :raises ElectionNotLeaderError: if ``leader`` no longer leads (resigned, lease lost)

        .. versionadded:: 0.1
        """
        request = epb.ProclaimRequest(
            leader=self._leader_key(leader), value=to_bytes(value, "value")
        )
        await self._core.call(
            _SERVICE + "Proclaim", request, epb.ProclaimResponse, repeatable=False
        )

    async def election_leader(self, name: str | bytes) -> KeyValue | None:
        """
        The current leader's key and value in the election ``name`` (``Leader`` RPC), or
        ``None`` when nobody leads (etcd answers that with the error ``election: no leader``).

        .. versionadded:: 0.1
        """
        request = epb.LeaderRequest(name=self._election_name(name))
        try:
            response = await self._core.call(
                _SERVICE + "Leader", request, epb.LeaderResponse, repeatable=True
            )
        except ElectionNoLeaderError:
            return None
        if response.kv is None:
            return None
        kv = response.kv
        return dataclasses.replace(KeyValue.from_pb(kv), key=self._core.ns.strip(kv.key))

    @asynccontextmanager
    async def election_observe(self, name: str | bytes) -> AsyncIterator[ElectionObservation]:
        """
        Follow the leaders of the election ``name`` (``Observe`` RPC): iterate the block's
        value for the leader's ``KeyValue`` each time the leader or its value changes. The
        server sends nothing while nobody leads. Leaving the block ends the stream.

        .. versionadded:: 0.1
        """
        request = bytes(epb.LeaderRequest(name=self._election_name(name)))
        try:
            async with self._core.open_stream(
                _SERVICE + "Observe", request, endpoints=None
            ) as call:
                yield ElectionObservation(call, self._core.ns)
        except (GrpcError, TransportError) as exc:
            raise translate(exc, write=False) from exc

    async def election_resign(self, leader: LeaderKey) -> None:
        """
        Give up the leadership ``leader`` (``Resign`` RPC): its key is deleted, and the next
        candidate leads. Resigning a leadership that already ended does nothing.

        .. versionadded:: 0.1
        """
        request = epb.ResignRequest(leader=self._leader_key(leader))
        # Retried like Unlock (deleting the key twice is harmless), but a write: a failure
        # after sending leaves ``applied`` unknown.
        await self._core.call(
            _SERVICE + "Resign", request, epb.ResignResponse, repeatable=True, write=True
        )

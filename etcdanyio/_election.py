"""Leader elections (the public module is :mod:`etcdanyio.election`)."""

from __future__ import annotations

import contextlib
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from . import txn
from ._cleanup import Write
from ._concurrency import check_session, enqueue, remove_key, wait_for_predecessors
from ._election_rpc import LeaderKey
from ._keys import to_bytes
from ._requests import SortOrder, SortTarget, check_int
from ._service import Service
from .errors import EtcdError, LeaseExpiredError
from .watch import EventType

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
    from typing_extensions import Self

    from ._client import Client
    from ._lease import Lease
    from .types import KeyValue

logger = logging.getLogger("etcdanyio.election")


class NotLeaderError(EtcdError):
    """Raised by ``proclaim``/``resign`` when this campaign no longer leads."""

    def __init__(self, message: str = "this campaign is not the leader") -> None:
        super().__init__(message, applied=False)


class LeadershipLostError(LeaseExpiredError):
    """Raised from a campaign's block when its lease was lost while it led."""


class Leadership:
    """What a won campaign holds: its key, revision and current value."""

    def __init__(
        self,
        client: Client,
        key: bytes,
        revision: int,
        value: bytes,
        lease: Lease | None,
        *,
        name: bytes = b"",
        lease_id: int = 0,
    ):
        self._client = client
        #: the election's name
        self.name = name
        #: the leader key (without the client's namespace)
        self.key = key
        #: its create revision: a fencing token
        self.revision = revision
        #: the value last proclaimed
        self.value = value
        self._lease = lease
        self._lease_id = lease.id if lease is not None else lease_id
        self._resigned = False

    @property
    def lease(self) -> Lease:
        """
        The campaign's lease. A leadership resumed from a :class:`LeaderKey` has none here
        (its lease's ID is ``leader_key.lease``).
        """
        if self._lease is None:
            raise RuntimeError("a resumed leadership has no Lease here; see leader_key.lease")
        return self._lease

    def __repr__(self) -> str:
        return (
            f"Leadership(name={self.name!r}, key={self.key!r}, revision={self.revision}, "
            f"lease={self._lease_id:#x})"
        )

    @property
    def leader_key(self) -> LeaderKey:
        """This leadership as plain values, for :meth:`Election.resume` elsewhere."""
        return LeaderKey(self.name, self.key, self.revision, self._lease_id)

    def is_leader(self) -> txn.Compare:
        """A compare that holds while this campaign leads: guard writes with it."""
        return txn.create_revision(self.key) == self.revision

    async def proclaim(self, value: str | bytes) -> None:
        """Announce a new value without giving up leadership."""
        data = to_bytes(value, "value")
        result = await self._client.txn(
            compare=[self.is_leader()],
            success=[txn.put(self.key, data, ignore_lease=True)],
        )
        if not result.succeeded:
            raise NotLeaderError
        self.value = data

    async def resign(self) -> None:
        """Give up leadership now (also done when the block exits)."""
        if self._resigned:
            return
        self._resigned = True
        result = await self._client.txn(compare=[self.is_leader()], success=[txn.delete(self.key)])
        if not result.succeeded:
            raise NotLeaderError


class Observation:
    """The leader changes seen by :meth:`Election.observe`; ``None`` means no leader."""

    def __init__(self, receive: MemoryObjectReceiveStream[KeyValue | None]) -> None:
        self._receive = receive
        self.error: BaseException | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> KeyValue | None:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            if self.error is not None:
                raise self.error from None
            raise StopAsyncIteration from None


class Election:
    """An election named ``name`` (its candidates live under ``name + "/"``)."""

    def __init__(self, client: Client, name: str | bytes) -> None:
        raw = to_bytes(name, "election name")
        if not raw:
            raise ValueError("election name must not be empty")
        self._client = client
        self.name = raw
        self.prefix = raw + b"/"

    def __repr__(self) -> str:
        return f"Election(name={self.name!r})"

    async def leader(self) -> KeyValue | None:
        """The current leader's key and value, or ``None`` when nobody leads."""
        result = await self._client.get_prefix(
            self.prefix, sort_target=SortTarget.CREATE, sort_order=SortOrder.ASCEND, limit=1
        )
        return result.kvs[0] if result.kvs else None

    async def resume(self, leader_key: LeaderKey) -> Leadership:
        """
        The leadership that ``leader_key`` names (from :attr:`Leadership.leader_key`, maybe in
        another process), to :meth:`~Leadership.proclaim` or :meth:`~Leadership.resign` with
        (Go's ``ResumeElection``). Nothing keeps its lease alive here: its owner does.

        :raises NotLeaderError: if that key no longer leads (resigned, lease lost)
        :raises ValueError: if ``leader_key`` belongs to another election

        .. versionadded:: 0.1
        """
        if not isinstance(leader_key, LeaderKey):
            raise TypeError(f"leader_key must be a LeaderKey, got {leader_key!r}")
        if leader_key.name != self.name or not leader_key.key.startswith(self.prefix):
            raise ValueError(f"{leader_key!r} is not a leader key of election {self.name!r}")
        current = await self.leader()
        if (
            current is None
            or current.key != leader_key.key
            or current.create_revision != leader_key.revision
        ):
            raise NotLeaderError(f"{leader_key.key!r} does not lead election {self.name!r}")
        return Leadership(
            self._client,
            leader_key.key,
            leader_key.revision,
            current.value,
            None,
            name=self.name,
            lease_id=leader_key.lease,
        )

    @asynccontextmanager
    async def campaign(
        self, value: str | bytes, *, ttl: int = 60, session: Lease | None = None
    ) -> AsyncGenerator[Leadership]:
        """
        Wait to become the leader, then lead for the block's duration.

        Leaving the block resigns. If the lease is lost while leading, the
        block is cancelled and :class:`LeadershipLostError` is raised.
        Bound the wait with a cancel scope; a cancelled candidate leaves no key.
        """
        data = to_bytes(value, "value")
        check_session(session)
        client = self._client
        held = False
        try:
            async with contextlib.AsyncExitStack() as stack:
                if session is not None:
                    lease = session
                    lease.check()
                else:
                    lease = await stack.enter_async_context(client.lease(ttl))
                key = self.prefix + b"%x" % lease.id
                with anyio.CancelScope() as scope:
                    lease.add_dependent(scope)
                    try:
                        # Campaigns sharing a session share its key: one at a time.
                        hold = await stack.enter_async_context(client._core.key_guards.hold(key))
                        write = Write()
                        try:
                            revision, current = await enqueue(client, key, data, lease, write)
                            if current != data:  # re-entry with another value: proclaim it
                                await client.put(key, data, ignore_lease=True)
                            await wait_for_predecessors(client, self.prefix, revision)
                            mine = await client.get(key)
                            if mine is None or mine.create_revision != revision:
                                lease.check()
                                raise LeaseExpiredError(
                                    lease.id, "campaign key vanished: session lost"
                                )
                        except BaseException:
                            if write.may_exist:
                                unknown = write.unknown and session is not None
                                await remove_key(client, key, lease, hold, unknown=unknown)
                            raise
                        leadership = Leadership(client, key, revision, data, lease, name=self.name)
                        held = True
                        try:
                            yield leadership
                        finally:
                            leadership._resigned = True
                            await remove_key(client, key, lease, hold)
                    finally:
                        lease.remove_dependent(scope)
                if lease.lost is not None:
                    logger.warning("leadership lost election=%r: %s", self.name, lease.lost)
                    raise LeadershipLostError(
                        lease.id, f"leadership of {self.name!r} lost: {lease.lost}"
                    ) from lease.lost
        except LeaseExpiredError as exc:
            # The campaign's own lease raises plain LeaseExpiredError from its block;
            # once leading, that is the loss of the leadership.
            if not held or isinstance(exc, LeadershipLostError):
                raise
            raise LeadershipLostError(
                exc.lease_id, f"leadership of {self.name!r} lost: {exc.message}"
            ) from exc

    @asynccontextmanager
    async def observe(self, *, max_buffered: int = 16) -> AsyncIterator[Observation]:
        """
        The current leader, then every change: a new leader, a new proclamation,
        or ``None`` when nobody leads. Iteration ends with an error (never
        silently) if observing becomes impossible.

        :param max_buffered: changes held for a slow observer; beyond them, the watch
            underneath is paused (its own bounded buffer, then on the server), so memory
            stays bounded and no change is lost
        """
        check_int(max_buffered, "max_buffered", minimum=1)
        send, receive = anyio.create_memory_object_stream["KeyValue | None"](max_buffered)
        observation = Observation(receive)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._observe, send, observation, max_buffered)
            try:
                yield observation
            finally:
                tg.cancel_scope.cancel()
                receive.close()

    async def _observe(
        self,
        send: MemoryObjectSendStream[KeyValue | None],
        observation: Observation,
        max_buffered: int,
    ) -> None:
        client = self._client
        with send:
            try:
                last: tuple[bytes, int, bytes] | None = None
                first = True
                while True:
                    current = await client.get_prefix(
                        self.prefix,
                        sort_target=SortTarget.CREATE,
                        sort_order=SortOrder.ASCEND,
                        limit=1,
                    )
                    leader = current.kvs[0] if current.kvs else None
                    state = (leader.key, leader.create_revision, leader.value) if leader else None
                    if first or state != last:
                        await send.send(leader)
                        first = False
                        last = state
                    # Watch the whole prefix from after that read: a new candidate when
                    # nobody leads, or a proclamation or deletion of the leader key.
                    async with client.watch(
                        self.prefix,
                        prefix=True,
                        start_revision=current.header.revision + 1,
                        max_buffered=max(max_buffered, 64),
                    ) as events:
                        async for event in events:
                            kv = event.kv
                            if leader is None:
                                if event.type is EventType.PUT:
                                    # Nobody led: the first candidate to appear leads.
                                    leader = kv
                                    await send.send(kv)
                                    last = (kv.key, kv.create_revision, kv.value)
                                continue
                            if kv.key != leader.key:
                                continue
                            if event.type is EventType.DELETE:
                                break  # the leader left: read who leads now
                            await send.send(kv)
                            last = (kv.key, kv.create_revision, kv.value)
            except EtcdError as exc:
                observation.error = exc
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the observer left the block


class ElectionMixin(Service):
    """``client.election()``."""

    def election(self, name: str | bytes) -> Election:
        """The election named ``name``, compatible with ``etcdctl elect name``."""
        return Election(self, name)  # type: ignore[arg-type]

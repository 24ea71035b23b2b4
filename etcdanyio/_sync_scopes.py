"""
The scopes of :mod:`etcdanyio.sync` that hold something: leases, locks, elections as ``with``
blocks, each over a :class:`~etcdanyio._sync_holder.Holder` (see there how a loss is reported).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ._sync_generated import ElectionCalls, LeadershipCalls, LeaseCalls, LockCalls
from ._sync_holder import Holder, Iterated, Scope

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from typing_extensions import Self

    from . import election as _election
    from . import lease as _lease
    from . import lock as _lock
    from ._election_rpc import LeaderKey
    from ._sync_loop import Loop
    from .txn import Compare
    from .types import KeyValue

__all__ = [
    "Campaign",
    "Election",
    "Leadership",
    "Lease",
    "Lock",
    "LockHolds",
    "Observation",
]


class Lease(LeaseCalls, Scope):
    """
    A lease held for a ``with`` block: granted on entry, kept alive by the client's loop,
    revoked on exit. If it is lost meanwhile, ``lost`` / ``lost_event`` say so at once, puts
    with it fail, and :class:`~etcdanyio.LeaseExpiredError` is raised when the block exits.
    """

    def __init__(self, loop: Loop[Any], timeout: float | None, lease: _lease.Lease) -> None:
        self._loop = loop
        self._timeout = timeout
        self._async = lease

    def __repr__(self) -> str:
        return f"etcdanyio.sync.{self._async!r}"

    @property
    def id(self) -> int:
        """The lease ID (valid inside the block)."""
        return self._async.id

    @property
    def ttl(self) -> int:
        """The TTL the server granted."""
        return self._async.ttl

    @property
    def lost(self) -> BaseException | None:
        """Why the lease was lost (``None`` while it is alive)."""
        return self._async.lost

    def check(self) -> None:
        """Raise :class:`~etcdanyio.LeaseExpiredError` if the lease is already lost."""
        self._async.check()

    def __enter__(self) -> Self:
        if self._holder is not None:
            raise RuntimeError("lease is already entered")
        self._hold(Holder(self._loop, self._async))
        return self


class Lock(LockCalls, Scope):
    """
    A distributed lock held for a ``with`` block. If its lease is lost while held, ``lost`` /
    ``lost_event`` say so at once, ``is_owner()`` guards fail, and
    :class:`~etcdanyio.LockLostError` is raised when the block exits.
    """

    def __init__(
        self,
        loop: Loop[Any],
        timeout: float | None,
        lock: _lock.Lock,
        holds: LockHolds | None = None,
        reentrant: bool = False,
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._async = lock
        self._holds = holds
        self._reentrant = reentrant
        self._outer: Lock | None = None

    @property
    def name(self) -> bytes:
        return self._async.name

    @property
    def key(self) -> bytes:
        """The ownership key (without the client's namespace)."""
        return self._async.key

    @property
    def revision(self) -> int:
        """The key's create revision: a fencing token for guarded writes."""
        return self._async.revision

    @property
    def lost(self) -> BaseException | None:
        """Why the lock's lease was lost (``None`` while it is held)."""
        lease = self._async.lease
        return lease.lost if lease is not None else None

    def is_owner(self) -> Compare:
        """A compare that holds while this lock is held: guard writes with it."""
        return self._async.is_owner()

    def __enter__(self) -> Self:
        if self._holder is not None or self._outer is not None:
            raise RuntimeError("lock is already entered")
        holds = self._holds
        if holds is not None and self._reentrant:
            outer = holds.get(self.name)
            if outer is not None:
                # This thread holds it already in an enclosing block: run under that hold.
                self._outer, self._async = outer, outer._async
                return self
        self._hold(Holder(self._loop, self._async))
        if holds is not None:
            holds.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._outer is not None:
            self._outer = None
            return
        if self._holds is not None:
            self._holds.discard(self)
        self._leave()


class LockHolds:
    """The locks each thread holds with ``reentrant=True``, by name (re-entry is per thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _map(self) -> dict[bytes, Lock]:
        held: dict[bytes, Lock] | None = getattr(self._local, "held", None)
        if held is None:
            held = self._local.held = {}
        return held

    def get(self, name: bytes) -> Lock | None:
        return self._map().get(name)

    def add(self, lock: Lock) -> None:
        self._map().setdefault(lock.name, lock)

    def discard(self, lock: Lock) -> None:
        held = self._map()
        if held.get(lock.name) is lock:
            del held[lock.name]


class Leadership(LeadershipCalls):
    """What a won campaign holds: its key, revision and value; ``proclaim()``, ``resign()``."""

    def __init__(
        self, loop: Loop[Any], timeout: float | None, leadership: _election.Leadership
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._async = leadership
        self.lost_event = threading.Event()

    @property
    def key(self) -> bytes:
        return self._async.key

    @property
    def revision(self) -> int:
        return self._async.revision

    @property
    def value(self) -> bytes:
        return self._async.value

    @property
    def name(self) -> bytes:
        return self._async.name

    @property
    def leader_key(self) -> LeaderKey:
        """This leadership as plain values, for :meth:`Election.resume` elsewhere."""
        return self._async.leader_key

    @property
    def lost(self) -> BaseException | None:
        """Why the leadership's lease was lost (``None`` while leading, or when resumed)."""
        return self._async._lease.lost if self._async._lease is not None else None

    def is_leader(self) -> Compare:
        """A compare that holds while this campaign leads: guard writes with it."""
        return self._async.is_leader()


class Campaign(Scope):
    """``with election.campaign(value) as leadership:`` -- waits to win, leads for the block."""

    def __init__(
        self, loop: Loop[Any], timeout: float | None, context: AbstractAsyncContextManager[Any]
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._context = context

    def __enter__(self) -> Leadership:
        if self._holder is not None:
            raise RuntimeError("campaign is already entered")
        leadership = Leadership(
            self._loop, self._timeout, self._hold(Holder(self._loop, self._context))
        )
        assert self._lost is not None
        leadership.lost_event = self._lost
        return leadership


class Election(ElectionCalls):
    """An election named ``name``; compatible with ``etcdctl elect name``."""

    def __init__(self, loop: Loop[Any], timeout: float | None, election: _election.Election):
        self._loop = loop
        self._timeout = timeout
        self._async = election

    @property
    def name(self) -> bytes:
        return self._async.name

    def resume(self, leader_key: LeaderKey, *, timeout: float | None = None) -> Leadership:
        """
        The leadership that ``leader_key`` names, to proclaim or resign with, as
        :meth:`etcdanyio.Election.resume`.

        :raises NotLeaderError: if that key no longer leads
        """
        leadership = self._loop.run(
            self._async.resume(leader_key), self._timeout if timeout is None else timeout
        )
        return Leadership(self._loop, self._timeout, leadership)

    def campaign(
        self, value: str | bytes, *, ttl: int = 60, session: Lease | None = None
    ) -> Campaign:
        """
        Wait to become the leader, then lead for the ``with`` block; leaving it resigns. If the
        lease is lost while leading, ``leadership.lost`` / ``lost_event`` say so and
        :class:`~etcdanyio.LeadershipLostError` is raised when the block exits.
        """
        context = self._async.campaign(
            value, ttl=ttl, session=session._async if session is not None else None
        )
        return Campaign(self._loop, self._timeout, context)

    def observe(self, *, max_buffered: int = 16) -> Observation:
        """
        The current leader, then every change (``None``: nobody leads), for a ``with`` block:
        ``with election.observe() as leaders: for kv in leaders: ...``.
        """
        return Observation(self._loop, self._async.observe(max_buffered=max_buffered))


class Observation(Iterated["KeyValue | None"]):
    """Blocking iteration over an election's leaders (``None``: nobody leads)."""

    def __enter__(self) -> Self:
        self._enter()
        return self

    def __iter__(self) -> Iterator[KeyValue | None]:
        self._check()
        while True:
            try:
                yield self._loop.run(self._iterator.__anext__(), None)
            except StopAsyncIteration:
                return

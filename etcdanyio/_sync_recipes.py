"""
The recipes of :mod:`etcdanyio.recipes` for the blocking client (``etcdanyio.sync.recipes``).

Each wraps the async recipe, bound to the sync client's async client: the same keys, so sync,
async and Go processes share them. Scopes (``RWLock.read()`` / ``write()``,
``DoubleBarrier.enter()``, ``watch_matching()``) are ``with`` blocks held open by a task of
the client's loop, as the client's own scopes are; a loss is reported as there (``lost``,
``lost_event``, the error when the block exits). ``stm()`` has no sync counterpart: its
transaction function runs on the event loop.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING, Any, Literal

import anyio

from . import recipes as _recipes
from ._sync_generated import BarrierCalls, PriorityQueueCalls, QueueCalls
from ._sync_holder import Holder, Iterated, Scope

if TYPE_CHECKING:
    from collections.abc import Iterable

    from typing_extensions import Self

    from ._sync_client import Client
    from ._sync_loop import Loop
    from ._sync_scopes import Lease
    from .txn import Compare
    from .watch import Event, Filter

__all__ = [
    "Barrier",
    "DoubleBarrier",
    "DoubleBarrierEntry",
    "MatchingWatch",
    "PriorityQueue",
    "Queue",
    "RWLock",
    "RWLockHold",
    "watch_matching",
]


def _session(session: Lease | None) -> Any:
    return session._async if session is not None else None


class Barrier(BarrierCalls):
    """A barrier on one key: while the key exists, :meth:`wait` blocks."""

    def __init__(self, client: Client, key: str | bytes) -> None:
        self._loop, self._timeout = client._loop, client._timeout
        self._async = _recipes.Barrier(client._async, key)

    def __repr__(self) -> str:
        return f"etcdanyio.sync.recipes.{self._async!r}"

    @property
    def key(self) -> bytes:
        return self._async.key


class Queue(QueueCalls):
    """A work queue (FIFO), each item delivered once; etcd's Go ``recipe.Queue`` keys."""

    def __init__(self, client: Client, name: str | bytes) -> None:
        self._loop, self._timeout = client._loop, client._timeout
        self._async = _recipes.Queue(client._async, name)

    def __repr__(self) -> str:
        return f"etcdanyio.sync.recipes.{self._async!r}"


class PriorityQueue(PriorityQueueCalls):
    """A work queue ordered by priority (lowest first), then FIFO."""

    def __init__(self, client: Client, name: str | bytes) -> None:
        self._loop, self._timeout = client._loop, client._timeout
        self._async = _recipes.PriorityQueue(client._async, name)

    def __repr__(self) -> str:
        return f"etcdanyio.sync.recipes.{self._async!r}"


class RWLockHold(Scope):
    """One hold of an :class:`RWLock`, for a ``with`` block."""

    def __init__(self, loop: Loop[Any], hold: _recipes.RWLockHold) -> None:
        self._loop = loop
        self._async = hold

    @property
    def mode(self) -> Literal["read", "write"]:
        return self._async.mode

    @property
    def key(self) -> bytes:
        return self._async.key

    @property
    def revision(self) -> int:
        return self._async.revision

    def is_owner(self) -> Compare:
        """A compare that holds while this hold is held: guard writes with it."""
        return self._async.is_owner()

    def __enter__(self) -> Self:
        if self._holder is not None:
            raise RuntimeError("already entered")
        self._hold(Holder(self._loop, self._async))
        return self


class RWLock:
    """A distributed read/write lock named ``name``: many readers or one writer."""

    def __init__(
        self, client: Client, name: str | bytes, *, ttl: int = 60, session: Lease | None = None
    ) -> None:
        self._loop = client._loop
        self._async = _recipes.RWLock(client._async, name, ttl=ttl, session=_session(session))

    @property
    def name(self) -> bytes:
        return self._async.name

    def read(self, *, timeout: float | None = None) -> RWLockHold:
        """A shared hold for a ``with`` block; ``timeout`` bounds the wait."""
        return RWLockHold(self._loop, self._async.read(timeout=timeout))

    def write(self, *, timeout: float | None = None) -> RWLockHold:
        """An exclusive hold for a ``with`` block; ``timeout`` bounds the wait."""
        return RWLockHold(self._loop, self._async.write(timeout=timeout))


class DoubleBarrierEntry(Scope):
    """One participant of a :class:`DoubleBarrier`, for a ``with`` block."""

    def __init__(self, loop: Loop[Any], entry: _recipes.DoubleBarrierEntry) -> None:
        self._loop = loop
        self._async = entry

    def __enter__(self) -> Self:
        if self._holder is not None:
            raise RuntimeError("already entered")
        self._hold(Holder(self._loop, self._async))
        return self


class DoubleBarrier:
    """A rendezvous of ``count`` participants: entering and leaving both wait for all."""

    def __init__(
        self,
        client: Client,
        key: str | bytes,
        count: int,
        *,
        ttl: int = 60,
        session: Lease | None = None,
    ) -> None:
        self._loop = client._loop
        self._async = _recipes.DoubleBarrier(
            client._async, key, count, ttl=ttl, session=_session(session)
        )

    @property
    def key(self) -> bytes:
        return self._async.key

    @property
    def count(self) -> int:
        return self._async.count

    def enter(self) -> DoubleBarrierEntry:
        """``with barrier.enter():`` waits until ``count`` entered; leaving waits for all."""
        return DoubleBarrierEntry(self._loop, self._async.enter())


class MatchingWatch(Iterated["Event"]):
    """The events whose key matches a pattern: iterate (blocking) or :meth:`get` with a timeout."""

    def __init__(self, loop: Loop[Any], context: Any) -> None:
        super().__init__(loop, context)
        self._pending: collections.deque[Event] = collections.deque()

    def __enter__(self) -> Self:
        self._enter()
        return self

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> Event:
        event = self.get()
        assert event is not None
        return event

    def get(self, timeout: float | None = None) -> Event | None:
        """The next matching event; ``None`` if none came within ``timeout`` seconds."""
        self._check()
        return self._loop.run(_next_event(self._iterator, timeout), None)


async def _next_event(events: _recipes.MatchingWatch, limit: float | None) -> Event | None:
    with anyio.move_on_after(limit):
        return await events.__anext__()
    return None


def watch_matching(
    client: Client,
    key: str | bytes,
    pattern: _recipes.KeyPattern,
    *,
    prefix: bool = True,
    start_revision: int | None = None,
    prev_kv: bool = False,
    filters: Iterable[Filter | str] = (),
) -> MatchingWatch:
    """
    Watch the keys under ``key`` and deliver only the events whose key matches ``pattern``
    (``re.match``), in a ``with`` block. Parameters as :func:`etcdanyio.recipes.watch_matching`.
    """
    context = _recipes.watch_matching(
        client._async,
        key,
        pattern,
        prefix=prefix,
        start_revision=start_revision,
        prev_kv=prev_kv,
        filters=filters,
    )
    return MatchingWatch(client._loop, context)

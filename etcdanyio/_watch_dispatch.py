"""
What one WatchResponse does to the watches of a stream: a sans-IO state machine.

:func:`dispatch` takes the stream's table of watches (by watch ID) and one decoded
response, updates the watches' state (resume point, buffer, fragments) and returns
what the stream must do about it: wake a consumer, confirm or fail a watch, pause a
watch whose buffer is full, or open the stream again with a fresh token. It does no
I/O and knows nothing of tasks or events, so it is tested with recorded responses
(``tests/unit/test_watch_dispatch.py``), etcd's quirks included:

* etcd before 3.5.8 answers a progress request at once with the store's revision,
  also for a watch still catching up on history (etcd#15220): such a watch does not
  take it, or its resume point would skip the history still coming.
* etcd 3.5 refuses a create with an expired or outdated token as "permission denied"
  (etcd#12385): with credentials, the create is retried once after a fresh token; a
  second refusal is real.
* A watch cancelled for a stale token (the reason is one of the re-authenticate
  messages) keeps its watches: the stream is opened again with a fresh token.
* A watch cancelled by compaction is failed with ``WatchCompactedError``; etcd keeps
  it until the client cancels it too.
* Events at or below what a watch already delivered are dropped (never delivered
  twice); fragments are held until the last one arrives; a progress notification for
  a revision older than what was delivered is ignored.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ._error_table import REAUTHENTICATE, watch_cancel_error, watch_cancel_status
from ._events import Event, WatchBatch
from ._grpc import Status

if TYPE_CHECKING:
    from typing import TypeAlias

    from ._keys import Namespace
    from .errors import EtcdError

logger = logging.getLogger("etcdanyio.watch")

__all__ = [
    "Created",
    "Failed",
    "Outcome",
    "Progress",
    "Reauthenticate",
    "Response",
    "Suspend",
    "WatchState",
    "dispatch",
]


class Response(Protocol):
    """The fields of a decoded ``WatchResponse`` the dispatch reads (``_codec.WatchResponse``)."""

    @property
    def header_revision(self) -> int: ...
    @property
    def watch_id(self) -> int: ...
    @property
    def created(self) -> bool: ...
    @property
    def canceled(self) -> bool: ...
    @property
    def compact_revision(self) -> int: ...
    @property
    def cancel_reason(self) -> str: ...
    @property
    def fragment(self) -> bool: ...
    @property
    def events(self) -> list[Event]: ...


class WatchState:
    """One watch as the dispatch sees it: its resume point, its buffer, its fragments."""

    def __init__(self, *, key: bytes, range_end: bytes, start_revision: int, max_buffered: int):
        self.key = key
        self.range_end = range_end
        self.max_buffered = max_buffered
        #: the next revision this watch needs (0: "from now", until created)
        self.next_revision = start_revision
        self.created_revision = 0
        #: header revision of the latest (re)creation: history up to it is still coming
        self.synced_after = 0
        #: the ID of its current creation on the stream (``None``: not on the server)
        self.watch_id: int | None = None
        self.batches: collections.deque[WatchBatch] = collections.deque()
        self.buffered = 0
        #: cancelled on the server until its consumer drained the buffer
        self.suspended = False
        self.ever_created = False
        self.fragments: list[Event] = []
        #: events dropped because their revision was already delivered (server quirks)
        #: (also the tail of a response that raced a suspension)
        self.duplicates_dropped = 0
        #: the start revision of the latest re-creation after the first (0: none yet)
        self.resumed_from = 0
        #: a create refused as "permission denied" was retried with a fresh token
        self.auth_retried = False

    def on_created(self, revision: int) -> None:
        # Until its events pass this revision, the watch is catching up on history.
        self.synced_after = revision
        if not self.ever_created:
            self.ever_created = True
            self.created_revision = revision
            if not self.next_revision:
                self.next_revision = revision + 1

    def on_events(self, events: list[Event], fragment: bool) -> bool | None:
        """
        Buffer a response's events: ``None`` if nothing new is buffered (a fragment held,
        or only events already delivered), else whether the buffer is within its bound.
        """
        if fragment:
            self.fragments.extend(events)
            return None
        if self.fragments:
            events = self.fragments + events
            self.fragments = []
        next_revision = self.next_revision
        if events[0].kv.mod_revision < next_revision:
            fresh = [e for e in events if e.kv.mod_revision >= next_revision]
            self.duplicates_dropped += len(events) - len(fresh)
            logger.warning(
                "dropped already delivered events count=%d next_revision=%d",
                len(events) - len(fresh),
                next_revision,
            )
            events = fresh
            if not events:
                return None
        # Every event that arrived is kept, also past the bound (the response is in memory
        # already; dropping its tail would make etcd send it again). Past the bound, the
        # watch is suspended on the server until the consumer has read half the buffer:
        # at most max_buffered events plus one response are held.
        self.batches.append(WatchBatch(events, events[-1].kv.mod_revision))
        self.buffered += len(events)
        self.next_revision = events[-1].kv.mod_revision + 1
        return self.buffered <= self.max_buffered

    def on_progress(self, revision: int) -> bool:
        """Take a progress notification; whether it was (a batch to deliver)."""
        # A notification for the last revision received still says "nothing newer":
        # deliver it (an idle store notifies with the same revision every time).
        if self.fragments or revision < self.next_revision - 1:
            return False
        self.next_revision = max(self.next_revision, revision + 1)
        batches = self.batches
        if batches and not batches[-1].events:
            batches[-1] = WatchBatch([], revision)  # collapse consecutive notifications
        else:
            batches.append(WatchBatch([], revision))
        return True


S = TypeVar("S", bound=WatchState)


class Progress(Generic[S]):
    """A progress answer for the whole stream: these watches took it (wake them)."""

    __slots__ = ("watches",)

    def __init__(self, watches: list[S]) -> None:
        self.watches = watches


class Created(Generic[S]):
    """The server confirmed (or re-confirmed) ``watch``: the stream serves."""

    __slots__ = ("watch",)

    def __init__(self, watch: S) -> None:
        self.watch = watch


class Failed(Generic[S]):
    """
    The server refused or cancelled ``watch`` (taken off the table): fail it with
    ``error``. After a compaction (``compact_revision``), also cancel ``watch_id``:
    etcd keeps a watch cancelled by compaction until the client cancels it too.
    """

    __slots__ = ("compact_revision", "error", "watch", "watch_id")

    def __init__(self, watch: S, watch_id: int, error: EtcdError, compact_revision: int) -> None:
        self.watch = watch
        self.watch_id = watch_id
        self.error = error
        self.compact_revision = compact_revision


class Suspend(Generic[S]):
    """``watch`` buffered past its bound: wake its consumer and pause it on the server."""

    __slots__ = ("watch",)

    def __init__(self, watch: S) -> None:
        self.watch = watch


class Reauthenticate:
    """The stream's token is stale: open the stream again with a fresh one (watches kept)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


#: What :func:`dispatch` returns: ``None`` (nothing to do), a watch (its consumer has a
#: new batch: wake it; the common case, so it allocates nothing), or one of the actions.
Outcome: TypeAlias = S | Progress[S] | Created[S] | Failed[S] | Suspend[S] | Reauthenticate | None


def dispatch(
    watches: dict[int, S], response: Response, ns: Namespace | None, credentials: bool
) -> Outcome[S]:
    """
    Apply one response to the stream's ``watches`` (by watch ID; a watch cancelled by the
    server is removed) and say what the stream must do.

    :param ns: the client's namespace, stripped from the events' keys
    :param credentials: the client holds credentials (a "permission denied" create may
        mean a stale token)
    """
    watch_id = response.watch_id
    revision = response.header_revision
    if watch_id == -1:
        # The answer to a progress request goes to every watch on the stream. etcd before
        # 3.5.8 answers at once with the store's revision even for a watch still catching
        # up on history (etcd#15220): skip those.
        took = [
            each
            for each in watches.values()
            if each.next_revision > each.synced_after and each.on_progress(revision)
        ]
        return Progress(took) if took else None
    watch = watches.get(watch_id)
    if watch is None:
        return None  # a watch we cancelled or replaced
    if response.canceled:
        status, reason = watch_cancel_status(response.cancel_reason)
        if reason in REAUTHENTICATE:
            # The stream's token is stale: reconnect with a fresh one (the watch is kept).
            return Reauthenticate(reason)
        if (
            response.created
            and credentials
            and status == Status.PERMISSION_DENIED
            and not watch.auth_retried
        ):
            # etcd 3.5 refuses a create with an expired or outdated token as "permission
            # denied" (etcd#12385): get a fresh token and create the watch again, once; a
            # second refusal is real.
            watch.auth_retried = True
            return Reauthenticate(reason)
        del watches[watch_id]
        watch.watch_id = None
        compact_revision = response.compact_revision
        if response.created:
            compact_revision = 0  # refused outright: nothing to cancel
        error = watch_cancel_error(response.cancel_reason, response.compact_revision)
        return Failed(watch, watch_id, error, compact_revision)
    if response.created:
        watch.auth_retried = False
        watch.on_created(revision)
        return Created(watch)
    events = response.events
    if events:
        if ns:
            events = _strip(ns, events)
        taken = watch.on_events(events, response.fragment)
        if taken is None:
            return None
        return watch if taken else Suspend(watch)
    if not response.fragment and watch.on_progress(revision):
        return watch
    return None


def _strip(ns: Namespace, events: list[Event]) -> list[Event]:
    """The events with the namespace removed from their keys."""
    out = []
    for e in events:
        kv = dataclasses.replace(e.kv, key=ns.strip(e.kv.key))
        prev = e.prev_kv
        if prev is not None:
            prev = dataclasses.replace(prev, key=ns.strip(prev.key))
        out.append(Event(e.type, kv, prev))
    return out

"""
A local, always-consistent copy of a key range: :meth:`Client.mirror`.

List-then-watch, done so that nothing falls between the two: the watch is
created first (from "now", revision ``H``), then the range is read page by page
at exactly ``H`` while the watch buffers what happens after. When the watch
cannot resume (its next revision was compacted away) the range is listed again
at a new revision and only the difference is applied, and reported as one
update flagged ``resync``.

Every watch response is applied without an ``await`` in between, so a reader
never sees half a transaction; ``mirror.revision`` always names the store
revision the copy equals. Freshness is proved without re-reading data: a
linearizable read of one key gives the store's revision, and a requested
progress notification on the mirror's watch (etcd 3.4+) says the watch has
delivered everything up to it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import sys
import weakref
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._keys import to_bytes
from ._pager import RangePager
from ._requests import check_int, key_range
from .errors import (
    CompactedError,
    ConnectionFailedError,
    DeadlineExceededError,
    FutureRevisionError,
    UnavailableError,
    WatchCompactedError,
)
from .types import KeyValue
from .watch import Event, EventType

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskStatus
    from typing_extensions import Self

    from ._client import Client
    from .watch import Watch, WatchBatch

__all__ = ["Mirror", "MirrorChanges", "MirrorUpdate"]

logger = logging.getLogger("etcdanyio.mirror")

#: errors after which a re-list is simply tried again (with backoff)
_TRANSIENT = (
    ConnectionFailedError,
    UnavailableError,
    DeadlineExceededError,
    TimeoutError,
    CompactedError,
    FutureRevisionError,
)


class _BehindError(Exception):
    """The new watch's member is behind the copy: listing there would go back in time."""


#: a wait for a revision gives up on progress notifications and re-lists after this long
#: while the watch catches up on history (it cannot take a requested notification then)
RELIST_AFTER = 1.0


@dataclasses.dataclass(frozen=True, slots=True)
class MirrorUpdate:
    """
    What one revision changed in the mirror (a transaction is one update), or a re-list.

    Every event has ``prev_kv`` filled in from the mirror's copy (``None`` if the key
    was absent), at no cost on the server.
    """

    #: the mirror equals the store at this revision once the update is applied
    revision: int
    #: the changes, in the order etcd applied them
    events: list[Event]
    #: a re-list after the watch could not resume (compaction): ``events`` are the
    #: difference between the old copy and the new one; revisions in between are lost
    resync: bool = False
    #: the consumer fell too far behind and its backlog was dropped: ``events`` are
    #: the whole content (PUTs) at ``revision``; start again from them
    reset: bool = False


class Mirror(Mapping[bytes | str, KeyValue]):
    """
    A read-only mapping of key (``bytes``; ``str`` keys are accepted for lookups) to
    :class:`KeyValue`, kept equal to a key range of the store. Create it with
    :meth:`Client.mirror`.

    Between two ``await`` points it equals the store at :attr:`revision`. Iteration
    is over a copy of the keys, in no particular order (``sorted(mirror)`` for key
    order).
    """

    def __init__(
        self, client: Client, start: bytes, end: bytes, *, page_size: int, max_buffered: int
    ) -> None:
        self._client = client
        self._start = start
        self._end = end
        self._page_size = page_size
        self._max_buffered = max_buffered
        self._data: dict[bytes, KeyValue] = {}
        self._revision = 0
        self._advanced = anyio.Event()
        self._subscribers: weakref.WeakSet[MirrorChanges] = weakref.WeakSet()
        self._watch: Watch | None = None
        self._watch_scope: anyio.CancelScope | None = None
        self._closed = False
        #: how many times the range was listed again (after compaction or a stuck resume)
        self.resyncs = 0

    def __repr__(self) -> str:
        return f"<Mirror {self._start!r}..{self._end!r} revision={self._revision} keys={len(self)}>"

    # ------------------------------------------------------------- the mapping

    def __getitem__(self, key: bytes | str) -> KeyValue:
        if type(key) is bytes:
            return self._data[key]
        return self._data[to_bytes(key)]

    def __contains__(self, key: object) -> bool:
        if type(key) is bytes:
            return key in self._data
        return to_bytes(key) in self._data

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self._data))

    @property
    def revision(self) -> int:
        """The store revision the copy equals."""
        return self._revision

    # ----------------------------------------------------------- freshness

    async def wait_for_revision(self, revision: int) -> None:
        """
        Return once the copy reflects ``revision`` or later (read-your-writes: pass the
        ``header.revision`` of a write).

        If the range itself did not change, the watch is asked for a progress
        notification (repeated with backoff up to 1 s) to move the copy's revision on.
        Waits as long as it takes: bound it with a cancel scope.
        """
        check_int(revision, "revision")
        delay = 0.02
        next_probe = anyio.current_time()
        stuck_since: float | None = None
        while self._revision < revision:
            self._check_open()
            now = anyio.current_time()
            if now >= next_probe:
                stuck_since = await self._probe(now, stuck_since)
                next_probe = now + delay
                delay = min(delay * 2, 1.0)
            advanced = self._advanced
            with anyio.move_on_after(next_probe - now):
                await advanced.wait()

    async def _probe(self, now: float, stuck_since: float | None) -> float | None:
        """Ask for a progress notification; re-list if the watch cannot take one for long."""
        watch = self._watch
        if watch is None:
            return None  # (re)listing: the revision moves when that is done
        if not watch.catching_up:
            await watch.request_progress()
            return None
        if stuck_since is None:
            return now
        if now - stuck_since >= RELIST_AFTER and self._watch_scope is not None:
            logger.debug("watch catching up for too long, re-listing revision=%d", self._revision)
            self._watch_scope.cancel()
            return None
        return stuck_since

    async def sync(self) -> int:
        """
        Wait until the copy is at least as fresh as the store is now (linearizable),
        without re-reading the range: one read of a single key for the store's
        revision, then :meth:`wait_for_revision`.

        :return: the revision the copy is known to have reached
        """
        self._check_open()
        start = self._start
        result = await self._client.get_range(start, start + b"\0", count_only=True)
        await self.wait_for_revision(result.header.revision)
        return self._revision

    # ------------------------------------------------------------- changes

    def changes(self, *, max_buffered: int = 10_000) -> MirrorChanges:
        """
        The updates applied from now on, in revision order, one per revision
        (``async for update in mirror.changes()``).

        A consumer never slows the mirror down: when more than ``max_buffered`` events
        wait for it, its backlog is dropped and its next update is a ``reset`` one
        holding the whole content at the then current revision.
        """
        check_int(max_buffered, "max_buffered", minimum=1)
        self._check_open()
        changes = MirrorChanges(self, max_buffered)
        self._subscribers.add(changes)
        return changes

    # ------------------------------------------------------- the background

    def _check_open(self) -> None:
        if self._closed:
            raise anyio.ClosedResourceError("the mirror's block has exited")

    def _close(self) -> None:
        self._closed = True
        self._watch = None
        self._wake()
        for subscriber in list(self._subscribers):
            subscriber._wake()

    def _wake(self) -> None:
        self._advanced.set()
        self._advanced = anyio.Event()

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        started = False
        failures = 0
        while True:
            try:
                with anyio.CancelScope() as scope:
                    self._watch_scope = scope
                    # progress_notify: etcd's periodic notifications (10 min by default) move
                    # an idle mirror's revision on, and end a catching-up state.
                    async with self._client.watch(
                        self._start,
                        end=self._end or None,
                        progress_notify=True,
                        max_buffered=self._max_buffered,
                    ) as watch:
                        revision = watch.created_revision
                        if revision < self._revision:
                            # a member behind the one the copy came from: try again later
                            raise _BehindError(revision)
                        data = await self._load(revision)
                        self._install(data, revision)
                        self._watch = watch
                        failures = 0
                        if not started:
                            started = True
                            task_status.started()
                        checked = 0
                        async for batch in watch.batches():
                            resumed = watch.resumed_from
                            if resumed > checked:
                                # Before anything from a resumed watch is applied.
                                checked = resumed
                                await self._check_resume(resumed)
                            self._apply(batch)
            except WatchCompactedError as exc:
                logger.debug("watch compacted, re-listing error=%r", exc)
                continue
            except (*_TRANSIENT, _BehindError) as exc:
                if not started and not isinstance(exc, (CompactedError, FutureRevisionError)):
                    raise
                failures += 1
                logger.debug("re-list failed, retrying error=%r", exc)
                await anyio.sleep(min(2.0, 0.05 * 2 ** min(failures, 6)) * random.uniform(0.5, 1))
            finally:
                self._watch = None
                self._watch_scope = None

    async def _check_resume(self, resumed_from: int) -> None:
        """
        A resume from a compacted-away revision's successor may have lost a delete made
        at exactly the compaction revision (etcd accepts the watch, and sends nothing for
        it): if ``resumed_from - 1`` is compacted, treat the watch as compacted.
        """
        start = self._start
        try:
            await self._client.get_range(
                start, start + b"\0", revision=resumed_from - 1, count_only=True
            )
        except CompactedError as exc:
            raise WatchCompactedError(resumed_from - 1, str(exc)) from exc

    async def _load(self, revision: int) -> dict[bytes, KeyValue]:
        data: dict[bytes, KeyValue] = {}
        pager = RangePager(
            self._client,
            self._start,
            self._end,
            page_size=self._page_size,
            revision=revision,
            options={},
        )
        async for kv in pager:
            data[kv.key] = kv
        return data

    def _install(self, data: dict[bytes, KeyValue], revision: int) -> None:
        """Take a fresh listing at ``revision``; after the first, publish the difference."""
        old = self._data
        self._data = data
        first = not self._revision
        self._revision = revision
        if not first:
            self.resyncs += 1
            if self._subscribers:
                self._publish(MirrorUpdate(revision, _difference(old, data, revision), resync=True))
        self._wake()

    def _apply(self, batch: WatchBatch) -> None:
        """One watch response, wholly (no ``await``): a reader never sees part of it."""
        data = self._data
        events = batch.events
        if events:
            if self._subscribers:
                self._apply_and_publish(events)
            else:
                for event in events:
                    kv = event.kv
                    if event.type is EventType.PUT:
                        data[kv.key] = kv
                    else:
                        data.pop(kv.key, None)
        if batch.revision > self._revision:
            self._revision = batch.revision
            self._wake()

    def _apply_and_publish(self, events: list[Event]) -> None:
        data = self._data
        current: list[Event] = []
        revision = events[0].kv.mod_revision
        for event in events:
            kv = event.kv
            if kv.mod_revision != revision:
                self._publish(MirrorUpdate(revision, current))
                current = []
                revision = kv.mod_revision
            if event.type is EventType.PUT:
                prev = data.get(kv.key)
                data[kv.key] = kv
            else:
                prev = data.pop(kv.key, None)
            current.append(Event(event.type, kv, prev))
        self._publish(MirrorUpdate(revision, current))

    def _publish(self, update: MirrorUpdate) -> None:
        for subscriber in list(self._subscribers):
            subscriber._push(update)


def _difference(
    old: dict[bytes, KeyValue], new: dict[bytes, KeyValue], revision: int
) -> list[Event]:
    """PUTs for new and changed keys, DELETEs (stamped ``revision``) for vanished ones."""
    events = [
        Event(EventType.PUT, kv, old.get(key))
        for key, kv in new.items()
        if (prev := old.get(key)) is None or prev.mod_revision != kv.mod_revision
    ]
    events += [
        Event(EventType.DELETE, KeyValue(key, b"", 0, revision, 0, 0), kv)
        for key, kv in old.items()
        if key not in new
    ]
    return events


class MirrorChanges:
    """The updates of a mirror for one consumer; see :meth:`Mirror.changes`."""

    def __init__(self, mirror: Mirror, max_buffered: int) -> None:
        self._mirror = mirror
        self._max_buffered = max_buffered
        self._queue: deque[MirrorUpdate] = deque()
        self._buffered = 0
        self._overflowed = False
        self._waiter: anyio.Event | None = None
        #: the mirror's revision when the stream started: updates follow it
        self.revision = mirror.revision
        #: how many times the backlog was dropped for a ``reset`` update
        self.resets = 0

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> MirrorUpdate:
        while True:
            mirror = self._mirror
            if self._overflowed:
                self._overflowed = False
                self.resets += 1
                content = [Event(EventType.PUT, kv, None) for kv in mirror._data.values()]
                return MirrorUpdate(mirror.revision, content, resync=True, reset=True)
            if self._queue:
                update = self._queue.popleft()
                self._buffered -= max(1, len(update.events))
                return update
            if mirror._closed:
                raise StopAsyncIteration
            waiter = self._waiter = anyio.Event()
            await waiter.wait()

    def _push(self, update: MirrorUpdate) -> None:
        if self._overflowed:
            return
        size = max(1, len(update.events))
        if self._queue and self._buffered + size > self._max_buffered:
            logger.debug("changes consumer fell behind, dropping its backlog")
            self._queue.clear()
            self._buffered = 0
            self._overflowed = True
        else:
            self._queue.append(update)
            self._buffered += size
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()


@asynccontextmanager
async def open_mirror(
    client: Client,
    key: str | bytes,
    *,
    prefix: bool,
    end: str | bytes | None,
    page_size: int,
    max_buffered: int,
) -> AsyncIterator[Mirror]:
    """The body of :meth:`Client.mirror`."""
    start, range_end = key_range(key, end, prefix=prefix)
    check_int(page_size, "page_size", minimum=1)
    check_int(max_buffered, "max_buffered", minimum=1)
    mirror = Mirror(client, start, range_end, page_size=page_size, max_buffered=max_buffered)
    try:
        async with anyio.create_task_group() as tg:
            try:
                await tg.start(mirror._run)
                yield mirror
            finally:
                mirror._close()
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One exception out, as itself: the body's, or the mirror's own failure.
        if len(group.exceptions) == 1:
            error = group.exceptions[0]
            raise error from error.__cause__
        raise

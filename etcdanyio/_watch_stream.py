"""
The one Watch stream of a client, shared by all its watches.

A task in the client's task group owns the gRPC Watch stream. Each watch is a
:class:`Watcher` with its own buffer, so a slow consumer never stalls the
others. Watches are created with client-chosen IDs, a fresh one for every
(re)creation, so a late response for an old ID is simply ignored. What a
response does to the watches is decided by :func:`._watch_dispatch.dispatch`
(no I/O); this module carries it out.

Resume: every watcher knows the next revision it needs
(``last delivered mod_revision + 1``, or a progress notification's header
revision + 1). When the stream breaks, a new one is opened and every live
watcher is created again from there; events at or below what was delivered
are dropped, so nothing is lost and nothing is delivered twice. How the stream
gets back (failover, fresh token, backoff) is :class:`._streams.Reconnect`.

Bounded memory: when a watcher's buffer would pass its bound, its server-side
watch is cancelled and its events are no longer buffered. Once its consumer
has drained the buffer, it is created again from its next revision: the
history is on the server.
"""

from __future__ import annotations

import collections
import functools
import logging
from typing import TYPE_CHECKING

import anyio

from ._grpc import GrpcError, TransportError
from ._lazy import etcdserverpb as pb  # imported on first use
from ._speedups import codec
from ._streams import Reconnect, StreamRestart, pump
from ._telemetry import WatchLag
from ._watch_dispatch import (
    Created,
    Failed,
    Progress,
    Reauthenticate,
    Suspend,
    WatchState,
    dispatch,
)

_decode_watch_response = codec.decode_watch_response

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

    from ._events import WatchBatch
    from ._grpc import Channel
    from ._grpc._call import Call
    from ._grpc._connection import Connection
    from ._keys import Namespace
    from ._watch_dispatch import Outcome, Response

logger = logging.getLogger("etcdanyio.watch")

WATCH_PATH = "/etcdserverpb.Watch/Watch"

#: the longest wait before the stream is opened again
RECONNECT_CAP = 2.0


@functools.cache
def _progress_request() -> bytes:
    """The encoded progress request (built on first use: importing the messages is costly)."""
    return bytes(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))


class Watcher(WatchState):
    """One watch as the shared stream sees it: request, resume point, buffer, consumer."""

    def __init__(
        self,
        stream: WatchStream,
        *,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        prev_kv: bool,
        progress_notify: bool,
        filters: list[int],
        fragment: bool,
        max_buffered: int,
    ) -> None:
        super().__init__(
            key=key, range_end=range_end, start_revision=start_revision, max_buffered=max_buffered
        )
        self.stream = stream
        self.prev_kv = prev_kv
        self.progress_notify = progress_notify
        self.filters = filters
        self.fragment = fragment
        self.closed = False
        self.error: BaseException | None = None
        self.created = anyio.Event()
        self._waiter: anyio.Event | None = None

    # -------------------------------------------------------- consumer side

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    async def wait_created(self) -> None:
        await self.created.wait()
        if self.error is not None:
            raise self.error

    async def next_batch(self, *, progress: bool = False) -> WatchBatch:
        while True:
            if self.batches:
                batch = self.batches.popleft()
                self.buffered -= len(batch.events)
                if self.suspended and self.buffered <= self.max_buffered // 2:
                    # Half drained: resume now, so that etcd's catching up (its unsynced
                    # watchers are served every 100 ms) overlaps with reading the rest.
                    self.stream.resume(self)
                if batch.events or progress:
                    return batch
                continue
            if self.error is not None:
                raise self.error
            waiter = self._waiter = anyio.Event()
            await waiter.wait()

    async def request_progress(self) -> None:
        self.stream.send(_progress_request())

    # ---------------------------------------------------------- stream side

    def create_request(self, watch_id: int) -> bytes:
        if self.ever_created:
            self.resumed_from = self.next_revision
        return bytes(
            pb.WatchRequest(
                create_request=pb.WatchCreateRequest(
                    key=self.key,
                    range_end=self.range_end,
                    start_revision=self.next_revision,
                    progress_notify=self.progress_notify,
                    filters=[pb.WatchCreateRequestFilterType(f) for f in self.filters],
                    prev_kv=self.prev_kv,
                    watch_id=watch_id,
                    fragment=self.fragment,
                )
            )
        )

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.created.set()
        self.wake()


class WatchStream:
    """The multiplexed Watch stream of one client (started on the first watch)."""

    def __init__(
        self,
        channel: Channel,
        task_group: TaskGroup,
        ns: Namespace,
        *,
        metadata: Callable[[], bytes],
        reauthenticate: Callable[[bytes], Awaitable[None]],
        credentials: bool = False,
    ) -> None:
        self._channel = channel
        self._credentials = credentials
        self._metadata = metadata
        self._session_metadata = b""
        self._session_connection: Connection | None = None
        self._tg = task_group
        self._ns = ns
        self._live: set[Watcher] = set()
        #: the codec's memos: events decoded for several watchers, and ID varints
        self._events = codec.EventCache(codec.EVENT_CACHE_BYTES)
        self._ids: dict[bytes, tuple[int, int]] = {}
        self._by_id: dict[int, Watcher] = {}
        self._next_id = 0
        self._outbox: collections.deque[bytes] = collections.deque()
        self._outbox_waiter: anyio.Event | None = None
        self._running = False
        self._connected = False
        self._reconnect = Reconnect(channel, reauthenticate, cap=RECONNECT_CAP)
        #: streams opened again with watches to resume, and watches compacted away (counters)
        self.resumes = 0
        self.compactions = 0
        self._sessions = 0

    @property
    def watchers(self) -> int:
        return len(self._live)

    def most_lagging(self) -> WatchLag | None:
        """The live watcher with the most events waiting for its consumer."""
        watcher = max(self._live, key=lambda w: w.buffered, default=None)
        if watcher is None:
            return None
        return WatchLag(
            key=self._ns.strip(watcher.key),
            buffered=watcher.buffered,
            suspended=watcher.suspended,
            next_revision=watcher.next_revision,
        )

    # --------------------------------------------------------- registration

    async def add(self, watcher: Watcher) -> None:
        """Register ``watcher`` and wait until the server confirmed it (or refused it)."""
        self._live.add(watcher)
        self._create(watcher)
        if not self._running:
            self._running = True
            self._tg.start_soon(self._run)
        try:
            await watcher.wait_created()
        except BaseException:
            self.remove(watcher)
            raise

    def remove(self, watcher: Watcher) -> None:
        """The watch's block exited: cancel it on the server."""
        watcher.closed = True
        self._live.discard(watcher)
        self._cancel_server_side(watcher)
        self._wake_writer()

    def resume(self, watcher: Watcher) -> None:
        """A suspended watcher's buffer drained: create it again from its next revision."""
        watcher.suspended = False
        self._create(watcher)

    def send(self, request: bytes) -> None:
        if self._connected:
            self._outbox.append(request)
            self._wake_writer()

    def _create(self, watcher: Watcher) -> None:
        self._next_id += 1
        watch_id = self._next_id
        watcher.watch_id = watch_id
        self._by_id[watch_id] = watcher
        if self._connected:
            self._outbox.append(watcher.create_request(watch_id))
            self._wake_writer()

    def _cancel_server_side(self, watcher: Watcher) -> None:
        watch_id = watcher.watch_id
        if watch_id is None:
            return
        watcher.watch_id = None
        self._by_id.pop(watch_id, None)
        watcher.fragments = []
        if self._connected:
            request = pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=watch_id))
            self._outbox.append(bytes(request))

    def _suspend(self, watcher: Watcher) -> None:
        logger.debug(
            "watch buffer full, suspending buffered=%d next_revision=%d",
            watcher.buffered,
            watcher.next_revision,
        )
        watcher.suspended = True
        self._cancel_server_side(watcher)
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter = self._outbox_waiter
        if waiter is not None:
            self._outbox_waiter = None
            waiter.set()

    # ------------------------------------------------------------ the task

    async def _run(self) -> None:
        reconnect = self._reconnect
        try:
            while self._live:
                try:
                    await self._session()
                except (TransportError, GrpcError, StreamRestart) as exc:
                    error = await reconnect.recover(
                        exc, self._session_connection, self._session_metadata
                    )
                    if error is None:
                        continue  # a fresh token: the same watches again, at once
                    logger.debug("watch stream broke error=%r", error)
                    for watcher in list(self._live):
                        if not watcher.ever_created:  # nobody to resume for: report it
                            watcher.fail(error)
                            self._live.discard(watcher)
                    await anyio.sleep(reconnect.delay())
        finally:
            self._running = False
            self._connected = False

    async def _session(self) -> None:
        self._session_metadata = metadata = self._metadata()
        async with self._channel.open_call(WATCH_PATH, metadata=metadata) as call:
            self._session_connection = call.connection
            # A new stream: every live watcher is created again, with a fresh ID,
            # from the next revision it needs. Requests for the old stream are moot.
            self._outbox.clear()
            self._by_id.clear()
            self._connected = True
            self._sessions += 1
            resuming = [w for w in self._live if w.ever_created]
            if resuming:
                self.resumes += 1
                logger.info(
                    "watch stream reopened, resuming watches=%d from revision=%d endpoint=%s",
                    len(resuming),
                    min(w.next_revision for w in resuming),
                    self._channel.current_endpoint,
                )
            for watcher in self._live:
                watcher.fragments = []
                if watcher.suspended:
                    watcher.watch_id = None
                else:
                    self._create(watcher)
            try:
                await pump(
                    functools.partial(self._reader, call),
                    functools.partial(self._writer, call),
                    "watch",
                )
            finally:
                self._connected = False

    async def _writer(self, call: Call) -> None:
        outbox = self._outbox
        while True:
            if outbox:
                requests = list(outbox)
                outbox.clear()
                await call.send_messages(requests)
                continue
            if not self._live:
                return  # idle: close the stream (leaving open_call resets it)
            waiter = self._outbox_waiter = anyio.Event()
            await waiter.wait()

    async def _reader(self, call: Call) -> None:
        live, by_id, ns, credentials = self._live, self._by_id, self._ns, self._credentials
        while True:
            data = await call.recv_message()
            if data is None:
                return
            # The event cache pays only when several watchers may get the same events.
            response = _decode_watch_response(
                data, self._events if len(live) > 1 else None, self._ids
            )
            # (self._dispatch(response), inlined: this is the hot path)
            outcome = dispatch(by_id, response, ns, credentials)
            if isinstance(outcome, Watcher):
                # The common case, a new batch for one watcher: outcome.wake(), inlined.
                waiter = outcome._waiter
                if waiter is not None:
                    outcome._waiter = None
                    waiter.set()
            elif outcome is not None:
                self._act(outcome)

    def _dispatch(self, response: Response) -> None:
        """Apply one response to the watches and carry out the outcome."""
        outcome = dispatch(self._by_id, response, self._ns, self._credentials)
        if isinstance(outcome, Watcher):
            outcome.wake()
        elif outcome is not None:
            self._act(outcome)

    def _act(self, outcome: Outcome[Watcher]) -> None:
        """Carry out what :func:`dispatch` decided, but for waking one watcher."""
        if isinstance(outcome, Progress):
            for watcher in outcome.watches:
                waiter = watcher._waiter  # watcher.wake(), inlined: up to every watcher
                if waiter is not None:
                    watcher._waiter = None
                    waiter.set()
        elif isinstance(outcome, Created):
            self._reconnect.served = True
            outcome.watch.created.set()
        elif isinstance(outcome, Failed):
            watcher = outcome.watch
            watcher.fail(outcome.error)
            self._live.discard(watcher)
            if outcome.compact_revision:
                self.compactions += 1
                logger.warning(
                    "watch compacted away key=%r next_revision=%d compact_revision=%d",
                    watcher.key,
                    watcher.next_revision,
                    outcome.compact_revision,
                )
                cancel = pb.WatchCancelRequest(watch_id=outcome.watch_id)
                self._outbox.append(bytes(pb.WatchRequest(cancel_request=cancel)))
                self._wake_writer()
        elif isinstance(outcome, Suspend):
            outcome.watch.wake()
            self._suspend(outcome.watch)
        elif isinstance(outcome, Reauthenticate):
            raise StreamRestart(outcome.reason)  # reconnect with a fresh token

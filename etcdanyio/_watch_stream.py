"""
The one Watch stream of a client, shared by all its watches.

A task in the client's task group owns the gRPC Watch stream. Each watch is a
:class:`Watcher` with its own buffer, so a slow consumer never stalls the
others. Watches are created with client-chosen IDs, a fresh one for every
(re)creation, so a late response for an old ID is simply ignored.

Resume: every watcher knows the next revision it needs
(``last delivered mod_revision + 1``, or a progress notification's header
revision + 1). When the stream breaks, a new one is opened and every live
watcher is created again from there; events at or below what was delivered
are dropped, so nothing is lost and nothing is delivered twice.

Bounded memory: when a watcher's buffer would pass its bound, its server-side
watch is cancelled and its events are no longer buffered. Once its consumer
has drained the buffer, it is created again from its next revision: the
history is on the server.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import random
import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._error_table import REAUTHENTICATE, rpc_error, translate
from ._grpc import GrpcError, Status, TransportError
from ._lazy import etcdserverpb as pb  # imported on first use
from ._requests import check_int, key_range
from ._service import Service
from ._speedups import codec
from ._streams import pump
from ._telemetry import WatchLag
from .errors import EtcdError, WatchCompactedError
from .watch import Event, Filter, Watch, WatchBatch

_decode_watch_response = codec.decode_watch_response

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

    from anyio.abc import TaskGroup

    from ._codec import WatchResponse
    from ._grpc import Channel
    from ._grpc._call import Call
    from ._grpc._connection import Connection
    from ._keys import Namespace

logger = logging.getLogger("etcdanyio.watch")

WATCH_PATH = "/etcdserverpb.Watch/Watch"


@functools.cache
def _progress_request() -> bytes:
    """The encoded progress request (built on first use: importing the messages is costly)."""
    return bytes(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))


class Watcher:
    """One watch as the shared stream sees it: request, resume point, buffer."""

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
        self.stream = stream
        self.key = key
        self.range_end = range_end
        self.prev_kv = prev_kv
        self.progress_notify = progress_notify
        self.filters = filters
        self.fragment = fragment
        self.max_buffered = max_buffered
        #: the next revision this watcher needs (0: "from now", until created)
        self.next_revision = start_revision
        self.created_revision = 0
        #: header revision of the latest (re)creation: history up to it is still coming
        self.synced_after = 0
        self.watch_id: int | None = None
        self.batches: collections.deque[WatchBatch] = collections.deque()
        self.buffered = 0
        self.suspended = False
        self.closed = False
        self.error: BaseException | None = None
        self.ever_created = False
        self.created = anyio.Event()
        self.fragments: list[Event] = []
        #: events dropped because their revision was already delivered (server quirks)
        #: (also the tail of a response that raced a suspension)
        self.duplicates_dropped = 0
        #: the start revision of the latest re-creation after the first (0: none yet)
        self.resumed_from = 0
        #: a create refused as "permission denied" was retried with a fresh token
        self.auth_retried = False
        self._waiter: anyio.Event | None = None

    # -------------------------------------------------------- consumer side

    def _wake(self) -> None:
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

    def on_created(self, revision: int) -> None:
        # Until its events pass this revision, the watch is catching up on history.
        self.synced_after = revision
        if not self.ever_created:
            self.ever_created = True
            self.created_revision = revision
            if not self.next_revision:
                self.next_revision = revision + 1
            self.created.set()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.created.set()
        self._wake()

    def on_events(self, events: list[Event], fragment: bool) -> bool:
        """Buffer a response's events; ``False`` if the buffer is full (suspend)."""
        if fragment:
            self.fragments.extend(events)
            return True
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
                return True
        # Every event that arrived is kept, also past the bound (the response is in memory
        # already; dropping its tail would make etcd send it again). Past the bound, the
        # watch is suspended on the server until the consumer has read half the buffer:
        # at most max_buffered events plus one response are held.
        self.batches.append(WatchBatch(events, events[-1].kv.mod_revision))
        self.buffered += len(events)
        self.next_revision = events[-1].kv.mod_revision + 1
        self._wake()
        return self.buffered <= self.max_buffered

    def on_progress(self, revision: int) -> None:
        # A notification for the last revision received still says "nothing newer":
        # deliver it (an idle store notifies with the same revision every time).
        if self.fragments or revision < self.next_revision - 1:
            return
        self.next_revision = max(self.next_revision, revision + 1)
        batches = self.batches
        if batches and not batches[-1].events:
            batches[-1] = WatchBatch([], revision)  # collapse consecutive notifications
        else:
            batches.append(WatchBatch([], revision))
        self._wake()


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
        self._reauthenticate = reauthenticate
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
        self._healthy = False
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
        failures = 0
        try:
            while self._live:
                self._healthy = False
                try:
                    await self._session()
                except (TransportError, GrpcError) as exc:
                    if isinstance(exc, GrpcError) and exc.status == Status.UNAVAILABLE:
                        # e.g. "no leader" (hasleader): resume on another member.
                        self._channel.rotate(self._session_connection)
                    if isinstance(exc, GrpcError) and exc.message in REAUTHENTICATE:
                        try:  # a fresh token, then the same watches again
                            await self._reauthenticate(self._session_metadata)
                            continue
                        except EtcdError as auth_error:
                            exc = GrpcError(Status.UNAUTHENTICATED, auth_error.message)
                    error = translate(exc, write=False)
                    logger.debug("watch stream broke error=%r", error)
                    for watcher in list(self._live):
                        if not watcher.ever_created:  # nobody to resume for: report it
                            watcher.fail(error)
                            self._live.discard(watcher)
                    # Back off harder only while streams keep failing before serving.
                    failures = 1 if self._healthy else failures + 1
                    delay = min(2.0, 0.05 * 2 ** min(failures, 6)) * random.uniform(0.5, 1.0)
                    await anyio.sleep(delay)
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
        while True:
            data = await call.recv_message()
            if data is None:
                return
            # The event cache pays only when several watchers may get the same events.
            events = self._events if len(self._live) > 1 else None
            self._dispatch(_decode_watch_response(data, events, self._ids))

    def _dispatch(self, response: WatchResponse) -> None:
        watch_id = response.watch_id
        revision = response.header_revision
        if watch_id == -1:
            # The answer to a progress request goes to every watcher on the stream.
            # etcd before 3.5.8 answers at once with the store's revision even for a
            # watcher still catching up on history (etcd#15220): skip those.
            for each in self._by_id.values():
                if each.next_revision > each.synced_after:
                    each.on_progress(revision)
            return
        found = self._by_id.get(watch_id)
        if found is None:
            return  # a watch we cancelled or replaced
        watcher = found
        if response.canceled and _cancel_reason(response.cancel_reason)[1] in REAUTHENTICATE:
            # The stream's token is stale: reconnect with a fresh one (the watch is kept).
            raise GrpcError(Status.UNAUTHENTICATED, _cancel_reason(response.cancel_reason)[1])
        if response.created and response.canceled and self._credentials:
            status, _ = _cancel_reason(response.cancel_reason)
            if status == Status.PERMISSION_DENIED and not watcher.auth_retried:
                # etcd 3.5 refuses a create with an expired or outdated token as
                # "permission denied" (etcd#12385): get a fresh token and create the
                # watch again, once; a second refusal is real.
                watcher.auth_retried = True
                raise GrpcError(Status.UNAUTHENTICATED, "etcdserver: invalid auth token")
        if response.created:
            if response.canceled:
                self._by_id.pop(watch_id, None)
                watcher.watch_id = None
                watcher.fail(_cancel_error(response))
                self._live.discard(watcher)
            else:
                self._healthy = True
                watcher.auth_retried = False
                watcher.on_created(revision)
            return
        if response.canceled:
            self._by_id.pop(watch_id, None)
            watcher.watch_id = None
            watcher.fail(_cancel_error(response))
            self._live.discard(watcher)
            if response.compact_revision:
                self.compactions += 1
                logger.warning(
                    "watch compacted away key=%r next_revision=%d compact_revision=%d",
                    watcher.key,
                    watcher.next_revision,
                    response.compact_revision,
                )
                # etcd keeps a watcher cancelled by compaction until the client
                # cancels it too.
                cancel = pb.WatchCancelRequest(watch_id=watch_id)
                self._outbox.append(bytes(pb.WatchRequest(cancel_request=cancel)))
                self._wake_writer()
            return
        if response.events:
            events = _strip(self._ns, response.events) if self._ns else response.events
            if not watcher.on_events(events, response.fragment):
                self._suspend(watcher)
        elif not response.fragment:
            watcher.on_progress(revision)


_WRAPPED = re.compile(r"rpc error: code = (\w+) desc = (.*)", re.DOTALL)


def _cancel_reason(reason: str) -> tuple[Status, str]:
    """etcd sometimes wraps a cancel reason as a gRPC error string: unwrap it."""
    match = _WRAPPED.fullmatch(reason)
    if match is None:
        return Status.CANCELLED, reason
    # "PermissionDenied" -> PERMISSION_DENIED
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", match.group(1)).upper()
    status = Status.__members__.get(name, Status.UNKNOWN)
    return status, match.group(2)


def _cancel_error(response: WatchResponse) -> EtcdError:
    if response.compact_revision:
        return WatchCompactedError(response.compact_revision)
    status, reason = _cancel_reason(response.cancel_reason or "etcdserver: watch canceled")
    return rpc_error(status, reason, applied=False)


class WatchMixin(Service):
    """``client.watch()`` and ``client.watch_once()``."""

    _channel: Channel
    _tg: TaskGroup
    _ns: Namespace
    _timeout: float | None

    def _stream_metadata(self) -> bytes:
        raise NotImplementedError

    def _has_credentials(self) -> bool:
        raise NotImplementedError

    async def _reauthenticate(self, stale: bytes) -> None:
        raise NotImplementedError

    @asynccontextmanager
    async def watch(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        end: str | bytes | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
        progress_notify: bool = False,
        filters: Iterable[Filter | str] = (),
        fragment: bool = False,
        max_buffered: int = 10_000,
    ) -> AsyncIterator[Watch]:
        """
        Watch ``key`` (or a range, with ``prefix=True`` or ``end=``) for changes.

        The block starts once the server confirmed the watch: every change
        committed after that is delivered, in order, each once, even across
        reconnects. Leaving the block cancels the watch on the server.

        :param start_revision: deliver history from this revision on (``None``: from now)
        :param prev_kv: give each event the key as it was before (``event.prev_kv``)
        :param progress_notify: let the server send periodic progress notifications
            (see :meth:`Watch.batches`)
        :param filters: ``Filter.NO_PUT`` / ``Filter.NO_DELETE``, or their names (``"no_put"``,
            ``"noput"``, ``"NOPUT"``, ...)
        :param fragment: let etcd split huge responses (they are reassembled here)
        :param max_buffered: events buffered for a slow consumer before the watch is
            paused on the server (and resumed once half of them were read, losing nothing).
            What already arrived is kept, so at most ``max_buffered`` events plus one
            response are held (etcd sends at most 1,000 revisions in a response to a watch
            catching up)
        :raises WatchCompactedError: from the iterator, after every event before the
            gap, if ``start_revision`` is compacted (etcd confirms such a watch, then
            cancels it) or the watch falls behind compaction while resuming
        :raises PermissionDeniedError: if the user may not watch the range
        """
        start, range_end = key_range(key, end, prefix=prefix)
        if start_revision is not None:
            check_int(start_revision, "start_revision", minimum=1)
        check_int(max_buffered, "max_buffered", minimum=1)
        watcher = Watcher(
            self._watches(),
            key=self._ns.key(start),
            range_end=self._ns.range_end(range_end),
            start_revision=start_revision or 0,
            prev_kv=bool(prev_kv),
            progress_notify=bool(progress_notify),
            filters=[_filter(f) for f in filters],
            fragment=bool(fragment),
            max_buffered=max_buffered,
        )
        stream = watcher.stream
        with anyio.fail_after(self._timeout) if self._timeout else contextlib.nullcontext():
            await stream.add(watcher)
        try:
            yield Watch(watcher)
        finally:
            stream.remove(watcher)

    async def watch_once(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        end: str | bytes | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
        filters: Iterable[Filter | str] = (),
        progress_notify: bool = False,
        fragment: bool = False,
    ) -> Event:
        """
        The first event on ``key`` (or range); bound the wait with a cancel scope.

        Takes the options of :meth:`watch`; progress notifications carry no event, so
        ``progress_notify`` only keeps the server's side of the watch informed.
        """
        async with self.watch(
            key,
            prefix=prefix,
            end=end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=filters,
            progress_notify=progress_notify,
            fragment=fragment,
        ) as events:
            return await events.__anext__()

    def _watches(self) -> WatchStream:
        return self._core.watches()


#: filter names, also as etcd's proto spells them (``NOPUT``) and etcetra's/etcd3gw's
_FILTER_NAMES = {name.replace("_", ""): member for name, member in Filter.__members__.items()}


def _filter(value: object) -> int:
    if isinstance(value, Filter):
        return int(value)
    if isinstance(value, str):
        member = _FILTER_NAMES.get(value.upper().replace("_", ""))
        if member is not None:
            return int(member)
    raise ValueError(
        "filters must hold Filter.NO_PUT/NO_DELETE or their names "
        f"('no_put', 'noput', ...), got {value!r}"
    )

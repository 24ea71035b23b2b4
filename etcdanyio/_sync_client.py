"""The blocking client of :mod:`etcdanyio.sync`: the async client on a loop thread."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ._sync_generated import ClientCalls, open_etcd
from ._sync_holder import Holder
from ._sync_loop import Loop
from ._sync_reads import Mirror, RangeIterator, Watch
from ._sync_scopes import Election, Lease, Lock, LockHolds

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from contextlib import AbstractAsyncContextManager

    from typing_extensions import Self

    from ._telemetry import ClientStatistics
    from .client import Client as AsyncClient
    from .watch import Event, Filter
    from .watch import Watch as AsyncWatch

__all__ = ["Client", "open_etcd"]

logger = logging.getLogger("etcdanyio.sync")

#: what ``close()`` waits for the loop thread to finish (shielded cleanups are bounded too)
CLOSE_TIMEOUT = 10.0


class Client(ClientCalls):
    """
    A blocking etcd client, safe to share between any number of threads.

    The async :class:`etcdanyio.Client` runs on an event loop in a daemon thread (asyncio, or
    trio with ``backend="trio"``); each method hops onto it and blocks the calling thread
    until the call is done. Use it in a ``with`` block (:func:`open_etcd`), or create it and
    call :meth:`close` (idempotent). An unclosed client never keeps the interpreter from
    exiting. Takes the parameters of :func:`etcdanyio.open_etcd`.

    Every method takes ``timeout=`` (seconds; ``None``: the client's ``timeout``) and raises
    ``TimeoutError`` when it expires. Ctrl-C (``KeyboardInterrupt``) in the calling thread
    cancels the call on the loop and leaves the client usable. A client created before
    ``os.fork()`` refuses to work in the child (``ForkedClientError``).
    """

    # __init__ (ClientCalls's) takes the parameters of etcdanyio.open_etcd plus ``backend``.

    def _start(
        self,
        opener: Callable[[], AbstractAsyncContextManager[AsyncClient]],
        backend: str,
        timeout: float | None,
    ) -> None:
        self._timeout = timeout
        self._loop = Loop(opener, backend)
        self._async = self._loop.start()
        # Dropped without close(): stop the loop thread (it is a daemon thread anyway).
        finalizer = weakref.finalize(self, self._loop._request_stop)
        finalizer.atexit = False
        self._lock_holds = LockHolds()
        self._callbacks: _CallbackThread | None = None
        self._callback_watches: dict[int, Holder[AsyncWatch]] = {}
        self._watch_ids = itertools.count(1)
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        state = "closed" if self._loop.closed else self._loop.backend
        return f"<etcdanyio.sync.Client {','.join(self.endpoints)} ({state})>"

    # ------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Cancel the calls in flight, close every connection and the loop thread; idempotent."""
        self._loop.close(CLOSE_TIMEOUT)
        with self._guard:
            callbacks, self._callbacks = self._callbacks, None
            self._callback_watches.clear()
        if callbacks is not None:
            callbacks.stop()

    @property
    def closed(self) -> bool:
        return self._loop.closed

    @property
    def backend(self) -> str:
        """``"asyncio"`` or ``"trio"``: the event loop the client runs on."""
        return self._loop.backend

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ attributes

    @property
    def namespace(self) -> bytes:
        """The prefix added to every key sent and stripped from every key returned."""
        return self._async.namespace

    @property
    def endpoints(self) -> list[str]:
        """The endpoints the client connects to, as URLs."""
        return self._async.endpoints

    # ---------------------------------------------------------------- scopes

    def lease(self, ttl: int, *, id: int = 0, interval: float | None = None) -> Lease:
        """
        A lease for a ``with`` block: granted on entry, kept alive while the block runs,
        revoked on exit. If it is lost meanwhile, ``lease.lost`` / ``lease.lost_event`` say so
        and :class:`~etcdanyio.LeaseExpiredError` is raised when the block exits.
        """
        return Lease(self._loop, self._timeout, self._async.lease(ttl, id=id, interval=interval))

    def keepalive(
        self, lease_id: Any, *, interval: float | None = None, revoke: bool = False
    ) -> Lease:
        """
        Keep an existing lease (granted elsewhere) alive for a ``with`` block, as
        :meth:`etcdanyio.Client.keepalive`: not revoked on exit unless ``revoke=True``; a loss
        is reported as for :meth:`lease`.
        """
        context = self._async.keepalive(lease_id, interval=interval, revoke=revoke)
        return Lease(self._loop, self._timeout, context)

    def mirror(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        end: str | bytes | None = None,
        page_size: int = 1000,
        max_buffered: int = 10_000,
    ) -> Mirror:
        """
        A local copy of ``key`` (or a range) kept equal to the store, for a ``with`` block, as
        :meth:`etcdanyio.Client.mirror`; reads hop onto the client's loop (see ``Mirror``).
        """
        context = self._async.mirror(
            key, prefix=prefix, end=end, page_size=page_size, max_buffered=max_buffered
        )
        return Mirror(self._loop, self._timeout, context)

    def statistics(self) -> ClientStatistics:
        """A snapshot of the client, as :meth:`etcdanyio.Client.statistics` (read on its loop)."""

        async def read() -> ClientStatistics:
            return self._async.statistics()

        return self._loop.run(read(), self._timeout)

    def session(self, ttl: int = 60) -> Lease:
        """A lease to share between locks and elections (``session=``)."""
        return self.lease(ttl)

    def lock(
        self,
        name: str | bytes,
        *,
        ttl: int = 60,
        timeout: float | None = None,
        session: Lease | None = None,
        reentrant: bool = False,
    ) -> Lock:
        """
        A distributed lock for a ``with`` block (fair: first come, first served).

        :param timeout: bounds only the wait; expiry raises ``TimeoutError`` and leaves no key
        :param session: hold the lock on this lease (``client.session()``) instead
        :param reentrant: if the calling **thread** already holds the lock ``name`` through
            this client, run the block at once under that hold
        :raises LockLostError: when the block exits, if the lease was lost while held
        """
        if session is not None and not isinstance(session, Lease):
            raise TypeError(f"session must be a Lease from client.session(), got {session!r}")
        lock = self._async.lock(
            name,
            ttl=ttl,
            timeout=timeout,
            session=session._async if session is not None else None,
        )
        return Lock(self._loop, self._timeout, lock, self._lock_holds, bool(reentrant))

    def election(self, name: str | bytes) -> Election:
        """The election named ``name``, compatible with ``etcdctl elect name``."""
        return Election(self._loop, self._timeout, self._async.election(name))

    def watch(
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
    ) -> Watch:
        """
        Watch ``key`` (or a range) for changes, in a ``with`` block: iterate it (blocking) or
        ``get(timeout=)`` events. The block starts once the server confirmed the watch; every
        change after that is delivered, in order, each once, even across reconnects.
        Parameters as :meth:`etcdanyio.Client.watch`.
        """
        context = self._async.watch(
            key,
            prefix=prefix,
            end=end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
            filters=filters,
            fragment=fragment,
            max_buffered=max_buffered,
        )
        return Watch(self._loop, self._timeout, context)

    def iter_prefix(
        self,
        prefix: str | bytes,
        *,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> RangeIterator:
        """Iterate over every key that starts with ``prefix``, ``page_size`` keys per request,
        all read at one revision."""
        pager = self._async.iter_prefix(
            prefix,
            page_size=page_size,
            revision=revision,
            keys_only=keys_only,
            serializable=serializable,
        )
        return RangeIterator(self._loop, pager, page_size)

    def iter_range(
        self,
        start: str | bytes,
        end: str | bytes,
        *,
        page_size: int = 1000,
        revision: int = 0,
        keys_only: bool = False,
        serializable: bool = False,
    ) -> RangeIterator:
        """Like :meth:`iter_prefix`, over the keys in ``[start, end)``."""
        pager = self._async.iter_range(
            start,
            end,
            page_size=page_size,
            revision=revision,
            keys_only=keys_only,
            serializable=serializable,
        )
        return RangeIterator(self._loop, pager, page_size)

    # ------------------------------------------------------- callback watches

    def add_watch_callback(
        self,
        key: str | bytes,
        callback: Callable[[Event], object],
        *,
        prefix: bool = False,
        end: str | bytes | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
        filters: Iterable[Filter | str] = (),
    ) -> int:
        """
        Call ``callback(event)`` for every change of ``key`` (or a range) until
        :meth:`cancel_watch`; return the watch ID (python-etcd3's ``add_watch_callback``).

        Returns once the server confirmed the watch. Callbacks run one at a time, in order, on
        a thread of the client's (never on its event loop, never on the caller's thread); an
        exception in a callback is logged (logger ``etcdanyio.sync``) and the watch goes on.
        If the watch itself fails (its history was compacted away), that is logged and it ends.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        context = self._async.watch(
            key,
            prefix=prefix,
            end=end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            filters=filters,
        )
        runner = self._callback_thread()

        async def pump(watch: AsyncWatch) -> None:
            try:
                async for batch in watch.batches():
                    for event in batch.events:
                        runner.submit(callback, event)
            except Exception:
                logger.exception("watch of %r ended with an error", key)

        holder = Holder(self._loop, context, pump)
        holder.enter()
        watch_id = next(self._watch_ids)
        with self._guard:
            self._callback_watches[watch_id] = holder
        return watch_id

    def add_watch_prefix_callback(
        self, prefix: str | bytes, callback: Callable[[Event], object], **options: Any
    ) -> int:
        """:meth:`add_watch_callback` over every key that starts with ``prefix``."""
        return self.add_watch_callback(prefix, callback, prefix=True, **options)

    def cancel_watch(self, watch_id: int) -> None:
        """
        Stop the callback watch ``watch_id`` (once this returns, the server-side watch is gone;
        callbacks already queued still run). Unknown IDs are ignored.
        """
        with self._guard:
            holder = self._callback_watches.pop(watch_id, None)
        if holder is not None and not self._loop.closed:
            holder.cancel()

    def _callback_thread(self) -> _CallbackThread:
        with self._guard:
            if self._callbacks is None:
                self._callbacks = _CallbackThread()
            return self._callbacks


class _CallbackThread:
    """A daemon thread running watch callbacks one at a time; failures are logged."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[[Event], object], Event] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(
            target=self._run, name="etcdanyio-sync-callbacks", daemon=True
        )
        self._thread.start()

    def submit(self, callback: Callable[[Event], object], event: Event) -> None:
        self._queue.put((callback, event))

    def stop(self) -> None:
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(CLOSE_TIMEOUT)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            callback, event = item
            try:
                callback(event)
            except Exception:
                logger.exception("watch callback %r failed; the watch goes on", callback)

"""
The event loop under :mod:`etcdanyio.sync`: one daemon thread runs the async client, and a
blocking call is a hop onto it and back.

The hop is kept small because it is on every call. The calling thread creates the coroutine,
queues it and wakes the loop with the loop's own thread-safe wake-up (``call_soon_threadsafe``
on asyncio, the trio token's ``run_sync_soon`` on trio; calls queued while a wake-up is pending
share it), then sleeps on a ``threading.Lock`` that the finished call releases: no futures, no
portal. On asyncio the call is a bare task, cancelled with ``Task.cancel()``; on trio a task of
a native nursery in its own cancel scope. A caller's Ctrl-C (or a closing client) cancels
exactly that call; ``timeout=`` is an ``anyio.fail_after`` around it, so its deadline reaches
etcd as ``grpc-timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import functools
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine
    from contextlib import AbstractAsyncContextManager

    from anyio.abc import TaskGroup

T = TypeVar("T")
C = TypeVar("C")

logger = logging.getLogger("etcdanyio.sync")

#: how long a call interrupted by Ctrl-C may take to unwind before the interrupt is re-raised
CANCEL_WAIT = 5.0
#: the slice a blocked caller sleeps, so that a signal handler runs promptly on every platform
_WAIT_SLICE = 0.25


class ClientClosedError(RuntimeError):
    """The sync client was closed (or its event loop thread ended)."""


class ForkedClientError(RuntimeError):
    """A sync client was used in a process forked after it was created."""


def to_async(value: Any) -> Any:
    """The async object under a sync scope object (a sync ``Lease`` passed as ``lease=``)."""
    return getattr(value, "_async", value)


class _Call:
    """One blocking call in flight: its coroutine, outcome and cancel scope."""

    __slots__ = ("cancelled", "coro", "done", "error", "result", "scope", "task", "timeout")

    def __init__(self, coro: Coroutine[Any, Any, Any], timeout: float | None) -> None:
        self.coro = coro
        self.timeout = timeout
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.scope: Any = None  # a trio.CancelScope, on trio
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False

    def cancel(self) -> None:
        """On the loop: cancel the call (before it started, or while it runs)."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()
        if self.task is not None:
            self.task.cancel()


async def _run_call_trio(call: _Call) -> None:
    # The trio path: a task of a native nursery in a native cancel scope (anyio's task group
    # and cancel scope cost more per call, and the call needs none of their extras).
    import trio

    finished = False
    try:
        with trio.CancelScope() as scope:
            call.scope = scope
            if call.cancelled:
                scope.cancel()
            if call.timeout is None:
                call.result = await call.coro
            else:
                with anyio.fail_after(call.timeout):
                    call.result = await call.coro
            finished = True
    except Exception as exc:
        call.error = exc
        finished = True
    finally:
        if not finished and call.error is None:
            # Cancelled: by the caller's Ctrl-C, or from outside by the client closing.
            call.coro.close()  # if it never started
            call.error = ClientClosedError("the call was cancelled: the client is closing")
        call.scope = None
        call.coro = None  # type: ignore[assignment]  # drop the frame early
        call.done.release()


async def _run_call_asyncio(call: _Call, inflight: set[_Call]) -> None:
    # The asyncio fast path: a bare task (no task group, no cancel scope of its own),
    # cancelled with Task.cancel(); half the cost of _run_call on a loaded machine.
    inflight.add(call)
    finished = False
    try:
        if not call.cancelled:
            if call.timeout is None:
                call.result = await call.coro
            else:
                with anyio.fail_after(call.timeout):
                    call.result = await call.coro
            finished = True
    except Exception as exc:
        call.error = exc
        finished = True
    except asyncio.CancelledError:
        pass  # reported below; the task ends here
    finally:
        inflight.discard(call)
        if not finished and call.error is None:
            call.coro.close()  # if it never started
            call.error = ClientClosedError("the call was cancelled: the client is closing")
        call.task = None
        call.coro = None  # type: ignore[assignment]
        call.done.release()


@contextlib.asynccontextmanager
async def _call_nursery(backend: str) -> AsyncIterator[Any]:
    """A native trio nursery for the calls on trio; ``None`` on asyncio (bare tasks there)."""
    if backend != "trio":
        yield None
        return
    import trio

    async with trio.open_nursery() as nursery:
        yield nursery


class Loop(Generic[C]):
    """
    A daemon thread running ``anyio.run`` with the async client opened by ``opener`` inside.

    ``run()`` is thread-safe. The thread never keeps the interpreter from exiting.
    """

    def __init__(self, opener: Callable[[], AbstractAsyncContextManager[C]], backend: str) -> None:
        if backend not in ("asyncio", "trio"):
            raise ValueError(f"backend must be 'asyncio' or 'trio', got {backend!r}")
        self.backend = backend
        self._opener = opener
        self._pid = os.getpid()
        self._closed = False
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._start_error: BaseException | None = None
        self._stop: anyio.Event | None = None
        self._calls: TaskGroup | None = None
        self._schedule: Callable[..., object] | None = None
        #: on the loop: start a call's task
        self._start_call: Callable[[_Call], None] | None = None
        self._pending: collections.deque[_Call] = collections.deque()
        self._wakeup_pending = False
        self.client: C | None = None
        self._thread = threading.Thread(target=self._main, name="etcdanyio-sync-loop", daemon=True)
        self.thread_id = 0

    # ------------------------------------------------------------- lifecycle

    def start(self) -> C:
        """Start the thread, open the client; its errors (bad endpoint, auth) raise here."""
        self._thread.start()
        try:
            while not self._ready.wait(_WAIT_SLICE):
                pass
        except BaseException:
            self.close()
            raise
        if self._start_error is not None:
            self._closed = True
            self._thread.join()
            raise self._start_error
        assert self.client is not None
        return self.client

    def _main(self) -> None:
        self.thread_id = threading.get_ident()
        try:
            anyio.run(self._amain, backend=self.backend)
        except BaseException as exc:  # reported to start(), or logged
            if not self._ready.is_set():
                self._start_error = exc
            else:
                logger.error("the sync client's event loop failed", exc_info=exc)
        finally:
            self._closed = True
            self._ready.set()
            self._finished.set()
            self._fail_pending()

    async def _amain(self) -> None:
        inflight: set[_Call] = set()
        if self.backend == "asyncio":
            loop = asyncio.get_running_loop()
            # The callbacks run in this task's context, where anyio knows its backend.
            self._schedule = functools.partial(
                loop.call_soon_threadsafe, context=contextvars.copy_context()
            )
            create_task = loop.create_task

            def start(call: _Call) -> None:
                if self._stop is None or self._stop.is_set():
                    call.cancelled = True
                call.task = create_task(_run_call_asyncio(call, inflight))

            self._start_call = start
        else:
            import trio

            self._schedule = trio.lowlevel.current_trio_token().run_sync_soon
        self._stop = anyio.Event()
        try:
            async with (
                self._opener() as client,
                anyio.create_task_group() as calls,
                _call_nursery(self.backend) as nursery,
            ):
                self.client = client
                self._calls = calls  # the scopes' tasks (Holder)
                if nursery is not None:

                    def start_trio(call: _Call) -> None:
                        if self._stop is None or self._stop.is_set():
                            call.cancelled = True
                        nursery.start_soon(_run_call_trio, call)

                    self._start_call = start_trio
                self._ready.set()
                await self._stop.wait()
                # Calls still running are cancelled before the client closes under them.
                calls.cancel_scope.cancel()
                if nursery is not None:
                    nursery.cancel_scope.cancel()
                for call in list(inflight):
                    call.cancel()
                while inflight:  # each cancelled call ends within a few steps
                    await anyio.lowlevel.checkpoint()
        finally:
            self._stop.set()

    def close(self, timeout: float | None = None) -> None:
        """Close the client and end the thread; idempotent. Not from the loop's own thread."""
        if os.getpid() != self._pid:
            # A forked child: the loop thread and its connections belong to the parent.
            self._closed = True
            return
        if threading.get_ident() == self.thread_id:
            raise RuntimeError("close() of a sync client cannot run on its event loop thread")
        if not self._closed:
            self._closed = True
            self._request_stop()
        if os.getpid() == self._pid and self._thread.is_alive():
            self._thread.join(timeout)

    def _request_stop(self) -> None:
        if os.getpid() != self._pid:
            return  # the loop (and its wake-up socket) belong to the parent process
        schedule, stop = self._schedule, self._stop
        if schedule is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                schedule(stop.set)

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ calls

    def check(self) -> None:
        """Raise if calls cannot be made from here: closed, forked, or on the loop thread."""
        if os.getpid() != self._pid:
            raise ForkedClientError(
                f"this etcdanyio.sync client was created in process {self._pid}; after "
                "os.fork() the child cannot use its parent's connection: create a new client "
                "in the child"
            )
        if self._closed:
            raise ClientClosedError("the etcdanyio.sync client is closed")
        if threading.get_ident() == self.thread_id:
            raise RuntimeError(
                "a blocking etcdanyio.sync call on the client's own event loop thread would "
                "deadlock; use the async client there"
            )

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the loop, bounded by ``timeout`` (``TimeoutError``); block for it."""
        try:
            self.check()
        except BaseException:
            coro.close()
            raise
        call = _Call(coro, timeout)
        self._submit(call)
        self._wait(call)
        if call.error is not None:
            error, call.error = call.error, None
            raise error
        result: T = call.result
        return result

    def _submit(self, call: _Call) -> None:
        # Calls queue up here; one wake-up of the loop starts every call queued meanwhile, so
        # many threads calling at once do not each pay a wake-up (a self-pipe write on asyncio).
        self._pending.append(call)
        if not self._wakeup_pending:
            self._wakeup_pending = True
            try:
                self._schedule(self._drain)  # type: ignore[misc]
            except RuntimeError:  # the loop is gone
                self._wakeup_pending = False
                self._fail_pending()

    def _drain(self) -> None:
        """On the loop: start every queued call."""
        self._wakeup_pending = False  # first: a call queued from now on schedules a new drain
        pending, start = self._pending, self._start_call
        assert start is not None
        while pending:
            start(pending.popleft())

    def _fail_pending(self) -> None:
        while self._pending:
            try:
                call = self._pending.popleft()
            except IndexError:
                return
            call.coro.close()
            call.error = ClientClosedError("the etcdanyio.sync client is closed")
            call.done.release()

    def _wait(self, call: _Call) -> None:
        done = call.done
        try:
            while not done.acquire(True, _WAIT_SLICE):
                if self._finished.is_set():
                    if done.acquire(False):
                        break
                    raise ClientClosedError("the etcdanyio.sync client's event loop ended")
        except BaseException:
            # Ctrl-C (or another asynchronous exception) in the caller: cancel the call and
            # let it unwind on the loop, so the client stays usable, then re-raise.
            self.cancel_soon(call.cancel)
            with contextlib.suppress(BaseException):
                done.acquire(True, CANCEL_WAIT)
            raise

    def cancel_soon(self, function: Callable[[], object]) -> None:
        """Run ``function`` on the loop soon (thread-safe); nothing if the loop is gone."""
        schedule = self._schedule
        if schedule is not None:
            with contextlib.suppress(RuntimeError):
                schedule(function)

    def spawn(self, function: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Start ``function()`` as a task of the loop (thread-safe)."""
        self.check()
        schedule, calls = self._schedule, self._calls
        assert schedule is not None
        assert calls is not None
        try:
            schedule(calls.start_soon, function)
        except RuntimeError:
            raise ClientClosedError("the etcdanyio.sync client is closed") from None


def wait_lock(lock: threading.Lock, loop: Loop[Any], on_interrupt: Callable[[], object]) -> None:
    """Block on ``lock`` (released by the loop); Ctrl-C runs ``on_interrupt`` on the loop."""
    try:
        while not lock.acquire(True, _WAIT_SLICE):
            if loop._finished.is_set():
                if lock.acquire(False):
                    break
                raise ClientClosedError("the etcdanyio.sync client's event loop ended")
    except BaseException:
        loop.cancel_soon(on_interrupt)
        with contextlib.suppress(BaseException):
            lock.acquire(True, CANCEL_WAIT)
        raise

"""
How :mod:`etcdanyio.sync` holds an async scope open for a thread's ``with`` block.

A :class:`Holder` enters the async scope (lease, lock, campaign, watch, mirror ...) in a task of
the client's event loop and keeps it open while the ``with`` body runs in the calling thread.
A loss (lease expired, lock or leadership lost) cancels the async block but cannot cancel a
thread's body: it is reported instead, by ``lost`` / ``lost_event``, by guards that fail
(``lock.is_owner()`` in a transaction), and by the error the async scope raises
(``LeaseExpiredError``, ``LockLostError``, ``LeadershipLostError``), re-raised when the ``with``
block exits (:class:`Scope`).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio

from ._sync_loop import ClientClosedError, wait_lock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

    from ._sync_loop import Loop

T = TypeVar("T")

__all__ = ["Holder", "Iterated", "Scope"]


class Holder(Generic[T]):
    """
    An async context manager entered by a task of the loop and held open until :meth:`exit`.

    ``body`` runs inside the block on the loop (default: wait for :meth:`exit`). If the block
    ends by itself (the async scope cancelled its body on a loss), ``lost_event`` is set.
    """

    def __init__(
        self,
        loop: Loop[Any],
        context: AbstractAsyncContextManager[T],
        body: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self._loop = loop
        self._context = context
        self._body = body
        self._signal = threading.Lock()  # released once entered, or once entering failed
        self._signal.acquire()
        self._done = threading.Lock()  # released once the async block has exited
        self._done.acquire()
        self._exit: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self._exit_requested = False
        self.value: T | None = None
        self.entered = False
        self.finished = False
        self.error: BaseException | None = None
        #: set when the async block ended on its own while the ``with`` body ran
        self.lost_event = threading.Event()

    def enter(self) -> T:
        self._loop.spawn(self._hold)
        wait_lock(self._signal, self._loop, self._cancel)
        if not self.entered:
            error = self.error or ClientClosedError("the etcdanyio.sync client is closed")
            self.error = None
            raise error
        return self.value  # type: ignore[return-value]

    def _cancel(self) -> None:
        self._cancelled = True
        if self._scope is not None:
            self._scope.cancel()

    async def _hold(self) -> None:
        exit_event = self._exit = anyio.Event()
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                if self._cancelled:
                    scope.cancel()
                async with self._context as value:
                    self.value = value
                    self.entered = True
                    self._signal.release()
                    if self._body is None:
                        await exit_event.wait()
                    else:
                        await self._body(value)
        except Exception as exc:
            self.error = exc
        finally:
            self.finished = True
            self._scope = None
            if not self.entered:
                self._signal.release()
            elif not self._exit_requested:
                self.lost_event.set()
            self._done.release()

    def exit(self) -> BaseException | None:
        """Leave the async block (if still open); return the error it raised, if any."""
        self._exit_requested = True
        if not self.finished:
            exit_event = self._exit
            if exit_event is not None:
                self._loop.cancel_soon(exit_event.set)
        wait_lock(self._done, self._loop, self._cancel)
        error, self.error = self.error, None
        return error

    def cancel(self) -> None:
        """Cancel the async block (thread-safe) and wait for it to end; errors are dropped."""
        self._exit_requested = True
        self._loop.cancel_soon(self._cancel)
        wait_lock(self._done, self._loop, self._cancel)
        self.error = None


class Scope:
    """A ``with`` block over a :class:`Holder`: the async error is raised on exit."""

    _holder: Holder[Any] | None = None
    _lost: threading.Event | None = None

    def _hold(self, holder: Holder[T]) -> T:
        self._holder = holder
        self._lost = holder.lost_event
        try:
            return holder.enter()
        except BaseException:
            self._holder = None  # never entered: nothing to leave
            raise

    def _leave(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        error = holder.exit()
        if error is not None:
            raise error

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._leave()

    @property
    def lost_event(self) -> threading.Event:
        """Set as soon as the scope is lost (the async block ended while the body ran)."""
        if self._lost is None:
            raise RuntimeError("the scope was never entered")
        return self._lost


class Iterated(Scope, Generic[T]):
    """A scope whose value is an async iterator, read from the calling thread in chunks."""

    def __init__(self, loop: Loop[Any], context: AbstractAsyncContextManager[Any]) -> None:
        self._loop = loop
        self._context = context
        self._iterator: Any = None

    def _enter(self) -> None:
        if self._holder is not None:
            raise RuntimeError("already entered")
        self._iterator = self._hold(Holder(self._loop, self._context))

    def _check(self) -> None:
        if self._holder is None:
            raise RuntimeError("the block is not active")

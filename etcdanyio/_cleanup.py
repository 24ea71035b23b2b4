"""
Clean-ups that never race the write they clean up after, and never replace a block's outcome.

The rules every scope that creates something on the server follows (leases, sessions, locks,
elections, the recipes):

1. **See the write through.** A write that creates something to clean up (a lease grant, a
   lock or campaign key) is not abandoned when the caller is cancelled while it is in flight:
   the caller waits, shielded and bounded, for etcd's answer (:meth:`Write.run`). Otherwise
   the clean-up could reach etcd first (etcd serves each request in a goroutine of its own)
   and the write be applied after it, leaving a key or lease nobody removes.
2. **Clean up under a bound of its own.** A clean-up runs shielded under
   :data:`CLEANUP_TIMEOUT` (:func:`cleanup_scope`), not the client's default ``timeout``,
   and never raises: what it could not do now is handed to a background task of the client
   (:class:`Cleanups`), retried until done or until the lease would have expired anyway, and
   logged if given up.
3. **Outlive an unknown outcome.** When a write's answer never came (a broken connection, a
   timeout), etcd may still apply it for a while. The background task then keeps checking
   for :data:`SETTLE_TIME` and removes what appears.

Keys shared by the tasks of one client (a session's lock or campaign key ``name/<lease>``)
are guarded by :class:`KeyGuards`: a background clean-up keeps the guard until it is done,
so a later acquisition through the same session never has its key deleted under it.
"""

from __future__ import annotations

import enum
import logging
import math
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel

from .errors import EtcdError, LeaseNotFoundError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

    from anyio.abc import TaskGroup

    from ._client import Client

T = TypeVar("T")

logger = logging.getLogger("etcdanyio.cleanup")

#: How long one clean-up call (a revoke, a delete) may take, shielded.
CLEANUP_TIMEOUT = 2.0
#: How long etcd may still apply a write whose answer never came: its request timeout (5 s
#: by default) plus a leader election, with a margin.
SETTLE_TIME = 10.0
#: The first pause between background attempts; doubled up to :data:`_MAX_PAUSE`.
_FIRST_PAUSE = 0.05
_MAX_PAUSE = 1.0

_CLEANING: ContextVar[bool] = ContextVar("etcdanyio_cleaning", default=False)


def cleaning() -> bool:
    """Whether the current task runs a clean-up (then the client's default timeout is off)."""
    return _CLEANING.get()


@contextmanager
def cleanup_scope(timeout: float = CLEANUP_TIMEOUT) -> Iterator[anyio.CancelScope]:
    """A shielded scope bounded by ``timeout``, in which the client's default timeout is off."""
    token = _CLEANING.set(True)
    try:
        with anyio.move_on_after(timeout, shield=True) as scope:
            yield scope
    finally:
        _CLEANING.reset(token)


async def now_or_later(
    what: str,
    attempt: Callable[[], Awaitable[object]],
    later: Callable[[], None],
    *,
    now: bool = True,
    done_on: tuple[type[Exception], ...] = (),
    log: logging.Logger = logger,
) -> None:
    """
    The one shape of every clean-up on leaving a scope: ``attempt()`` now, shielded under its
    own bound (:func:`cleanup_scope`), never raising; if that fails or runs out of time, or
    if ``now`` is false (the write had no answer, or the lease is lost: do not make the caller
    wait), ``later()`` hands the job to the client's background clean-ups. ``done_on``: errors
    that mean there is nothing left to clean up.
    """
    if now:
        try:
            with cleanup_scope() as scope:
                await attempt()
            if not scope.cancelled_caught:
                return
        except done_on:
            return
        except (EtcdError, TimeoutError, anyio.ClosedResourceError) as exc:
            log.info("%s failed, retrying in the background: %r", what, exc)
    later()


class Outcome(enum.Enum):
    NOT_SENT = "not sent"
    APPLIED = "applied"
    NOT_APPLIED = "not applied"
    UNKNOWN = "unknown"


class Write:
    """What is known of one write that creates something to clean up."""

    __slots__ = ("outcome",)

    def __init__(self) -> None:
        self.outcome = Outcome.NOT_SENT

    @property
    def may_exist(self) -> bool:
        """Whether what the write creates may exist on the server (now or later)."""
        return self.outcome in (Outcome.APPLIED, Outcome.UNKNOWN)

    @property
    def unknown(self) -> bool:
        return self.outcome is Outcome.UNKNOWN

    async def run(self, write: Callable[[], Awaitable[T]]) -> T:
        """
        Await ``write()`` to its answer even if the caller is cancelled meanwhile (shielded,
        bounded by the caller's deadline, or :data:`SETTLE_TIME` without one, plus
        :data:`CLEANUP_TIMEOUT`), then deliver the caller's cancellation. :attr:`outcome`
        says afterwards what is known.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()  # cancelled already: nothing is sent
        self.outcome = Outcome.UNKNOWN
        now = anyio.current_time()
        deadline = anyio.current_effective_deadline()
        if deadline == math.inf:
            # No deadline: etcd answers within its request timeout or not at all, so a
            # cancelled caller never waits longer than that for the answer.
            deadline = now + SETTLE_TIME
        deadline = max(deadline, now)
        answered = False
        try:
            with anyio.CancelScope(shield=True, deadline=deadline + CLEANUP_TIMEOUT):
                result = await write()
                answered = True
        except BaseException as exc:
            if isinstance(exc, EtcdError) and exc.applied is False:
                self.outcome = Outcome.NOT_APPLIED
            raise
        if not answered:
            # Our own bound expired (the caller's deadline had passed before it, if it had one).
            await anyio.lowlevel.checkpoint_if_cancelled()
            raise TimeoutError("no answer to the write in time: its outcome is unknown")
        self.outcome = Outcome.APPLIED
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result


class Hold:
    """A held key guard; :meth:`hand_off` passes it to a background clean-up."""

    __slots__ = ("_guards", "_key", "released")

    def __init__(self, guards: KeyGuards, key: bytes) -> None:
        self._guards = guards
        self._key = key
        self.released = False

    def hand_off(self) -> Callable[[], None]:
        """Keep the guard past the block; the returned function releases it."""
        self.released = True  # the block no longer releases it
        return self._release

    def _release(self) -> None:
        self._guards._release(self._key)


class KeyGuards:
    """Exclusion, within one client, among the tasks that would put the same etcd key."""

    def __init__(self) -> None:
        #: key -> [the guard, the tasks holding or waiting for it]
        self._entries: dict[bytes, list[Any]] = {}

    @asynccontextmanager
    async def hold(self, key: bytes, *, wait: bool = True) -> AsyncIterator[Hold]:
        """Hold ``key``'s guard for the block; ``wait=False``: ``TimeoutError`` if it is held."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = [anyio.Semaphore(1), 0]
        entry[1] += 1
        try:
            if wait:
                await entry[0].acquire()
            else:
                try:
                    entry[0].acquire_nowait()
                except anyio.WouldBlock:
                    raise TimeoutError("held by another task of this client") from None
        except BaseException:
            self._leave(key, entry)
            raise
        hold = Hold(self, key)
        try:
            yield hold
        finally:
            if not hold.released:
                hold.released = True
                self._release(key)

    def _release(self, key: bytes) -> None:
        entry = self._entries[key]
        entry[0].release()
        self._leave(key, entry)

    def _leave(self, key: bytes, entry: list[Any]) -> None:
        entry[1] -= 1
        if not entry[1]:
            del self._entries[key]


class Cleanups:
    """
    The client's background clean-ups: tasks of its task group, retried with backoff, waited
    for (bounded) when the client closes, and never failing the client.
    """

    def __init__(self, client: Client, task_group: TaskGroup) -> None:
        self._client = client
        self._tg = task_group
        self._pending = 0
        self._idle: anyio.Event | None = None
        self._closing = anyio.Event()

    @property
    def pending(self) -> int:
        """Background clean-ups not finished yet."""
        return self._pending

    def _spawn(self, what: str, job: Callable[[], Awaitable[None]]) -> None:
        if self._closing.is_set():
            logger.warning("client closing: %s left to the lease's expiry", what)
            return
        self._pending += 1
        try:
            self._tg.start_soon(self._run, what, job)
        except RuntimeError:  # the task group is closed
            self._done()
            logger.warning("client closed: %s left to the lease's expiry", what)

    async def _run(self, what: str, job: Callable[[], Awaitable[None]]) -> None:
        token = _CLEANING.set(True)
        try:
            await job()
        except Exception as exc:
            logger.warning("background clean-up failed: %s error=%r", what, exc)
        finally:
            _CLEANING.reset(token)
            self._done()

    def _done(self) -> None:
        self._pending -= 1
        if not self._pending and self._idle is not None:
            self._idle.set()
            self._idle = None

    async def wait_idle(self) -> None:
        """Return once no background clean-up is pending (for tests and shutdown)."""
        while self._pending:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    async def close(self, timeout: float = CLEANUP_TIMEOUT) -> None:  # noqa: ASYNC109
        """Let pending clean-ups make their last attempt, waiting at most ``timeout``."""
        self._closing.set()
        with anyio.move_on_after(timeout, shield=True) as scope:
            await self.wait_idle()
        if scope.cancelled_caught:
            logger.warning("client closed with %d clean-ups unfinished", self._pending)

    async def _pause(self, delay: float) -> bool:
        """Sleep ``delay`` s; ``False`` at once if the client is closing (one last try then)."""
        if self._closing.is_set():
            return False
        with anyio.move_on_after(delay):
            await self._closing.wait()
            return False
        return True

    def revoke(self, lease_id: int, *, expires_at: float, grant_unknown: bool = False) -> None:
        """
        Revoke ``lease_id`` in the background. With ``grant_unknown``, the lease's grant had
        no answer: it may appear later, so it is looked for over :data:`SETTLE_TIME`. Given up
        once ``expires_at`` has passed (the lease is gone by itself then).
        """
        what = f"revoke of lease {lease_id:x}"
        self._spawn(what, lambda: self._revoke(lease_id, expires_at, grant_unknown))

    async def _revoke(self, lease_id: int, expires_at: float, grant_unknown: bool) -> None:
        client = self._client

        async def exists() -> bool:
            return (await client.lease_time_to_live(lease_id)).ttl != -1

        async def revoke() -> bool:
            try:
                await client.lease_revoke(lease_id)
            except LeaseNotFoundError:
                return False  # not there (yet): a grant of unknown outcome may still come
            return True  # a lease is granted once: revoked, it cannot come back

        await self._settle(
            f"revoking lease {lease_id:x}: it expires by itself",
            exists,
            revoke,
            expires_at,
            unknown=grant_unknown,
        )

    def delete(
        self,
        key: bytes,
        *,
        release: Callable[[], None] | None = None,
        expires_at: float,
        write_unknown: bool = False,
    ) -> None:
        """
        Delete our ``key`` (lock or campaign key, guarded) in the background, then ``release``
        its guard. With ``write_unknown``, the write that creates it had no answer, so the key
        is looked for over :data:`SETTLE_TIME` and deleted again if it appears.
        """
        what = f"delete of key {key!r}"
        self._spawn(what, lambda: self._delete(key, release, expires_at, write_unknown))

    async def _delete(
        self,
        key: bytes,
        release: Callable[[], None] | None,
        expires_at: float,
        write_unknown: bool,
    ) -> None:
        client = self._client

        async def exists() -> bool:
            return await client.get(key) is not None

        async def delete() -> bool:
            await client.delete(key)
            return False  # a put of unknown outcome may still bring it back

        try:
            await self._settle(
                f"deleting {key!r}: its lease removes it",
                exists,
                delete,
                expires_at,
                unknown=write_unknown,
            )
        finally:
            if release is not None:
                release()

    async def _settle(
        self,
        what: str,
        exists: Callable[[], Awaitable[bool]],
        remove: Callable[[], Awaitable[bool]],
        expires_at: float,
        *,
        unknown: bool,
    ) -> None:
        """
        The one retry loop of the background clean-ups: ``remove()`` (``True``: gone for good)
        until it succeeds, with backoff; after a write of ``unknown`` outcome, ``exists()`` is
        looked at for :data:`SETTLE_TIME` and what appears is removed again. Given up (and
        logged) once ``expires_at`` has passed, or after one last try when the client closes.
        """
        settle_until = anyio.current_time() + (SETTLE_TIME if unknown else 0.0)
        delay = _FIRST_PAUSE
        present, last = True, False
        while True:
            try:
                with cleanup_scope():
                    if not present:
                        present = await exists()
                    if present:
                        if await remove():
                            return
                        present = False
            except (EtcdError, TimeoutError) as exc:
                logger.debug("background clean-up attempt failed (%s): %r", what, exc)
            except anyio.ClosedResourceError:
                last = True
            now = anyio.current_time()
            if not present and now >= settle_until:
                return
            if last or now >= max(expires_at, settle_until):
                logger.warning("gave up %s", what)
                return
            last = not await self._pause(delay)
            delay = min(delay * 2, _MAX_PAUSE)

"""
The one LeaseKeepAlive stream of a client, shared by every lease it keeps alive.

Each lease has a :class:`Registration`: when to send its next keepalive
(TTL/3 after the last answer) and a local deadline (the send time of the last
answered keepalive + TTL; the server cannot expire the lease before then).
When the deadline passes, or etcd answers TTL <= 0 (expired or revoked), the
lease is lost: every scope that depends on it is cancelled and the cause is
recorded for the context manager to raise. A broken stream is reopened and
every lease re-sent on the new one; an outage shorter than the TTL is
survived.
"""

from __future__ import annotations

import collections
import functools
import logging
import math
from typing import TYPE_CHECKING

import anyio

from ._grpc import GrpcError, TransportError
from ._speedups import codec
from ._streams import Reconnect, pump

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskGroup

    from ._grpc import Channel
    from ._grpc._call import Call
    from ._grpc._connection import Connection

logger = logging.getLogger("etcdanyio.lease")

KEEPALIVE_PATH = "/etcdserverpb.Lease/LeaseKeepAlive"

#: the longest wait before the stream is opened again (well within the shortest TTL)
RECONNECT_CAP = 1.0


class LeaseLost(Exception):
    """Why a lease was lost (the cause of ``LeaseExpiredError``)."""


class Registration:
    """A lease kept alive by the shared stream, and the scopes that depend on it."""

    __slots__ = (
        "deadline",
        "id",
        "interval",
        "lost",
        "next_send",
        "owners",
        "scopes",
        "sent",
        "ttl",
    )

    def __init__(
        self,
        lease_id: int,
        ttl: int,
        sent_at: float,
        scope: anyio.CancelScope,
        interval: float | None = None,
    ) -> None:
        self.id = lease_id
        self.ttl = ttl
        self.deadline = sent_at + ttl
        #: seconds between keepalives (``None``: a third of the TTL)
        self.interval = interval
        #: the scopes that registered this lease (kept alive until the last one leaves)
        self.owners = 1
        #: send times of the keepalives not answered yet, oldest first (answers come in order)
        self.sent: collections.deque[float] = collections.deque()
        self.next_send = sent_at + self.period
        self.lost: BaseException | None = None
        self.scopes: set[anyio.CancelScope] = {scope}

    @property
    def period(self) -> float:
        """Seconds from an answered keepalive to the next one."""
        return self.interval if self.interval is not None else self.ttl / 3

    def add(self, scope: anyio.CancelScope) -> None:
        if self.lost is not None:
            scope.cancel()
        self.scopes.add(scope)

    def discard(self, scope: anyio.CancelScope) -> None:
        self.scopes.discard(scope)

    def lose(self, cause: BaseException, *, deliberate: bool = False) -> None:
        if self.lost is None:
            self.lost = cause
            level = logging.INFO if deliberate else logging.WARNING
            logger.log(level, "lease lost id=%x cause=%s", self.id, cause)
        for scope in self.scopes:
            scope.cancel()


class KeepAliveStream:
    """Keeps every registered lease alive over one LeaseKeepAlive stream."""

    def __init__(
        self,
        channel: Channel,
        task_group: TaskGroup,
        *,
        metadata: Callable[[], bytes],
        reauthenticate: Callable[[bytes], Awaitable[None]],
    ) -> None:
        self._channel = channel
        self._metadata = metadata
        self._reconnect = Reconnect(channel, reauthenticate, cap=RECONNECT_CAP)
        self._session_metadata = b""
        self._session_connection: Connection | None = None
        self._tg = task_group
        self._regs: dict[int, Registration] = {}
        self._running = False
        self._waiter: anyio.Event | None = None

    @property
    def leases(self) -> int:
        return len(self._regs)

    def nearest_deadline(self) -> float | None:
        """Seconds until the nearest local lease deadline, ``None`` without leases."""
        deadline = min((r.deadline for r in self._regs.values()), default=None)
        return None if deadline is None else deadline - anyio.current_time()

    def register(
        self,
        lease_id: int,
        ttl: int,
        sent_at: float,
        scope: anyio.CancelScope,
        *,
        interval: float | None = None,
    ) -> Registration:
        existing = self._regs.get(lease_id)
        if existing is not None and existing.lost is None:
            # Kept alive already (client.keepalive() of one of our own leases): share it.
            existing.owners += 1
            existing.add(scope)
            if interval is not None:
                existing.interval = min(interval, existing.interval or interval)
                existing.next_send = min(existing.next_send, anyio.current_time() + interval)
                self._wake()
            return existing
        registration = Registration(lease_id, ttl, sent_at, scope, interval)
        self._regs[lease_id] = registration
        if not self._running:
            self._running = True
            self._tg.start_soon(self._run)
        self._wake()
        return registration

    def unregister(
        self, registration: Registration, scope: anyio.CancelScope | None = None
    ) -> None:
        if scope is not None:
            registration.discard(scope)
        registration.owners -= 1
        if registration.owners <= 0 and self._regs.get(registration.id) is registration:
            del self._regs[registration.id]
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def _check_deadlines(self, now: float) -> None:
        for registration in list(self._regs.values()):
            if registration.lost is None and now >= registration.deadline:
                registration.lose(
                    LeaseLost(f"no keepalive answered within the TTL of {registration.ttl} s")
                )
                del self._regs[registration.id]

    async def _sleep_until(self, when: float) -> None:
        """Sleep until ``when`` or until woken by a (un)registration."""
        waiter = self._waiter = anyio.Event()
        delay = when - anyio.current_time()
        if delay > 0:
            with anyio.move_on_after(delay):
                await waiter.wait()
        self._waiter = None

    async def _run(self) -> None:
        reconnect = self._reconnect
        try:
            while self._regs:
                try:
                    await self._session()
                except (TransportError, GrpcError) as exc:
                    logger.debug("keepalive stream broke error=%r", exc)
                    # A failed re-authentication is waited out like any outage: the leases
                    # run into their local deadlines if it lasts.
                    error = await reconnect.recover(
                        exc, self._session_connection, self._session_metadata
                    )
                    if error is not None:
                        await self._back_off(reconnect.delay())
                    self._check_deadlines(anyio.current_time())
                    for registration in self._regs.values():
                        registration.next_send = 0.0  # re-send everything on the new stream
                        registration.sent.clear()
        finally:
            self._running = False

    async def _back_off(self, delay: float) -> None:
        """Wait ``delay`` seconds, but keep enforcing the local deadlines meanwhile."""
        resume = anyio.current_time() + delay
        while self._regs and anyio.current_time() < resume:
            self._check_deadlines(anyio.current_time())
            earliest = min((r.deadline for r in self._regs.values()), default=resume)
            await self._sleep_until(min(resume, earliest))

    async def _session(self) -> None:
        metadata = self._session_metadata = self._metadata()
        async with self._channel.open_call(KEEPALIVE_PATH, metadata=metadata) as call:
            self._session_connection = call.connection
            await pump(
                functools.partial(self._reader, call),
                functools.partial(self._writer, call),
                "keepalive",
            )

    async def _writer(self, call: Call) -> None:
        while self._regs:
            now = anyio.current_time()
            self._check_deadlines(now)
            due = [r for r in self._regs.values() if r.next_send <= now]
            if due:
                for registration in due:
                    registration.sent.append(now)
                    # Until answered, check again no sooner than TTL/3 from now.
                    registration.next_send = now + max(
                        min(registration.period, registration.ttl / 3), 0.1
                    )
                await call.send_messages([codec.encode_lease_keepalive(r.id) for r in due])
                continue
            next_send = min((r.next_send for r in self._regs.values()), default=math.inf)
            deadline = min((r.deadline for r in self._regs.values()), default=math.inf)
            await self._sleep_until(min(next_send, deadline))

    async def _reader(self, call: Call) -> None:
        while True:
            data = await call.recv_message()
            if data is None:
                return
            lease_id, ttl = codec.decode_lease_keepalive(data)
            registration = self._regs.get(lease_id)
            if registration is None:
                continue
            if ttl <= 0:
                registration.lose(LeaseLost("etcd reports the lease expired or revoked (TTL 0)"))
                del self._regs[registration.id]
                self._wake()
                continue
            self._reconnect.served = True
            registration.ttl = ttl
            sent_at = registration.sent.popleft() if registration.sent else anyio.current_time()
            # The server renewed the lease no earlier than we sent the request.
            registration.deadline = max(registration.deadline, sent_at + ttl)
            # Later than any time the writer sleeps towards: no need to wake it (waking
            # it on every answer made a round cost O(leases²)).
            registration.next_send = anyio.current_time() + registration.period

"""
What the long-lived bidirectional streams (Watch, LeaseKeepAlive) share: running a
stream's reader and writer (:func:`pump`), and getting back after the stream broke
(:class:`Reconnect`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ._error_table import REAUTHENTICATE, rpc_error, translate
from ._grpc import GrpcError, Status, TransportError
from ._grpc._backoff import backoff
from .errors import EtcdError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._grpc import Channel
    from ._grpc._connection import Connection


class StreamRestart(Exception):
    """
    Raised by a stream's reader: open the stream again with a fresh token.

    The server said so on the stream itself (a watch cancelled because the stream's
    token went stale) rather than with the stream's status.
    """


async def pump(
    read: Callable[[], Awaitable[None]], write: Callable[[], Awaitable[None]], name: str
) -> None:
    """
    Run a stream's reader and writer until either ends; raise why the stream ended.

    The writer returning means "idle, close the stream" and ends quietly; the
    reader returning means the server ended the stream, which is an error to
    reconnect from. Only the stream's own errors (and :class:`StreamRestart`) are
    turned into the one exception raised, so they never surface as an ExceptionGroup.
    """
    error: BaseException | None = None
    async with anyio.create_task_group() as tg:

        async def reader() -> None:
            nonlocal error
            try:
                await read()
                error = TransportError(f"{name} stream ended by the server")
            except (TransportError, GrpcError, StreamRestart) as exc:
                error = exc
            tg.cancel_scope.cancel()

        tg.start_soon(reader)
        try:
            await write()
        except (TransportError, GrpcError) as exc:
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error


class Reconnect:
    """
    How a long-lived stream gets back after it broke: one policy for both streams.

    :meth:`recover` moves away from a member that answered ``UNAVAILABLE`` (e.g. "no
    leader"), and gets a fresh token when the stream was refused for a stale one (then
    the stream is opened again at once); otherwise the stream waits out :meth:`delay`,
    which grows only while streams keep failing before they served anything
    (:attr:`served`).

    :param cap: the longest wait (the keepalive stream must come back within a lease's TTL)
    """

    #: the first wait after a stream that served: 50-100 ms
    BASE = 0.1

    def __init__(
        self,
        channel: Channel,
        reauthenticate: Callable[[bytes], Awaitable[None]],
        *,
        cap: float,
    ) -> None:
        self._channel = channel
        self._reauthenticate = reauthenticate
        self._cap = cap
        self._failures = 0
        #: set by the stream once it served (a watch confirmed, a keepalive answered)
        self.served = False

    async def recover(
        self,
        exc: TransportError | GrpcError | StreamRestart,
        connection: Connection | None,
        metadata: bytes,
    ) -> EtcdError | None:
        """
        Act on why the stream on ``connection`` (opened with ``metadata``) broke.

        :returns: ``None`` if a fresh token was had: open the stream again at once; else
            the error (for what waited on the stream), and the stream waits :meth:`delay`
        """
        if isinstance(exc, GrpcError) and exc.status == Status.UNAVAILABLE:
            self._channel.rotate(connection)  # e.g. "no leader": resume on another member
        if isinstance(exc, StreamRestart) or (
            isinstance(exc, GrpcError) and exc.message in REAUTHENTICATE
        ):
            try:
                await self._reauthenticate(metadata)
            except EtcdError as auth_error:
                return rpc_error(Status.UNAUTHENTICATED, auth_error.message, applied=False)
            self.served = False
            return None
        return translate(exc, write=False)

    def delay(self) -> float:
        """Seconds to wait before opening the stream again."""
        self._failures = 1 if self.served else self._failures + 1
        self.served = False
        return backoff(self._failures, base=self.BASE, cap=self._cap)

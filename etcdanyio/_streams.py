"""What the long-lived bidirectional streams (Watch, LeaseKeepAlive) share."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from ._grpc import GrpcError, TransportError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


async def pump(
    read: Callable[[], Awaitable[None]], write: Callable[[], Awaitable[None]], name: str
) -> None:
    """
    Run a stream's reader and writer until either ends; raise why the stream ended.

    The writer returning means "idle, close the stream" and ends quietly; the
    reader returning means the server ended the stream, which is an error to
    reconnect from. Only the stream's own errors are turned into the one
    exception raised, so they never surface as an ExceptionGroup.
    """
    error: BaseException | None = None
    async with anyio.create_task_group() as tg:

        async def reader() -> None:
            nonlocal error
            try:
                await read()
                error = TransportError(f"{name} stream ended by the server")
            except (TransportError, GrpcError) as exc:
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

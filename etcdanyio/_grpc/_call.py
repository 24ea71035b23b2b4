"""
One RPC on a connection: its mailbox, its status, and the streaming handle.

The connection's reader task puts what arrives for a stream into its
:class:`CallState` and wakes the one task waiting on it. A unary call is woken
once, when the response is complete (one task switch per call); a streaming
call on every message.
"""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

import anyio

from ._errors import (
    ConnectionLostError,
    GrpcError,
    MessageTooLargeError,
    ProtocolViolation,
    StreamRefusedError,
    TransportError,
)
from ._h2frames import ErrorCode
from ._status import HTTP_TO_GRPC, Status

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from typing_extensions import Self

    from ._backend import Signal
    from ._connection import Connection


def status_from_trailers(
    headers: list[tuple[str, str]] | None, trailers: list[tuple[str, str]]
) -> GrpcError | None:
    """
    The call's outcome: ``None`` for OK, else the error.

    ``headers`` is ``None`` for a trailers-only response, whose HTTP status is
    then checked too. An absent and an empty ``grpc-message`` are the same.
    """
    status: str | None = None
    message = ""
    http_status: str | None = None
    for name, value in trailers:
        if name == "grpc-status":
            status = value
        elif name == "grpc-message":
            message = unquote(value) if "%" in value else value
        elif name == ":status":
            http_status = value
    if headers is None and http_status is not None and http_status != "200":
        code = HTTP_TO_GRPC.get(int(http_status) if http_status.isdigit() else 0, Status.UNKNOWN)
        return GrpcError(code, message or f"HTTP status {http_status}", trailers)
    if status is None:
        return GrpcError(Status.UNKNOWN, message or "missing grpc-status in trailers", trailers)
    if status == "0":
        return None
    code = Status.from_code(int(status)) if status.isdigit() else Status.UNKNOWN
    return GrpcError(code, message, trailers)


def check_response_headers(headers: list[tuple[str, str]]) -> GrpcError | None:
    """A response that is not 200 or not gRPC fails the call at once."""
    http_status = "200"
    content_type = ""
    for name, value in headers:
        if name == ":status":
            http_status = value
        elif name == "content-type":
            content_type = value
    if http_status != "200":
        code = HTTP_TO_GRPC.get(int(http_status) if http_status.isdigit() else 0, Status.UNKNOWN)
        return GrpcError(code, f"HTTP status {http_status}", headers)
    if not content_type.startswith("application/grpc"):
        return GrpcError(Status.UNKNOWN, f"invalid content-type {content_type!r}", headers)
    return None


class CallState:
    """The receiving side of one stream, filled by the connection's reader task."""

    __slots__ = (
        "error",
        "finished",
        "headers",
        "messages",
        "new_signal",
        "sent",
        "stream_id",
        "trailers",
        "waiter",
        "wake_each",
        "write_waiter",
    )

    def __init__(
        self, stream_id: int, *, wake_each: bool, new_signal: Callable[[], Signal] = anyio.Event
    ) -> None:
        self.stream_id = stream_id
        self.new_signal = new_signal
        self.wake_each = wake_each
        self.messages: collections.deque[tuple[bytes, int]] = collections.deque()
        self.headers: list[tuple[str, str]] | None = None
        self.trailers: list[tuple[str, str]] | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.sent = False  # our request bytes were handed to the transport
        self.waiter: Signal | None = None
        self.write_waiter: anyio.Event | None = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            waiter.set()

    def wake_writer(self) -> None:
        waiter = self.write_waiter
        if waiter is not None:
            self.write_waiter = None
            waiter.set()

    def on_headers(self, headers: list[tuple[str, str]]) -> GrpcError | None:
        self.headers = headers
        return check_response_headers(headers)

    def on_message(self, data: bytes, size: int) -> None:
        self.messages.append((data, size))
        if self.wake_each:
            self._wake()

    def on_trailers(self, trailers: list[tuple[str, str]]) -> None:
        self.trailers = trailers
        if self.error is None:
            self.error = status_from_trailers(self.headers, trailers)
        self.finished = True
        self._wake()
        self.wake_writer()

    def fail(self, error: BaseException) -> None:
        if self.finished:
            return
        self.error = error
        self.finished = True
        self._wake()
        self.wake_writer()

    async def wait(self) -> None:
        """Wait until a message or the end arrives (for unary calls: the end)."""
        while not self.finished and not (self.wake_each and self.messages):
            waiter = self.waiter = self.new_signal()
            await waiter.wait()


class HttpResponse(NamedTuple):
    """The answer to a plain HTTP request."""

    status: int
    #: header names in lower case, in the order received (no pseudo-headers)
    headers: list[tuple[str, str]]
    body: bytes


class RequestState(CallState):
    """
    The receiving side of one plain HTTP request (not gRPC): the response, its body whole.

    :param limit: the largest body accepted; a larger one fails the request
    """

    __slots__ = ("body", "limit")

    def __init__(
        self, stream_id: int, *, limit: int, new_signal: Callable[[], Signal] = anyio.Event
    ) -> None:
        super().__init__(stream_id, wake_each=False, new_signal=new_signal)
        self.body = bytearray()
        self.limit = limit

    def on_headers(self, headers: list[tuple[str, str]]) -> GrpcError | None:
        self.headers = headers
        return None  # any status and content type is an answer

    def on_data(self, data: bytes) -> TransportError | None:
        """Take a piece of the body; an error to fail the request with if it is too large."""
        self.body += data
        if len(self.body) > self.limit:
            return ProtocolViolation(f"HTTP response larger than {self.limit} bytes", applied=False)
        return None

    def on_trailers(self, trailers: list[tuple[str, str]]) -> None:
        if self.headers is None:
            self.headers = trailers  # a response without a body: all of it
        else:
            self.trailers = trailers
        self.finished = True
        self._wake()

    def response(self) -> HttpResponse:
        """
        The response, once finished without error.

        :raises ProtocolViolation: if it has no ``:status``
        """
        status = 0
        headers = []
        for name, value in self.headers or ():
            if name == ":status":
                status = int(value) if value.isdigit() else 0
            elif not name.startswith(":"):
                headers.append((name, value))
        if not status:
            raise ProtocolViolation("HTTP/2 response without a :status", applied=False)
        return HttpResponse(status, headers, bytes(self.body))


class Call:
    """
    A streaming RPC. Use as an async context manager; leaving it resets the
    stream unless the call ended normally, so nothing stays open on the server.
    """

    def __init__(self, connection: Connection, state: CallState, path: str) -> None:
        self._connection = connection
        self._state = state
        self.path = path
        self._ended = False

    @property
    def connection(self) -> Connection:
        """The connection the call runs on."""
        return self._connection

    @property
    def stream_id(self) -> int:
        return self._state.stream_id

    @property
    def initial_metadata(self) -> list[tuple[str, str]] | None:
        return self._state.headers

    @property
    def trailing_metadata(self) -> list[tuple[str, str]] | None:
        return self._state.trailers

    @property
    def finished(self) -> bool:
        return self._state.finished

    async def send_message(self, data: bytes, *, end: bool = False) -> None:
        """
        Send one message; wait while flow control holds it back.

        :raises MessageTooLargeError: if it is over the send limit (nothing is sent)
        """
        if self._ended:
            raise RuntimeError("the sending side of this call is already closed")
        if len(data) > self._connection.max_send_message:
            raise MessageTooLargeError(
                f"message of {len(data)} bytes is over the send limit of "
                f"{self._connection.max_send_message} bytes",
                applied=False,
            )
        self._ended = end
        await self._connection.send(self._state, data, end=end)

    async def send_messages(self, messages: list[bytes]) -> None:
        """Send several messages with one write (when flow control allows)."""
        if self._ended:
            raise RuntimeError("the sending side of this call is already closed")
        limit = self._connection.max_send_message
        for data in messages:
            if len(data) > limit:
                raise MessageTooLargeError(
                    f"message of {len(data)} bytes is over the send limit of {limit} bytes",
                    applied=False,
                )
        await self._connection.send_many(self._state, messages)

    async def end(self) -> None:
        """Half-close: tell the server we send nothing more."""
        if not self._ended:
            self._ended = True
            await self._connection.end(self._state)

    async def recv_message(self) -> bytes | None:
        """
        The next message, or ``None`` when the server ended the call with OK.

        :raises GrpcError: if the call ended with a non-OK status
        :raises TransportError: if the connection or the stream broke
        """
        state = self._state
        if not state.messages and not state.finished:
            await state.wait()
        if state.messages:
            data, size = state.messages.popleft()
            await self._connection.acknowledge(state.stream_id, size)
            return data
        if state.error is not None:
            raise state.error
        return None

    async def aclose(self) -> None:
        """Reset the stream if it is still open; always returns, even when cancelled."""
        await self._connection.release(self._state)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def reset_failure(code: int) -> TransportError | GrpcError:
    """What a call fails with when the server resets its stream (RST_STREAM ``code``)."""
    if code == ErrorCode.REFUSED_STREAM:
        return StreamRefusedError("the server refused the stream before processing it")
    if code == ErrorCode.CANCEL:
        return GrpcError(Status.CANCELLED, "stream reset by the server (CANCEL)")
    if code == ErrorCode.ENHANCE_YOUR_CALM:
        return GrpcError(
            Status.RESOURCE_EXHAUSTED, "stream reset by the server (ENHANCE_YOUR_CALM)"
        )
    return GrpcError(Status.INTERNAL, f"stream reset by the server ({ErrorCode.name_of(code)})")


def stream_failure(message: str, *, too_large: bool) -> TransportError | GrpcError:
    """What a call fails with when the core found its stream broken and reset it."""
    if too_large:
        return GrpcError(Status.RESOURCE_EXHAUSTED, message)
    return ProtocolViolation(message, applied=None)


def remaining(deadline: float) -> float | None:
    """Seconds left until ``deadline`` (``None`` when there is none)."""
    if deadline == math.inf:
        return None
    return max(deadline - anyio.current_time(), 0.0)


def lost(error: TransportError, *, sent: bool) -> TransportError:
    """The connection's sticky error as it applies to one call (``applied`` per call)."""
    cls = ProtocolViolation if isinstance(error, ProtocolViolation) else ConnectionLostError
    copy = cls(error.message, applied=None if sent else False)
    copy.__cause__ = error.__cause__ or error
    return copy

"""
Errors of the gRPC layer.

They carry what the layer above needs to decide on retries and to build its
own error types: the gRPC status and message, and whether the request can have
reached the server (``applied``: ``False`` when it certainly was not processed,
``None`` when nobody can tell).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._status import Status


class TransportError(Exception):
    """Raised when a call fails below the gRPC status level."""

    def __init__(self, message: str, *, applied: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: ``False``: the server certainly did not process the request;
        #: ``None``: it may have.
        self.applied = applied


class UnreachableError(TransportError):
    """Raised when no connection to an endpoint could be established."""

    def __init__(self, message: str, causes: list[BaseException] | None = None) -> None:
        super().__init__(message, applied=False)
        self.causes = causes or []


class ConnectionLostError(TransportError):
    """Raised when the connection broke while a call was in flight (or before it started)."""


class StreamRefusedError(TransportError):
    """Raised when the server refused a stream before processing it (GOAWAY, REFUSED_STREAM)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, applied=False)


class ProtocolViolation(TransportError):
    """Raised when the peer broke HTTP/2 or gRPC framing rules."""


class MessageTooLargeError(TransportError):
    """Raised when a message exceeds the configured size limit."""


class GrpcError(Exception):
    """Raised when a call ends with a non-OK ``grpc-status``."""

    def __init__(
        self, status: Status, message: str, trailers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(f"{status.name}: {message}" if message else status.name)
        self.status = status
        self.message = message
        self.trailers = trailers or []

"""
What the sans-IO HTTP/2 core (:mod:`._protocol`) reports from the bytes it is fed.

NamedTuples: immutable, and the cheapest objects to create on the hot path.
"""

from __future__ import annotations

from typing import NamedTuple


class Headers(NamedTuple):
    """The response headers of a stream."""

    stream_id: int
    headers: list[tuple[str, str]]


class Message(NamedTuple):
    """One complete gRPC message; ``size`` bytes are to be acknowledged once it is consumed."""

    stream_id: int
    data: bytes
    size: int


class Data(NamedTuple):
    """A piece of a plain HTTP response body (see ``start_request``); ack ``size`` when consumed."""

    stream_id: int
    data: bytes
    size: int


class Trailers(NamedTuple):
    """
    The end of a stream from the server.

    ``headers`` are the trailers, or the whole response for a trailers-only
    response (then ``:status`` is among them), or empty when the server ended
    the stream with a DATA frame and sent no trailers at all.
    """

    stream_id: int
    headers: list[tuple[str, str]]


class Reset(NamedTuple):
    """The stream was reset: by the peer, or refused by a GOAWAY (``REFUSED_STREAM``)."""

    stream_id: int
    error_code: int


class StreamError(NamedTuple):
    """The core found the stream broken (bad framing, too large a message) and reset it."""

    stream_id: int
    message: str
    too_large: bool


class WindowOpened(NamedTuple):
    """Everything queued for sending on the stream has been written."""

    stream_id: int


class GoAway(NamedTuple):
    """The server will accept no new streams; streams above ``last_stream_id`` were refused."""

    last_stream_id: int
    error_code: int
    debug: bytes


class PingAck(NamedTuple):
    """The peer acknowledged one of our PINGs."""

    payload: bytes


Event = Headers | Message | Data | Trailers | Reset | StreamError | WindowOpened | GoAway | PingAck

"""
Plain HTTP ``GET`` on the HTTP/2 core (:meth:`Connection.get`, the raw streams of the sans-IO
core) and the HTTP endpoints' use of it (:func:`etcdanyio._http.get_h2`), against the
in-memory h2 peer. Every test runs on asyncio and trio, bounded by ``fail_after``.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import TYPE_CHECKING, Any

import anyio
import h2.events
import pytest
from hyperframe.frame import HeadersFrame, WindowUpdateFrame

from etcdanyio import ProtocolViolationError
from etcdanyio._grpc import ConnectionLostError, GrpcError, ProtocolViolation
from etcdanyio._grpc._connection import Connection
from etcdanyio._grpc._h2events import Data, Headers, Trailers
from etcdanyio._grpc._h2frames import DATA, ErrorCode
from etcdanyio._grpc._protocol import H2ClientProtocol
from etcdanyio._http import get_h2
from tests.h2peer import H2Peer, PeerStream, frame_bytes
from tests.unit.grpc.outcome import start

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.unit

TIMEOUT = 5
TEXT = [(":status", "200"), ("content-type", "text/plain; charset=utf-8")]


@contextlib.asynccontextmanager
async def connected(peer: H2Peer, **options: Any) -> AsyncIterator[Connection]:
    """A Connection to ``peer`` with keepalive off (as the endpoints use it); closed on exit."""
    async with anyio.create_task_group() as tg:
        transport = peer.connect()
        tg.start_soon(peer.serve)
        conn = Connection(
            transport, authority="peer:2379", tls=True, keepalive_interval=0, **options
        )
        await tg.start(conn.run)
        try:
            yield conn
        finally:
            await conn.aclose()
    assert peer.transport_closed


def responder(*parts: tuple[str, object]) -> H2Peer:
    """A peer answering each request with ``parts``: ("headers", list) / ("data", bytes)."""

    def handler(peer: H2Peer, stream: PeerStream) -> None:
        for i, (kind, value) in enumerate(parts):
            last = i == len(parts) - 1
            if kind == "headers":
                assert isinstance(value, list)
                peer.send_headers(stream.stream_id, value, end_stream=last)
            else:
                assert isinstance(value, bytes)
                peer.send_data(stream.stream_id, value, end_stream=last)

    return H2Peer(handler)


# ----------------------------------------------------------------------- the sans-IO core


def test_start_request_sends_one_headers_frame_that_ends_the_stream() -> None:
    proto = H2ClientProtocol()
    proto.initiate_connection()
    proto.data_to_send()
    proto.receive_data(frame_bytes(0x4, 0, 0))  # the server's SETTINGS
    proto.data_to_send()
    stream_id = proto.start_request(b"\x82")
    assert proto.data_to_send() == frame_bytes(0x1, 0x1 | 0x4, stream_id, b"\x82")
    assert proto.pending_send(stream_id) == 0


def test_a_raw_stream_reports_its_body_unframed() -> None:
    proto = H2ClientProtocol()
    proto.initiate_connection()
    proto.receive_data(frame_bytes(0x4, 0, 0))
    stream_id = proto.start_request(b"\x82")
    proto.data_to_send()
    # ":status: 200" (static index 8); then DATA, padded with 3 bytes, then DATA ending it
    events = proto.receive_data(
        frame_bytes(0x1, 0x4, stream_id, b"\x88")
        + frame_bytes(DATA, 0x8, stream_id, b"\x03\x00\x00\x00\x05abc" + b"\0\0\0")
        + frame_bytes(DATA, 0x1, stream_id, b"rest")
    )
    assert events == [
        Headers(stream_id, [(":status", "200")]),
        Data(stream_id, b"\x00\x00\x00\x05abc", 7),  # not cut as a gRPC message would be
        Data(stream_id, b"rest", 4),
        Trailers(stream_id, []),
    ]
    assert proto.open_streams == 0


def test_an_interim_response_is_skipped_on_a_raw_stream() -> None:
    proto = H2ClientProtocol()
    proto.initiate_connection()
    proto.receive_data(frame_bytes(0x4, 0, 0))
    stream_id = proto.start_request(b"\x82")
    events = proto.receive_data(
        frame_bytes(0x1, 0x4, stream_id, b"\x08\x03103")  # ":status: 103", literal
        + frame_bytes(0x1, 0x4 | 0x1, stream_id, b"\x8d")  # ":status: 404", ending it
    )
    assert events == [Trailers(stream_id, [(":status", "404")])]


# ------------------------------------------------------------------------ Connection.get


async def test_get_sends_a_plain_get_and_collects_the_response() -> None:
    peer = responder(("headers", TEXT), ("data", b"hello "), ("data", b"world"), ("data", b"!"))
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn:
            response = await conn.get("/metrics", limit=1 << 20)
            assert conn.open_calls == 0
            assert conn.usable
    assert response.status == 200
    assert response.headers == [("content-type", "text/plain; charset=utf-8")]
    assert response.body == b"hello world!"
    stream = peer.streams[1]
    assert stream.ended
    assert stream.data == b""
    assert sorted(stream.headers) == sorted(
        [
            (":method", "GET"),
            (":scheme", "https"),
            (":authority", "peer:2379"),
            (":path", "/metrics"),
            ("user-agent", "etcdanyio"),
        ]
    )
    first = peer.frames_of(HeadersFrame, 1)[0]
    assert {"END_STREAM", "END_HEADERS"} <= first.flags


async def test_get_of_a_response_without_a_body_and_one_with_trailers() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected(responder(("headers", [(":status", "503")]))) as conn:
            response = await conn.get("/health", limit=100)
        assert (response.status, response.headers, response.body) == (503, [], b"")
        peer = responder(("headers", TEXT), ("data", b"ok"), ("headers", [("x-trailer", "1")]))
        async with connected(peer) as conn:
            response = await conn.get("/health", limit=100)
        assert (response.status, response.body) == (200, b"ok")


async def test_get_of_a_body_larger_than_the_windows_returns_them_as_it_goes() -> None:
    body = bytes(range(256)) * 2048  # 512 KiB: eight stream windows of 64 KiB
    peer = responder(("headers", TEXT), ("data", body))
    with anyio.fail_after(TIMEOUT):
        async with connected(peer, initial_window=65_535, connection_window=65_535) as conn:
            response = await conn.get("/metrics", limit=1 << 20)
            assert response.body == body
            # ... and the connection is left as it was: a second one works alike
            assert (await conn.get("/metrics", limit=1 << 20)).body == body
    updates = [f for f in peer.frames_of(WindowUpdateFrame) if f.stream_id in (0, 1)]
    assert sum(f.window_increment for f in updates if f.stream_id == 1) >= len(body) - 65_535


async def test_get_over_the_limit_fails_and_resets_the_stream() -> None:
    peer = responder(("headers", TEXT), ("data", b"x" * 1000), ("data", b"never sent"))
    peer.auto_window = False  # holds the last piece back: the stream is still open
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn:
            with pytest.raises(ProtocolViolation, match="larger than 999 bytes"):
                await conn.get("/metrics", limit=999)
            assert await peer.wait_reset(1) == ErrorCode.CANCEL
            assert conn.usable
            assert conn.open_calls == 0


async def test_get_reset_by_the_server() -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        peer.reset_stream(stream.stream_id, ErrorCode.INTERNAL_ERROR)

    with anyio.fail_after(TIMEOUT):
        async with connected(H2Peer(handler)) as conn:
            with pytest.raises(GrpcError, match="INTERNAL_ERROR"):
                await conn.get("/version", limit=100)


async def test_get_without_a_status_is_a_protocol_violation() -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        block = peer.h2.encoder.encode([("content-type", "text/plain")])  # h2 insists on :status
        peer.send_header_block(stream.stream_id, block, end_stream=True)

    peer = H2Peer(handler)
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn:
            with pytest.raises(ProtocolViolation, match="without a :status"):
                await conn.get("/version", limit=100)


async def test_a_get_in_a_cancelled_scope_sends_nothing() -> None:
    peer = H2Peer(None)
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await conn.get("/version", limit=100)
            await peer.sync()
            assert peer.streams == {}
            assert conn.open_calls == 0


async def test_a_get_cancelled_while_waiting_resets_the_stream() -> None:
    peer = H2Peer(None)
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn:
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(conn.get, "/health", limit=100))
                await peer.wait_stream(1, ended=True)
                tg.cancel_scope.cancel()
            assert await peer.wait_reset(1) == ErrorCode.CANCEL
            assert conn.open_calls == 0
            assert conn.usable


async def test_a_get_runs_beside_grpc_calls_on_one_connection() -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        if stream.path == "/version":
            peer.send_headers(stream.stream_id, TEXT)
            peer.send_data(stream.stream_id, b"\x00\x00\x00\x00\x09not grpc!", end_stream=True)
        else:
            peer.reply(stream.stream_id, *stream.messages)

    with anyio.fail_after(TIMEOUT):
        async with connected(H2Peer(handler)) as conn:
            assert await conn.unary("/etcdserverpb.KV/Range", b"a") == b"a"
            response = await conn.get("/version", limit=100)
            assert response.body == b"\x00\x00\x00\x00\x09not grpc!"
            assert await conn.unary("/etcdserverpb.KV/Range", b"b") == b"b"


async def test_get_when_the_connection_drops() -> None:
    peer = H2Peer(None)
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            outcome = start(tg, lambda: conn.get("/version", limit=100))  # type: ignore[arg-type,return-value]
            await peer.wait_stream(1, ended=True)
            peer.drop()
            await outcome.wait()
            assert isinstance(outcome.error, ConnectionLostError)


# -------------------------------------------------------------------- _http.get_h2


async def _get_h2(peer: H2Peer, path: str = "/version") -> Any:
    """``get_h2`` on a connection to ``peer``: its response, or what it raised."""
    failure: Exception | None = None
    async with anyio.create_task_group() as tg:
        transport = peer.connect()
        tg.start_soon(peer.serve)
        try:
            response = await get_h2(transport, "peer:2379", path)
        except Exception as exc:
            failure = exc
        finally:
            await transport.aclose()
    if failure is not None:
        raise failure
    return response


async def test_get_h2_answers_and_closes_the_connection() -> None:
    peer = responder(("headers", TEXT), ("data", b'{"etcdserver":"3.5.1"}'))
    with anyio.fail_after(TIMEOUT):
        response = await _get_h2(peer)
    assert (response.status, response.body) == (200, b'{"etcdserver":"3.5.1"}')
    assert peer.transport_closed
    assert peer.events_of(h2.events.ConnectionTerminated)  # GOAWAY: a clean goodbye


@pytest.mark.parametrize(
    ("script", "error", "match"),
    [
        ("reset", ProtocolViolationError, "reset the HTTP/2 stream"),
        ("close", ProtocolViolationError, "closed before the response ended"),
        ("refuse", OSError, "refused"),
        ("garbage", ProtocolViolationError, "HTTP/2"),
    ],
)
async def test_get_h2_failures(script: str, error: type[BaseException], match: str) -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        if script == "reset":
            peer.reset_stream(stream.stream_id, ErrorCode.PROTOCOL_ERROR)
        elif script == "close":
            peer.send_headers(stream.stream_id, TEXT)
            peer.drop()
        elif script == "refuse":
            peer.goaway(last_stream_id=0)
        else:
            peer.send_raw(frame_bytes(0x1, 0x4, 2, b"\x88"))  # HEADERS on a server stream

    with anyio.fail_after(TIMEOUT), pytest.raises(error, match=match):
        await _get_h2(H2Peer(handler))


async def test_get_h2_of_a_server_that_is_not_http2() -> None:
    """A server answering in HTTP/1.1 fails the GET as a protocol violation, not a hang."""
    async with anyio.create_task_group() as tg:
        client, server = _pipe()

        async def http1() -> None:
            await server.receive()
            await server.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await server.aclose()

        tg.start_soon(http1)
        with anyio.fail_after(TIMEOUT), pytest.raises(ProtocolViolationError, match="HTTP/2"):
            await get_h2(client, "peer:2379", "/version")


def _pipe() -> tuple[Any, Any]:
    from anyio.streams.stapled import StapledObjectStream

    a_send, a_recv = anyio.create_memory_object_stream[bytes](math.inf)
    b_send, b_recv = anyio.create_memory_object_stream[bytes](math.inf)
    return StapledObjectStream(a_send, b_recv), StapledObjectStream(b_send, a_recv)

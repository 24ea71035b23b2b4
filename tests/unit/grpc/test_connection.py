"""
The I/O driver (:class:`Connection`) and :class:`Channel` against the in-memory h2 peer.

Every test runs on asyncio (debug) and trio, is bounded by ``fail_after``, and
waits for state with events (``peer.wait_until``, ``peer.sync``), never sleeps.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import h2.events
import pytest
from anyio.streams.stapled import StapledObjectStream
from h2.settings import SettingCodes
from hyperframe.frame import PingFrame

from etcdanyio._grpc import (
    Channel,
    ConnectionLostError,
    Endpoint,
    GrpcError,
    MessageTooLargeError,
    ProtocolViolation,
    Status,
    StreamRefusedError,
    UnreachableError,
)
from etcdanyio._grpc._connection import Connection
from etcdanyio._grpc._h2frames import BDP_PING_PAYLOAD, ErrorCode
from etcdanyio._grpc._headers import decode_timeout, encode_metadata
from tests.h2peer import GRPC_HEADERS, H2Peer, PeerStream, answer, frame_bytes, grpc_frame
from tests.unit.grpc.outcome import start

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from anyio.abc import AnyByteStream, TaskGroup

pytestmark = pytest.mark.unit

TIMEOUT = 5
OK_TRAILERS = [("grpc-status", "0"), ("grpc-message", "")]


@contextlib.asynccontextmanager
async def connected(
    peer: H2Peer | None = None, *, buffer: float = math.inf, **options: Any
) -> AsyncIterator[Connection]:
    """A Connection to ``peer`` (an echo server by default); closed on exit, tasks joined."""
    peer = peer if peer is not None else H2Peer()
    async with anyio.create_task_group() as tg:
        transport = peer.connect(buffer=buffer)
        tg.start_soon(peer.serve)
        conn = Connection(transport, authority="peer:2379", **options)
        await tg.start(conn.run)
        try:
            yield conn
        finally:
            await conn.aclose()
    assert peer.transport_closed


# ----------------------------------------------------------------- unary


async def test_unary_echo_and_request_headers() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer()
        async with connected(peer) as conn:
            metadata = encode_metadata([("token", "secret")])
            assert await conn.unary("/etcdserverpb.KV/Range", b"hi", metadata=metadata) == b"hi"
            assert conn.open_calls == 0
            assert conn.usable
        stream = peer.streams[1]
        assert stream.path == "/etcdserverpb.KV/Range"
        assert stream.header(":authority") == "peer:2379"
        assert stream.header("content-type") == "application/grpc"
        assert stream.header("te") == "trailers"
        assert stream.header("token") == "secret"
        assert stream.header("grpc-timeout") is None
        assert peer.errors == []


async def test_64_concurrent_unary_calls() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer()
        async with connected(peer) as conn:
            results: dict[int, bytes] = {}

            async def call(i: int) -> None:
                results[i] = await conn.unary("/test.Svc/Echo", b"m%d" % i * (i + 1))

            async with anyio.create_task_group() as tg:
                for i in range(64):
                    tg.start_soon(call, i)
            assert results == {i: b"m%d" % i * (i + 1) for i in range(64)}
            assert conn.open_calls == 0
        assert sorted(peer.streams) == list(range(1, 128, 2))
        assert peer.errors == []


async def test_calls_wait_for_a_stream_slot() -> None:
    """The server allows 4 concurrent streams: 32 calls share them, none is refused."""
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(settings={SettingCodes.MAX_CONCURRENT_STREAMS: 4})
        async with connected(peer) as conn:
            results: dict[int, bytes] = {}

            async def call(i: int) -> None:
                results[i] = await conn.unary("/test.Svc/Echo", b"%d" % i)

            async with anyio.create_task_group() as tg:
                for i in range(32):
                    tg.start_soon(call, i)
            assert len(results) == 32
        assert len(peer.streams) == 32
        assert peer.errors == []
        assert not peer.client_resets()


async def test_request_over_the_send_limit() -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected(max_send_message=10) as conn:
            with pytest.raises(MessageTooLargeError) as info:
                await conn.unary("/p", b"x" * 11)
            assert info.value.applied is False
            assert await conn.unary("/p", b"x" * 10) == b"x" * 10


# ---------------------------------------------------------- status mapping


ERRORS = [
    pytest.param(5, "etcdserver: key not found", "etcdserver: key not found", id="not-found"),
    pytest.param(
        8, "etcdserver: too many requests", "etcdserver: too many requests", id="too-many"
    ),
    pytest.param(14, "etcdserver: leader changed", "etcdserver: leader changed", id="leader"),
    pytest.param(
        14,
        "etcdserver: request timed out, possibly due to previous leader failure",
        "etcdserver: request timed out, possibly due to previous leader failure",
        id="timed-out",
    ),
    pytest.param(15, "etcdserver: corrupt cluster", "etcdserver: corrupt cluster", id="data-loss"),
    pytest.param(
        3, "bad%20key%3A%20100%25%0Acaf%C3%A9", "bad key: 100%\ncaf\u00e9", id="percent-encoded"
    ),
    pytest.param(9, "100% sure", "100% sure", id="stray-percent"),
    pytest.param(2, None, "", id="absent-message"),
    pytest.param(2, "", "", id="empty-message"),
    pytest.param(99, "what", "what", id="unknown-code"),
]


@pytest.mark.parametrize("trailers_only", [True, False], ids=["trailers-only", "full"])
@pytest.mark.parametrize(("code", "sent", "expected"), ERRORS)
async def test_error_status(
    trailers_only: bool, code: int, sent: str | None, expected: str
) -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        if trailers_only:
            peer.trailers_only(stream.stream_id, code, sent)
        else:
            peer.send_headers(stream.stream_id)
            peer.send_trailers(stream.stream_id, code, sent)

    with anyio.fail_after(TIMEOUT):
        async with connected(H2Peer(handler)) as conn:
            with pytest.raises(GrpcError) as info:
                await conn.unary("/p", b"")
            assert info.value.status == Status.from_code(code)
            assert info.value.message == expected
            assert conn.usable
            assert conn.open_calls == 0


@pytest.mark.parametrize("message", [None, ""], ids=["absent", "empty"])
async def test_ok_with_absent_or_empty_grpc_message(message: str | None) -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        peer.send_headers(stream.stream_id)
        peer.send_messages(stream.stream_id, b"fine")
        peer.send_trailers(stream.stream_id, 0, message)

    with anyio.fail_after(TIMEOUT):
        async with connected(H2Peer(handler)) as conn:
            assert await conn.unary("/p", b"") == b"fine"


def no_status(peer: H2Peer, stream: PeerStream) -> None:
    peer.send_headers(stream.stream_id)
    peer.send_messages(stream.stream_id, b"x")
    peer.send_trailers(stream.stream_id, None, None, extra=[("x-other", "1")])


def no_status_trailers_only(peer: H2Peer, stream: PeerStream) -> None:
    peer.send_headers(stream.stream_id, GRPC_HEADERS, end_stream=True)


def data_end_stream(peer: H2Peer, stream: PeerStream) -> None:
    peer.send_headers(stream.stream_id)
    peer.send_data(stream.stream_id, grpc_frame(b"x"), end_stream=True)


def http_503(peer: H2Peer, stream: PeerStream) -> None:
    peer.send_headers(stream.stream_id, [(":status", "503")], end_stream=True)


def http_404_headers(peer: H2Peer, stream: PeerStream) -> None:
    peer.send_headers(stream.stream_id, [(":status", "404")])
    peer.end_stream(stream.stream_id)


def not_grpc(peer: H2Peer, stream: PeerStream) -> None:
    peer.send_headers(stream.stream_id, [(":status", "200"), ("content-type", "text/html")])
    peer.send_data(stream.stream_id, b"<html>", end_stream=True)


def two_messages(peer: H2Peer, stream: PeerStream) -> None:
    peer.reply(stream.stream_id, b"a", b"b")


def no_message(peer: H2Peer, stream: PeerStream) -> None:
    peer.reply(stream.stream_id)


@pytest.mark.parametrize(
    ("handler", "status"),
    [
        pytest.param(no_status, Status.UNKNOWN, id="missing-grpc-status"),
        pytest.param(no_status_trailers_only, Status.UNKNOWN, id="missing-status-trailers-only"),
        pytest.param(data_end_stream, Status.UNKNOWN, id="no-trailers"),
        pytest.param(http_503, Status.UNAVAILABLE, id="http-503"),
        pytest.param(http_404_headers, Status.UNIMPLEMENTED, id="http-404"),
        pytest.param(not_grpc, Status.UNKNOWN, id="not-grpc-content-type"),
        pytest.param(two_messages, Status.INTERNAL, id="unary-two-messages"),
        pytest.param(no_message, Status.UNIMPLEMENTED, id="unary-no-message"),
    ],
)
async def test_malformed_responses(
    handler: Callable[[H2Peer, PeerStream], None], status: Status
) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connected(H2Peer(handler)) as conn:
            with pytest.raises(GrpcError) as info:
                await conn.unary("/p", b"")
            assert info.value.status == status
            assert conn.usable
            assert conn.open_calls == 0


# ----------------------------------------------------------- resets, goaway


@pytest.mark.parametrize(
    ("code", "error", "status"),
    [
        pytest.param(ErrorCode.CANCEL, GrpcError, Status.CANCELLED, id="cancel"),
        pytest.param(ErrorCode.REFUSED_STREAM, StreamRefusedError, None, id="refused"),
        pytest.param(ErrorCode.ENHANCE_YOUR_CALM, GrpcError, Status.RESOURCE_EXHAUSTED, id="calm"),
        pytest.param(ErrorCode.INTERNAL_ERROR, GrpcError, Status.INTERNAL, id="internal"),
        pytest.param(ErrorCode.NO_ERROR, GrpcError, Status.INTERNAL, id="no-error"),
    ],
)
async def test_rst_stream_from_the_peer(
    code: ErrorCode, error: type[Exception], status: Status | None
) -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        peer.send_headers(stream.stream_id)
        peer.reset_stream(stream.stream_id, code)

    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler)
        async with connected(peer) as conn:
            with pytest.raises(error) as info:
                await conn.unary("/p", b"")
            if isinstance(info.value, GrpcError):
                assert info.value.status == status
            else:
                assert isinstance(info.value, StreamRefusedError)
                assert info.value.applied is False
            assert conn.usable
            assert conn.open_calls == 0
            peer.handler = answer(b"next")
            assert await conn.unary("/p", b"") == b"next"


async def test_goaway_refuses_streams_above_last_stream_id() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            outcomes = {
                i: start(tg, functools.partial(conn.unary, "/p", b"%d" % i)) for i in range(3)
            }
            await peer.wait_until(lambda: len([s for s in peer.streams.values() if s.ended]) == 3)
            by_stream = {sid: outcomes[int(s.messages[0])] for sid, s in peer.streams.items()}
            peer.goaway(last_stream_id=3)
            refused = await by_stream[5].wait()
            assert isinstance(refused.error, StreamRefusedError)
            assert refused.error.applied is False
            assert not conn.usable
            with pytest.raises(StreamRefusedError) as info:
                await conn.unary("/p", b"late")
            assert info.value.applied is False
            # Streams 1 and 3 complete normally.
            for sid in (3, 1):
                peer.reply(sid, b"answer %d" % sid)
                assert (await by_stream[sid].wait()).value == b"answer %d" % sid
            # Drained: the connection closes itself.
            await conn.wait_closed()
            await peer.wait_until(lambda: peer.closed)
        assert conn.open_calls == 0
        assert 5 not in peer.client_resets()  # a refused stream needs no RST_STREAM


async def test_goaway_with_no_calls_makes_the_connection_unusable() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer()
        async with connected(peer) as conn:
            assert await conn.unary("/p", b"x") == b"x"
            peer.goaway(error_code=0)
            await conn.wait_closed()
            assert not conn.usable
            assert isinstance(conn.error, StreamRefusedError)
            with pytest.raises(ConnectionLostError) as info:
                await conn.unary("/p", b"x")
            assert info.value.applied is False


# ------------------------------------------------------------ flow control


async def test_withheld_window_update() -> None:
    """A 1 MiB request stops at the peer's 64 KiB window and completes once it opens."""
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(answer(b"got it"), auto_window=False)
        payload = bytes(range(256)) * 4096
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            outcome = start(tg, lambda: conn.unary("/p", payload))
            await peer.wait_until(lambda: 1 in peer.streams and len(peer.streams[1].data) > 0)
            await peer.sync()
            await peer.sync()  # the client had every chance to send more: it must not
            assert len(peer.streams[1].data) == 65_535
            assert not outcome.done.is_set()
            peer.release_window()
            assert (await outcome.wait()).value == b"got it"
            assert peer.streams[1].messages == [payload]


async def test_response_larger_than_the_windows() -> None:
    """A 3 MiB response over a 64 KiB stream window: acknowledged as it is consumed."""
    big = b"r" * (3 << 20)
    with anyio.fail_after(TIMEOUT):
        async with connected(H2Peer(answer(big)), initial_window=65_535) as conn:
            assert await conn.unary("/p", b"") == big


async def test_response_over_max_receive_message() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(answer(b"x" * 1000))
        async with connected(peer, max_receive_message=100) as conn:
            with pytest.raises(GrpcError) as info:
                await conn.unary("/p", b"")
            assert info.value.status == Status.RESOURCE_EXHAUSTED
            assert await peer.wait_reset(1) == ErrorCode.CANCEL
            assert conn.usable
            assert conn.open_calls == 0
            peer.handler = answer(b"x" * 100)
            assert await conn.unary("/p", b"") == b"x" * 100


# --------------------------------------------------------- lost connection


async def test_unanswered_ping_fails_the_connection() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with (
            connected(peer, keepalive_interval=0.2, keepalive_timeout=0.2) as conn,
            anyio.create_task_group() as tg,
        ):
            outcome = start(tg, lambda: conn.unary("/p", b""))
            await peer.wait_stream(1, ended=True)
            peer.blackhole = True
            error = (await outcome.wait()).error
            assert isinstance(error, ConnectionLostError)
            assert error.applied is None
            assert "keepalive" in str(error)
            assert not conn.usable
            assert conn.open_calls == 0
            assert [f for f in peer.frames_of(PingFrame) if "ACK" not in f.flags]


async def test_no_ping_without_calls() -> None:
    """An idle connection is not pinged (grpc-go answers that with too_many_pings)."""

    def pings(peer: H2Peer) -> int:
        return len([f for f in peer.frames_of(PingFrame) if "ACK" not in f.flags])

    with anyio.fail_after(TIMEOUT):
        peer = H2Peer()
        async with connected(peer, keepalive_interval=0.01, keepalive_timeout=0.2) as conn:
            assert await conn.unary("/p", b"a") == b"a"
            await peer.sync()
            before = pings(peer)
            await anyio.sleep(0.1)  # ten keepalive intervals with no call open, on purpose
            await peer.sync()
            assert pings(peer) == before
            assert conn.usable


async def test_connection_lost_mid_call() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            outcome = start(tg, lambda: conn.unary("/p", b"write"))
            await peer.wait_stream(1, ended=True)
            peer.send_headers(1)
            peer.drop()
            error = (await outcome.wait()).error
            assert isinstance(error, ConnectionLostError)
            assert error.applied is None
            assert not conn.usable
            assert conn.open_calls == 0
            with pytest.raises(ConnectionLostError) as info:
                await conn.unary("/p", b"")
            assert info.value.applied is False


async def test_client_close_fails_open_calls_and_sends_goaway() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            outcome = start(tg, lambda: conn.unary("/p", b""))
            await peer.wait_stream(1, ended=True)
            await conn.aclose()
            error = (await outcome.wait()).error
            assert isinstance(error, ConnectionLostError)
            assert error.applied is None
            await peer.wait_until(lambda: peer.closed)
        assert peer.events_of(h2.events.ConnectionTerminated)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param(None, ConnectionLostError, id="hangs-up"),
        pytest.param(b"HTTP/1.1 400 Bad Request\r\n\r\n", ProtocolViolation, id="http1"),
    ],
)
async def test_dial_fails_when_the_server_does_not_speak_http2(
    reply: bytes | None, error: type[Exception]
) -> None:
    """run() reports started only after the server's SETTINGS: a dud fails the dial."""
    with anyio.fail_after(TIMEOUT):
        c2s_send, c2s_recv = anyio.create_memory_object_stream[bytes](math.inf)
        s2c_send, s2c_recv = anyio.create_memory_object_stream[bytes](math.inf)
        with c2s_recv, s2c_send:
            if reply is not None:
                s2c_send.send_nowait(reply)
            s2c_send.close()
            conn = Connection(StapledObjectStream(c2s_send, s2c_recv), authority="peer:2379")
            async with anyio.create_task_group() as tg:
                with pytest.raises(error):
                    await tg.start(conn.run)
            assert not conn.usable
            assert c2s_recv.statistics().open_send_streams == 0  # the transport was closed


async def test_malformed_frame_fails_the_connection() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            outcome = start(tg, lambda: conn.unary("/p", b""))
            await peer.wait_stream(1, ended=True)
            peer.send_raw(frame_bytes(0x6, 0, 0, b"1234567"))  # a PING of 7 bytes
            error = (await outcome.wait()).error
            assert isinstance(error, ProtocolViolation)
            assert error.applied is None
            assert not conn.usable
            assert isinstance(conn.error, ProtocolViolation)
            await peer.wait_until(lambda: peer.closed)
        (terminated,) = peer.events_of(h2.events.ConnectionTerminated)
        assert terminated.error_code == ErrorCode.FRAME_SIZE_ERROR


@pytest.mark.parametrize(
    ("prefix", "error", "status"),
    [
        pytest.param(b"\x01\x00\x00\x00\x01", ProtocolViolation, None, id="compressed"),
        pytest.param(b"\x00\xff\xff\xff\xff", GrpcError, Status.RESOURCE_EXHAUSTED, id="over-2gib"),
        pytest.param(b"\x00\x00\x00\x01\x00", GrpcError, Status.RESOURCE_EXHAUSTED, id="limit"),
    ],
)
async def test_bad_length_prefix(
    prefix: bytes, error: type[Exception], status: Status | None
) -> None:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        peer.send_headers(stream.stream_id)
        peer.send_data(stream.stream_id, prefix + b"x")

    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler)
        async with connected(peer, max_receive_message=255) as conn:
            with pytest.raises(error) as info:
                await conn.unary("/p", b"")
            if status is not None:
                assert isinstance(info.value, GrpcError)
                assert info.value.status == status
            else:
                assert isinstance(info.value, ProtocolViolation)
                assert info.value.applied is None
            assert await peer.wait_reset(1) == ErrorCode.CANCEL
            assert conn.usable
            peer.handler = answer(b"fine")
            assert await conn.unary("/p", b"") == b"fine"


# ------------------------------------------------------------ cancellation


STAGES = ["before-headers", "after-headers", "mid-message", "before-trailers"]


def advance(peer: H2Peer, stream_id: int, stage: str) -> None:
    """Bring the response on ``stream_id`` to ``stage`` (and leave it there forever)."""
    if stage == "before-headers":
        return
    peer.send_headers(stream_id)
    if stage == "mid-message":
        peer.send_data(stream_id, grpc_frame(b"m" * 100)[:50])
    elif stage == "before-trailers":
        peer.send_messages(stream_id, b"whole")


@pytest.mark.parametrize("stage", STAGES)
async def test_cancel_unary_at_each_stage(stage: str) -> None:
    baseline = len(anyio.get_running_tasks())
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def call() -> None:
                with scope:
                    await conn.unary("/p", b"req")
                    pytest.fail("the call cannot complete")

            tg.start_soon(call)
            await peer.wait_stream(1, ended=True)
            advance(peer, 1, stage)
            await peer.sync()  # the client has seen everything sent so far
            scope.cancel()
            assert await peer.wait_reset(1) == ErrorCode.CANCEL
            await peer.sync()
            assert conn.open_calls == 0
            assert conn.usable
            peer.handler = answer(b"still fine")
            assert await conn.unary("/p", b"") == b"still fine"
        assert peer.transport_closed
        assert peer.errors == []
    assert len(anyio.get_running_tasks()) == baseline


@pytest.mark.parametrize("stage", STAGES)
async def test_cancel_streaming_call_at_each_stage(stage: str) -> None:
    baseline = len(anyio.get_running_tasks())
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn:
            with anyio.CancelScope() as scope:
                async with await conn.open_call("/p/Stream") as call:
                    await call.send_message(b"req", end=True)
                    await peer.wait_stream(call.stream_id, ended=True)
                    advance(peer, call.stream_id, stage)
                    await peer.sync()
                    if stage == "before-trailers":
                        assert await call.recv_message() == b"whole"
                    scope.cancel()
                    await call.recv_message()
            assert scope.cancelled_caught
            assert await peer.wait_reset(1) == ErrorCode.CANCEL
            assert conn.open_calls == 0
            assert conn.usable
    assert len(anyio.get_running_tasks()) == baseline


async def test_cancel_from_outside_the_task_group() -> None:
    """The whole task group running calls is cancelled: every stream is reset."""
    baseline = len(anyio.get_running_tasks())
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn:
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(conn.unary, "/p", b"%d" % i)
                await peer.wait_until(
                    lambda: len([s for s in peer.streams.values() if s.ended]) == 5
                )
                for sid in (1, 5, 9):
                    advance(peer, sid, "mid-message")
                await peer.sync()
                tg.cancel_scope.cancel()
            await peer.wait_until(lambda: len(peer.client_resets()) == 5)
            assert set(peer.client_resets().values()) == {ErrorCode.CANCEL}
            assert conn.open_calls == 0
    assert len(anyio.get_running_tasks()) == baseline


async def test_deadline_cancels_and_resets() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None)
        async with connected(peer) as conn:
            with anyio.move_on_after(0.05) as scope:
                await conn.unary("/p", b"", grpc_timeout=0.05)
            assert scope.cancelled_caught
            assert await peer.wait_reset(1) == ErrorCode.CANCEL
            timeout = peer.streams[1].header("grpc-timeout")
            assert timeout is not None
            assert decode_timeout(timeout) == pytest.approx(0.05)


async def test_cancel_while_waiting_for_a_stream_slot() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(handler=None, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            first = start(tg, lambda: conn.unary("/p", b"1"))
            await peer.wait_stream(1, ended=True)
            with anyio.move_on_after(0.05) as scope:
                await conn.unary("/p", b"2")  # waits for the only slot
            assert scope.cancelled_caught
            assert conn.open_calls == 1
            peer.reply(1, b"one")
            assert (await first.wait()).value == b"one"
            peer.handler = answer(b"three")
            assert await conn.unary("/p", b"3") == b"three"
        assert sorted(peer.streams) == [1, 3]  # the cancelled call never opened a stream
        assert not peer.client_resets()


# -------------------------------------------------------------- streaming


def bidi_peer() -> H2Peer:
    """Headers at once, each message echoed upper-cased, trailers on half-close."""
    peer = H2Peer(lambda p, s: p.send_trailers(s.stream_id))
    peer.on_request = lambda p, s: p.send_headers(s.stream_id, [*GRPC_HEADERS, ("x-h", "1")])
    peer.on_message = lambda p, s, m: p.send_messages(s.stream_id, m.upper())
    return peer


async def test_bidirectional_stream() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = bidi_peer()
        async with connected(peer) as conn:
            async with await conn.open_call("/p/Bidi") as call:
                for message in [b"a", b"bb", b"", b"ccc"]:
                    await call.send_message(message)
                    assert await call.recv_message() == message.upper()
                assert call.initial_metadata == [*GRPC_HEADERS, ("x-h", "1")]
                await call.end()
                await call.end()
                assert await call.recv_message() is None
                assert await call.recv_message() is None
                assert call.finished
                assert call.trailing_metadata == OK_TRAILERS
                with pytest.raises(RuntimeError, match="already closed"):
                    await call.send_message(b"late")
            assert conn.open_calls == 0
        assert peer.streams[1].messages == [b"a", b"bb", b"", b"ccc"]
        assert peer.streams[1].ended
        assert not peer.client_resets()


async def test_server_half_closes_first() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = bidi_peer()
        peer.on_message = None
        async with connected(peer) as conn:
            async with await conn.open_call("/p/Watch") as call:
                await call.send_message(b"create")
                stream = await peer.wait_stream(call.stream_id)
                await peer.wait_until(lambda: stream.messages)
                peer.send_messages(call.stream_id, b"event 1", b"event 2")
                peer.send_trailers(call.stream_id, 1, "watch canceled")
                assert await call.recv_message() == b"event 1"
                assert await call.recv_message() == b"event 2"
                with pytest.raises(GrpcError) as info:
                    await call.recv_message()
                assert info.value.status == Status.CANCELLED
                assert info.value.message == "watch canceled"
                with pytest.raises(GrpcError):
                    await call.send_message(b"more")  # the call is over
            assert conn.open_calls == 0
            # Our side was still open: leaving the block resets it.
            assert await peer.wait_reset(call.stream_id) == ErrorCode.CANCEL


async def test_server_streaming_with_slow_consumer() -> None:
    """30 messages of 100 KiB through a 64 KiB window, consumed one by one."""
    chunk = b"s" * (100 << 10)

    def handler(peer: H2Peer, stream: PeerStream) -> None:
        peer.send_headers(stream.stream_id)
        for _ in range(30):
            peer.send_messages(stream.stream_id, chunk)
        peer.send_trailers(stream.stream_id)

    with anyio.fail_after(TIMEOUT):
        async with (
            connected(H2Peer(handler), initial_window=65_535) as conn,
            await conn.open_call("/p/Range") as call,
        ):
            await call.send_message(b"", end=True)
            received = 0
            while (message := await call.recv_message()) is not None:
                assert message == chunk
                received += 1
            assert received == 30


async def test_streaming_send_waits_for_the_window() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(None, auto_window=False)
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            call = await conn.open_call("/p/Put")
            sent = anyio.Event()

            async def send() -> None:
                await call.send_message(b"w" * 200_000, end=True)
                sent.set()

            tg.start_soon(send)
            await peer.wait_until(lambda: 1 in peer.streams and len(peer.streams[1].data) == 65_535)
            await peer.sync()
            assert not sent.is_set()
            peer.release_window()
            await sent.wait()
            await peer.wait_stream(1, ended=True)
            peer.reply(1, b"done")
            assert await call.recv_message() == b"done"
            assert await call.recv_message() is None
            await call.aclose()


# --------------------------------------------------------------- channel


class Dialer:
    """``Channel(connect=...)``: every dial starts a new peer from ``make_peer``."""

    def __init__(self, tg: TaskGroup, make_peer: Callable[[int], H2Peer]) -> None:
        self.tg = tg
        self.make_peer = make_peer
        self.peers: list[H2Peer] = []

    async def __call__(self, endpoint: Endpoint) -> AnyByteStream:
        assert endpoint == Endpoint("peer", 2379)
        peer = self.make_peer(len(self.peers))
        self.peers.append(peer)
        transport = peer.connect()
        self.tg.start_soon(peer.serve)
        return transport


@contextlib.asynccontextmanager
async def channel_to(make_peer: Callable[[int], H2Peer]) -> AsyncIterator[tuple[Channel, Dialer]]:
    async with anyio.create_task_group() as tg:
        dialer = Dialer(tg, make_peer)
        channel = Channel([Endpoint.parse("peer:2379")], tg, connect=dialer)
        try:
            yield channel, dialer
        finally:
            await channel.aclose()


async def test_channel_reconnects_after_the_connection_broke() -> None:
    with anyio.fail_after(TIMEOUT):
        async with channel_to(lambda n: H2Peer(answer(b"pong %d" % n))) as (channel, dialer):
            assert await channel.unary("/p", b"ping") == b"pong 0"
            first = channel.connection
            assert first is not None
            dialer.peers[0].drop()
            await first.wait_closed()
            assert not first.usable
            assert await channel.unary("/p", b"ping") == b"pong 1"
            assert channel.connection is not first
            assert len(dialer.peers) == 2
        assert all(p.transport_closed for p in dialer.peers)


async def test_channel_unreachable() -> None:
    async def refuse(endpoint: Endpoint) -> AnyByteStream:
        raise ConnectionRefusedError(f"nobody at {endpoint}")

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            channel = Channel([Endpoint.parse("peer:2379")], tg, connect=refuse)
            with pytest.raises(UnreachableError) as info:
                await channel.unary("/p", b"", repeatable=True)
            assert info.value.applied is False
            assert isinstance(info.value.causes[0], ConnectionRefusedError)
            assert "peer:2379" in str(info.value)
            await channel.aclose()


def refuse_first(peer: H2Peer, stream: PeerStream) -> None:
    if stream.stream_id == 1:
        peer.reset_stream(1, ErrorCode.REFUSED_STREAM)
    else:
        peer.reply(stream.stream_id, b"second try")


@pytest.mark.parametrize("repeatable", [False, True])
async def test_channel_retries_a_refused_stream(repeatable: bool) -> None:
    """REFUSED_STREAM means not processed: retried even when not repeatable."""
    with anyio.fail_after(TIMEOUT):
        async with channel_to(lambda n: H2Peer(refuse_first)) as (channel, dialer):
            assert await channel.unary("/p", b"w", repeatable=repeatable) == b"second try"
            assert len(dialer.peers) == 1
            assert sorted(dialer.peers[0].streams) == [1, 3]


def goaway_first(n: int) -> H2Peer:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        if n == 0:
            peer.goaway(last_stream_id=0)
        else:
            peer.reply(stream.stream_id, b"from peer %d" % n)

    return H2Peer(handler)


@pytest.mark.parametrize("repeatable", [False, True])
async def test_channel_retries_after_goaway(repeatable: bool) -> None:
    with anyio.fail_after(TIMEOUT):
        async with channel_to(goaway_first) as (channel, dialer):
            assert await channel.unary("/p", b"w", repeatable=repeatable) == b"from peer 1"
            assert len(dialer.peers) == 2
            await dialer.peers[0].wait_until(lambda: dialer.peers[0].closed)


def drop_first(n: int) -> H2Peer:
    def handler(peer: H2Peer, stream: PeerStream) -> None:
        if n == 0:
            peer.drop()
        else:
            peer.reply(stream.stream_id, b"from peer %d" % n)

    return H2Peer(handler)


async def test_channel_does_not_retry_a_sent_write() -> None:
    """The connection dropped after the request went out: the outcome is unknown."""
    with anyio.fail_after(TIMEOUT):
        async with channel_to(drop_first) as (channel, dialer):
            with pytest.raises(ConnectionLostError) as info:
                await channel.unary("/p", b"put", repeatable=False)
            assert info.value.applied is None
            assert len(dialer.peers) == 1
            assert dialer.peers[0].streams[1].ended  # it did reach the server
            # The next call dials again.
            assert await channel.unary("/p", b"put") == b"from peer 1"


async def test_channel_retries_a_repeatable_call_after_a_drop() -> None:
    with anyio.fail_after(TIMEOUT):
        async with channel_to(drop_first) as (channel, dialer):
            assert await channel.unary("/p", b"get", repeatable=True) == b"from peer 1"
            assert len(dialer.peers) == 2


async def test_grpc_timeout_from_the_callers_deadline() -> None:
    with anyio.fail_after(2 * TIMEOUT):
        async with channel_to(lambda n: H2Peer()) as (channel, dialer):
            with anyio.fail_after(5):
                await channel.unary("/p", b"")
            text = dialer.peers[0].streams[1].header("grpc-timeout")
            assert text is not None
            assert len(text[:-1]) <= 8
            assert 4.0 < decode_timeout(text) <= 5.0


async def test_grpc_timeout_passed_explicitly() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer()
        async with connected(peer) as conn:
            await conn.unary("/p", b"", grpc_timeout=2.5)
            await conn.unary("/p", b"", grpc_timeout=math.inf)
        assert peer.streams[1].header("grpc-timeout") == "2500000u"
        assert peer.streams[3].header("grpc-timeout") is None


# ------------------------------------------------- regressions (bugs found here, fixed)


async def test_early_response_to_a_blocked_request_closes_the_stream() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer(None, auto_window=False, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        async with connected(peer) as conn, anyio.create_task_group() as tg:
            outcome = start(tg, lambda: conn.unary("/p", b"x" * 200_000))
            await peer.wait_until(lambda: 1 in peer.streams and len(peer.streams[1].data) > 0)
            peer.trailers_only(1, Status.RESOURCE_EXHAUSTED, "request too large")
            error = (await outcome.wait()).error
            assert isinstance(error, GrpcError)
            assert error.status == Status.RESOURCE_EXHAUSTED
            await peer.sync()
            stream = peer.streams[1]
            assert stream.ended or stream.reset_code is not None


async def test_exhausted_stream_ids_retire_the_connection() -> None:
    with anyio.fail_after(TIMEOUT):
        peer = H2Peer()
        async with connected(peer) as conn:
            conn._proto._next_stream_id = 2**31 - 1  # skip a billion calls
            assert await conn.unary("/p", b"last") == b"last"
            assert 2**31 - 1 in peer.streams
            assert not conn.usable  # so that the channel dials a new connection


async def test_keepalive_fails_a_connection_whose_writes_are_stuck() -> None:
    peer = H2Peer(handler=None)
    with anyio.fail_after(1):
        async with (
            connected(peer, buffer=0, keepalive_interval=0.1, keepalive_timeout=0.1) as conn,
            anyio.create_task_group() as tg,
        ):
            try:
                first = start(tg, lambda: conn.unary("/p", b"1"))
                await peer.wait_stream(1, ended=True)
                peer.pause_reading()
                # The peer's pending read swallows this request; the next write (PING) blocks.
                second = start(tg, lambda: conn.unary("/p", b"2"))
                error = (await first.wait()).error
                assert isinstance(error, ConnectionLostError)
                assert "keepalive" in str(error)
                assert isinstance((await second.wait()).error, ConnectionLostError)
            finally:
                peer.resume_reading()


async def test_ping_ack_rides_with_the_next_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """grpc-go pings after every response; its ack costs no write of its own."""
    from etcdanyio._grpc import _connection

    monkeypatch.setattr(_connection, "ACK_DELAY", 60.0)  # only a request can carry it now
    peer = H2Peer()
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn:
            await conn.unary("/p", b"warm-up")
            peer.ping(b"12345678")
            while not conn._proto.has_acks:  # poll, bounded: the reader takes the PING
                await anyio.lowlevel.checkpoint()
            await conn.unary("/p", b"second")
            acks = [e for e in peer.events if isinstance(e, h2.events.PingAckReceived)]
            assert b"12345678" in [a.ping_data for a in acks]


async def test_bdp_ping_ack_is_held_back_then_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    grpc-go's BDP ping is acked only after BDP_ACK_HOLD, even though requests go out.

    While the ack is held the server sends no new BDP ping (nor its WINDOW_UPDATE),
    which saves a read per call whose answer is not immediate.
    """
    from etcdanyio._grpc import _connection

    monkeypatch.setattr(_connection, "BDP_ACK_HOLD", 0.3)
    peer = H2Peer()
    with anyio.fail_after(TIMEOUT):
        async with connected(peer) as conn:

            def bdp_acked() -> bool:
                return any(
                    isinstance(e, h2.events.PingAckReceived) and e.ping_data == BDP_PING_PAYLOAD
                    for e in peer.events
                )

            peer.ping(BDP_PING_PAYLOAD)
            while not conn._proto.has_held_acks:  # poll, bounded: the reader takes the PING
                await anyio.lowlevel.checkpoint()
            held_at = anyio.current_time()
            await conn.unary("/p", b"a request does not carry it")
            await peer.sync()  # a regular PING is still acked promptly
            assert not bdp_acked()
            assert anyio.current_time() - held_at < 0.3
            await peer.wait_until(bdp_acked)
            assert anyio.current_time() - held_at >= 0.3
            assert not conn._proto.has_held_acks


async def test_ping_ack_is_sent_without_any_request() -> None:
    """With nothing else to write, the ack still goes out, after a short delay."""
    peer = H2Peer()
    with anyio.fail_after(TIMEOUT):
        async with connected(peer):
            await peer.sync()  # returns only once the client acked the PING

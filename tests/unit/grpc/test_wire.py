"""
The immediate wires (:class:`AsyncioWire`, :class:`SocketWire`) over real loopback TCP.

The server is :class:`TcpPeer`: an :class:`~tests.h2peer.H2Peer` in sans-IO mode,
pumped to and from one accepted TCP connection on 127.0.0.1. The client side is
made as production makes it: ``connect_tcp()``, then ``Connection(...)``, whose
``wire_for()`` picks :class:`AsyncioWire` on asyncio and :class:`SocketWire` on trio.

Every test runs on asyncio (debug) and trio, is bounded by ``fail_after``, and
waits for state with events (``peer.wait_until``), never sleeps.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import ssl
import struct
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import anyio.lowlevel
import h2.events
import pytest
import trustme
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSStream
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, PingFrame

from etcdanyio._grpc import ConnectionLostError, ProtocolViolation
from etcdanyio._grpc._connection import Connection
from etcdanyio._grpc._h2frames import ErrorCode
from etcdanyio._grpc._wire import AsyncioWire, SocketWire, StreamWire, Wire, connect_tcp
from tests.h2peer import H2Peer, PeerStream, echo, frame_bytes
from tests.unit.grpc.outcome import start

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from anyio.abc import AnyByteStream, TaskGroup

pytestmark = pytest.mark.unit

TIMEOUT = 5
HOST = "127.0.0.1"


class TcpPeer(H2Peer):
    """
    An :class:`H2Peer` (sans-IO mode) served over one accepted TCP connection.

    A reader task feeds the socket's bytes to h2 (holding them while
    :attr:`paused`); a writer task sends whatever the peer wrote, as soon as it
    wrote it (so the server's SETTINGS go out right on accept).
    """

    def __init__(
        self,
        handler: Callable[[H2Peer, PeerStream], None] | None = echo,
        *,
        settings: dict[int, int] | None = None,
    ) -> None:
        self._output: anyio.Event | None = None
        super().__init__(handler, settings=settings)
        #: set once the first bytes (the server preface) went into the socket
        self.first_write = anyio.Event()
        #: set once the server's side of the connection is closed
        self.disconnected = anyio.Event()
        #: how the client hung up, as the server's reads saw it: "eof" or "reset"
        self.hangup: str | None = None
        self.stream: anyio.abc.SocketStream | None = None
        self._scope: anyio.CancelScope | None = None

    def _write(self, data: bytes) -> None:
        super()._write(data)
        output = self._output
        if output is not None:
            self._output = None
            output.set()

    async def serve_tcp(
        self,
        listener: anyio.abc.SocketListener,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept one connection and pump it until either side closes; then idle."""
        task_status.started()
        stream = await listener.accept()
        self.stream = stream
        self.serving = True
        try:
            async with stream:
                with anyio.CancelScope() as self._scope:
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._writer, stream, tg)
                        await self._reader(stream)
                        tg.cancel_scope.cancel()
        finally:
            self.serving = False
            self.closed = True
            self.disconnected.set()
            self._notify()
        await anyio.sleep_forever()  # keep the task count steady for the tests

    async def _reader(self, stream: anyio.abc.SocketStream) -> None:
        while True:
            try:
                data = await stream.receive(65536)
            except anyio.EndOfStream:
                self.hangup = "eof"
                return
            except (anyio.BrokenResourceError, OSError):
                self.hangup = "reset"
                return
            await self.wait_until(lambda: not self.paused)
            self.receive_data(data)

    async def _writer(self, stream: anyio.abc.SocketStream, tg: TaskGroup) -> None:
        try:
            while True:
                data = self.data_to_send()
                if data:
                    await stream.send(data)
                    self.first_write.set()
                    continue
                if self.closed:  # dropped after an h2 error: hang up
                    break
                output = self._output = anyio.Event()
                await output.wait()
        except (anyio.BrokenResourceError, OSError):
            pass
        tg.cancel_scope.cancel()

    async def close(self) -> None:
        """Close the TCP connection in order (FIN)."""
        assert self.stream is not None
        assert self._scope is not None
        with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self.stream.send_eof()
        self._scope.cancel()
        await self.disconnected.wait()

    async def reset(self) -> None:
        """Close the TCP connection abortively (SO_LINGER 0: RST)."""
        assert self.stream is not None
        assert self._scope is not None
        sock = self.stream.extra(SocketAttribute.raw_socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._scope.cancel()
        await self.disconnected.wait()


@contextlib.asynccontextmanager
async def serving(peer: TcpPeer, *, rcvbuf: int | None = None) -> AsyncIterator[int]:
    """Serve ``peer`` on a fresh loopback port (yielded); ``rcvbuf``: SO_RCVBUF of the server."""
    multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    (listener,) = multi.listeners
    assert isinstance(listener, anyio.abc.SocketListener)
    async with listener, anyio.create_task_group() as tg:
        if rcvbuf is not None:  # accepted sockets inherit it (and lose autotuning)
            raw = listener.extra(SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await tg.start(peer.serve_tcp, listener)
        try:
            yield listener.extra(SocketAttribute.local_port)
        finally:
            tg.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def raw_server(
    handler: Callable[[anyio.abc.SocketStream], Awaitable[None]],
) -> AsyncIterator[tuple[int, anyio.Event]]:
    """A loopback server running ``handler`` on one accepted connection; yields (port, done)."""
    done = anyio.Event()
    multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    (listener,) = multi.listeners
    assert isinstance(listener, anyio.abc.SocketListener)

    async def serve() -> None:
        async with await listener.accept() as stream:
            await handler(stream)
        done.set()
        await anyio.sleep_forever()  # keep the task count steady for the tests

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(serve)
        try:
            yield listener.extra(SocketAttribute.local_port), done
        finally:
            tg.cancel_scope.cancel()


async def read_until_eof(stream: anyio.abc.SocketStream) -> bytes:
    data = bytearray()
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError):
        while True:
            data += await stream.receive()
    return bytes(data)


class RunResult:
    """How :meth:`Connection.run` ended when run by :func:`run_connection`."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.done = anyio.Event()


async def run_connection(
    conn: Connection,
    result: RunResult,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """``conn.run`` recording (not raising) what escapes it once it has started."""
    try:
        await conn.run(task_status=task_status)
    except Exception as exc:
        result.error = exc
    finally:
        result.done.set()


@contextlib.asynccontextmanager
async def dialed(
    port: int, stream: AnyByteStream | Wire | None = None, **options: Any
) -> AsyncIterator[tuple[Connection, RunResult]]:
    """A running Connection to ``port`` dialed as production does; closed on exit."""
    if stream is None:
        stream = await connect_tcp(HOST, port)
    conn = Connection(stream, authority=f"{HOST}:{port}", **options)
    result = RunResult()
    async with anyio.create_task_group() as tg:
        await tg.start(run_connection, conn, result)
        try:
            yield conn, result
        finally:
            await conn.aclose()
    assert result.error is None, f"Connection.run raised {result.error!r}"


def expected_wire(backend: str) -> type[Wire]:
    """What ``connect_tcp()`` + ``Connection`` must run on."""
    return AsyncioWire if backend == "asyncio" else SocketWire


def digest(peer: H2Peer, stream: PeerStream) -> None:
    """Answer with the SHA-256 of each request message (large requests, small replies)."""
    peer.reply(stream.stream_id, *(hashlib.sha256(m).digest() for m in stream.messages))


def queued_bytes(conn: Connection) -> int:
    """Bytes the client's wire holds because the kernel did not take them yet."""
    wire = conn._wire
    if isinstance(wire, SocketWire):
        return sum(map(len, wire._backlog))
    assert isinstance(wire, AsyncioWire)
    assert wire._transport is not None
    return wire._transport.get_write_buffer_size()


def socket_closed(conn: Connection) -> bool:
    wire = conn._wire
    if isinstance(wire, SocketWire):
        return wire._sock.fileno() == -1
    assert isinstance(wire, AsyncioWire)
    assert wire._transport is not None
    return wire._transport.is_closing()


# ----------------------------------------------------------------- round trips


async def test_sequential_and_concurrent_unary_calls(anyio_backend_name: str) -> None:
    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer()
        async with serving(peer) as port, dialed(port) as (conn, _):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            for i in range(200):
                request = b"seq-%d-" % i * (i % 7 + 1)
                assert await conn.unary("/test.Svc/Echo", request) == request

            results: dict[int, bytes] = {}

            async def call(i: int) -> None:
                results[i] = await conn.unary("/test.Svc/Echo", b"c%d" % i * (i * 37 + 1))

            async with anyio.create_task_group() as tg:
                for i in range(50):
                    tg.start_soon(call, i)
            assert results == {i: b"c%d" % i * (i * 37 + 1) for i in range(50)}
            assert conn.open_calls == 0
            assert conn.usable
        assert len(peer.streams) == 250
        assert peer.errors == []


async def test_streaming_call_round_trip(anyio_backend_name: str) -> None:
    def on_request(peer: H2Peer, stream: PeerStream) -> None:
        peer.send_headers(stream.stream_id)

    def on_message(peer: H2Peer, stream: PeerStream, message: bytes) -> None:
        peer.send_messages(stream.stream_id, message.upper())

    def on_end(peer: H2Peer, stream: PeerStream) -> None:
        peer.send_trailers(stream.stream_id)

    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer(on_end)
        peer.on_request = on_request
        peer.on_message = on_message
        async with serving(peer) as port, dialed(port) as (conn, _):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            async with await conn.open_call("/test.Svc/Chat") as call:
                for i in range(20):
                    await call.send_message(b"ping %d" % i)
                    assert await call.recv_message() == b"PING %d" % i
                await call.send_messages([b"a", b"b", b"c"])
                assert [await call.recv_message() for _ in range(3)] == [b"A", b"B", b"C"]
                await call.end()
                assert await call.recv_message() is None
            assert conn.usable
        assert peer.errors == []


async def test_large_request_through_a_full_socket_buffer(anyio_backend_name: str) -> None:
    """
    16 MiB go out while the server does not read: the kernel takes what fits and
    the wire queues the rest (SocketWire's backlog and writer task on trio, the
    transport's buffer on asyncio). A second call queued behind it follows it,
    whole frames after whole frames.
    """
    big = random.Random(7).randbytes(16 << 20)  # 16 MiB with no period: shifts show
    small = b"after the big one"
    with anyio.fail_after(30):
        peer = TcpPeer(digest, settings={SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        peer.open_window(2**31 - 1 - 65_535)  # the connection window, wide open
        async with (
            serving(peer, rcvbuf=64 * 1024) as port,
            dialed(port, max_send_message=64 << 20) as (conn, _),
            anyio.create_task_group() as tg,
        ):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            # A round trip first, so that the server's SETTINGS are in force both ways.
            assert await conn.unary("/warm/up", b"x") == hashlib.sha256(b"x").digest()
            peer.pause_reading()
            first = start(tg, lambda: conn.unary("/test.Svc/Big", big))
            while conn.open_calls < 1:  # poll, bounded: the call writes as it opens
                await anyio.lowlevel.checkpoint()
            assert queued_bytes(conn) > 0, "the kernel took 16 MiB: nothing was queued"
            before = queued_bytes(conn)
            second = start(tg, lambda: conn.unary("/test.Svc/Small", small))
            while conn.open_calls < 2:
                await anyio.lowlevel.checkpoint()
            assert queued_bytes(conn) > before  # queued behind the big one
            assert not first.done.is_set()
            assert not second.done.is_set()
            peer.resume_reading()
            assert (await first.wait()).value == hashlib.sha256(big).digest()
            assert (await second.wait()).value == hashlib.sha256(small).digest()
            assert queued_bytes(conn) == 0
            assert conn.usable
        assert peer.errors == []
        big_stream, small_stream = peer.streams[3], peer.streams[5]
        assert big_stream.messages == [big]
        assert small_stream.messages == [small]
        assert bytes(big_stream.data[5:]) == big  # intact and in order
        # Stream 5's first frame came after stream 3's last DATA frame.
        frames = [
            (i, f.stream_id)
            for i, f in enumerate(peer.frames)
            if isinstance(f, (DataFrame, HeadersFrame)) and f.stream_id in (3, 5)
        ]
        last_big = max(i for i, sid in frames if sid == 3)
        first_small = min(i for i, sid in frames if sid == 5)
        assert last_big < first_small
        ended = [e.stream_id for e in peer.events_of(h2.events.StreamEnded)]
        assert ended.index(3) < ended.index(5)
        answered = [f.stream_id for f in peer.sent_frames if isinstance(f, HeadersFrame)]
        assert answered.index(3) < answered.index(5)  # so the big call was answered first


async def test_call_cancelled_while_its_bytes_are_queued(anyio_backend_name: str) -> None:
    """
    A 16 MiB request is cancelled while most of it still waits in the client's
    queue: its RST_STREAM goes out behind it, and the connection stays usable.
    """
    with anyio.fail_after(30):
        peer = TcpPeer(digest, settings={SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        peer.open_window(2**31 - 1 - 65_535)
        async with (
            serving(peer, rcvbuf=64 * 1024) as port,
            dialed(port) as (conn, _),
        ):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            assert await conn.unary("/warm/up", b"x") == hashlib.sha256(b"x").digest()
            # No answer to the cancelled call: its END_STREAM and RST_STREAM reach the
            # peer in one read, and H2Peer's handler would answer a stream h2 closed.
            peer.handler = None
            peer.pause_reading()
            with anyio.CancelScope() as scope:

                async def cancel_once_queued() -> None:
                    while conn.open_calls < 1:  # poll, bounded: the call writes as it opens
                        await anyio.lowlevel.checkpoint()
                    assert queued_bytes(conn) > 0
                    scope.cancel()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(cancel_once_queued)
                    await conn.unary("/test.Svc/Big", b"\1" * (16 << 20))
            assert scope.cancelled_caught
            assert conn.open_calls == 0
            peer.resume_reading()
            assert await peer.wait_reset(3) == ErrorCode.CANCEL
            peer.handler = digest
            assert await conn.unary("/test.Svc/Next", b"next") == hashlib.sha256(b"next").digest()
            assert conn.usable
        assert peer.errors == []
        assert len(peer.streams[3].data) == 5 + (16 << 20)  # every byte queued went out


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize("hangup", ["close", "reset"])
async def test_server_hangs_up(anyio_backend_name: str, hangup: str) -> None:
    """A FIN or an RST (SO_LINGER 0): the call in flight and later ones fail, cleanly."""
    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer(handler=None)
        async with (
            serving(peer) as port,
            dialed(port) as (conn, result),
            anyio.create_task_group() as tg,
        ):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            outcome = start(tg, lambda: conn.unary("/p", b"in flight"))
            await peer.wait_stream(1, ended=True)
            await (peer.close() if hangup == "close" else peer.reset())
            error = (await outcome.wait()).error
            assert isinstance(error, ConnectionLostError), repr(error)
            assert error.applied is None
            assert isinstance(conn.error, ConnectionLostError)
            assert not conn.usable
            assert conn.open_calls == 0
            with anyio.fail_after(0.5), pytest.raises(ConnectionLostError) as info:
                await conn.unary("/p", b"later")
            assert info.value.applied is False
            await result.done.wait()
            assert result.error is None  # no exception (group) escaped Connection.run
            assert socket_closed(conn)


@pytest.mark.parametrize(
    ("garbage", "code"),
    [
        pytest.param(b"\xff" * 64, ErrorCode.FRAME_SIZE_ERROR, id="noise"),
        pytest.param(frame_bytes(0x6, 0, 0, b"1234567"), ErrorCode.FRAME_SIZE_ERROR, id="ping-7"),
        pytest.param(frame_bytes(0x0, 0, 0, b"data"), ErrorCode.PROTOCOL_ERROR, id="data-on-0"),
    ],
)
async def test_server_sends_garbage(anyio_backend_name: str, garbage: bytes, code: int) -> None:
    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer(handler=None)
        async with (
            serving(peer) as port,
            dialed(port) as (conn, result),
            anyio.create_task_group() as tg,
        ):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            outcome = start(tg, lambda: conn.unary("/p", b"in flight"))
            await peer.wait_stream(1, ended=True)
            peer.send_raw(garbage)
            error = (await outcome.wait()).error
            assert isinstance(error, ProtocolViolation), repr(error)
            assert error.applied is None
            assert isinstance(conn.error, ProtocolViolation)
            with anyio.fail_after(0.5), pytest.raises(ProtocolViolation):
                await conn.unary("/p", b"later")
            # The client said why before it hung up.
            await peer.wait_until(lambda: peer.frames_of(GoAwayFrame))
            await peer.disconnected.wait()
            await result.done.wait()
        (goaway,) = peer.frames_of(GoAwayFrame)
        assert goaway.error_code == code
        (terminated,) = peer.events_of(h2.events.ConnectionTerminated)
        assert terminated.error_code == code
        assert peer.hangup == "eof"


@pytest.mark.parametrize("full", [False, True], ids=["idle-socket", "full-socket"])
async def test_keepalive_fails_a_silent_server(anyio_backend_name: str, full: bool) -> None:
    """
    The server keeps the socket open but stops reading and writing: the PING
    goes unanswered and fails the connection. With ``full``, a 16 MiB request
    has filled the socket first, so the PING itself is stuck behind it in the
    client's queue (SocketWire's backlog, the transport's buffer).
    """
    interval, timeout = 0.2, 0.3
    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer(handler=None, settings={SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        peer.open_window(2**31 - 1 - 65_535)
        async with (
            serving(peer, rcvbuf=64 * 1024) as port,
            dialed(port, keepalive_interval=interval, keepalive_timeout=timeout) as (conn, result),
            anyio.create_task_group() as tg,
        ):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            outcome = start(tg, lambda: conn.unary("/p", b"unanswered"))
            await peer.wait_stream(1, ended=True)
            peer.pause_reading()
            if full:
                start(tg, lambda: conn.unary("/p", b"\0" * (16 << 20)))
                while conn.open_calls < 2:  # poll, bounded: the call writes as it opens
                    await anyio.lowlevel.checkpoint()
                assert queued_bytes(conn) > 0
            began = anyio.current_time()
            error = (await outcome.wait()).error
            elapsed = anyio.current_time() - began
            assert isinstance(error, ConnectionLostError), repr(error)
            assert "PING" in str(error)
            assert error.applied is None
            assert elapsed < interval + timeout + 1.0
            assert isinstance(conn.error, ConnectionLostError)
            assert conn.open_calls == 0
            await result.done.wait()
            assert not peer.disconnected.is_set()  # the server never hung up
            peer.resume_reading()  # now the server reads what it can, and the hang-up
            await peer.disconnected.wait()
        if not full:
            pings = [f for f in peer.frames_of(PingFrame) if "ACK" not in f.flags]
            assert pings


async def test_server_resets_while_writes_are_queued(anyio_backend_name: str) -> None:
    """An RST while the client's queue is full fails the call; no error escapes ``run``."""
    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer(digest, settings={SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        peer.open_window(2**31 - 1 - 65_535)
        async with (
            serving(peer, rcvbuf=64 * 1024) as port,
            dialed(port) as (conn, result),
            anyio.create_task_group() as tg,
        ):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            assert await conn.unary("/warm/up", b"x") == hashlib.sha256(b"x").digest()
            peer.pause_reading()
            outcome = start(tg, lambda: conn.unary("/p", b"\0" * (16 << 20)))
            while conn.open_calls < 1:  # poll, bounded: the call writes as it opens
                await anyio.lowlevel.checkpoint()
            assert queued_bytes(conn) > 0
            await peer.reset()
            error = (await outcome.wait()).error
            assert isinstance(error, ConnectionLostError), repr(error)
            assert error.applied is None
            with anyio.fail_after(0.5), pytest.raises(ConnectionLostError):
                await conn.unary("/p", b"later")
            await result.done.wait()
            assert result.error is None
            assert socket_closed(conn)


async def test_large_messages_both_ways(anyio_backend_name: str) -> None:
    """4 concurrent echoes of 4 MiB: both directions of the socket full at once."""
    messages = [bytes([i]) * (4 << 20) + b"%d" % i for i in range(4)]
    with anyio.fail_after(30):
        peer = TcpPeer(settings={SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        peer.open_window(2**31 - 1 - 65_535)
        async with (
            serving(peer, rcvbuf=64 * 1024) as port,
            dialed(port) as (conn, _),
        ):
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            results: dict[int, bytes] = {}

            async def call(i: int) -> None:
                results[i] = await conn.unary("/test.Svc/Echo", messages[i])

            async with anyio.create_task_group() as tg:
                for i in range(4):
                    tg.start_soon(call, i)
            assert results == dict(enumerate(messages))
            assert queued_bytes(conn) == 0
            assert conn.usable
        assert peer.errors == []


# ------------------------------------------------------------ start and close


async def test_data_before_run_starts(anyio_backend_name: str) -> None:
    """The server's preface arrives before ``Connection.run`` reads: nothing is lost."""
    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer()
        async with serving(peer) as port:
            stream = await connect_tcp(HOST, port)
            await peer.first_write.wait()
            if isinstance(stream, AsyncioWire):
                assert anyio_backend_name == "asyncio"
                while not stream._early:  # poll, bounded: the loop delivers it on its next pass
                    await anyio.lowlevel.checkpoint()
            else:
                assert isinstance(stream, anyio.abc.SocketStream)
                await anyio.wait_readable(stream.extra(SocketAttribute.raw_socket))
            async with dialed(port, stream) as (conn, _):
                assert type(conn._wire) is expected_wire(anyio_backend_name)
                assert await conn.unary("/p", b"hello") == b"hello"
        assert peer.errors == []


async def test_aclose_closes_the_socket_and_leaves_no_tasks(anyio_backend_name: str) -> None:
    with anyio.fail_after(TIMEOUT):
        peer = TcpPeer()
        async with serving(peer) as port:
            before = len(anyio.get_running_tasks())
            async with anyio.create_task_group() as tg:
                conn = Connection(await connect_tcp(HOST, port), authority=f"{HOST}:{port}")
                assert type(conn._wire) is expected_wire(anyio_backend_name)
                await tg.start(conn.run)
                assert await conn.unary("/p", b"hello") == b"hello"
                await conn.aclose()
                assert socket_closed(conn)
                await conn.wait_closed()
            await peer.disconnected.wait()
            assert peer.hangup == "eof"
            assert len(anyio.get_running_tasks()) == before
            assert isinstance(conn.error, ConnectionLostError)
            with pytest.raises(ConnectionLostError):
                await conn.unary("/p", b"after close")
        assert peer.events_of(h2.events.ConnectionTerminated)  # the client's GOAWAY


HTTP1_REPLY = b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"


async def test_dial_fails_when_the_server_hangs_up(anyio_backend_name: str) -> None:
    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        pass

    with anyio.fail_after(TIMEOUT):
        async with raw_server(hang_up) as (port, done):
            conn = Connection(await connect_tcp(HOST, port), authority=f"{HOST}:{port}")
            assert type(conn._wire) is expected_wire(anyio_backend_name)
            await done.wait()
            async with anyio.create_task_group() as tg:
                with pytest.raises(ConnectionLostError):
                    await tg.start(conn.run)
            assert not conn.usable
            assert socket_closed(conn)


async def test_dial_fails_when_the_server_answers_http1(anyio_backend_name: str) -> None:
    """An HTTP/1.1 server reads the preface, answers 400 and hangs up: not HTTP/2."""
    preface = anyio.Event()

    async def http1(stream: anyio.abc.SocketStream) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive()
        preface.set()
        await stream.send(HTTP1_REPLY)
        await stream.send_eof()
        await read_until_eof(stream)

    with anyio.fail_after(TIMEOUT):
        async with raw_server(http1) as (port, _):
            conn = Connection(await connect_tcp(HOST, port), authority=f"{HOST}:{port}")
            async with anyio.create_task_group() as tg:
                with pytest.raises(ProtocolViolation):
                    await tg.start(conn.run)
            assert preface.is_set()
            assert socket_closed(conn)


async def test_dial_fails_on_early_http1_reply_then_eof() -> None:
    """
    The reply and the server's FIN are both there before ``run`` starts (as in
    test_connection's in-memory dud): the early bytes say why, not HTTP/2.
    """

    async def banner(stream: anyio.abc.SocketStream) -> None:
        await stream.send(HTTP1_REPLY)
        await stream.send_eof()  # half-close: the client may still write
        await read_until_eof(stream)

    with anyio.fail_after(TIMEOUT):
        async with raw_server(banner) as (port, _):
            stream = await connect_tcp(HOST, port)
            if isinstance(stream, AsyncioWire):
                while (
                    not stream._lost.is_set()
                ):  # poll, bounded: the loop delivers the bytes and EOF
                    await anyio.lowlevel.checkpoint()
                assert stream._early
            else:
                assert isinstance(stream, anyio.abc.SocketStream)
                await anyio.wait_readable(stream.extra(SocketAttribute.raw_socket))
            conn = Connection(stream, authority=f"{HOST}:{port}")
            error: Exception | None = None
            async with anyio.create_task_group() as tg:
                try:
                    await tg.start(conn.run)
                except Exception as exc:
                    error = exc
            assert socket_closed(conn)
    assert isinstance(error, ProtocolViolation), repr(error)  # outside the servers' task group


async def test_dial_timeout_closes_the_socket(anyio_backend_name: str) -> None:
    """A server that accepts and says nothing: the caller's timeout ends the dial cleanly."""
    received = bytearray()

    async def silent(stream: anyio.abc.SocketStream) -> None:
        received.extend(await read_until_eof(stream))

    with anyio.fail_after(TIMEOUT):
        async with raw_server(silent) as (port, done):
            before = len(anyio.get_running_tasks())
            conn = Connection(await connect_tcp(HOST, port), authority=f"{HOST}:{port}")
            async with anyio.create_task_group() as tg:
                with anyio.move_on_after(0.2) as scope:
                    await tg.start(conn.run)
            assert scope.cancelled_caught
            assert socket_closed(conn)
            await done.wait()  # the server saw the hang-up
            assert received.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            assert len(anyio.get_running_tasks()) == before


# -- TLS ----------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def tls_serving(
    peer: H2Peer, *, alpn: str = "h2", close_after_handshake: bool = False
) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    """
    ``peer`` behind TLS on 127.0.0.1 (a trustme certificate for ``localhost``);
    yields the port and a client context that trusts it.
    """
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.set_alpn_protocols([alpn])
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client_context.set_alpn_protocols(["h2"])

    async def serve(stream: anyio.abc.ByteStream) -> None:
        async with stream:
            if close_after_handshake:
                return
            await stream.send(peer.data_to_send())  # the server's preface
            while True:
                try:
                    data = await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                peer.receive_data(data)
                out = peer.data_to_send()
                if out:
                    await stream.send(out)

    async def accept(
        listener: anyio.abc.SocketListener,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        raw = await listener.accept()
        try:
            stream = await TLSStream.wrap(
                raw, server_side=True, ssl_context=server_context, standard_compatible=False
            )
        except (anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError, OSError):
            # The client hung up before our side of the handshake finished.
            await anyio.aclose_forcefully(raw)
            return
        except BaseException:
            await anyio.aclose_forcefully(raw)
            raise
        await serve(stream)

    multi = await anyio.create_tcp_listener(local_host=HOST, local_port=0)
    (listener,) = multi.listeners
    assert isinstance(listener, anyio.abc.SocketListener)
    async with listener, anyio.create_task_group() as tg:
        await tg.start(accept, listener)
        yield listener.extra(SocketAttribute.local_port), client_context
        tg.cancel_scope.cancel()


async def test_tls_round_trip(anyio_backend_name: str) -> None:
    """TLS goes through AsyncioWire (the loop's SSL protocol) on asyncio, StreamWire on trio."""
    peer = H2Peer()
    with anyio.fail_after(TIMEOUT):
        async with tls_serving(peer) as (port, context):
            connected = await connect_tcp(
                HOST, port, ssl_context=context, server_hostname="localhost"
            )
            conn = Connection(connected, authority=f"localhost:{port}", tls=True)
            expected = AsyncioWire if anyio_backend_name == "asyncio" else StreamWire
            assert type(conn._wire) is expected
            assert conn._wire.alpn_protocol() == "h2"
            async with anyio.create_task_group() as tg:
                await tg.start(conn.run)
                for i in range(50):
                    assert await conn.unary("/test.Svc/Echo", b"tls-%d" % i) == b"tls-%d" % i
                results: dict[int, bytes] = {}

                async def call(i: int) -> None:
                    results[i] = await conn.unary("/test.Svc/Echo", b"c%d" % i * 1000)

                async with anyio.create_task_group() as calls:
                    for i in range(20):
                        calls.start_soon(call, i)
                assert results == {i: b"c%d" % i * 1000 for i in range(20)}
                await conn.aclose()
    assert peer.errors == []
    assert peer.streams[1].headers is not None
    assert dict(peer.streams[1].headers)[":scheme"] == "https"


async def test_tls_server_hangs_up_after_the_handshake(caplog: pytest.LogCaptureFixture) -> None:
    """The dial fails as a lost connection, and asyncio logs no half-close warning."""
    peer = H2Peer()
    with anyio.fail_after(TIMEOUT):
        async with tls_serving(peer, close_after_handshake=True) as (port, context):
            connected = await connect_tcp(
                HOST, port, ssl_context=context, server_hostname="localhost"
            )
            conn = Connection(connected, authority=f"localhost:{port}", tls=True)
            async with anyio.create_task_group() as tg:
                with pytest.raises(ConnectionLostError):
                    await tg.start(conn.run)
    assert not [r for r in caplog.records if "eof_received" in r.getMessage()]


async def test_tls_alpn_other_than_h2_is_visible() -> None:
    """What the server chose is reported, so the channel can refuse anything but h2."""
    peer = H2Peer()
    with anyio.fail_after(TIMEOUT):
        async with tls_serving(peer, alpn="http/1.1", close_after_handshake=True) as (
            port,
            context,
        ):
            context.set_alpn_protocols(["h2", "http/1.1"])
            connected = await connect_tcp(
                HOST, port, ssl_context=context, server_hostname="localhost"
            )
            wire = connected if isinstance(connected, Wire) else StreamWire(connected)
            assert wire.alpn_protocol() == "http/1.1"
            await wire.aclose()

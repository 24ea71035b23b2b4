"""
The byte transport under a :class:`~etcdanyio._grpc._connection.Connection`.

A *wire* moves bytes between a connection's sans-IO core and the network. Two
things decide how fast a call is on a small machine: how many times the event
loop has to run per call, and how many system calls it makes. anyio's generic
socket streams cost an extra loop pass per ``send`` (a checkpoint) and, on
asyncio, two ``epoll_ctl`` calls per ``receive`` (reading is resumed and paused
around every read). So there are three wires:

* :class:`AsyncioWire` (asyncio, TCP or TLS) is an :class:`asyncio.Protocol`:
  ``data_received`` feeds the connection directly from the event loop, with no
  reader task in between, and writes go to the transport's buffer at once.
  A unary call then costs one task switch.
* :class:`SocketWire` (other backends, plain TCP) reads and writes the
  non-blocking socket itself: a write is one ``send`` system call from the
  caller, and only what the kernel did not take waits for a writer task.
* :class:`StreamWire` wraps any anyio byte stream (TLS on trio, in-memory
  streams in tests); its writes are awaited and shielded by the connection.

"Immediate" wires (the first two) never make a writer wait: bytes are handed
off in order, and anything the kernel cannot take yet is queued behind them.
The queue is bounded by HTTP/2 flow control (the core writes no DATA beyond the
server's windows) and a stuck socket is caught by the keepalive PING.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.tls import TLSAttribute

from ._backend import running_asyncio

if TYPE_CHECKING:
    import ssl

    from anyio.abc import AnyByteStream


class Sink(Protocol):
    """What a wire needs from its connection."""

    def on_data(self, data: bytes) -> None:
        """Feed bytes read from the wire (may write urgent replies itself)."""

    def needs_flush(self) -> bool:
        """``True`` if frames are queued that must go out now (non-immediate wires)."""

    async def flush(self) -> None:
        """Write what is queued (non-immediate wires)."""

    def on_write_error(self, exc: BaseException) -> None:
        """A background write failed: fail the connection."""


class Wire:
    """Base class; see the module docstring."""

    #: ``True`` if :meth:`write` hands bytes off without blocking
    immediate = False

    def write(self, data: bytes) -> None:
        """Hand ``data`` off in order, at once (immediate wires only)."""
        raise NotImplementedError

    async def send(self, data: bytes) -> None:
        """Write ``data``, waiting until it is taken (non-immediate wires)."""
        raise NotImplementedError

    async def run(self, sink: Sink) -> None:
        """Read until the peer closes (returns) or the wire breaks (raises)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close at once, discarding anything unsent."""
        raise NotImplementedError

    def alpn_protocol(self) -> str | None:
        """The protocol TLS negotiated by ALPN (``None``: no TLS or no ALPN)."""
        return None


class StreamWire(Wire):
    """Any anyio byte stream (or object stream of bytes, in tests)."""

    def __init__(self, stream: AnyByteStream) -> None:
        self.stream = stream

    async def send(self, data: bytes) -> None:
        await self.stream.send(data)

    async def run(self, sink: Sink) -> None:
        stream = self.stream
        if isinstance(stream, anyio.abc.ByteReceiveStream):

            async def receive() -> bytes:
                return await stream.receive(65536)

        else:
            receive = stream.receive  # an object stream of bytes (tests)
        on_data = sink.on_data
        try:
            while True:
                on_data(await receive())
                if sink.needs_flush():
                    await sink.flush()
        except anyio.EndOfStream:
            return

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)

    def alpn_protocol(self) -> str | None:
        protocol: str | None = self.stream.extra(TLSAttribute.alpn_protocol, None)
        return protocol


class SocketWire(Wire):
    """
    A connected non-blocking TCP socket, read and written directly.

    ``stream`` (the anyio stream that owns the socket) is kept only to close it.
    """

    immediate = True

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self._sock: socket.socket = stream.extra(SocketAttribute.raw_socket)
        self._backlog: deque[bytes] = deque()
        self._backlog_waiter: anyio.Event | None = None

    def write(self, data: bytes) -> None:
        backlog = self._backlog
        if backlog:
            backlog.append(data)
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(data):
            backlog.append(data[sent:])
            waiter = self._backlog_waiter
            if waiter is not None:
                self._backlog_waiter = None
                waiter.set()

    async def _writer(self, sink: Sink) -> None:
        backlog = self._backlog
        sock = self._sock
        try:
            while True:
                if not backlog:
                    waiter = self._backlog_waiter = anyio.Event()
                    await waiter.wait()
                await anyio.wait_writable(sock)
                while backlog:
                    data = backlog[0]
                    try:
                        sent = sock.send(data)
                    except (BlockingIOError, InterruptedError):
                        break
                    if sent < len(data):
                        backlog[0] = data[sent:]
                        break
                    backlog.popleft()
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            sink.on_write_error(exc)

    async def run(self, sink: Sink) -> None:
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._writer, sink)
            try:
                await self._read(sink)
            except Exception as exc:  # re-raised below, not as a group
                failure = exc
            tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _read(self, sink: Sink) -> None:
        sock = self._sock
        on_data = sink.on_data
        while True:
            await anyio.wait_readable(sock)
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            if not data:
                return
            on_data(data)

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


class AsyncioWire(asyncio.Protocol, Wire):
    """A TCP (or TLS) connection made by asyncio's event loop, with this as its protocol."""

    immediate = True

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._sink: Sink | None = None
        self._early: list[bytes] = []
        self._lost = asyncio.Event()
        self._error: BaseException | None = None  # what broke the transport
        self._failure: Exception | None = None  # what the sink raised
        self._tls = False

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> AsyncioWire:
        """Connect, with TLS if ``ssl_context`` is given (the loop's own TLS protocol)."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except UnicodeError as exc:  # an IDNA failure: a bad name, as trio reports it
            raise OSError(f"cannot resolve {host!r}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        # Happy eyeballs only among several addresses: asyncio's race (3.11) leaks the
        # winning socket if it is cancelled just as a connection is made.
        _, wire = await loop.create_connection(
            cls,
            addresses[0] if len(addresses) == 1 else host,
            port,
            happy_eyeballs_delay=0.25 if len(addresses) > 1 else None,
            ssl=ssl_context,
            # asyncio refuses a server_hostname without TLS
            server_hostname=(server_hostname or host) if ssl_context is not None else None,
        )
        return wire

    def alpn_protocol(self) -> str | None:
        transport = self._transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        return ssl_object.selected_alpn_protocol() if ssl_object is not None else None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._tls = transport.get_extra_info("sslcontext") is not None

    def data_received(self, data: bytes) -> None:
        sink = self._sink
        if sink is None:
            self._early.append(data)  # before run(): replayed there
            return
        if self._failure is not None:
            return
        try:
            sink.on_data(data)
        except Exception as exc:  # handed to run(), which reports it
            self._failure = exc
            self._lost.set()
            if self._transport is not None:
                self._transport.pause_reading()

    def eof_received(self) -> bool | None:
        self._lost.set()
        # Keep our half open: what the server said before hanging up (a reason, an
        # HTTP/1.1 answer) is read first, and the connection may still write.
        # (TLS cannot half-close, and asyncio logs a warning if asked to.)
        return None if self._tls else True

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._error is None:
            self._error = exc
        self._lost.set()

    # Wire

    def write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise anyio.BrokenResourceError("the connection is closed")
        transport.write(data)

    async def run(self, sink: Sink) -> None:
        self._sink = sink
        early, self._early = self._early, []
        for data in early:
            self.data_received(data)
        await self._lost.wait()
        # A protocol error in what was read explains more than the hang-up after it.
        if self._failure is not None:
            raise self._failure
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        transport = self._transport
        if transport is not None:
            transport.abort()
        await anyio.lowlevel.checkpoint()


def wire_for(stream: AnyByteStream | Wire) -> Wire:
    """The fastest wire for ``stream``: its raw socket when it is plain TCP."""
    if isinstance(stream, Wire):
        return stream
    # On asyncio the transport owns the socket: it cannot be read around it.
    if isinstance(stream, anyio.abc.SocketStream) and not running_asyncio():
        try:
            sock = stream.extra(SocketAttribute.raw_socket)
        except anyio.TypedAttributeLookupError:
            sock = None
        if isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM:
            return SocketWire(stream)
    return StreamWire(stream)


async def connect_tcp(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> AnyByteStream | Wire:
    """A TCP connection (TLS with ``ssl_context``) on the fastest wire this loop offers."""
    if running_asyncio():
        return await AsyncioWire.connect(
            host, port, ssl_context=ssl_context, server_hostname=server_hostname
        )
    if ssl_context is None:
        return await anyio.connect_tcp(host, port)
    return await anyio.connect_tcp(
        host,
        port,
        ssl_context=ssl_context,
        tls_hostname=server_hostname or host,
        tls_standard_compatible=False,
    )

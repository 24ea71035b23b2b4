"""
A scripted gRPC server for tests: a server-side ``h2.H2Connection`` the test drives.

The peer is a *verified fake*: every byte it sends comes out of a real
``h2.H2Connection`` (server side), except for the few things h2 will not do on
demand, which are built with ``hyperframe`` and noted as such: a GOAWAY after
which streams go on (h2 closes itself on ``close_connection``), header blocks
split across CONTINUATION frames (h2's own block, re-framed), raw and
malformed frames.

It works in two modes:

* **sans-IO**: :meth:`H2Peer.receive_data` takes the client's bytes and
  :meth:`H2Peer.data_to_send` returns the peer's, for tests with no event loop;
* **in memory**: :meth:`H2Peer.connect` returns the client's end of two stapled
  memory object streams and :meth:`H2Peer.serve` runs the server side as a task.
  The peer's sends never block (that direction is unbounded), so every
  scripting method is synchronous in both modes.

What arrives is recorded: every h2 event (:attr:`H2Peer.events`), every frame
(:attr:`H2Peer.frames`, parsed with ``hyperframe``; :attr:`H2Peer.sent_frames`
for the other direction), and per stream the request headers, the raw DATA
bytes and the gRPC messages they hold (:class:`PeerStream`).

Responses are scripted per stream (:meth:`~H2Peer.send_headers`,
:meth:`~H2Peer.send_messages`, :meth:`~H2Peer.send_trailers`,
:meth:`~H2Peer.trailers_only`, :meth:`~H2Peer.reset_stream`, ...). DATA waits
for the client's flow-control window, queued per stream behind earlier DATA, so
a large response is honest about windows. A ``handler`` answers each request
when the client half-closes it (:func:`echo` by default, :func:`answer` for a
fixed reply, ``None`` to script everything by hand); ``on_request`` and
``on_message`` are hooks for per-test scripts.

Faults: ``auto_window=False`` withholds WINDOW_UPDATE until
:meth:`~H2Peer.release_window`; :attr:`~H2Peer.blackhole` drops the client's
bytes (so PINGs go unanswered); :meth:`~H2Peer.pause_reading` stops reading the
transport; :meth:`~H2Peer.drop` cuts the connection; :meth:`~H2Peer.goaway`,
:meth:`~H2Peer.set_header_table_size`, :meth:`~H2Peer.send_raw`.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import itertools
import math
import struct
from typing import TYPE_CHECKING, TypeVar

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
from anyio.streams.stapled import StapledObjectStream
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    ContinuationFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    RstStreamFrame,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PREFIX = struct.Struct(">BI")

#: The response headers of a gRPC server.
GRPC_HEADERS: tuple[tuple[str, str], ...] = (
    (":status", "200"),
    ("content-type", "application/grpc"),
)

F = TypeVar("F", bound=Frame)
E = TypeVar("E", bound=h2.events.Event)


def grpc_frame(message: bytes, *, compressed: bool = False) -> bytes:
    """``message`` with the 5-byte gRPC length prefix."""
    return _PREFIX.pack(int(compressed), len(message)) + message


def split_messages(data: bytes | bytearray | memoryview) -> tuple[list[bytes], int]:
    """The complete gRPC messages at the start of ``data``, and how many bytes they took."""
    out: list[bytes] = []
    pos = 0
    while len(data) - pos >= 5:
        _, size = _PREFIX.unpack_from(data, pos)
        if len(data) - pos - 5 < size:
            break
        out.append(bytes(data[pos + 5 : pos + 5 + size]))
        pos += 5 + size
    return out, pos


def frame_bytes(ftype: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """A raw frame, of any type and with any payload (for malformed input)."""
    n = len(payload)
    return struct.pack(">BHBBL", n >> 16, n & 0xFFFF, ftype, flags, stream_id) + payload


@dataclasses.dataclass
class _Out:
    """Something queued for sending on a stream, in order, behind flow-controlled DATA."""

    kind: str  # "data" or "headers"
    data: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    end_stream: bool = False
    pad: int | None = None
    split: int | None = None


@dataclasses.dataclass(eq=False)
class PeerStream:
    """One request as the server saw it."""

    stream_id: int
    headers: list[tuple[str, str]]
    #: every DATA byte received (gRPC-framed)
    data: bytearray = dataclasses.field(default_factory=bytearray)
    #: the complete gRPC messages in :attr:`data`
    messages: list[bytes] = dataclasses.field(default_factory=list)
    #: the client half-closed the stream (END_STREAM)
    ended: bool = False
    #: the client reset the stream with this code
    reset_code: int | None = None
    #: the server ended the stream (END_STREAM sent, or RST_STREAM sent)
    finished: bool = False
    #: flow-controlled bytes received and not acknowledged (withheld WINDOW_UPDATE)
    unacked: int = 0
    #: the stream came above the last_stream_id of our GOAWAY: never served
    refused: bool = False
    _parsed: int = 0
    _outbox: collections.deque[_Out] = dataclasses.field(default_factory=collections.deque)

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    @property
    def path(self) -> str | None:
        return self.header(":path")


def echo(peer: H2Peer, stream: PeerStream) -> None:
    """Answer with every message the request carried (the default handler)."""
    peer.reply(stream.stream_id, *stream.messages)


def answer(*messages: bytes) -> Callable[[H2Peer, PeerStream], None]:
    """A handler that answers every request with ``messages`` and status OK."""

    def handler(peer: H2Peer, stream: PeerStream) -> None:
        peer.reply(stream.stream_id, *messages)

    return handler


class H2Peer:
    """
    A scripted gRPC server (see the module docstring).

    :param handler: called when the client half-closes a stream; ``None``: do nothing
    :param auto_window: acknowledge received DATA at once (h2 then sends
        WINDOW_UPDATE as it sees fit); ``False`` withholds it until
        :meth:`release_window`
    :param settings: SETTINGS sent right after the server preface
    """

    def __init__(
        self,
        handler: Callable[[H2Peer, PeerStream], None] | None = echo,
        *,
        auto_window: bool = True,
        settings: dict[int, int] | None = None,
    ) -> None:
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.handler = handler
        self.on_request: Callable[[H2Peer, PeerStream], None] | None = None
        self.on_message: Callable[[H2Peer, PeerStream, bytes], None] | None = None
        self.auto_window = auto_window
        #: drop every byte from the client (after recording its frames): no ACKs, nothing
        self.blackhole = False
        #: see :meth:`pause_reading`
        self.paused = False

        self.events: list[h2.events.Event] = []
        self.frames: list[Frame] = []
        self.sent_frames: list[Frame] = []
        self.streams: dict[int, PeerStream] = {}
        #: h2 errors raised by the client's input (the peer then closes the connection)
        self.errors: list[Exception] = []
        self.goaway_last_stream_id: int | None = None
        self.bytes_received = 0

        self._in = bytearray()
        self._preface_seen = False
        self._out_parse = bytearray()
        self._outbox = bytearray()  # sans-IO mode
        self._send: MemoryObjectSendStream[bytes] | None = None
        self._recv: MemoryObjectReceiveStream[bytes] | None = None
        self._changed: anyio.Event | None = None
        self._ping_ids = itertools.count(1)
        self.serving = False
        self.closed = False

        self.h2.initiate_connection()
        if settings:
            self.h2.update_settings(settings)
        self._flush()

    # ------------------------------------------------------------ transport

    def connect(self, *, buffer: float = math.inf) -> StapledObjectStream[bytes]:
        """
        The client's end of a new in-memory transport (two memory object streams).

        ``buffer`` bounds the client-to-server direction (the other one never
        blocks): with 0, a client write waits until the peer reads it, so
        :meth:`pause_reading` can make it block.
        """
        c2s_send, c2s_recv = anyio.create_memory_object_stream[bytes](buffer)
        s2c_send, s2c_recv = anyio.create_memory_object_stream[bytes](math.inf)
        self._recv, self._send = c2s_recv, s2c_send
        if self._outbox:
            s2c_send.send_nowait(bytes(self._outbox))
            self._outbox.clear()
        return StapledObjectStream(c2s_send, s2c_recv)

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Feed the client's bytes to h2 until the client closes (or :meth:`drop`)."""
        assert self._recv is not None, "call connect() first"
        self.serving = True
        task_status.started()
        try:
            while True:
                try:
                    data = await self._recv.receive()
                except (anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                await self.wait_until(lambda: not self.paused)
                self.receive_data(data)
        finally:
            self.closed = True
            self.serving = False
            self._recv.close()
            if self._send is not None:
                self._send.close()
            self._notify()

    @property
    def transport_closed(self) -> bool:
        """``True`` once the client closed both directions of its end of the transport."""
        assert self._recv is not None
        assert self._send is not None
        return (
            self._recv.statistics().open_send_streams == 0
            and self._send.statistics().open_receive_streams == 0
        )

    def drop(self) -> None:
        """Close the connection abruptly (as a server crash or a cut cable)."""
        self.closed = True
        if self._send is not None:
            self._send.close()
        if self._recv is not None:
            self._recv.close()
        self._notify()

    def pause_reading(self) -> None:
        """
        Stop reading from the transport (as a server whose socket buffer is full).

        The read in progress still takes one more write from the client and
        holds it; the next write blocks if :meth:`connect` had ``buffer=0``.
        """
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self._notify()

    def receive_data(self, data: bytes) -> list[h2.events.Event]:
        """Take bytes from the client: record the frames, feed h2, run the handlers."""
        self.bytes_received += len(data)
        self._record(data)
        if self.blackhole or self.errors:
            return []
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self.errors.append(exc)
            self._flush()
            self.drop()
            return []
        for event in events:
            self.events.append(event)
            self._dispatch(event)
        self._pump()
        self._flush()
        self._notify()
        return events

    def data_to_send(self) -> bytes:
        """sans-IO mode: the bytes the peer wrote since the last call."""
        data = bytes(self._outbox)
        self._outbox.clear()
        return data

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self._out_parse += data
        self.sent_frames.extend(_parse_frames(self._out_parse))
        if self._send is None:
            self._outbox += data
            return
        # If the client is gone, its side of the story is what the test checks.
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._send.send_nowait(data)

    def _flush(self) -> None:
        self._write(self.h2.data_to_send())

    def _record(self, data: bytes) -> None:
        self._in += data
        if not self._preface_seen:
            if len(self._in) < len(PREFACE):
                return
            assert self._in[: len(PREFACE)] == PREFACE, "bad client preface"
            del self._in[: len(PREFACE)]
            self._preface_seen = True
        self.frames.extend(_parse_frames(self._in))

    # ------------------------------------------------------------- waiting

    def _notify(self) -> None:
        changed = self._changed
        if changed is not None:
            self._changed = None
            changed.set()

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Wait until ``predicate()`` is true; it is checked whenever the peer's state changes."""
        while not predicate():
            changed = self._changed = self._changed or anyio.Event()
            await changed.wait()

    async def wait_stream(self, stream_id: int, *, ended: bool = False) -> PeerStream:
        """Wait for the request on ``stream_id`` (and for the client to half-close it)."""

        def ready() -> bool:
            stream = self.streams.get(stream_id)
            return stream is not None and (stream.ended or not ended)

        await self.wait_until(ready)
        return self.streams[stream_id]

    async def wait_reset(self, stream_id: int) -> int:
        """Wait for the client's RST_STREAM on ``stream_id``; return its error code."""
        await self.wait_until(lambda: self.client_resets().get(stream_id) is not None)
        return self.client_resets()[stream_id]

    async def sync(self) -> None:
        """
        A round trip: PING the client and wait for the ACK.

        The client handles frames in order, so once the ACK is here it has
        handled everything the peer sent before the PING.
        """
        payload = next(self._ping_ids).to_bytes(8, "big")
        self.h2.ping(payload)
        self._flush()
        await self.wait_until(
            lambda: any(
                isinstance(e, h2.events.PingAckReceived) and e.ping_data == payload
                for e in self.events
            )
        )

    # ------------------------------------------------------------- records

    def frames_of(self, kind: type[F], stream_id: int | None = None) -> list[F]:
        """The frames of one type the client sent (on one stream)."""
        return [
            f
            for f in self.frames
            if isinstance(f, kind) and (stream_id is None or f.stream_id == stream_id)
        ]

    def client_resets(self) -> dict[int, int]:
        """The RST_STREAM frames the client sent: stream ID to error code."""
        return {f.stream_id: f.error_code for f in self.frames_of(RstStreamFrame)}

    def events_of(self, kind: type[E]) -> list[E]:
        """The h2 events of one type."""
        return [e for e in self.events if isinstance(e, kind)]

    # ------------------------------------------------------------ dispatch

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            assert event.headers is not None
            headers = [(_str(k), _str(v)) for k, v in event.headers]
            stream = PeerStream(event.stream_id, headers)
            last = self.goaway_last_stream_id
            stream.refused = last is not None and stream.stream_id > last
            self.streams[stream.stream_id] = stream
            if self.on_request is not None and not stream.refused:
                self.on_request(self, stream)
        elif isinstance(event, h2.events.DataReceived):
            assert event.data is not None
            stream = self.streams[event.stream_id]
            stream.data += event.data
            size = event.flow_controlled_length or 0
            if self.auto_window:
                if size:
                    self.h2.acknowledge_received_data(size, event.stream_id)
            else:
                stream.unacked += size
            messages, end = split_messages(memoryview(stream.data)[stream._parsed :])
            stream._parsed += end
            for message in messages:
                stream.messages.append(message)
                if self.on_message is not None and not stream.refused:
                    self.on_message(self, stream, message)
        elif isinstance(event, h2.events.StreamEnded):
            assert event.stream_id is not None
            stream = self.streams[event.stream_id]
            stream.ended = True
            if self.handler is not None and not stream.refused and not stream.finished:
                self.handler(self, stream)
        elif isinstance(event, h2.events.StreamReset):
            assert event.stream_id is not None
            stream_or_none = self.streams.get(event.stream_id)
            if stream_or_none is not None:
                stream_or_none.reset_code = int(event.error_code or 0)
                stream_or_none._outbox.clear()

    # ------------------------------------------------------------ sending

    def _queue(self, stream_id: int, item: _Out) -> None:
        self.streams[stream_id]._outbox.append(item)
        self._pump()
        self._flush()
        self._notify()

    def _pump(self) -> None:
        """Send what the client's windows allow, stream by stream, in order."""
        for stream in self.streams.values():
            outbox = stream._outbox
            while outbox:
                item = outbox[0]
                try:
                    if item.kind == "headers":
                        self._send_headers_now(stream, item)
                    elif not self._send_data_now(stream, item):
                        break
                except h2.exceptions.StreamClosedError:
                    outbox.clear()  # the client reset the stream meanwhile
                    break
                outbox.popleft()
                if item.end_stream:
                    stream.finished = True

    def _send_data_now(self, stream: PeerStream, item: _Out) -> bool:
        """Send as much of ``item`` as fits; ``True`` once all of it went."""
        sid = stream.stream_id
        while True:
            overhead = 0 if item.pad is None else item.pad + 1
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            room -= overhead
            if room < min(len(item.data), 1):
                return False
            chunk = item.data[:room]
            last = len(chunk) == len(item.data)
            self.h2.send_data(sid, chunk, end_stream=item.end_stream and last, pad_length=item.pad)
            item.data = item.data[len(chunk) :]
            item.pad = None  # padding goes on the first frame only
            if last:
                return True

    def _send_headers_now(self, stream: PeerStream, item: _Out) -> None:
        sid = stream.stream_id
        if item.split is None:
            self.h2.send_headers(sid, item.headers, end_stream=item.end_stream)
            return
        # h2 encodes the block (so its HPACK state stays right); we re-frame it.
        self._flush()
        self.h2.send_headers(sid, item.headers, end_stream=item.end_stream)
        raw = bytearray(self.h2.data_to_send())
        frames = _parse_frames(raw)  # HEADERS, and CONTINUATION if h2 had to split it
        assert isinstance(frames[0], HeadersFrame)
        assert not raw
        block = b"".join(getattr(f, "data", b"") for f in frames)
        end_stream = "END_STREAM" in frames[0].flags
        self.send_header_block(sid, block, end_stream=end_stream, split=item.split)

    def send_header_block(
        self, stream_id: int, block: bytes, *, end_stream: bool = False, split: int = 16_384
    ) -> None:
        """
        Send an encoded header block as HEADERS + CONTINUATION frames of ``split`` bytes.

        Raw: h2 does not know. Encode ``block`` with ``self.h2.encoder`` to keep
        the HPACK state of both sides in step.
        """
        chunks = [block[i : i + split] for i in range(0, len(block), split)] or [b""]
        first = HeadersFrame(stream_id, chunks[0])
        if end_stream:
            first.flags.add("END_STREAM")
        if len(chunks) == 1:
            first.flags.add("END_HEADERS")
        frames: list[Frame] = [first]
        for i, chunk in enumerate(chunks[1:], 2):
            cont = ContinuationFrame(stream_id, chunk)
            if i == len(chunks):
                cont.flags.add("END_HEADERS")
            frames.append(cont)
        self.send_raw(b"".join(f.serialize() for f in frames))

    def send_headers(
        self,
        stream_id: int,
        headers: Iterable[tuple[str, str]] = GRPC_HEADERS,
        *,
        end_stream: bool = False,
        split: int | None = None,
    ) -> None:
        """
        Response headers (``split``: cut the block into CONTINUATION frames of that size).

        Queued behind the stream's pending DATA, like everything per stream.
        """
        self._queue(
            stream_id, _Out("headers", headers=list(headers), end_stream=end_stream, split=split)
        )

    def send_data(
        self, stream_id: int, data: bytes, *, end_stream: bool = False, pad: int | None = None
    ) -> None:
        """Raw DATA bytes (gRPC-framed or not), cut only where windows or frame size require."""
        self._queue(stream_id, _Out("data", data=data, end_stream=end_stream, pad=pad))

    def send_messages(self, stream_id: int, *messages: bytes, end_stream: bool = False) -> None:
        """gRPC messages, in one DATA run."""
        self.send_data(stream_id, b"".join(map(grpc_frame, messages)), end_stream=end_stream)

    def end_stream(self, stream_id: int) -> None:
        """An empty DATA frame with END_STREAM (no trailers)."""
        self.send_data(stream_id, b"", end_stream=True)

    @staticmethod
    def status_headers(
        status: int | None, message: str | None, extra: Iterable[tuple[str, str]] = ()
    ) -> list[tuple[str, str]]:
        """``grpc-status`` and ``grpc-message`` (each left out when ``None``), then ``extra``."""
        headers = [] if status is None else [("grpc-status", str(int(status)))]
        if message is not None:
            headers.append(("grpc-message", message))
        headers.extend(extra)
        return headers

    def send_trailers(
        self,
        stream_id: int,
        status: int | None = 0,
        message: str | None = "",
        *,
        extra: Iterable[tuple[str, str]] = (),
        split: int | None = None,
    ) -> None:
        """Trailers ending the stream; ``None`` leaves ``grpc-status``/``grpc-message`` out."""
        headers = self.status_headers(status, message, extra)
        self.send_headers(stream_id, headers, end_stream=True, split=split)

    def trailers_only(
        self,
        stream_id: int,
        status: int,
        message: str | None = None,
        *,
        extra: Iterable[tuple[str, str]] = (),
    ) -> None:
        """A trailers-only response: one HEADERS frame with ``:status`` and ``grpc-status``."""
        headers = [*GRPC_HEADERS, *self.status_headers(status, message, extra)]
        self.send_headers(stream_id, headers, end_stream=True)

    def reply(self, stream_id: int, *messages: bytes, status: int = 0, message: str = "") -> None:
        """A whole response: headers, ``messages``, trailers."""
        self.send_headers(stream_id)
        if messages:
            self.send_messages(stream_id, *messages)
        self.send_trailers(stream_id, status, message)

    def reset_stream(self, stream_id: int, code: int) -> None:
        """RST_STREAM now (not queued behind DATA)."""
        stream = self.streams[stream_id]
        stream._outbox.clear()
        stream.finished = True
        self.h2.reset_stream(stream_id, code)
        self._flush()
        self._notify()

    def goaway(
        self, last_stream_id: int | None = None, error_code: int = 0, debug: bytes = b""
    ) -> None:
        """
        GOAWAY, after which streams up to ``last_stream_id`` are still served.

        Raw (h2's ``close_connection`` would end the connection at once). Requests
        above ``last_stream_id`` are recorded but not handed to the handlers.
        """
        if last_stream_id is None:
            last_stream_id = max(self.streams, default=0)
        self.goaway_last_stream_id = last_stream_id
        frame = GoAwayFrame(0, last_stream_id, error_code, debug)
        self.send_raw(frame.serialize())

    def ping(self, payload: bytes) -> None:
        self.h2.ping(payload)
        self._flush()

    def open_window(self, increment: int, stream_id: int | None = None) -> None:
        """WINDOW_UPDATE from h2 (which then expects that much more DATA)."""
        self.h2.increment_flow_control_window(increment, stream_id)
        self._flush()

    def update_settings(self, settings: dict[int, int]) -> None:
        self.h2.update_settings(settings)
        self._flush()

    def set_header_table_size(self, size: int) -> None:
        """Resize the HPACK table; the next header block starts with a table size update."""
        self.h2.encoder.header_table_size = size

    def release_window(self) -> None:
        """Acknowledge every withheld byte (h2 then sends WINDOW_UPDATE), and auto-ack again."""
        self.auto_window = True
        for stream in self.streams.values():
            if stream.unacked:
                size, stream.unacked = stream.unacked, 0
                self.h2.acknowledge_received_data(size, stream.stream_id)
        self._flush()
        self._notify()

    def send_raw(self, data: bytes) -> None:
        """Bytes straight onto the wire (after whatever h2 has queued)."""
        self._flush()
        self._write(data)
        self._notify()


def _str(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parse_frames(buf: bytearray) -> list[Frame]:
    """Parse (and remove) the complete frames at the start of ``buf``."""
    frames: list[Frame] = []
    while len(buf) >= 9:
        length = int.from_bytes(buf[:3], "big")
        if len(buf) < 9 + length:
            break
        header = memoryview(bytes(buf[:9]))
        body = memoryview(bytes(buf[9 : 9 + length]))
        del buf[: 9 + length]
        try:
            frame, _ = Frame.parse_frame_header(header)
            frame.parse_body(body)
        except HyperframeError:
            # Malformed (e.g. a PING of 7 bytes): keep it, typed by its raw header.
            sid = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
            frame = ExtensionFrame(header[3], sid, flag_byte=header[4], body=bytes(body))
        frames.append(frame)
    return frames

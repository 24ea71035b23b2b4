"""
A sans-IO HTTP/2 client core, written for gRPC (and one plain ``GET``, below).

Bytes go in through :meth:`H2ClientProtocol.receive_data`, which returns events
(:mod:`._h2events`); bytes to write come out of :meth:`H2ClientProtocol.data_to_send`
(built by :mod:`._h2frames`). There is no ``await`` and no I/O here. RFC 9113
section numbers are cited where a rule is not obvious.

What it does, and what it leaves out:

* streams are only ever opened by us (odd IDs); server push is disabled;
* request headers arrive pre-encoded (see :mod:`._headers`), so the encoder side
  of HPACK has no state; responses go through one ``hpack.Decoder``
  (:class:`._headers.ResponseHeaders`);
* DATA payloads are cut into gRPC messages here, per stream, so that flow
  control can be acknowledged per *message consumed* rather than per byte
  received: the connection window is returned on receipt (one slow stream must
  not starve the others), each stream's window when its consumer takes a
  message. A message larger than the stream window is granted window in
  advance ("credit"), which later acknowledgements repay.
* priority is ignored.

Besides gRPC calls, a stream can carry one plain HTTP request (:meth:`start_request`, for
etcd's ``/version``, ``/health`` and ``/metrics`` over TLS): its DATA is not cut into
messages but reported as it comes (:class:`Data`), with the same flow control.
"""

from __future__ import annotations

from ._framing import FramingError, MessageDecoder, encode
from ._h2events import (
    Data,
    Event,
    GoAway,
    Headers,
    Message,
    PingAck,
    Reset,
    StreamError,
    Trailers,
    WindowOpened,
)
from ._h2frames import (
    BDP_PING_PAYLOAD,
    CONTINUATION,
    DATA,
    DEFAULT_MAX_FRAME,
    DEFAULT_WINDOW,
    FLAG_ACK,
    FLAG_END_HEADERS,
    FLAG_END_STREAM,
    FLAG_PADDED,
    FLAG_PRIORITY,
    GOAWAY,
    GOAWAY_HEAD,
    HEADER,
    HEADERS,
    MAX_WINDOW,
    PING,
    PRIORITY,
    PUSH_PROMISE,
    RST_STREAM,
    SETTING,
    SETTINGS,
    SETTINGS_ENABLE_PUSH,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SETTINGS_MAX_CONCURRENT_STREAMS,
    SETTINGS_MAX_FRAME_SIZE,
    U32,
    WINDOW_UPDATE,
    ErrorCode,
    ProtocolError,
    frame,
    goaway,
    header_frames,
    ping,
    preface,
    rst_stream,
    settings_ack,
    window_update,
)
from ._headers import ResponseHeaders


class _Stream:
    __slots__ = (
        "credit",
        "decoder",
        "end_pending",
        "headers_received",
        "id",
        "local_closed",
        "pending",
        "raw",
        "recv_window",
        "remote_closed",
        "send_window",
        "unacked",
    )

    def __init__(
        self,
        stream_id: int,
        send_window: int,
        recv_window: int,
        max_message: int,
        raw: bool = False,
    ):
        self.id = stream_id
        self.raw = raw  # a plain HTTP request: DATA is the body, not gRPC messages
        self.send_window = send_window
        self.recv_window = recv_window
        self.unacked = 0
        self.credit = 0
        self.decoder = MessageDecoder(max_message)
        self.pending = bytearray()
        self.end_pending = False
        self.local_closed = False
        self.remote_closed = False
        self.headers_received = False


def _interim(headers: list[tuple[str, str]]) -> bool:
    """An informational (1xx) response."""
    return any(name == ":status" and value[:1] == "1" for name, value in headers)


class H2ClientProtocol:
    """
    The state of one HTTP/2 client connection.

    :param initial_window: our per-stream receive window (``SETTINGS_INITIAL_WINDOW_SIZE``)
    :param connection_window: our connection-level receive window
    :param max_receive_message: the largest gRPC message accepted from the peer
    """

    def __init__(
        self,
        *,
        initial_window: int = 1 << 20,
        connection_window: int = 16 << 20,
        max_receive_message: int = 2**31 - 1,
    ) -> None:
        if not DEFAULT_WINDOW <= initial_window <= MAX_WINDOW:
            raise ValueError(f"initial_window must be in [65535, 2**31-1], got {initial_window}")
        self._local_initial_window = initial_window
        self._stream_ack_threshold = max(initial_window // 4, 1)
        self._conn_window_target = max(connection_window, DEFAULT_WINDOW)
        self._conn_ack_threshold = max(self._conn_window_target // 4, 1)
        self._max_receive_message = max_receive_message

        self._out: list[bytes] = []
        # PING and SETTINGS acknowledgements: they need not be written at once, and
        # grpc-go pings after every response (BDP estimation), so sending each ack
        # with the next request saves a write per call.
        self._acks: list[bytes] = []
        # Acks of grpc-go's BDP pings, held back by the driver (see has_held_acks).
        self._held_acks: list[bytes] = []
        self._inbuf = b""
        self._streams: dict[int, _Stream] = {}
        self._blocked: dict[int, _Stream] = {}  # streams with data waiting for window
        self._next_stream_id = 1
        self._got_settings = False
        self._continuation: tuple[int, bool, bytearray] | None = None

        # Outbound (what the peer allows us).
        self._peer_initial_window = DEFAULT_WINDOW
        self._max_outbound_frame = DEFAULT_MAX_FRAME
        self.peer_max_concurrent_streams: int = 2**31 - 1
        self._send_conn_window = DEFAULT_WINDOW
        # Inbound.
        self._recv_conn_window = DEFAULT_WINDOW
        self._conn_unacked = 0

        self.goaway: GoAway | None = None  # received
        self.closed = False  # we sent GOAWAY or hit a connection error

        self._headers = ResponseHeaders()

        self._dispatch = {
            DATA: self._on_data,
            HEADERS: self._on_headers,
            PRIORITY: self._on_priority,
            RST_STREAM: self._on_rst_stream,
            SETTINGS: self._on_settings,
            PUSH_PROMISE: self._on_push_promise,
            PING: self._on_ping,
            GOAWAY: self._on_goaway,
            WINDOW_UPDATE: self._on_window_update,
            CONTINUATION: self._on_continuation,
        }

    # ------------------------------------------------------------------ sending

    def initiate_connection(self) -> None:
        """Queue the client preface, our SETTINGS and the connection window increase."""
        self._out.append(preface(self._local_initial_window))
        increase = self._conn_window_target - DEFAULT_WINDOW
        if increase > 0:
            self._out.append(window_update(0, increase))
            self._recv_conn_window += increase

    def data_to_send(self) -> bytes:
        """Return (and forget) every byte queued for the peer, acknowledgements first."""
        out = self._out
        if self._acks:
            out[:0] = self._acks
            self._acks.clear()
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    @property
    def settings_received(self) -> bool:
        return self._got_settings

    @property
    def has_data_to_send(self) -> bool:
        return bool(self._out or self._acks)

    @property
    def has_urgent_data(self) -> bool:
        """Something other than PING/SETTINGS acknowledgements waits to be written."""
        return bool(self._out)

    @property
    def has_acks(self) -> bool:
        """PING/SETTINGS acknowledgements wait; they may ride along with the next write."""
        return bool(self._acks)

    @property
    def has_held_acks(self) -> bool:
        """
        Acks of grpc-go's BDP pings wait until :meth:`release_held_acks`.

        grpc-go sends a BDP ping (with a WINDOW_UPDATE) on the first DATA it reads
        after its previous BDP ping was acknowledged, so acking at once costs the
        client an extra read and wake-up on nearly every call whose answer takes
        a while (a put waits for fsync). While the ack is held, no new BDP ping
        comes; the server's estimate only governs its own receive window.
        """
        return bool(self._held_acks)

    def release_held_acks(self) -> None:
        """Queue the held BDP ping acks with the others."""
        self._acks.extend(self._held_acks)
        self._held_acks.clear()

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    @property
    def stream_ids_exhausted(self) -> bool:
        """Every client stream ID has been used: the connection must be replaced."""
        return self._next_stream_id > MAX_WINDOW

    def can_open_stream(self) -> bool:
        return (
            not self.closed
            and self.goaway is None
            and len(self._streams) < self.peer_max_concurrent_streams
            and self._next_stream_id <= MAX_WINDOW
        )

    def start_call(self, header_block: bytes) -> int:
        """Open a stream with a pre-encoded request header block; return its ID."""
        if not self.can_open_stream():
            raise RuntimeError("connection cannot open a new stream")
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        self._streams[stream_id] = _Stream(
            stream_id,
            self._peer_initial_window,
            self._local_initial_window,
            self._max_receive_message,
        )
        if len(header_block) <= self._max_outbound_frame:  # inline: a call's block fits
            self._out.append(frame(HEADERS, FLAG_END_HEADERS, stream_id, header_block))
        else:
            self._out += header_frames(
                stream_id, header_block, end_stream=False, limit=self._max_outbound_frame
            )
        return stream_id

    def start_request(self, header_block: bytes) -> int:
        """
        Open a stream for one plain HTTP request without a body (``GET``); return its ID.

        The response arrives as for a call (:class:`Headers`, then :class:`Trailers`, which
        hold the whole response when it has no body), but its body as :class:`Data` pieces;
        interim (1xx) responses are skipped.
        """
        if not self.can_open_stream():
            raise RuntimeError("connection cannot open a new stream")
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        stream = _Stream(
            stream_id, self._peer_initial_window, self._local_initial_window, 0, raw=True
        )
        stream.local_closed = True
        self._streams[stream_id] = stream
        self._out += header_frames(
            stream_id, header_block, end_stream=True, limit=self._max_outbound_frame
        )
        return stream_id

    def send_message(self, stream_id: int, payload: bytes, *, end: bool = False) -> bool:
        """
        Queue one gRPC message, optionally ending our side of the stream.

        Writes as much as the flow-control windows allow; the rest waits for
        WINDOW_UPDATE. Return ``True`` when nothing is left waiting.

        :raises KeyError: if the stream is closed
        """
        stream = self._streams[stream_id]
        if stream.local_closed or stream.end_pending:
            raise RuntimeError(f"stream {stream_id} is already closed for sending")
        data = encode(payload)
        n = len(data)
        if (
            not stream.pending
            and n <= stream.send_window
            and n <= self._send_conn_window
            and n <= self._max_outbound_frame
        ):
            stream.send_window -= n
            self._send_conn_window -= n
            self._out.append(frame(DATA, FLAG_END_STREAM if end else 0, stream_id, data))
            if end:
                self._close_local(stream)
            return True
        stream.pending += data
        stream.end_pending = end
        self._flush_stream(stream)
        if stream.pending:
            self._blocked[stream_id] = stream
            return False
        return True

    def end_stream(self, stream_id: int) -> bool:
        """Half-close our side. Return ``True`` when nothing is left waiting."""
        stream = self._streams[stream_id]
        if stream.local_closed or stream.end_pending:
            return not stream.pending
        if stream.pending:
            stream.end_pending = True
            return False
        self._out.append(frame(DATA, FLAG_END_STREAM, stream_id))
        self._close_local(stream)
        return True

    def pending_send(self, stream_id: int) -> int:
        """Bytes queued on the stream but not yet written for lack of window."""
        stream = self._streams.get(stream_id)
        return len(stream.pending) if stream is not None else 0

    def _flush_stream(self, stream: _Stream) -> bool:
        """Write what the windows allow. Return ``True`` if the stream is drained."""
        pending = stream.pending
        while pending:
            n = min(len(pending), stream.send_window, self._send_conn_window)
            if n <= 0:
                return False
            n = min(n, self._max_outbound_frame)
            last = n == len(pending)
            flags = FLAG_END_STREAM if last and stream.end_pending else 0
            self._out.append(frame(DATA, flags, stream.id, bytes(pending[:n])))
            del pending[:n]
            stream.send_window -= n
            self._send_conn_window -= n
        if stream.end_pending:
            stream.end_pending = False
            self._close_local(stream)
        return True

    def _flush_blocked(self, events: list[Event]) -> None:
        for stream_id, stream in list(self._blocked.items()):
            if self._send_conn_window <= 0:
                break
            if self._flush_stream(stream):
                del self._blocked[stream_id]
                events.append(WindowOpened(stream_id))

    def _close_local(self, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            self._remove(stream)

    def _remove(self, stream: _Stream) -> None:
        self._streams.pop(stream.id, None)
        self._blocked.pop(stream.id, None)
        stream.pending.clear()

    def reset(self, stream_id: int, code: ErrorCode = ErrorCode.CANCEL) -> None:
        """Send RST_STREAM and forget the stream (a no-op if it is already closed)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        self._remove(stream)
        if not self.closed:
            self._out.append(rst_stream(stream_id, code))

    def release(self, stream_id: int) -> None:
        """The caller is done with the stream: reset it if it is still open."""
        if stream_id in self._streams:
            self.reset(stream_id, ErrorCode.CANCEL)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """``size`` bytes of the stream were consumed: return them to its window."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed:
            return
        if stream.credit:
            repaid = min(stream.credit, size)
            stream.credit -= repaid
            size -= repaid
        stream.unacked += size
        if stream.unacked >= self._stream_ack_threshold:
            self._out.append(window_update(stream_id, stream.unacked))
            stream.recv_window += stream.unacked
            stream.unacked = 0

    def ping(self, payload: bytes) -> None:
        if len(payload) != 8:
            raise ValueError("a PING payload is 8 bytes")
        self._out.append(ping(payload))

    def close(self, code: ErrorCode = ErrorCode.NO_ERROR, message: bytes = b"") -> None:
        """Queue GOAWAY; no stream may be opened afterwards."""
        if self.closed:
            return
        self.closed = True
        self._out.append(goaway(code, message))

    # ---------------------------------------------------------------- receiving

    def receive_data(self, data: bytes) -> list[Event]:
        """
        Feed bytes read from the peer; return the events they complete.

        :raises ProtocolError: for a connection error; GOAWAY is queued, and the
            connection is unusable afterwards
        """
        buf = self._inbuf + data if self._inbuf else data
        events: list[Event] = []
        view = memoryview(buf)
        pos = 0
        end = len(buf)
        dispatch = self._dispatch
        try:
            while end - pos >= 9:
                hi, lo, ftype, flags, stream_id = HEADER.unpack_from(buf, pos)
                length = (hi << 16) | lo
                if length > DEFAULT_MAX_FRAME:
                    # We never raise SETTINGS_MAX_FRAME_SIZE (section 4.2).
                    raise ProtocolError(
                        ErrorCode.FRAME_SIZE_ERROR, f"frame of {length} bytes is over 16384"
                    )
                stop = pos + 9 + length
                if stop > end:
                    break
                stream_id &= 0x7FFFFFFF
                payload = view[pos + 9 : stop]
                pos = stop
                if self._continuation is not None and ftype != CONTINUATION:
                    raise ProtocolError(
                        ErrorCode.PROTOCOL_ERROR, "expected CONTINUATION (section 6.10)"
                    )
                if not self._got_settings and ftype != SETTINGS:
                    raise ProtocolError(
                        ErrorCode.PROTOCOL_ERROR, "server preface must begin with SETTINGS"
                    )
                handler = dispatch.get(ftype)
                if handler is not None:  # unknown frame types are ignored (section 4.1)
                    handler(flags, stream_id, payload, events)
        except ProtocolError as exc:
            self._inbuf = b""
            view.release()
            self.close(exc.code, exc.message.encode()[:256])
            raise
        self._inbuf = bytes(view[pos:]) if pos < end else b""
        view.release()
        return events

    def _stream_for(self, stream_id: int, frame: str) -> _Stream | None:
        """The open stream, or ``None`` for a closed one; an idle or server stream is an error."""
        stream = self._streams.get(stream_id)
        if stream is None and (
            stream_id == 0 or stream_id % 2 == 0 or stream_id >= self._next_stream_id
        ):
            raise ProtocolError(
                ErrorCode.PROTOCOL_ERROR, f"{frame} frame on idle stream {stream_id}"
            )
        return stream

    def _stream_error(
        self,
        stream: _Stream,
        code: ErrorCode,
        message: str,
        events: list[Event],
        *,
        too_large: bool = False,
    ) -> None:
        self.reset(stream.id, code)
        events.append(StreamError(stream.id, message, too_large))

    def _on_data(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        length = len(payload)
        # Connection-level window: returned on receipt (section 6.9).
        self._recv_conn_window -= length
        if self._recv_conn_window < 0:
            raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "peer overran the connection window")
        self._conn_unacked += length
        if self._conn_unacked >= self._conn_ack_threshold:
            self._out.append(window_update(0, self._conn_unacked))
            self._recv_conn_window += self._conn_unacked
            self._conn_unacked = 0

        stream = self._stream_for(stream_id, "DATA")
        if stream is None:
            return  # a stream we reset; its data is dropped
        if flags & FLAG_PADDED:
            if not length:
                raise ProtocolError(
                    ErrorCode.PROTOCOL_ERROR, "padded DATA frame without pad length"
                )
            pad = payload[0]
            if pad >= length:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "padding exceeds the DATA frame")
            body = payload[1 : length - pad]
        else:
            body = payload
        if stream.remote_closed:
            self._stream_error(stream, ErrorCode.STREAM_CLOSED, "DATA after end of stream", events)
            return
        if not stream.headers_received:
            self._stream_error(
                stream, ErrorCode.PROTOCOL_ERROR, "DATA before response headers", events
            )
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            self._stream_error(
                stream, ErrorCode.FLOW_CONTROL_ERROR, "peer overran the stream window", events
            )
            return
        if stream.raw:
            if body:
                events.append(Data(stream_id, bytes(body), len(body)))
        else:
            try:
                messages = stream.decoder.feed(body) if body else []
            except FramingError as exc:
                too_large = "larger than max" in str(exc)
                self._stream_error(stream, ErrorCode.CANCEL, str(exc), events, too_large=too_large)
                return
            events.extend([Message(stream_id, m, len(m) + 5) for m in messages])
        overhead = length - len(body)
        if overhead:
            self.acknowledge(stream_id, overhead)
        if flags & FLAG_END_STREAM:
            if stream.decoder.buffered:
                self._stream_error(
                    stream, ErrorCode.PROTOCOL_ERROR, "stream ended inside a message", events
                )
                return
            events.append(Trailers(stream_id, []))
            self._close_remote(stream, events)
            return
        need = stream.decoder.pending
        if need > stream.recv_window:
            # A message bigger than what is left of the window: grant the rest now,
            # or the peer could never finish it. Acknowledgements repay this later.
            grant = need - stream.recv_window
            self._out.append(window_update(stream_id, grant))
            stream.recv_window += grant
            stream.credit += grant

    def _on_headers(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        if stream_id == 0:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "HEADERS on stream 0")
        start = 0
        end = len(payload)
        if flags & FLAG_PADDED:
            if not end:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "padded HEADERS without pad length")
            start = 1
            end -= payload[0]
        if flags & FLAG_PRIORITY:
            start += 5
        if end < start:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "padding exceeds the HEADERS frame")
        fragment = payload[start:end]
        end_stream = bool(flags & FLAG_END_STREAM)
        if flags & FLAG_END_HEADERS:
            self._on_header_block(stream_id, bytes(fragment), end_stream, events)
        else:
            self._continuation = (stream_id, end_stream, bytearray(fragment))

    def _on_continuation(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        cont = self._continuation
        if cont is None or cont[0] != stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "unexpected CONTINUATION frame")
        cont[2].extend(payload)
        if len(cont[2]) > 1 << 20:
            raise ProtocolError(ErrorCode.ENHANCE_YOUR_CALM, "header block over 1 MiB")
        if flags & FLAG_END_HEADERS:
            self._continuation = None
            self._on_header_block(stream_id, bytes(cont[2]), cont[1], events)

    def _on_header_block(
        self, stream_id: int, block: bytes, end_stream: bool, events: list[Event]
    ) -> None:
        # Always decode, even for a stream we dropped: the HPACK state is shared.
        headers = self._headers.decode(block)
        stream = self._stream_for(stream_id, "HEADERS")
        if stream is None:
            return
        if stream.remote_closed:
            self._stream_error(
                stream, ErrorCode.STREAM_CLOSED, "HEADERS after end of stream", events
            )
            return
        if not stream.headers_received:
            if stream.raw and _interim(headers):
                return  # a 1xx response: the final one follows (RFC 9113 section 8.1)
            stream.headers_received = True
            if not end_stream:
                events.append(Headers(stream_id, headers))
                return
        elif not end_stream:
            self._stream_error(
                stream, ErrorCode.PROTOCOL_ERROR, "trailers without END_STREAM", events
            )
            return
        elif stream.decoder.buffered:
            self._stream_error(
                stream, ErrorCode.PROTOCOL_ERROR, "stream ended inside a message", events
            )
            return
        events.append(Trailers(stream_id, headers))
        self._close_remote(stream, events)

    def _close_remote(self, stream: _Stream, events: list[Event]) -> None:
        stream.remote_closed = True
        if stream.local_closed:
            self._remove(stream)
        elif stream.pending or stream.end_pending:
            # The server is done while our request still waits for window: what we
            # wanted to send is moot. Close our side too, or the stream would stay
            # half-open on the server and count against its stream limit.
            self.reset(stream.id, ErrorCode.NO_ERROR)
            events.append(WindowOpened(stream.id))

    def _on_priority(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        if len(payload) != 5:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "PRIORITY frame is not 5 bytes")

    def _on_rst_stream(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        if len(payload) != 4:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "RST_STREAM frame is not 4 bytes")
        stream = self._stream_for(stream_id, "RST_STREAM")
        if stream is None:
            return
        (code,) = U32.unpack_from(payload)
        self._remove(stream)
        events.append(Reset(stream_id, code))

    def _on_settings(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        if stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & FLAG_ACK:
            if len(payload):
                raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        self._got_settings = True
        for offset in range(0, len(payload), 6):
            key, value = SETTING.unpack_from(payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "initial window over 2**31-1")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "stream window overflow")
            elif key == SETTINGS_MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME <= value <= 16_777_215:
                    raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"bad MAX_FRAME_SIZE {value}")
                self._max_outbound_frame = value
            elif key == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.peer_max_concurrent_streams = value
            elif key == SETTINGS_ENABLE_PUSH and value > 1:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"bad ENABLE_PUSH {value}")
            # HEADER_TABLE_SIZE: our requests never use the dynamic table.
            # MAX_HEADER_LIST_SIZE: advisory; our request headers are small.
        self._acks.append(settings_ack())
        self._flush_blocked(events)

    def _on_push_promise(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "PUSH_PROMISE although push is disabled")

    def _on_ping(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        if stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "PING frame is not 8 bytes")
        if flags & FLAG_ACK:
            events.append(PingAck(bytes(payload)))
        elif not self.closed:
            ack = ping(bytes(payload), ack=True)
            if payload == BDP_PING_PAYLOAD:
                self._held_acks.append(ack)
            else:
                self._acks.append(ack)

    def _on_goaway(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        if stream_id:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "GOAWAY on a stream")
        if len(payload) < 8:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "GOAWAY frame under 8 bytes")
        last_stream_id, code = GOAWAY_HEAD.unpack_from(payload)
        last_stream_id &= 0x7FFFFFFF
        goaway = GoAway(last_stream_id, code, bytes(payload[8:]))
        self.goaway = goaway
        events.append(goaway)
        # Streams above last_stream_id were not processed (section 6.8): refused.
        for sid in sorted(s for s in self._streams if s > last_stream_id):
            self._remove(self._streams[sid])
            events.append(Reset(sid, ErrorCode.REFUSED_STREAM))

    def _on_window_update(
        self, flags: int, stream_id: int, payload: memoryview, events: list[Event]
    ) -> None:
        if len(payload) != 4:
            raise ProtocolError(ErrorCode.FRAME_SIZE_ERROR, "WINDOW_UPDATE frame is not 4 bytes")
        (increment,) = U32.unpack_from(payload)
        increment &= 0x7FFFFFFF
        if stream_id == 0:
            if not increment:
                raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_conn_window += increment
            if self._send_conn_window > MAX_WINDOW:
                raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "connection window overflow")
            self._flush_blocked(events)
            return
        stream = self._stream_for(stream_id, "WINDOW_UPDATE")
        if stream is None:
            return
        if not increment:
            self._stream_error(stream, ErrorCode.PROTOCOL_ERROR, "WINDOW_UPDATE of 0", events)
            return
        stream.send_window += increment
        if stream.send_window > MAX_WINDOW:
            self._stream_error(
                stream, ErrorCode.FLOW_CONTROL_ERROR, "stream window overflow", events
            )
            return
        if stream_id in self._blocked and self._flush_stream(stream):
            del self._blocked[stream_id]
            events.append(WindowOpened(stream_id))

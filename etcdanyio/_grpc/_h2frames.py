"""
HTTP/2 as bytes (RFC 9113): frame types, flags, settings and error codes, and the frames the
client core sends, built whole. Parsing is the core's (:mod:`._protocol`).
"""

from __future__ import annotations

import enum
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

SETTINGS_HEADER_TABLE_SIZE = 0x1
SETTINGS_ENABLE_PUSH = 0x2
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_MAX_FRAME_SIZE = 0x5
SETTINGS_MAX_HEADER_LIST_SIZE = 0x6

MAX_WINDOW = 2**31 - 1
#: The payload of grpc-go's bandwidth-delay-product pings (``bdpPing`` in http2_client/server.go)
BDP_PING_PAYLOAD = bytes([2, 4, 16, 16, 9, 14, 7, 7])
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384

HEADER = struct.Struct(">BHBBL")  # length (24 bits as 8+16), type, flags, stream id
U32 = struct.Struct(">L")
SETTING = struct.Struct(">HL")
GOAWAY_HEAD = struct.Struct(">LL")


class ErrorCode(enum.IntEnum):
    """HTTP/2 error codes (RFC 9113 section 7)."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD

    @classmethod
    def name_of(cls, code: int) -> str:
        try:
            return cls(code).name
        except ValueError:
            return f"0x{code:x}"


class ProtocolError(Exception):
    """Raised by :meth:`H2ClientProtocol.receive_data` for a connection error."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def frame(ftype: int, flags: int, stream_id: int, payload: bytes | bytearray = b"") -> bytes:
    n = len(payload)
    return HEADER.pack(n >> 16, n & 0xFFFF, ftype, flags, stream_id) + payload


def preface(initial_window: int) -> bytes:
    """The client connection preface and our SETTINGS: no push, no streams from the server."""
    settings = (
        SETTING.pack(SETTINGS_ENABLE_PUSH, 0)
        + SETTING.pack(SETTINGS_MAX_CONCURRENT_STREAMS, 0)
        + SETTING.pack(SETTINGS_INITIAL_WINDOW_SIZE, initial_window)
    )
    return PREFACE + frame(SETTINGS, 0, 0, settings)


def header_frames(stream_id: int, block: bytes, *, end_stream: bool, limit: int) -> list[bytes]:
    """A header block as HEADERS, then CONTINUATION frames if it is over ``limit`` bytes."""
    flags = FLAG_END_STREAM if end_stream else 0
    if len(block) <= limit:
        return [frame(HEADERS, flags | FLAG_END_HEADERS, stream_id, block)]
    chunks = [block[i : i + limit] for i in range(0, len(block), limit)]
    out = [frame(HEADERS, flags, stream_id, chunks[0])]
    out += [frame(CONTINUATION, 0, stream_id, chunk) for chunk in chunks[1:-1]]
    out.append(frame(CONTINUATION, FLAG_END_HEADERS, stream_id, chunks[-1]))
    return out


def window_update(stream_id: int, increment: int) -> bytes:
    return HEADER.pack(0, 4, WINDOW_UPDATE, 0, stream_id) + U32.pack(increment)


def rst_stream(stream_id: int, code: int) -> bytes:
    return HEADER.pack(0, 4, RST_STREAM, 0, stream_id) + U32.pack(code)


def ping(payload: bytes, *, ack: bool = False) -> bytes:
    return frame(PING, FLAG_ACK if ack else 0, 0, payload)


def settings_ack() -> bytes:
    return frame(SETTINGS, FLAG_ACK, 0)


def goaway(code: int, debug: bytes = b"") -> bytes:
    """GOAWAY for a client: no stream of the server's was processed (last stream ID 0)."""
    return frame(GOAWAY, 0, 0, GOAWAY_HEAD.pack(0, code) + debug)

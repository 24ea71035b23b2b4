"""
The sans-IO HTTP/2 client core against a real server-side ``h2.H2Connection``.

No event loop: bytes go back and forth in plain Python (:class:`Pair`). The
peer is :class:`tests.h2peer.H2Peer` in sans-IO mode; raw frames where h2 will
not produce them.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from typing import TYPE_CHECKING

import h2.events
import hpack
import pytest
from h2.settings import SettingCodes
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from etcdanyio._grpc._h2events import (
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
from etcdanyio._grpc._h2frames import BDP_PING_PAYLOAD, PREFACE, ErrorCode, ProtocolError
from etcdanyio._grpc._headers import RequestHeaders, encode_metadata
from etcdanyio._grpc._protocol import H2ClientProtocol
from tests.h2peer import GRPC_HEADERS, H2Peer, PeerStream, frame_bytes, grpc_frame, split_messages

if TYPE_CHECKING:
    import random
    from collections.abc import Callable, Sequence

pytestmark = pytest.mark.unit

REQUEST = RequestHeaders("peer:1", tls=False, user_agent="test/1")
OK_TRAILERS = [("grpc-status", "0"), ("grpc-message", "")]
RESPONSE_HEADERS = list(GRPC_HEADERS)

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8


class Pair:
    """A client core and an h2 peer, with the bytes carried between them by hand."""

    def __init__(self, peer: H2Peer | None = None, **client_options: int) -> None:
        self.client = H2ClientProtocol(**client_options)
        self.peer = peer if peer is not None else H2Peer(handler=None)
        self.events: list[Event] = []
        self.client.initiate_connection()
        self.exchange()
        assert self.client.settings_received

    def exchange(
        self, *, ack: bool = True, chunker: Callable[[bytes], Sequence[bytes]] | None = None
    ) -> list[Event]:
        """
        Carry bytes both ways until neither side has more to say.

        ``ack``: the consumer takes every message at once (acknowledges it).
        ``chunker``: how to cut the peer's bytes before the client gets them.
        Returns the client's new events.
        """
        new: list[Event] = []
        for _ in range(10_000):
            to_peer = self.client.data_to_send()
            if to_peer:
                self.peer.receive_data(to_peer)
            to_client = self.peer.data_to_send()
            for chunk in chunker(to_client) if chunker and to_client else [to_client]:
                if not chunk:
                    continue
                events = self.client.receive_data(chunk)
                new.extend(events)
                if ack:
                    for event in events:
                        if isinstance(event, Message):
                            self.client.acknowledge(event.stream_id, event.size)
            if not to_peer and not to_client:
                self.events.extend(new)
                return new
        raise AssertionError("the two sides never went quiet")

    def open(
        self, message: bytes | None = b"request", *, path: str = "/test.Svc/Call", end: bool = True
    ) -> int:
        """Start a call (and send one message); return its stream ID once the peer has it."""
        stream_id = self.client.start_call(REQUEST.block(path))
        if message is not None:
            self.client.send_message(stream_id, message, end=end)
        self.exchange()
        return stream_id

    def stream(self, stream_id: int) -> PeerStream:
        return self.peer.streams[stream_id]

    def client_frames(self) -> list[Frame]:
        return self.peer.frames


def of_stream(events: Sequence[Event], stream_id: int) -> list[Event]:
    return [e for e in events if getattr(e, "stream_id", None) == stream_id]


def parse(data: bytes) -> list[Frame]:
    """Frames in bytes the client wrote (after the preface, if any)."""
    if data.startswith(PREFACE):
        data = data[len(PREFACE) :]
    frames = []
    pos = 0
    while pos < len(data):
        frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
        frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
        frames.append(frame)
        pos += 9 + length
    return frames


# ------------------------------------------------------------------- handshake


def test_handshake() -> None:
    client = H2ClientProtocol()
    assert client.data_to_send() == b""
    client.initiate_connection()
    assert client.has_data_to_send
    preface = client.data_to_send()
    assert preface.startswith(PREFACE)
    assert client.data_to_send() == b""
    frames = parse(preface)
    assert isinstance(frames[0], SettingsFrame)
    assert frames[0].settings == {
        SettingCodes.ENABLE_PUSH: 0,
        SettingCodes.MAX_CONCURRENT_STREAMS: 0,
        SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20,
    }
    assert isinstance(frames[1], WindowUpdateFrame)
    assert frames[1].stream_id == 0
    assert frames[1].window_increment == (16 << 20) - 65_535

    peer = H2Peer(handler=None)
    peer.receive_data(preface)
    before = client.settings_received
    events = client.receive_data(peer.data_to_send())
    assert events == []
    assert not before
    assert client.settings_received
    peer.receive_data(client.data_to_send())  # our SETTINGS ACK
    kinds = [type(e) for e in peer.events]
    assert h2.events.RemoteSettingsChanged in kinds
    assert h2.events.SettingsAcknowledged in kinds
    assert any(isinstance(e, h2.events.WindowUpdated) and e.stream_id == 0 for e in peer.events)
    assert peer.h2.remote_settings.initial_window_size == 1 << 20
    assert peer.h2.remote_settings.enable_push == 0
    assert peer.errors == []


def test_no_connection_window_update_at_the_default_size() -> None:
    client = H2ClientProtocol(initial_window=65_535, connection_window=65_535)
    client.initiate_connection()
    frames = parse(client.data_to_send())
    assert [type(f) for f in frames] == [SettingsFrame]


@pytest.mark.parametrize("window", [0, 65_534, 2**31])
def test_initial_window_out_of_range(window: int) -> None:
    with pytest.raises(ValueError, match="initial_window"):
        H2ClientProtocol(initial_window=window)


def test_server_preface_must_start_with_settings() -> None:
    client = H2ClientProtocol()
    client.initiate_connection()
    client.data_to_send()
    with pytest.raises(ProtocolError) as info:
        client.receive_data(PingFrame(0, b"12345678").serialize())
    assert info.value.code == ErrorCode.PROTOCOL_ERROR


# ----------------------------------------------------------------------- unary


def test_unary_call() -> None:
    pair = Pair()
    sid = pair.open(b"hello", path="/etcdserverpb.KV/Range")
    assert sid == 1
    request = pair.stream(sid)
    assert request.ended
    assert request.messages == [b"hello"]
    assert request.headers == [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/etcdserverpb.KV/Range"),
        (":authority", "peer:1"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", "test/1"),
    ]
    assert pair.client.open_streams == 1
    pair.peer.reply(sid, b"world")
    assert pair.exchange() == [
        Headers(sid, RESPONSE_HEADERS),
        Message(sid, b"world", 10),
        Trailers(sid, OK_TRAILERS),
    ]
    assert pair.client.open_streams == 0
    assert pair.peer.errors == []
    # Stream IDs go up by two.
    assert pair.open() == 3


def test_many_messages_in_one_data_frame_and_empty_messages() -> None:
    pair = Pair()
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_messages(sid, b"", b"a", b"", b"bc")
    pair.peer.send_trailers(sid)
    assert [e for e in pair.exchange() if isinstance(e, Message)] == [
        Message(sid, b"", 5),
        Message(sid, b"a", 6),
        Message(sid, b"", 5),
        Message(sid, b"bc", 7),
    ]


def test_trailers_only_response() -> None:
    pair = Pair()
    sid = pair.open()
    pair.peer.trailers_only(sid, 5, "etcdserver: key not found")
    assert pair.exchange() == [
        Trailers(
            sid,
            [
                *RESPONSE_HEADERS,
                ("grpc-status", "5"),
                ("grpc-message", "etcdserver: key not found"),
            ],
        )
    ]
    assert pair.client.open_streams == 0


def test_data_end_stream_without_trailers() -> None:
    pair = Pair()
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_data(sid, grpc_frame(b"last"), end_stream=True)
    assert pair.exchange() == [
        Headers(sid, RESPONSE_HEADERS),
        Message(sid, b"last", 9),
        Trailers(sid, []),
    ]
    assert pair.client.open_streams == 0


def test_data_end_stream_inside_a_message_is_a_stream_error() -> None:
    pair = Pair()
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_data(sid, grpc_frame(b"cut short")[:-2], end_stream=True)
    events = pair.exchange()
    assert events[-1] == StreamError(sid, "stream ended inside a message", False)
    assert pair.client.open_streams == 0


def test_padded_data_and_headers() -> None:
    pair = Pair()
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_data(sid, grpc_frame(b"padded"), pad=200)
    pair.peer.send_data(sid, grpc_frame(b"zero pad"), pad=0)
    pair.peer.send_trailers(sid)
    events = pair.exchange()
    assert [e for e in events if isinstance(e, Message)] == [
        Message(sid, b"padded", 11),
        Message(sid, b"zero pad", 13),
    ]
    assert isinstance(events[-1], Trailers)
    padded = [f for f in pair.peer.sent_frames if isinstance(f, DataFrame) and "PADDED" in f.flags]
    assert len(padded) == 2


def test_padded_and_priority_headers_raw() -> None:
    pair = Pair()
    sid = pair.open()
    block = pair.peer.h2.encoder.encode(RESPONSE_HEADERS)
    payload = bytes([3]) + b"\x00\x00\x00\x00\x10" + block + b"\x00" * 3
    pair.peer.send_raw(frame_bytes(HEADERS, END_HEADERS | PADDED | 0x20, sid, payload))
    assert pair.exchange() == [Headers(sid, RESPONSE_HEADERS)]


# --------------------------------------------------------- splits and scripts


def scripted_response() -> tuple[Pair, int, bytes]:
    """A fresh pair with one open call and the peer's whole response, not yet delivered."""
    pair = Pair(initial_window=65_535)
    sid = pair.open()
    peer = pair.peer
    peer.send_headers(sid, [*GRPC_HEADERS, ("x-meta", "one"), ("x-long", "v" * 300)], split=11)
    peer.send_messages(sid, b"first", b"", b"y" * 40_000)
    peer.send_data(sid, grpc_frame(b"padded"), pad=17)
    peer.ping(b"pingpong")
    peer.send_trailers(sid, 0, "", extra=[("x-trailer", "t")], split=5)
    return pair, sid, peer.data_to_send()


def feed(client: H2ClientProtocol, chunks: Sequence[bytes]) -> tuple[list[Event], bytes]:
    events: list[Event] = []
    out = bytearray()
    for chunk in chunks:
        events.extend(client.receive_data(chunk))
        out += client.data_to_send()
    return events, bytes(out)


def test_scripted_response_is_deterministic() -> None:
    _, _, one = scripted_response()
    _, _, two = scripted_response()
    assert one == two


def test_response_fed_byte_by_byte() -> None:
    pair, sid, data = scripted_response()
    reference, reference_out = feed(pair.client, [data])
    assert [type(e) for e in reference] == [Headers, Message, Message, Message, Message, Trailers]
    assert reference[-1] == Trailers(sid, [*OK_TRAILERS, ("x-trailer", "t")])
    assert PingFrame(0, b"pingpong", flags=["ACK"]).serialize() in reference_out
    pair, _, data = scripted_response()
    assert feed(pair.client, [data[i : i + 1] for i in range(len(data))]) == (
        reference,
        reference_out,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_response_split_at_random_points(data: st.DataObject) -> None:
    pair, _, raw = scripted_response()
    reference = feed(pair.client, [raw])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=30)))
    chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    pair, _, raw = scripted_response()
    assert feed(pair.client, chunks) == reference


def test_small_response_split_at_every_point() -> None:
    def build() -> tuple[H2ClientProtocol, bytes]:
        pair = Pair()
        sid = pair.open()
        pair.peer.reply(sid, b"abc", b"de")
        return pair.client, pair.peer.data_to_send()

    client, raw = build()
    reference = feed(client, [raw])
    assert len(reference[0]) == 4
    for cut in range(len(raw) + 1):
        client, raw = build()
        assert feed(client, [raw[:cut], raw[cut:]]) == reference, cut


header_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_./", max_size=12)
metadata = st.lists(st.tuples(st.sampled_from(["x-a", "x-b", "x-c"]), header_values), max_size=3)


@dataclasses.dataclass
class StreamScript:
    """What the peer does on one stream; ``kind`` is normal, trailers_only, data_end or reset."""

    kind: str
    headers: list[tuple[str, str]]
    header_split: int | None
    messages: list[bytes]
    chunks: list[bytes]  # the messages' bytes, cut into DATA runs
    pads: list[int | None]
    status: int
    message: str | None
    trailers: list[tuple[str, str]]
    trailer_split: int | None
    reset_code: int

    def ops(self, peer: H2Peer, sid: int) -> list[Callable[[], None]]:
        """The peer's actions, in order."""
        if self.kind == "trailers_only":
            return [
                functools.partial(
                    peer.trailers_only, sid, self.status, self.message, extra=self.trailers
                )
            ]
        ops: list[Callable[[], None]] = [
            functools.partial(peer.send_headers, sid, self.headers, split=self.header_split)
        ]
        for i, chunk in enumerate(self.chunks):
            end = self.kind == "data_end" and i == len(self.chunks) - 1
            pad = self.pads[i % len(self.pads)]
            ops.append(functools.partial(peer.send_data, sid, chunk, end_stream=end, pad=pad))
        if self.kind == "normal":
            ops.append(
                functools.partial(
                    peer.send_trailers,
                    sid,
                    self.status,
                    self.message,
                    extra=self.trailers,
                    split=self.trailer_split,
                )
            )
        elif self.kind == "reset":
            ops.append(functools.partial(peer.reset_stream, sid, self.reset_code))
        return ops

    def expected(self, peer: H2Peer, sid: int) -> list[Event]:
        """The client's events for the stream."""
        trailers = H2Peer.status_headers(self.status, self.message, self.trailers)
        if self.kind == "trailers_only":
            return [Trailers(sid, [*GRPC_HEADERS, *trailers])]
        messages = self.messages
        if self.kind == "reset":
            # Whatever whole messages went out before the RST_STREAM.
            sent = b"".join(
                f.data for f in peer.sent_frames if isinstance(f, DataFrame) and f.stream_id == sid
            )
            messages = split_messages(sent)[0]
        events: list[Event] = [Headers(sid, self.headers)]
        events.extend(Message(sid, m, len(m) + 5) for m in messages)
        if self.kind == "normal":
            events.append(Trailers(sid, trailers))
        elif self.kind == "data_end":
            events.append(Trailers(sid, []))
        else:
            events.append(Reset(sid, self.reset_code))
        return events


@st.composite
def stream_scripts(draw: st.DrawFn) -> StreamScript:
    messages = draw(
        st.lists(
            st.one_of(st.binary(max_size=50), st.integers(0, 90_000).map(lambda n: b"m" * n)),
            max_size=4,
        )
    )
    wire = b"".join(map(grpc_frame, messages))
    cuts = sorted(draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    return StreamScript(
        kind=draw(st.sampled_from(["normal", "normal", "trailers_only", "data_end", "reset"])),
        headers=[*GRPC_HEADERS, *draw(metadata)],
        header_split=draw(st.none() | st.integers(1, 20)),
        messages=messages,
        chunks=[c for c in chunks if c] or [b""],
        pads=draw(st.lists(st.none() | st.integers(0, 255), min_size=1, max_size=5)),
        status=draw(st.sampled_from([0, 0, 5, 14])),
        message=draw(st.none() | header_values),
        trailers=draw(metadata),
        trailer_split=draw(st.none() | st.integers(1, 20)),
        reset_code=draw(st.sampled_from([0, 2, 7, 8, 11])),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scripts=st.lists(stream_scripts(), min_size=1, max_size=3),
    data=st.data(),
    rng=st.randoms(use_true_random=False),
)
def test_random_response_scripts(
    scripts: list[StreamScript], data: st.DataObject, rng: random.Random
) -> None:
    """Random valid responses, interleaved over streams, windows tight, bytes cut anyhow."""
    pair = Pair(initial_window=65_535, connection_window=65_535)
    sids = [pair.open(f"req{i}".encode()) for i in range(len(scripts))]
    ops = [s.ops(pair.peer, sid) for s, sid in zip(scripts, sids, strict=True)]
    order = data.draw(st.permutations([i for i, o in enumerate(ops) for _ in o]))

    def chunker(raw: bytes) -> list[bytes]:
        out, pos = [], 0
        while pos < len(raw):
            step = rng.choice([1, 7, 100, 5000, len(raw)])
            out.append(raw[pos : pos + step])
            pos += step
        return out

    for index in order:
        ops[index].pop(0)()
        if rng.random() < 0.5:
            pair.exchange(chunker=chunker)
    pair.exchange(chunker=chunker)
    for script, sid in zip(scripts, sids, strict=True):
        assert of_stream(pair.events, sid) == script.expected(pair.peer, sid)
    assert pair.client.open_streams == 0
    assert not pair.client.closed
    assert pair.peer.errors == []


# ------------------------------------------------------------- header blocks


def test_header_blocks_split_across_continuation() -> None:
    pair = Pair()
    sid = pair.open()
    headers = [*GRPC_HEADERS, ("x-a", "1" * 50), ("x-b", "2")]
    pair.peer.send_headers(sid, headers, split=3)
    pair.peer.send_messages(sid, b"m")
    pair.peer.send_trailers(sid, 0, "", extra=[("x-t", "t" * 40)], split=1)
    events = pair.exchange()
    assert events == [
        Headers(sid, headers),
        Message(sid, b"m", 6),
        Trailers(sid, [*OK_TRAILERS, ("x-t", "t" * 40)]),
    ]
    continuations = [f for f in pair.peer.sent_frames if f.type == CONTINUATION]
    assert len(continuations) > 10


def test_trailers_only_split_across_continuation() -> None:
    pair = Pair()
    sid = pair.open()
    block = pair.peer.h2.encoder.encode([*GRPC_HEADERS, ("grpc-status", "14")])
    pair.peer.send_header_block(sid, block, end_stream=True, split=2)
    assert pair.exchange() == [Trailers(sid, [*GRPC_HEADERS, ("grpc-status", "14")])]
    assert pair.client.open_streams == 0


def test_header_block_larger_than_a_frame() -> None:
    """h2 itself cuts a block over 16 KiB into HEADERS + CONTINUATION."""
    pair = Pair()
    sid = pair.open()
    headers = [*GRPC_HEADERS, ("x-big", "b" * 40_000)]
    pair.peer.send_headers(sid, headers)
    assert pair.exchange() == [Headers(sid, headers)]
    assert any(f.type == CONTINUATION for f in pair.peer.sent_frames)


def test_request_header_block_larger_than_a_frame() -> None:
    """Our own request block goes out as HEADERS + CONTINUATION when it is over MAX_FRAME_SIZE."""
    pair = Pair()
    extra = encode_metadata([("x-big", "b" * 40_000)])
    sid = pair.client.start_call(REQUEST.block("/p", None, extra))
    pair.client.send_message(sid, b"", end=True)
    pair.exchange()
    assert pair.stream(sid).header("x-big") == "b" * 40_000
    headers = pair.peer.frames_of(HeadersFrame, sid)
    assert len(headers) == 1
    assert "END_HEADERS" not in headers[0].flags
    assert [f.type for f in pair.peer.frames if f.stream_id == sid][:4] == [
        HEADERS,
        CONTINUATION,
        CONTINUATION,
        DATA,
    ]


def sent_header_blocks(peer: H2Peer, stream_id: int) -> list[bytes]:
    return [
        f.data for f in peer.sent_frames if isinstance(f, HeadersFrame) and f.stream_id == stream_id
    ]


def test_dynamic_table_references() -> None:
    """h2 indexes what it sends; identical bytes must decode to what the table holds now."""
    pair = Pair()
    peer = pair.peer
    results = {}
    for value in ["a", "a", "b", "b"]:
        sid = pair.open()
        peer.send_headers(sid, [(":status", "200"), ("x-v", value)])
        peer.end_stream(sid)
        events = pair.exchange()
        assert events[0] == Headers(sid, [(":status", "200"), ("x-v", value)])
        results[sid] = sent_header_blocks(peer, sid)[0]
    # The second "a" and the second "b" went out as the very same bytes (index 62).
    assert results[3] == results[7]
    assert results[1] != results[3]


def test_dynamic_table_size_updates() -> None:
    pair = Pair()
    peer = pair.peer
    headers = [*GRPC_HEADERS, ("x-v", "value")]

    def round_trip() -> None:
        sid = pair.open()
        peer.send_headers(sid, headers)
        peer.send_trailers(sid)
        assert pair.exchange() == [Headers(sid, headers), Trailers(sid, OK_TRAILERS)]

    round_trip()
    round_trip()
    peer.set_header_table_size(0)  # evicts everything
    round_trip()
    peer.set_header_table_size(60)  # room for one small entry
    round_trip()
    round_trip()
    peer.set_header_table_size(4096)
    round_trip()
    round_trip()
    blocks = [b for f in peer.sent_frames if isinstance(f, HeadersFrame) for b in [f.data]]
    size_updates = [b for b in blocks if b[0] & 0xE0 == 0x20]
    assert len(size_updates) == 3
    assert pair.peer.errors == []


def test_cached_block_with_table_size_update() -> None:
    """
    A block with a size update but no insertion leaves the entry list as it was,
    so it is cached; replaying it from the cache skips the resize.
    """
    pair = Pair()
    peer = pair.peer

    def respond(headers: list[tuple[str, str]], size: int | None = None) -> list[Event]:
        sid = pair.open()
        if size is not None:
            peer.set_header_table_size(size)
        peer.send_headers(sid, headers, end_stream=True)
        return pair.exchange()

    def decoded(events: list[Event]) -> list[list[tuple[str, str]]]:
        return [e.headers for e in events if isinstance(e, Trailers)]

    ok = [(":status", "200")]
    respond(ok, 100)  # [size 100] :status 200
    respond(ok, 4096)  # [size 4096] :status 200      (cached: the entries are unchanged)
    respond([(":status", "404")], 100)  # [size 100] :status 404
    respond(ok, 4096)  # the same bytes as the second block: must resize to 4096 again
    big = [(":status", "200"), ("x-big", "v" * 150)]
    assert decoded(respond(big)) == [big]  # inserted at 4096 (evicted at once at 100)
    assert decoded(respond(big)) == [big]  # now an index into the table: COMPRESSION_ERROR


def test_bad_hpack_block_is_a_compression_error() -> None:
    pair = Pair()
    sid = pair.open()
    block = hpack.Encoder().encode(RESPONSE_HEADERS) + b"\xff\xff\xff\x7f"  # index 2**28
    with pytest.raises(ProtocolError) as info:
        pair.client.receive_data(frame_bytes(HEADERS, END_HEADERS, sid, block))
    assert info.value.code == ErrorCode.COMPRESSION_ERROR


# ----------------------------------------------------- resets and goaway


@pytest.mark.parametrize("code", [ErrorCode.CANCEL, ErrorCode.REFUSED_STREAM, 0x1234])
def test_rst_stream_from_the_peer(code: int) -> None:
    pair = Pair()
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_data(sid, grpc_frame(b"x" * 10)[:7])
    pair.peer.reset_stream(sid, code)
    assert pair.exchange() == [Headers(sid, RESPONSE_HEADERS), Reset(sid, code)]
    assert pair.client.open_streams == 0
    # Late frames for the stream are ignored, not connection errors.
    late = (
        frame_bytes(DATA, 0, sid, grpc_frame(b"late"))
        + frame_bytes(WINDOW_UPDATE, 0, sid, struct.pack(">L", 10))
        + frame_bytes(RST_STREAM, 0, sid, struct.pack(">L", 8))
    )
    assert pair.client.receive_data(late) == []
    assert not pair.client.closed


def test_client_reset_and_release() -> None:
    pair = Pair()
    one = pair.open(end=False)
    two = pair.open()
    pair.client.reset(one, ErrorCode.CANCEL)
    pair.client.release(two)
    pair.client.release(two)  # already gone: a no-op
    pair.exchange()
    assert pair.peer.client_resets() == {one: ErrorCode.CANCEL, two: ErrorCode.CANCEL}
    assert pair.client.open_streams == 0
    with pytest.raises(KeyError):
        pair.client.send_message(one, b"x")


def test_half_close_and_send_after_end() -> None:
    pair = Pair()
    sid = pair.open(b"a", end=False)
    pair.client.send_message(sid, b"b")
    assert pair.client.end_stream(sid)
    assert pair.client.end_stream(sid)  # idempotent
    with pytest.raises(RuntimeError, match="closed for sending"):
        pair.client.send_message(sid, b"c")
    pair.exchange()
    assert pair.stream(sid).messages == [b"a", b"b"]
    assert pair.stream(sid).ended
    assert len([f for f in pair.peer.frames_of(DataFrame, sid) if "END_STREAM" in f.flags]) == 1


def test_goaway_refuses_streams_above_last_stream_id() -> None:
    pair = Pair()
    s1, s3, s5 = pair.open(), pair.open(), pair.open()
    assert (s1, s3, s5) == (1, 3, 5)
    pair.peer.goaway(last_stream_id=3, error_code=0, debug=b"graceful")
    assert pair.exchange() == [
        GoAway(3, 0, b"graceful"),
        Reset(5, ErrorCode.REFUSED_STREAM),
    ]
    assert pair.client.goaway == GoAway(3, 0, b"graceful")
    assert not pair.client.can_open_stream()
    with pytest.raises(RuntimeError, match="cannot open"):
        pair.client.start_call(REQUEST.block("/p"))
    # Streams at or below last_stream_id go on.
    pair.peer.reply(s3, b"three")
    pair.peer.reply(s1, b"one")
    events = pair.exchange()
    assert of_stream(events, s1) == [
        Headers(s1, RESPONSE_HEADERS),
        Message(s1, b"one", 8),
        Trailers(s1, OK_TRAILERS),
    ]
    assert of_stream(events, s3)[-1] == Trailers(s3, OK_TRAILERS)
    assert pair.client.open_streams == 0
    assert not pair.client.closed  # the peer said goodbye; we did not send GOAWAY


def test_goaway_with_error_and_no_streams() -> None:
    pair = Pair()
    pair.peer.goaway(last_stream_id=0, error_code=ErrorCode.ENHANCE_YOUR_CALM, debug=b"pings")
    assert pair.exchange() == [GoAway(0, ErrorCode.ENHANCE_YOUR_CALM, b"pings")]


def test_client_close_sends_goaway_once() -> None:
    pair = Pair()
    pair.client.close()
    pair.client.close()
    pair.exchange()
    goaways = pair.peer.frames_of(GoAwayFrame)
    assert len(goaways) == 1
    assert goaways[0].error_code == 0
    assert goaways[0].last_stream_id == 0
    assert any(isinstance(e, h2.events.ConnectionTerminated) for e in pair.peer.events)
    assert not pair.client.can_open_stream()


# ------------------------------------------------------------- flow control


def data_received(peer: H2Peer, stream_id: int) -> int:
    return sum(len(f.data) for f in peer.frames_of(DataFrame, stream_id))


def test_large_request_waits_for_window_updates() -> None:
    pair = Pair(H2Peer(handler=None, auto_window=False))
    payload = bytes(range(256)) * 4096  # 1 MiB
    sid = pair.client.start_call(REQUEST.block("/p"))
    assert pair.client.send_message(sid, payload, end=True) is False
    events = pair.exchange()
    assert events == []
    # h2's default windows: 65535 on the stream and on the connection.
    assert data_received(pair.peer, sid) == 65_535
    assert pair.client.pending_send(sid) == len(payload) + 5 - 65_535
    assert all(len(f.data) <= 16_384 for f in pair.peer.frames_of(DataFrame, sid))
    assert not pair.stream(sid).ended
    pair.peer.release_window()
    events = pair.exchange()
    assert events == [WindowOpened(sid)]
    assert pair.stream(sid).messages == [payload]
    assert pair.stream(sid).ended
    assert pair.client.pending_send(sid) == 0
    pair.peer.reply(sid, b"ok")
    pair.exchange()
    assert pair.client.open_streams == 0


def test_window_from_connection_update_and_settings() -> None:
    """Blocked by the connection window, the stream window, then both: each opens it."""
    pair = Pair(H2Peer(handler=None, auto_window=False))
    peer = pair.peer
    sid = pair.client.start_call(REQUEST.block("/p"))
    pair.client.send_message(sid, b"z" * 300_000, end=True)
    pair.exchange()
    assert data_received(peer, sid) == 65_535
    # More connection window: the stream window (65535) still holds it back.
    peer.open_window(1 << 20)
    assert pair.exchange() == []
    assert data_received(peer, sid) == 65_535
    # A bigger SETTINGS_INITIAL_WINDOW_SIZE applies its delta to open streams.
    peer.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 200_000})
    assert pair.exchange() == []
    assert data_received(peer, sid) == 200_000
    # A smaller one can make the window negative: nothing goes until it is back above 0.
    peer.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 100_000})
    pair.exchange()
    peer.open_window(60_000, sid)  # -100000 -> -40000
    assert pair.exchange() == []
    assert data_received(peer, sid) == 200_000
    peer.open_window(50_000, sid)  # -> 10000
    assert pair.exchange() == []
    assert data_received(peer, sid) == 210_000
    peer.release_window()
    assert pair.exchange() == [WindowOpened(sid)]
    assert pair.stream(sid).messages == [b"z" * 300_000]


def test_max_frame_size_from_settings() -> None:
    peer = H2Peer(
        handler=None,
        settings={SettingCodes.MAX_FRAME_SIZE: 65_536, SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20},
    )
    pair = Pair(peer)
    peer.open_window(1 << 20)
    pair.exchange()
    sid = pair.open(b"f" * 200_000)
    sizes = [len(f.data) for f in peer.frames_of(DataFrame, sid)]
    assert max(sizes) == 65_536
    assert sum(sizes) == 200_005
    assert pair.stream(sid).messages == [b"f" * 200_000]


def test_max_concurrent_streams_from_settings() -> None:
    pair = Pair(H2Peer(handler=None, settings={SettingCodes.MAX_CONCURRENT_STREAMS: 2}))
    assert pair.client.peer_max_concurrent_streams == 2
    one = pair.open()
    pair.open()
    assert not pair.client.can_open_stream()
    pair.peer.reply(one)
    pair.exchange()
    assert pair.client.can_open_stream()


def test_response_larger_than_the_stream_window_completes() -> None:
    """Credit: a message bigger than the window is let in before anything is consumed."""
    pair = Pair(initial_window=65_535)
    sid = pair.open()
    big = b"B" * 200_000
    pair.peer.send_headers(sid)
    pair.peer.send_messages(sid, big)
    pair.peer.send_messages(sid, b"small")
    pair.peer.send_trailers(sid)
    events = pair.exchange(ack=False)
    assert events == [Headers(sid, RESPONSE_HEADERS), Message(sid, big, 200_005)]
    # The window is spent and nothing was consumed: the next message waits.
    pair.client.acknowledge(sid, 200_005)
    assert pair.exchange(ack=False) == [Message(sid, b"small", 10), Trailers(sid, OK_TRAILERS)]


def test_acknowledge_sends_window_update_at_the_threshold() -> None:
    pair = Pair(initial_window=1 << 16)  # threshold: a quarter, 16384
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_messages(sid, *[bytes([i]) * 1000 for i in range(20)])
    events = pair.exchange(ack=False)
    messages = [e for e in events if isinstance(e, Message)]
    assert len(messages) == 20
    pair.client.data_to_send()
    for i, message in enumerate(messages):
        pair.client.acknowledge(sid, message.size)
        out = pair.client.data_to_send()
        if i < 16:  # 16 * 1005 = 16080 < 16384
            assert out == b""
        elif i == 16:
            assert out == WindowUpdateFrame(sid, 17 * 1005).serialize()
        else:
            assert out == b""


def test_connection_window_returned_on_receipt() -> None:
    """Without any acknowledgement, the connection window comes back (a quarter at a time)."""
    pair = Pair(connection_window=65_535)
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_messages(sid, b"c" * 100_000)
    pair.peer.send_trailers(sid)
    events = pair.exchange(ack=False)
    assert events[-1] == Trailers(sid, OK_TRAILERS)
    updates = [f for f in pair.peer.frames_of(WindowUpdateFrame) if f.stream_id == 0]
    assert updates
    assert all(f.window_increment >= 65_535 // 4 for f in updates)


def test_message_larger_than_max_receive_message() -> None:
    pair = Pair(max_receive_message=100)
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_messages(sid, b"x" * 100)
    pair.peer.send_messages(sid, b"x" * 101)
    events = pair.exchange()
    assert events[:2] == [Headers(sid, RESPONSE_HEADERS), Message(sid, b"x" * 100, 105)]
    assert len(events) == 3
    error = events[2]
    assert isinstance(error, StreamError)
    assert error.stream_id == sid
    assert error.too_large
    assert "101" in error.message
    assert pair.peer.streams[sid].reset_code == ErrorCode.CANCEL
    assert pair.client.open_streams == 0
    # The connection goes on.
    sid = pair.open()
    pair.peer.reply(sid, b"fits")
    assert pair.exchange()[-1] == Trailers(sid, OK_TRAILERS)


def test_compressed_message_is_a_stream_error() -> None:
    pair = Pair()
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.peer.send_data(sid, grpc_frame(b"zz", compressed=True))
    events = pair.exchange()
    assert isinstance(events[-1], StreamError)
    assert not events[-1].too_large
    assert pair.peer.streams[sid].reset_code is not None


def test_stream_window_overrun_is_a_stream_error() -> None:
    pair = Pair(initial_window=65_535)
    sid = pair.open()
    pair.peer.send_headers(sid)
    pair.exchange()
    chunk = grpc_frame(b"o" * 16_379)  # 16384 bytes: one full frame each
    raw = b"".join(frame_bytes(DATA, 0, sid, chunk) for _ in range(5))  # 81920 > 65535
    events = pair.client.receive_data(raw)
    assert events[-1] == StreamError(sid, "peer overran the stream window", False)
    assert [type(e) for e in events] == [Message] * 3 + [StreamError]
    assert RstStreamFrame(sid, ErrorCode.FLOW_CONTROL_ERROR).serialize() in (
        pair.client.data_to_send()
    )


def test_stream_window_update_overflow_is_a_stream_error() -> None:
    pair = Pair()
    sid = pair.open()
    events = pair.client.receive_data(
        frame_bytes(WINDOW_UPDATE, 0, sid, struct.pack(">L", 2**31 - 1))
    )
    assert events == [StreamError(sid, "stream window overflow", False)]
    zero = pair.open()
    events = pair.client.receive_data(frame_bytes(WINDOW_UPDATE, 0, zero, struct.pack(">L", 0)))
    assert events == [StreamError(zero, "WINDOW_UPDATE of 0", False)]
    assert not pair.client.closed


# ---------------------------------------------------------------- ping


def test_ping_from_the_peer_is_acked() -> None:
    pair = Pair()
    pair.peer.ping(b"abcdefgh")
    assert pair.exchange() == []
    acks = [e for e in pair.peer.events if isinstance(e, h2.events.PingAckReceived)]
    assert [a.ping_data for a in acks] == [b"abcdefgh"]


def test_our_ping_and_its_ack() -> None:
    pair = Pair()
    pair.client.ping(b"12345678")
    assert pair.exchange() == [PingAck(b"12345678")]
    with pytest.raises(ValueError, match="8 bytes"):
        pair.client.ping(b"short")


def test_unknown_frame_types_are_ignored() -> None:
    pair = Pair()
    sid = pair.open()
    assert pair.client.receive_data(frame_bytes(0xEE, 0xFF, sid, b"whatever")) == []
    assert pair.client.receive_data(frame_bytes(PRIORITY, 0, sid, b"\x00" * 5)) == []
    assert not pair.client.closed


# ------------------------------------------------------------ protocol errors


def goaway_code(data: bytes) -> int:
    (frame,) = [f for f in parse(data) if isinstance(f, GoAwayFrame)]
    return frame.error_code


PE, FSE, FCE = ErrorCode.PROTOCOL_ERROR, ErrorCode.FRAME_SIZE_ERROR, ErrorCode.FLOW_CONTROL_ERROR
BLOCK = hpack.Encoder().encode([(":status", "200")])  # b"\x88": static, no table change


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(frame_bytes(DATA, 0, 3, b"x"), PE, id="data-on-idle-stream"),
        pytest.param(frame_bytes(DATA, 0, 0, b"x"), PE, id="data-on-stream-0"),
        pytest.param(frame_bytes(HEADERS, END_HEADERS, 99, BLOCK), PE, id="headers-on-idle"),
        pytest.param(frame_bytes(HEADERS, END_HEADERS, 2, BLOCK), PE, id="headers-even-stream"),
        pytest.param(frame_bytes(HEADERS, END_HEADERS, 0, BLOCK), PE, id="headers-stream-0"),
        pytest.param(frame_bytes(RST_STREAM, 0, 9, b"\x00" * 4), PE, id="rst-on-idle"),
        pytest.param(frame_bytes(RST_STREAM, 0, 0, b"\x00" * 4), PE, id="rst-on-stream-0"),
        pytest.param(frame_bytes(WINDOW_UPDATE, 0, 7, b"\x00\x00\x00\x01"), PE, id="wu-idle"),
        pytest.param(
            frame_bytes(PUSH_PROMISE, END_HEADERS, 1, b"\x00\x00\x00\x02" + BLOCK),
            PE,
            id="push-promise",
        ),
        pytest.param(frame_bytes(PING, 0, 0, b"1234567"), FSE, id="ping-7-bytes"),
        pytest.param(frame_bytes(PING, 0, 1, b"12345678"), PE, id="ping-on-stream"),
        pytest.param(frame_bytes(SETTINGS, 0, 0, b"\x00" * 5), FSE, id="settings-5-bytes"),
        pytest.param(frame_bytes(SETTINGS, 1, 0, b"\x00" * 6), FSE, id="settings-ack-payload"),
        pytest.param(frame_bytes(SETTINGS, 0, 1, b""), PE, id="settings-on-stream"),
        pytest.param(
            frame_bytes(SETTINGS, 0, 0, struct.pack(">HL", 4, 2**31)), FCE, id="window-over-max"
        ),
        pytest.param(
            frame_bytes(SETTINGS, 0, 0, struct.pack(">HL", 5, 16_383)), PE, id="frame-size-low"
        ),
        pytest.param(
            frame_bytes(SETTINGS, 0, 0, struct.pack(">HL", 5, 2**24)), PE, id="frame-size-high"
        ),
        pytest.param(frame_bytes(SETTINGS, 0, 0, struct.pack(">HL", 2, 2)), PE, id="push-2"),
        pytest.param(frame_bytes(WINDOW_UPDATE, 0, 0, b"\x00" * 3), FSE, id="wu-3-bytes"),
        pytest.param(frame_bytes(WINDOW_UPDATE, 0, 0, b"\x00" * 4), PE, id="wu-zero-conn"),
        pytest.param(
            frame_bytes(WINDOW_UPDATE, 0, 0, struct.pack(">L", 2**31 - 1)), FCE, id="wu-overflow"
        ),
        pytest.param(frame_bytes(RST_STREAM, 0, 1, b"\x00" * 5), FSE, id="rst-5-bytes"),
        pytest.param(frame_bytes(PRIORITY, 0, 1, b"\x00" * 4), FSE, id="priority-4-bytes"),
        pytest.param(frame_bytes(GOAWAY, 0, 0, b"\x00" * 7), FSE, id="goaway-7-bytes"),
        pytest.param(frame_bytes(GOAWAY, 0, 1, b"\x00" * 8), PE, id="goaway-on-stream"),
        pytest.param(frame_bytes(DATA, 0, 1, b"\x00" * 16_385), FSE, id="frame-over-16k"),
        pytest.param(
            frame_bytes(HEADERS, 0, 1, BLOCK) + frame_bytes(DATA, 0, 1, b""),
            PE,
            id="data-inside-header-block",
        ),
        pytest.param(
            frame_bytes(HEADERS, 0, 1, BLOCK) + frame_bytes(PING, 0, 0, b"\x00" * 8),
            PE,
            id="ping-inside-header-block",
        ),
        pytest.param(
            frame_bytes(HEADERS, 0, 1, BLOCK) + frame_bytes(HEADERS, END_HEADERS, 3, BLOCK),
            PE,
            id="headers-inside-header-block",
        ),
        pytest.param(
            frame_bytes(HEADERS, 0, 1, BLOCK) + frame_bytes(CONTINUATION, END_HEADERS, 3, b""),
            PE,
            id="continuation-other-stream",
        ),
        pytest.param(frame_bytes(CONTINUATION, END_HEADERS, 1, BLOCK), PE, id="continuation-alone"),
        pytest.param(
            frame_bytes(HEADERS, END_HEADERS, 1, BLOCK)
            + frame_bytes(CONTINUATION, END_HEADERS, 1, BLOCK),
            PE,
            id="continuation-after-end-headers",
        ),
        pytest.param(
            frame_bytes(HEADERS, END_HEADERS, 1, BLOCK) + frame_bytes(DATA, PADDED, 1, b"\x05abcd"),
            PE,
            id="data-padding-too-long",
        ),
        pytest.param(frame_bytes(DATA, PADDED, 1, b""), PE, id="data-padded-empty"),
        pytest.param(
            frame_bytes(HEADERS, END_HEADERS | PADDED, 1, b"\x09" + BLOCK), PE, id="headers-pad"
        ),
        pytest.param(frame_bytes(HEADERS, END_HEADERS | 0x20, 1, b"\x00\x00"), PE, id="prio-short"),
        pytest.param(
            frame_bytes(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\x7f"),
            ErrorCode.COMPRESSION_ERROR,
            id="hpack-bad-index",
        ),
    ],
)
def test_connection_errors(raw: bytes, code: ErrorCode) -> None:
    pair = Pair()
    sid = pair.open()
    assert sid == 1
    with pytest.raises(ProtocolError) as info:
        pair.client.receive_data(raw)
    assert info.value.code == code
    assert pair.client.closed
    assert not pair.client.can_open_stream()
    out = pair.client.data_to_send()
    assert goaway_code(out) == code
    pair.client.close()
    assert pair.client.data_to_send() == b""  # one GOAWAY only
    pair.peer.receive_data(out)
    (terminated,) = pair.peer.events_of(h2.events.ConnectionTerminated)
    assert terminated.error_code == code


def test_connection_error_split_across_reads() -> None:
    pair = Pair()
    raw = frame_bytes(PING, 0, 0, b"1234567")
    assert pair.client.receive_data(raw[:5]) == []
    with pytest.raises(ProtocolError):
        pair.client.receive_data(raw[5:])


def test_header_block_limit() -> None:
    pair = Pair()
    sid = pair.open()
    raw = frame_bytes(HEADERS, 0, sid, b"\x00" * 16_384)
    raw += frame_bytes(CONTINUATION, 0, sid, b"\x00" * 16_384) * 64
    with pytest.raises(ProtocolError) as info:
        pair.client.receive_data(raw)
    assert info.value.code == ErrorCode.ENHANCE_YOUR_CALM


frames = st.builds(
    frame_bytes,
    st.integers(0, 11),
    st.sampled_from([0, 1, 4, 5, 8, 0x20, 0x25, 0x2D, 0xFF]),
    st.sampled_from([0, 1, 2, 3, 5, 7, 2**31 - 1]),
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([BLOCK, b"\x00\x00\x00\x01", b"\x00" * 8, grpc_frame(b"m")]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(frames, max_size=12), st.data())
def test_random_frames_raise_only_protocol_error(raw: list[bytes], data: st.DataObject) -> None:
    """Whatever the peer sends, the core returns events or raises ProtocolError."""
    pair = Pair(initial_window=65_535)
    pair.open()
    pair.open(end=False)
    wire = b"".join(raw)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    try:
        for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True):
            for event in pair.client.receive_data(wire[a:b]):
                if isinstance(event, Message):
                    pair.client.acknowledge(event.stream_id, event.size)
    except ProtocolError:
        assert pair.client.closed
        assert goaway_code(pair.client.data_to_send()) >= 0
    else:
        pair.client.data_to_send()
    assert pair.client.open_streams <= 2


# -------------------------------------------------- regressions (bugs found here, fixed)


def test_server_ends_stream_while_request_is_blocked() -> None:
    pair = Pair(H2Peer(handler=None, auto_window=False))
    sid = pair.client.start_call(REQUEST.block("/p"))
    assert not pair.client.send_message(sid, b"x" * 200_000, end=True)
    pair.exchange()
    pair.peer.trailers_only(sid, 8, "request too large")
    events = pair.exchange()
    assert events == [
        Trailers(sid, [*GRPC_HEADERS, ("grpc-status", "8"), ("grpc-message", "request too large")]),
        WindowOpened(sid),
    ]
    # Our side must be closed too, on the wire and in the stream table.
    assert pair.client.open_streams == 0
    stream = pair.stream(sid)
    assert stream.ended or stream.reset_code is not None


def test_bdp_ping_ack_is_held_until_released() -> None:
    """grpc-go's BDP ping is acked only when the driver releases it; others are not held."""
    pair = Pair()
    pair.peer.ping(BDP_PING_PAYLOAD)
    pair.client.receive_data(pair.peer.data_to_send())
    assert (pair.client.has_held_acks, pair.client.has_acks) == (True, False)
    pair.client.start_call(b"\x83")
    assert pair.client.data_to_send()[3] == HEADERS  # a request does not carry it
    pair.peer.ping(b"abcdefgh")
    pair.client.receive_data(pair.peer.data_to_send())
    assert (pair.client.has_held_acks, pair.client.has_acks) == (True, True)
    pair.client.release_held_acks()
    assert (pair.client.has_held_acks, pair.client.has_acks) == (False, True)
    pair.exchange()
    acks = [e for e in pair.peer.events if isinstance(e, h2.events.PingAckReceived)]
    assert sorted(a.ping_data for a in acks) == sorted([BDP_PING_PAYLOAD, b"abcdefgh"])


def test_ping_ack_waits_for_the_next_write() -> None:
    """Acks are kept apart, so the connection can let the next request carry them."""
    pair = Pair()
    pair.peer.ping(b"abcdefgh")
    pair.client.receive_data(pair.peer.data_to_send())
    assert (pair.client.has_acks, pair.client.has_urgent_data) == (True, False)
    sid = pair.client.start_call(b"\x83")
    assert (pair.client.has_acks, pair.client.has_urgent_data) == (True, True)
    data = pair.client.data_to_send()
    assert data[3] == PING  # the ack goes first, in the same write as the request
    assert not pair.client.has_acks
    assert sid == 1

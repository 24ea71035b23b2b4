"""gRPC message framing, ``grpc-timeout`` and the pre-encoded request headers."""

from __future__ import annotations

import base64
import math
import struct

import hpack
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from etcdanyio._grpc._framing import PREFIX_SIZE, FramingError, MessageDecoder, encode
from etcdanyio._grpc._headers import (
    RequestHeaders,
    decode_timeout,
    encode_metadata,
    encode_timeout,
)

pytestmark = pytest.mark.unit

messages = st.lists(st.binary(max_size=300), max_size=8)


def feed_all(decoder: MessageDecoder, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


# --------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("payload", "wire"),
    [
        pytest.param(b"", b"\x00\x00\x00\x00\x00", id="empty"),
        pytest.param(b"a", b"\x00\x00\x00\x00\x01a", id="one-byte"),
        pytest.param(b"x" * 300, b"\x00\x00\x00\x01\x2c" + b"x" * 300, id="300-bytes"),
    ],
)
def test_encode(payload: bytes, wire: bytes) -> None:
    assert encode(payload) == wire
    assert MessageDecoder(1 << 20).feed(wire) == [payload]


@given(messages)
def test_round_trip_at_every_split_point(payloads: list[bytes]) -> None:
    stream = b"".join(map(encode, payloads))
    for cut in range(len(stream) + 1):
        decoder = MessageDecoder(1 << 20)
        assert feed_all(decoder, [stream[:cut], stream[cut:]]) == payloads
        assert decoder.buffered == 0
        assert decoder.pending == 0


@given(messages, st.data())
def test_round_trip_random_splits(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(map(encode, payloads))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoder = MessageDecoder(1 << 20)
    assert feed_all(decoder, chunks) == payloads
    assert decoder.buffered == 0


# Large messages (>= 64 KiB) are collected as pieces: mix them with small ones.
mixed_messages = st.lists(
    st.one_of(
        st.binary(max_size=50),
        st.integers(65_536 - 2, 200_000).map(lambda n: bytes([n % 251]) * n),
    ),
    max_size=5,
)


@given(mixed_messages, st.data())
def test_round_trip_of_large_messages_in_pieces(payloads: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(map(encode, payloads))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    bounds = zip([0, *cuts], [*cuts, len(stream)], strict=True)
    decoder = MessageDecoder(1 << 20)
    out: list[bytes] = []
    fed = 0
    for a, b in bounds:
        out += decoder.feed(memoryview(stream)[a:b])
        fed = b
        done = sum(len(p) + PREFIX_SIZE for p in out)
        # what is buffered is what was fed and not yet handed out
        assert decoder.buffered == fed - done
        if decoder.pending and decoder.buffered >= PREFIX_SIZE:
            whole = len(payloads[len(out)]) + PREFIX_SIZE
            assert decoder.pending == whole - decoder.buffered
    assert out == payloads
    assert decoder.buffered == decoder.pending == 0


@given(st.binary(max_size=200), st.integers(0, 204))
def test_pending_counts_the_bytes_still_needed(payload: bytes, cut: int) -> None:
    wire = encode(payload)
    cut = min(cut, len(wire) - 1)
    decoder = MessageDecoder(1 << 20)
    assert decoder.feed(wire[:cut]) == []
    assert decoder.buffered == cut
    # Nothing started: 0. Until the prefix is whole, only its missing bytes are known.
    if cut == 0:
        assert decoder.pending == 0
    elif cut < PREFIX_SIZE:
        assert decoder.pending == PREFIX_SIZE - cut
    else:
        assert decoder.pending == len(wire) - cut
    assert decoder.feed(wire[cut:]) == [payload]


def test_feed_accepts_memoryview() -> None:
    wire = encode(b"abc") + encode(b"de")
    decoder = MessageDecoder(100)
    assert decoder.feed(memoryview(wire)[:4]) == []
    assert decoder.feed(memoryview(wire)[4:]) == [b"abc", b"de"]


@pytest.mark.parametrize("split", [0, 1, 4])
def test_compressed_flag_is_rejected(split: int) -> None:
    wire = b"\x01" + struct.pack(">I", 3) + b"abc"
    decoder = MessageDecoder(100)
    assert decoder.feed(wire[:split]) == []  # the prefix is not whole yet
    with pytest.raises(FramingError, match="compressed"):
        decoder.feed(wire[split:])


@pytest.mark.parametrize("split", [5, 6])
def test_compressed_flag_is_rejected_from_the_prefix(split: int) -> None:
    wire = encode(b"ok") + b"\x01" + struct.pack(">I", 3) + b"abc"
    decoder = MessageDecoder(100)
    with pytest.raises(FramingError, match="compressed"):
        decoder.feed(wire[: 7 + split])


@pytest.mark.parametrize(
    ("limit", "size", "ok"),
    [
        pytest.param(10, 10, True, id="at-limit"),
        pytest.param(10, 11, False, id="over-limit"),
        pytest.param(0, 0, True, id="empty-with-zero-limit"),
        pytest.param(0, 1, False, id="zero-limit"),
    ],
)
def test_size_limit(limit: int, size: int, ok: bool) -> None:
    wire = encode(b"x" * size)
    # Both the whole-frame fast path and the buffered path apply the limit.
    for chunks in ([wire], [wire[:3], wire[3:]]):
        decoder = MessageDecoder(limit)
        if ok:
            assert feed_all(decoder, chunks) == [b"x" * size]
        else:
            with pytest.raises(FramingError, match="larger than max"):
                feed_all(decoder, chunks)


def test_too_large_is_detected_from_the_prefix_alone() -> None:
    decoder = MessageDecoder(100)
    with pytest.raises(FramingError, match="larger than max"):
        decoder.feed(struct.pack(">BI", 0, 2**31))


# ---------------------------------------------------------------- grpc-timeout


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(0.0, "0n", id="zero"),
        pytest.param(-3.0, "0n", id="negative"),
        pytest.param(0.001, "1000000n", id="1ms"),
        pytest.param(0.1, "100000u", id="100ms"),
        pytest.param(5.0, "5000000u", id="5s"),
        pytest.param(1e9, "16666667M", id="31-years"),
        pytest.param(1e12, "99999999H", id="capped"),
    ],
)
def test_encode_timeout(seconds: float, text: str) -> None:
    assert encode_timeout(seconds) == text


@given(st.floats(min_value=0.0, max_value=99_999_999 * 3600.0, allow_nan=False))
@example(0.1)
@example(1e-9)
@example(7.500000000000001e-05)
@example(99_999_999 * 3600.0)
def test_timeout_round_trip_never_earlier(seconds: float) -> None:
    text = encode_timeout(seconds)
    assert 2 <= len(text) <= 9
    assert text[:-1].isdigit()
    assert len(text[:-1]) <= 8
    assert decode_timeout(text) >= seconds


@pytest.mark.parametrize("seconds", [7.500000000000001e-05, 0.00015000000000000001])
def test_timeout_never_rounds_down_by_an_ulp(seconds: float) -> None:
    """``seconds * 1e9`` rounds to exactly 75000.0, so ceil() keeps 75000 < the real value."""
    assert decode_timeout(encode_timeout(seconds)) >= seconds


@given(st.floats(min_value=1e-6, max_value=1e6, allow_nan=False))
def test_timeout_round_trip_is_tight(seconds: float) -> None:
    """
    The finest unit that fits is used.

    Units step by at most 1000, so the value has at least 10**5 units of it and
    rounding up adds under one part in 10**5.
    """
    assert decode_timeout(encode_timeout(seconds)) <= seconds * (1 + 1e-5) + 1e-9


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("1n", 1e-9, id="nanos"),
        pytest.param("1u", 1e-6, id="micros"),
        pytest.param("1m", 1e-3, id="millis"),
        pytest.param("1S", 1.0, id="seconds"),
        pytest.param("2M", 120.0, id="minutes"),
        pytest.param("1H", 3600.0, id="hours"),
        pytest.param("99999999S", 99999999.0, id="eight-digits"),
    ],
)
def test_decode_timeout(text: str, seconds: float) -> None:
    assert math.isclose(decode_timeout(text), seconds)


@pytest.mark.parametrize(
    "text",
    ["", "S", "1", "1x", "-1S", "1.5S", "123456789S", " 1S", "1s"],
)
def test_decode_timeout_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="grpc-timeout"):
        decode_timeout(text)


# --------------------------------------------------------------- request headers


def decode_block(block: bytes, decoder: hpack.Decoder | None = None) -> list[tuple[str, str]]:
    decoder = decoder or hpack.Decoder()
    return [(str(k), str(v)) for k, v in decoder.decode(block)]


def busy_decoder() -> hpack.Decoder:
    """A decoder whose dynamic table holds entries that would clash with indexed names."""
    encoder = hpack.Encoder()
    decoder = hpack.Decoder()
    decoder.decode(
        encoder.encode([(":path", "/other"), ("te", "gzip"), ("grpc-timeout", "1S"), ("x", "y")])
    )
    assert len(decoder.header_table.dynamic_entries) == 4
    return decoder


def expected_headers(
    path: str, *, tls: bool = False, authority: str = "etcd:2379", agent: str = "ua/1"
) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "https" if tls else "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("user-agent", agent),
    ]


@pytest.mark.parametrize("tls", [False, True])
def test_request_block_decodes(tls: bool) -> None:
    headers = RequestHeaders("etcd:2379", tls=tls, user_agent="ua/1")
    block = headers.block("/etcdserverpb.KV/Range")
    decoder = hpack.Decoder()
    assert decode_block(block, decoder) == expected_headers("/etcdserverpb.KV/Range", tls=tls)
    assert len(decoder.header_table.dynamic_entries) == 0
    # The same bytes mean the same thing whatever the peer's table holds.
    busy = busy_decoder()
    assert decode_block(block, busy) == expected_headers("/etcdserverpb.KV/Range", tls=tls)
    assert len(busy.header_table.dynamic_entries) == 4
    assert headers.block("/etcdserverpb.KV/Range") is block  # cached


@given(
    path=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=400),
    authority=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=300
    ),
    timeout=st.none() | st.floats(min_value=0, max_value=1e9, allow_nan=False),
)
def test_request_block_any_path(path: str, authority: str, timeout: float | None) -> None:
    """Long strings need multi-byte HPACK integers; every length must round-trip."""
    headers = RequestHeaders(authority, tls=False, user_agent="ua/1")
    decoder = hpack.Decoder()
    decoded = decode_block(headers.block(path, timeout), decoder)
    expected = expected_headers(path, authority=authority)
    if timeout is not None:
        expected.append(("grpc-timeout", encode_timeout(timeout)))
    assert decoded == expected
    assert len(decoder.header_table.dynamic_entries) == 0


def test_request_block_with_timeout_and_metadata() -> None:
    headers = RequestHeaders("etcd:2379", tls=False, user_agent="ua/1")
    extra = encode_metadata([("token", "abc"), ("trace-bin", b"\x00\xff\x10")])
    block = headers.block("/p", 2.5, extra)
    decoder = busy_decoder()
    assert decode_block(block, decoder) == [
        *expected_headers("/p"),
        ("grpc-timeout", "2500000u"),
        ("token", "abc"),
        ("trace-bin", base64.b64encode(b"\x00\xff\x10").decode().rstrip("=")),
    ]
    assert len(decoder.header_table.dynamic_entries) == 4
    assert headers.block("/p", math.inf, extra) == headers.block("/p") + extra
    assert headers.block("/p", None, extra) == headers.block("/p") + extra


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        pytest.param([], [], id="none"),
        pytest.param([("k", "v")], [("k", "v")], id="text"),
        pytest.param([("a-b_c.d9", " x ~")], [("a-b_c.d9", " x ~")], id="allowed-chars"),
        pytest.param([("k-bin", b"\x00\x01")], [("k-bin", "AAE")], id="binary-unpadded"),
        pytest.param([("k-bin", b"")], [("k-bin", "")], id="binary-empty"),
        pytest.param([("a", "1"), ("a", "2")], [("a", "1"), ("a", "2")], id="repeated"),
    ],
)
def test_encode_metadata(
    metadata: list[tuple[str, str | bytes]], expected: list[tuple[str, str]]
) -> None:
    decoder = hpack.Decoder()
    assert decode_block(encode_metadata(metadata), decoder) == expected
    assert len(decoder.header_table.dynamic_entries) == 0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("", "v", id="empty-key"),
        pytest.param("Key", "v", id="uppercase"),
        pytest.param("a b", "v", id="space-in-key"),
        pytest.param("a:b", "v", id="colon-in-key"),
        pytest.param(":path", "/x", id="pseudo-header"),
        pytest.param("grpc-timeout", "1S", id="reserved-grpc"),
        pytest.param("k", b"v", id="bytes-without-bin"),
        pytest.param("k-bin", "v", id="text-with-bin"),
        pytest.param("k", "caf\u00e9", id="non-ascii-value"),
        pytest.param("k", "a\nb", id="newline-value"),
        pytest.param("k", "a\x7f", id="del-value"),
        pytest.param("k", "a\x00", id="nul-value"),
    ],
)
def test_encode_metadata_rejects(key: str, value: str | bytes) -> None:
    with pytest.raises(ValueError, match="metadata"):
        encode_metadata([(key, value)])


@pytest.mark.parametrize("key", ["caf\u00e9", "\u043a\u043b\u044e\u0447", "\u0663"])
def test_encode_metadata_rejects_non_ascii_keys(key: str) -> None:
    """gRPC keys are ``[0-9a-z_.-]`` only; anything else is not a valid HTTP/2 header name."""
    with pytest.raises(ValueError, match="metadata"):
        encode_metadata([(key, "v")])

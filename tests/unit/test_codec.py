"""
The hand-written wire codec (``etcdanyio._codec``) against betterproto2.

Encoders must produce exactly ``bytes(pb.X(...))``; decoders must agree with
``tests._reference``'s conversion of ``pb.X.parse(data)`` on anything betterproto2 parses correctly,
and follow the protobuf rules where it does not (merging a repeated singular
message, wrong wire types, truncation, groups). Wire bytes for the unusual
cases are built here by hand from the encoding rules.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from etcdanyio import _codec
from etcdanyio._codec_construct import make_delete, make_header, make_kv, make_put, make_range
from etcdanyio._pb import etcdserverpb as pb
from etcdanyio._pb import mvccpb
from etcdanyio.types import DeleteResult, KeyValue, PutResult, RangeResult, ResponseHeader
from etcdanyio.watch import Event, EventType
from tests._reference import delete_from_pb, put_from_pb, range_from_pb
from tests.unit.codec_builds import build_id, codec_builds

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module", autouse=True, params=codec_builds(), ids=build_id)
def codec_build(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run every test of this module against each build of the codec (see codec_builds)."""
    global _codec, IDS, EVENTS
    saved, _codec = _codec, request.param
    IDS, EVENTS = {}, _codec.EventCache(_codec.EVENT_CACHE_BYTES)
    yield
    _codec = saved


#: a memo of ID varints and a cache of events shared by the tests of one build, as a
#: client's and a watch stream's are by their responses
IDS: _codec.IdMemo = {}
EVENTS = _codec.EventCache(_codec.EVENT_CACHE_BYTES)


def decoded(decode: Callable[..., Any], data: bytes) -> Any:
    """``decode(data)`` without a memo of IDs, with a fresh one and with a warm one: all
    equal; that result."""
    plain = decode(data)
    assert decode(data, {}) == plain
    assert decode(data, IDS) == plain
    assert decode(data, IDS) == plain
    return plain


INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
int64s = st.one_of(
    st.sampled_from([0, 1, -1, 127, 128, 16383, 16384, INT64_MAX, INT64_MIN, 2**31, -(2**31)]),
    st.integers(INT64_MIN, INT64_MAX),
)
uint64s = st.one_of(
    st.sampled_from([0, 1, 127, 128, 2**56, 2**63 - 1, 2**63, UINT64_MAX]),
    st.integers(0, UINT64_MAX),
)
# Up to 70 kB so that lengths take one, two and three varint bytes.
blobs = st.one_of(st.binary(max_size=300), st.integers(0, 70_000).map(lambda n: b"\xa5" * n))
small_blobs = st.binary(max_size=40)

headers = st.builds(
    pb.ResponseHeader, cluster_id=uint64s, member_id=uint64s, revision=int64s, raft_term=uint64s
)
kvs = st.builds(
    mvccpb.KeyValue,
    key=small_blobs,
    value=small_blobs,
    create_revision=int64s,
    mod_revision=int64s,
    version=int64s,
    lease=int64s,
)


# --- wire bytes by hand ----------------------------------------------------------


def varint(n: int) -> bytes:
    n &= UINT64_MAX
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def varint_field(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def bytes_field(number: int, value: bytes) -> bytes:
    return tag(number, 2) + varint(len(value)) + value


def unknown_fields(known: range) -> st.SearchStrategy[bytes]:
    """One field, of any wire type but groups, whose number is not in ``known``."""
    number = st.integers(1, 2**29 - 1).filter(lambda n: n not in known)
    return st.one_of(
        st.builds(varint_field, number, uint64s),
        st.builds(lambda n, v: tag(n, 1) + v, number, st.binary(min_size=8, max_size=8)),
        st.builds(bytes_field, number, small_blobs),
        st.builds(lambda n, v: tag(n, 5) + v, number, st.binary(min_size=4, max_size=4)),
    )


def message(*pieces: st.SearchStrategy[bytes]) -> st.SearchStrategy[list[bytes]]:
    """Fields in any order, any of them any number of times (scalars: explicit zeros too)."""
    return st.lists(st.one_of(*pieces), max_size=8)


header_fields = message(
    st.builds(varint_field, st.sampled_from([1, 2, 4]), uint64s),
    st.builds(varint_field, st.just(3), int64s),
    unknown_fields(range(1, 5)),
)
kv_fields = message(
    st.builds(bytes_field, st.sampled_from([1, 5]), small_blobs),
    st.builds(varint_field, st.sampled_from([2, 3, 4, 6]), int64s),
    unknown_fields(range(1, 7)),
)
kv_pieces = kv_fields.map(b"".join)


def range_fields(
    kv_number: int, int_number: int, bool_number: int
) -> st.SearchStrategy[list[bytes]]:
    """A RangeResponse or DeleteRangeResponse's fields but the header."""
    return message(
        st.builds(bytes_field, st.just(kv_number), kv_pieces),
        st.builds(varint_field, st.just(int_number), int64s),
        st.builds(varint_field, st.just(bool_number), st.sampled_from([0, 1, 2, 2**63])),
        unknown_fields(range(1, 5)),
    )


@st.composite
def with_header(draw: st.DrawFn, rest: st.SearchStrategy[list[bytes]]) -> list[bytes]:
    """``rest`` and at most one header (betterproto2 replaces a repeated one), anywhere."""
    fields = draw(rest)
    if draw(st.booleans()):
        header = bytes_field(1, b"".join(draw(header_fields)))
        fields.insert(draw(st.integers(0, len(fields))), header)
    return fields


# --- encoders ------------------------------------------------------------------


@settings(deadline=None)
@given(blobs, blobs, int64s, st.booleans(), st.booleans(), st.booleans())
def test_encode_put_matches_betterproto(
    key: bytes, value: bytes, lease: int, prev_kv: bool, ignore_value: bool, ignore_lease: bool
) -> None:
    expected = bytes(
        pb.PutRequest(
            key=key,
            value=value,
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )
    )
    assert _codec.encode_put(key, value, lease, prev_kv, ignore_value, ignore_lease) == expected
    assert pb.PutRequest.parse(expected).lease == lease


@settings(deadline=None)
@given(
    blobs,
    blobs,
    st.lists(int64s, min_size=6, max_size=6),
    st.sampled_from(pb.RangeRequestSortOrder),
    st.sampled_from(pb.RangeRequestSortTarget),
    st.lists(st.booleans(), min_size=3, max_size=3),
)
def test_encode_range_matches_betterproto(
    key: bytes,
    range_end: bytes,
    ints: list[int],
    sort_order: pb.RangeRequestSortOrder,
    sort_target: pb.RangeRequestSortTarget,
    flags: list[bool],
) -> None:
    limit, revision, min_mod, max_mod, min_create, max_create = ints
    serializable, keys_only, count_only = flags
    expected = pb.RangeRequest(
        key=key,
        range_end=range_end,
        limit=limit,
        revision=revision,
        sort_order=sort_order,
        sort_target=sort_target,
        serializable=serializable,
        keys_only=keys_only,
        count_only=count_only,
        min_mod_revision=min_mod,
        max_mod_revision=max_mod,
        min_create_revision=min_create,
        max_create_revision=max_create,
    )
    ours = _codec.encode_range(
        key,
        range_end,
        limit,
        revision,
        int(sort_order),
        int(sort_target),
        serializable,
        keys_only,
        count_only,
        min_mod,
        max_mod,
        min_create,
        max_create,
    )
    assert ours == bytes(expected)
    assert pb.RangeRequest.parse(ours) == expected


@given(blobs, blobs, st.booleans())
def test_encode_delete_range_matches_betterproto(
    key: bytes, range_end: bytes, prev_kv: bool
) -> None:
    expected = pb.DeleteRangeRequest(key=key, range_end=range_end, prev_kv=prev_kv)
    assert _codec.encode_delete_range(key, range_end, prev_kv) == bytes(expected)


def test_encode_negative_int64_takes_ten_bytes() -> None:
    assert _codec.encode_put(b"k", b"", lease=-1) == b"\x0a\x01k\x18" + b"\xff" * 9 + b"\x01"
    assert _codec.encode_range(b"k", revision=INT64_MIN).endswith(b"\x20" + b"\x80" * 9 + b"\x01")
    assert _codec.encode_put(b"", b"") == b""


@pytest.mark.parametrize("bad", [INT64_MAX + 1, INT64_MIN - 1, 2**64])
def test_encode_rejects_what_int64_cannot_hold(bad: int) -> None:
    with pytest.raises(ValueError, match="int64"):
        _codec.encode_put(b"k", b"v", lease=bad)
    with pytest.raises(ValueError, match="int64"):
        _codec.encode_range(b"k", max_create_revision=bad)


# --- decoders against betterproto2 ----------------------------------------------


@settings(deadline=None)
@given(st.none() | headers, st.lists(kvs, max_size=4), int64s, st.booleans())
@example(None, [], 0, False)
def test_decode_range_response(
    header: pb.ResponseHeader | None, items: list[mvccpb.KeyValue], count: int, more: bool
) -> None:
    response = pb.RangeResponse(header=header, kvs=items, count=count, more=more)
    data = bytes(response)
    assert decoded(_codec.decode_range_response, data) == range_from_pb(response)
    assert decoded(_codec.decode_range_response, data) == range_from_pb(
        pb.RangeResponse.parse(data)
    )


@settings(deadline=None)
@given(st.none() | headers, st.none() | kvs)
@example(None, mvccpb.KeyValue())  # present but all-default: betterproto2 says None
def test_decode_put_response(
    header: pb.ResponseHeader | None, prev: mvccpb.KeyValue | None
) -> None:
    response = pb.PutResponse(header=header, prev_kv=prev)
    data = bytes(response)
    assert decoded(_codec.decode_put_response, data) == put_from_pb(response)
    assert decoded(_codec.decode_put_response, data) == put_from_pb(pb.PutResponse.parse(data))


@settings(deadline=None)
@given(st.none() | headers, int64s, st.lists(kvs, max_size=4))
def test_decode_delete_range_response(
    header: pb.ResponseHeader | None, deleted: int, items: list[mvccpb.KeyValue]
) -> None:
    response = pb.DeleteRangeResponse(header=header, deleted=deleted, prev_kvs=items)
    data = bytes(response)
    assert decoded(_codec.decode_delete_range_response, data) == delete_from_pb(response)


@given(headers, kvs)
def test_decode_header_and_kv(header: pb.ResponseHeader, kv: mvccpb.KeyValue) -> None:
    assert decoded(_codec.decode_header, bytes(header)) == ResponseHeader.from_pb(header)
    assert decoded(_codec.decode_kv, bytes(kv)) == KeyValue.from_pb(kv)


@settings(deadline=None)
@given(header_fields, kv_fields)
def test_submessages_in_any_order_with_unknown_fields(
    header_parts: list[bytes], kv_parts: list[bytes]
) -> None:
    header, kv = b"".join(header_parts), b"".join(kv_parts)
    assert decoded(_codec.decode_header, header) == ResponseHeader.from_pb(
        pb.ResponseHeader.parse(header)
    )
    assert decoded(_codec.decode_kv, kv) == KeyValue.from_pb(mvccpb.KeyValue.parse(kv))


@settings(deadline=None)
@given(with_header(range_fields(2, 4, 3)))
def test_range_response_in_any_order_with_unknown_fields(fields: list[bytes]) -> None:
    data = b"".join(fields)
    expected = range_from_pb(pb.RangeResponse.parse(data))
    assert decoded(_codec.decode_range_response, data) == expected


@settings(deadline=None)
@given(with_header(range_fields(3, 2, 99)))
def test_delete_response_in_any_order_with_unknown_fields(fields: list[bytes]) -> None:
    data = b"".join(f for f in fields if not f.startswith(tag(99, 0)))
    expected = delete_from_pb(pb.DeleteRangeResponse.parse(data))
    assert decoded(_codec.decode_delete_range_response, data) == expected


@settings(deadline=None)
@given(
    with_header(message(st.builds(bytes_field, st.just(2), kv_pieces), unknown_fields(range(1, 3))))
)
def test_put_response_in_any_order_with_unknown_fields(fields: list[bytes]) -> None:
    if sum(f.startswith(b"\x12") for f in fields) > 1:
        # betterproto2 keeps the last prev_kv; protobuf merges them
        fields = [f for f in fields if not f.startswith(b"\x12")] + fields[-1:]
    data = b"".join(fields)
    expected = put_from_pb(pb.PutResponse.parse(data))
    assert decoded(_codec.decode_put_response, data) == expected


def test_repeated_scalars_last_one_wins() -> None:
    data = varint_field(4, 7) + varint_field(3, 1) + varint_field(4, 0) + varint_field(3, 0)
    data += varint_field(4, 9)
    result = decoded(_codec.decode_range_response, data)
    assert (result.count, result.more) == (9, False)
    kv = decoded(_codec.decode_kv, bytes_field(1, b"a") + varint_field(6, 5) + bytes_field(1, b"b"))
    assert (kv.key, kv.lease) == (b"b", 5)


# --- protobuf rules betterproto2 does not follow --------------------------------


@settings(deadline=None)
@given(st.lists(header_fields.map(b"".join), min_size=2, max_size=3), kv_pieces, kv_pieces)
def test_singular_messages_seen_twice_merge(
    header_parts: list[bytes], kv1: bytes, kv2: bytes
) -> None:
    merged = ResponseHeader.from_pb(pb.ResponseHeader.parse(b"".join(header_parts)))
    headers = [bytes_field(1, part) for part in header_parts]
    range_data = headers[0] + bytes_field(2, kv1) + b"".join(headers[1:])
    assert decoded(_codec.decode_range_response, range_data).header == merged
    assert decoded(_codec.decode_delete_range_response, b"".join(headers)).header == merged
    put = decoded(
        _codec.decode_put_response, bytes_field(2, kv1) + b"".join(headers) + bytes_field(2, kv2)
    )
    assert put.header == merged
    assert put == put_from_pb(
        pb.PutResponse(
            header=pb.ResponseHeader.parse(b"".join(header_parts)),
            prev_kv=mvccpb.KeyValue.parse(kv1 + kv2),
        )
    )


def test_known_field_with_wrong_wire_type_is_skipped() -> None:
    plain = bytes(pb.RangeResponse(header=pb.ResponseHeader(revision=5), count=3, more=True))
    odd = (
        varint_field(1, 7)  # header as a varint
        + tag(2, 5)
        + b"abcd"  # kvs as fixed32
        + bytes_field(4, b"xyz")  # count as bytes
        + tag(3, 1)
        + bytes(8)  # more as fixed64
    )
    assert decoded(_codec.decode_range_response, odd + plain + odd) == decoded(
        _codec.decode_range_response, plain
    )
    kv = bytes(mvccpb.KeyValue(key=b"k", version=2))
    assert decoded(_codec.decode_kv, varint_field(1, 3) + kv + bytes_field(4, b"q")) == decoded(
        _codec.decode_kv, kv
    )


def test_int64_and_uint64_varints() -> None:
    ten_byte_minus_one = b"\xff" * 9 + b"\x01"
    assert decoded(_codec.decode_range_response, b"\x20" + ten_byte_minus_one).count == -1
    header = decoded(
        _codec.decode_header, b"\x08" + ten_byte_minus_one + b"\x18" + ten_byte_minus_one
    )
    assert (header.cluster_id, header.revision) == (UINT64_MAX, -1)
    # bits beyond 64 in the tenth byte are dropped, as protobuf's parsers do
    assert decoded(_codec.decode_range_response, b"\x20" + b"\xff" * 9 + b"\x7f").count == -1
    # a sign-extended (ten-byte) negative int32, e.g. from an enum, reads back as int64 -1 too
    assert decoded(_codec.decode_kv, b"\x30" + ten_byte_minus_one).lease == -1


def test_many_distinct_ids_still_decode() -> None:
    rng = random.Random(1)
    memo: _codec.IdMemo = {}
    for _ in range(3 * _codec.ID_MEMO_SIZE):
        ids = [rng.getrandbits(64) for _ in range(2)] + [rng.getrandbits(63)]
        header = pb.ResponseHeader(cluster_id=ids[0], member_id=ids[1], revision=7)
        kv = mvccpb.KeyValue(key=b"k", lease=ids[2])
        response = pb.RangeResponse(header=header, kvs=[kv, kv])
        expected = range_from_pb(response)
        assert _codec.decode_range_response(bytes(response), memo) == expected
        assert _codec.decode_range_response(bytes(response), memo) == expected
    assert 0 < len(memo) <= _codec.ID_MEMO_SIZE


def test_id_memos_belong_to_their_reader() -> None:
    """A memo is filled by the decodes it is given to, and only by those."""
    header = pb.ResponseHeader(cluster_id=2**63 + 5, member_id=2**62 + 7, revision=3)
    data = bytes(pb.RangeResponse(header=header, kvs=[mvccpb.KeyValue(key=b"k", lease=2**61)]))
    mine: _codec.IdMemo = {}
    theirs: _codec.IdMemo = {}
    first = _codec.decode_range_response(data, mine)
    assert len(mine) == 3
    assert not theirs
    assert _codec.decode_range_response(data, theirs) == first == _codec.decode_range_response(data)
    assert mine == theirs


# --- malformed input ---------------------------------------------------------


DECODERS = [
    _codec.decode_range_response,
    _codec.decode_put_response,
    _codec.decode_delete_range_response,
    _codec.decode_header,
    _codec.decode_kv,
]


def cuts_through_fields(fields: list[bytes]) -> list[int]:
    """The offsets into ``b"".join(fields)`` that fall inside a field."""
    ends = set(itertools.accumulate(map(len, fields), initial=0))
    return [cut for cut in range(sum(map(len, fields))) if cut not in ends]


def assert_truncations_raise(decode: Callable[[bytes], object], fields: list[bytes]) -> None:
    """Every cut through a field raises; a cut between fields leaves a valid message."""
    data = b"".join(fields)
    for cut in itertools.accumulate(map(len, fields), initial=0):
        decode(data[:cut])
    for cut in cuts_through_fields(fields):
        with pytest.raises(ValueError, match="malformed protobuf"):
            decode(data[:cut])


@settings(deadline=None)
@given(with_header(range_fields(2, 4, 3)), header_fields, kv_fields)
def test_truncated_input_raises(
    fields: list[bytes], header_parts: list[bytes], kv_parts: list[bytes]
) -> None:
    assert_truncations_raise(_codec.decode_range_response, fields)
    assert_truncations_raise(_codec.decode_header, header_parts)
    assert_truncations_raise(_codec.decode_kv, kv_parts)


@settings(deadline=None)
@given(header_fields, kv_fields)
def test_submessage_field_crossing_its_end_raises(
    header_parts: list[bytes], kv_parts: list[bytes]
) -> None:
    """A submessage whose length cuts through its last field, the rest following."""
    cases: list[tuple[list[bytes], int, list[Callable[[bytes], object]]]] = [
        (header_parts, 1, [_codec.decode_range_response, _codec.decode_put_response]),
        (kv_parts, 2, [_codec.decode_range_response, _codec.decode_put_response]),
        (kv_parts, 3, [_codec.decode_delete_range_response]),
    ]
    for parts, number, decoders in cases:
        whole = b"".join(parts)
        for cut in cuts_through_fields(parts):
            data = tag(number, 2) + varint(cut) + whole
            for decode in decoders:
                with pytest.raises(ValueError, match="malformed protobuf"):
                    decode(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x0a\x05\x08\x01", id="short-header"),
        pytest.param(b"\x0a\x02\x08\x96\x01", id="varint-past-header-end"),
        pytest.param(b"\x0a\x01\x18\x01", id="header-field-past-header-end"),
        pytest.param(b"\x0a\x02\x2a\x05abcde", id="unknown-past-header-end"),
        pytest.param(b"\x12\x03\x0a\x05abcde", id="kv-overruns-its-length"),
        pytest.param(b"\x12\x02\x10\xff", id="varint-past-kv-end"),
        pytest.param(b"\x12\x01\x10\x18\x01", id="kv-field-past-kv-end"),
        pytest.param(b"\x20\x80", id="truncated-varint"),
        pytest.param(b"\x20" + b"\xff" * 10 + b"\x01", id="eleven-byte-varint"),
        pytest.param(b"\xf8", id="truncated-tag"),
        pytest.param(b"\x29abc", id="short-fixed64"),
        pytest.param(b"\x2dab", id="short-fixed32"),
        pytest.param(b"\x2a\xff\xff\xff\xff\x0f", id="huge-length"),
    ],
)
def test_malformed_range_response(data: bytes) -> None:
    with pytest.raises(ValueError, match="malformed protobuf"):
        decoded(_codec.decode_range_response, data)


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("field", "why"),
    [
        (tag(9, 3) + tag(9, 4), "group"),
        (tag(9, 4), "group"),
        (tag(9, 6), "wire type 6"),
        (tag(9, 7), "wire type 7"),
        (tag(0, 0) + b"\x01", "field number 0"),
        (varint(2**32 << 3), "invalid field number"),
    ],
)
def test_groups_and_bad_tags_are_rejected(
    decode: Callable[[bytes], object], field: bytes, why: str
) -> None:
    with pytest.raises(ValueError, match=f"malformed protobuf: .*{why}"):
        decode(field)
    with pytest.raises(ValueError, match=f"malformed protobuf: .*{why}"):
        decoded(_codec.decode_range_response, bytes_field(2, field))


# --- the fast constructors ----------------------------------------------------


def test_fast_constructors_make_ordinary_instances() -> None:
    header = make_header(1, 2, 3, 4)
    kv = make_kv(b"k", b"v", 1, 2, 3, 4)
    pairs: list[tuple[Any, Any]] = [
        (header, ResponseHeader(1, 2, 3, 4)),
        (kv, KeyValue(b"k", b"v", 1, 2, 3, 4)),
        (make_put(header, kv), PutResult(header, kv)),
        (make_range(header, [kv], 1, True), RangeResult(header, [kv], 1, True)),
        (make_delete(header, 1, [kv]), DeleteResult(header, 1, [kv])),
    ]
    for fast, slow in pairs:
        assert type(fast) is type(slow)
        assert fast == slow
        assert repr(fast) == repr(slow)
        assert dataclasses.astuple(fast) == dataclasses.astuple(slow)
        name = dataclasses.fields(fast)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(fast, name, None)
    assert hash(header) == hash(ResponseHeader(1, 2, 3, 4))
    assert hash(kv) == hash(KeyValue(b"k", b"v", 1, 2, 3, 4))


def test_decoded_events_are_ordinary_instances() -> None:
    """The codec builds Events through their slot descriptors, as it does KeyValues."""
    kv = mvccpb.KeyValue(key=b"k", value=b"v", create_revision=1, mod_revision=2, version=1)
    data = bytes(pb.WatchResponse(events=[mvccpb.Event(kv=kv)]))
    for events in (_codec.EventCache(1 << 20), None):
        (event,) = _codec.decode_watch_response(data, events, IDS).events
        slow = Event(EventType.PUT, KeyValue(b"k", b"v", 1, 2, 1, 0), None)
        assert type(event) is Event
        assert event == slow
        assert repr(event) == repr(slow)
        assert hash(event) == hash(slow)
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.prev_kv = None  # type: ignore[misc]


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_lease_keepalive_request_matches_betterproto(lease_id: int) -> None:
    assert _codec.encode_lease_keepalive(lease_id) == bytes(pb.LeaseKeepAliveRequest(id=lease_id))


@given(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_lease_keepalive_response_matches_betterproto(lease_id: int, ttl: int) -> None:
    response = pb.LeaseKeepAliveResponse(
        header=pb.ResponseHeader(cluster_id=1, member_id=2, revision=3, raft_term=4),
        id=lease_id,
        ttl=ttl,
    )
    assert _codec.decode_lease_keepalive(bytes(response)) == (lease_id, ttl)


# --- watch responses -------------------------------------------------------------

events_pb = st.builds(
    mvccpb.Event,
    type=st.sampled_from([mvccpb.EventEventType.PUT, mvccpb.EventEventType.DELETE]),
    kv=st.one_of(st.none(), kvs),
    prev_kv=st.one_of(st.none(), kvs),
)
watch_responses = st.builds(
    pb.WatchResponse,
    header=st.one_of(st.none(), headers),
    watch_id=int64s,
    created=st.booleans(),
    canceled=st.booleans(),
    compact_revision=int64s,
    cancel_reason=st.text(max_size=20),
    fragment=st.booleans(),
    events=st.lists(events_pb, max_size=5),
)


def expected_watch_response(message: pb.WatchResponse) -> _codec.WatchResponse:
    """What the fast decoder must return, built from betterproto2's own parse."""
    parsed = pb.WatchResponse.parse(bytes(message))
    empty = KeyValue(b"", b"", 0, 0, 0, 0)
    events = [
        Event(
            EventType(int(e.type)),
            KeyValue.from_pb(e.kv) if e.kv is not None else empty,
            KeyValue.from_pb(e.prev_kv) if e.prev_kv is not None else None,
        )
        for e in parsed.events
    ]
    return _codec.WatchResponse(
        parsed.header.revision if parsed.header is not None else 0,
        parsed.watch_id,
        parsed.created,
        parsed.canceled,
        parsed.compact_revision,
        parsed.cancel_reason,
        parsed.fragment,
        events,
    )


@settings(deadline=None)
@given(watch_responses, st.booleans())
def test_decode_watch_response_matches_betterproto(
    message: pb.WatchResponse, warm_cache: bool
) -> None:
    data = bytes(message)
    if not warm_cache:
        EVENTS.clear()
    first = _codec.decode_watch_response(data, EVENTS, IDS)
    assert first == expected_watch_response(message)
    # Decoded again (events now from the cache): equal, and the same objects.
    again = _codec.decode_watch_response(data, EVENTS, IDS)
    assert again == first
    assert all(a is b for a, b in zip(again.events, first.events, strict=True))
    # A lone watcher's response skips the cache: equal, but decoded afresh.
    for ids in (IDS, None):
        alone = _codec.decode_watch_response(data, None, ids)
        assert alone == first
        assert all(a is not b for a, b in zip(alone.events, first.events, strict=True))


@st.composite
def event_fields(draw: st.DrawFn) -> list[bytes]:
    """An Event's fields in any order; kv and prev_kv at most once each (betterproto2
    replaces a repeated message field where protobuf merges it; merging is tested
    above)."""
    fields = draw(
        message(
            st.builds(varint_field, st.just(1), st.sampled_from([0, 1])),
            unknown_fields(range(1, 4)),
        )
    )
    for number in (2, 3):
        if draw(st.booleans()):
            field = bytes_field(number, draw(kv_pieces))
            fields.insert(draw(st.integers(0, len(fields))), field)
    return fields


@settings(deadline=None)
@given(event_fields())
def test_event_fields_in_any_order_with_unknown_fields(fields: list[bytes]) -> None:
    """The event fast path gives way to the general rules for any other order."""
    raw = b"".join(fields)
    expected = expected_watch_response(pb.WatchResponse(events=[mvccpb.Event.parse(raw)]))
    EVENTS.clear()
    # between two other events, so that the uncached path's bounds are the event's own
    other = bytes_field(11, bytes_field(2, bytes_field(1, b"k")))
    data = other + bytes_field(11, raw) + other
    for events in (EVENTS, None):
        response = _codec.decode_watch_response(data, events, IDS)
        assert response.events[1:2] == expected.events


def test_event_kv_seen_twice_merges() -> None:
    kv = bytes_field(1, b"key") + varint_field(2, 5)
    raw = bytes_field(2, kv) + bytes_field(2, varint_field(3, 7))
    EVENTS.clear()
    (event,) = _codec.decode_watch_response(bytes_field(11, raw), EVENTS).events
    assert event.kv == KeyValue(b"key", b"", 5, 7, 0, 0)


def test_event_cache_keeps_recent_events_within_its_bound() -> None:
    """Two generations: a hit survives a flip; memory stays under twice the limit."""
    cache = _codec.EventCache(limit=10 * 210)  # about ten 10-byte events per generation
    event = Event(EventType.PUT, KeyValue(b"k", b"v", 1, 1, 1, 0), None)
    raws = [b"%010d" % i for i in range(100)]
    for i, raw in enumerate(raws):
        cache.put(raw, event)
        assert cache.get(raws[0]) is event  # touched each time: never dropped
        assert len(cache._new) + len(cache._old) <= 2 * 10 + 1
        if i > 25:
            assert cache.get(raws[i - 25]) is None  # untouched and 25 back: gone
    cache.clear()
    assert cache.get(raws[0]) is None

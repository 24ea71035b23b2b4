"""
The hand-written codec of the lease, member-list and status calls
(``etcdanyio._codec_calls``) against betterproto2, as ``test_codec.py`` does
for the KV calls: encoders byte-identical, decoders equal to ``tests._reference``'s
conversion of betterproto2's parse, fields in any order among unknown ones, truncation an error.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdanyio import _codec_calls as codec
from etcdanyio._pb import etcdserverpb as pb
from etcdanyio.lease import LeaseGrantResult, LeaseTimeToLiveResult
from etcdanyio.types import Member, ResponseHeader
from tests._reference import status_from_pb

if TYPE_CHECKING:
    from collections.abc import Callable


pytestmark = pytest.mark.unit

INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
int64s = st.one_of(
    st.sampled_from([0, 1, -1, 127, 128, 16384, INT64_MAX, INT64_MIN]),
    st.integers(INT64_MIN, INT64_MAX),
)
uint64s = st.one_of(st.sampled_from([0, 1, 128, 2**63, UINT64_MAX]), st.integers(0, UINT64_MAX))
texts = st.text(max_size=12)
headers = st.builds(
    pb.ResponseHeader, cluster_id=uint64s, member_id=uint64s, revision=int64s, raft_term=uint64s
)
maybe_headers = st.none() | headers


def header(message: Any) -> ResponseHeader:
    return ResponseHeader.from_pb(message.header)


def varint(n: int) -> bytes:
    n &= UINT64_MAX
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Unknown fields of every wire type, at field numbers none of these messages use.
unknown_fields = st.lists(
    st.one_of(
        st.builds(lambda v: varint(100 << 3) + varint(v), uint64s),
        st.builds(lambda b: varint(101 << 3 | 2) + varint(len(b)) + b, st.binary(max_size=9)),
        st.just(varint(102 << 3 | 1) + bytes(8)),
        st.just(varint(103 << 3 | 5) + bytes(4)),
    ),
    max_size=3,
)


def fields_of(message: Any) -> list[bytes]:
    """The encoding of each set field of ``message`` on its own (repeated: each element)."""
    cls = type(message)
    out: list[bytes] = []
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        if isinstance(value, list):
            out += [bytes(cls(**{f.name: [item]})) for item in value]
        else:
            out.append(bytes(cls(**{f.name: value})))
    return [piece for piece in out if piece]


@st.composite
def shuffled(draw: st.DrawFn, messages: st.SearchStrategy[Any]) -> tuple[Any, bytes]:
    """A message and its fields in a random order (repeated ones keep theirs) among unknown
    fields; betterproto2's parse of the same bytes is the reference."""
    message = draw(messages)
    pieces = fields_of(message)
    pieces += draw(unknown_fields)
    order = draw(st.permutations(range(len(pieces))))
    # repeated fields must keep their relative order: sort each field's pieces back
    data = b"".join(pieces[i] for i in _stable(order, pieces))
    return type(message).parse(data), data


def _stable(order: Any, pieces: list[bytes]) -> list[int]:
    by_tag: dict[bytes, list[int]] = {}
    for i in range(len(pieces)):
        by_tag.setdefault(pieces[i][:1], []).append(i)
    queues = {t: iter(ix) for t, ix in by_tag.items()}
    return [next(queues[pieces[i][:1]]) for i in order]


def assert_truncations_raise(decode: Callable[[bytes], object], message: Any) -> None:
    """Every cut inside the last field of ``message`` (after its tag) is an error."""
    pieces = fields_of(message)
    if not pieces:
        return
    data = b"".join(pieces)
    for cut in range(len(data) - len(pieces[-1]) + 1, len(data)):
        with pytest.raises(ValueError, match="malformed protobuf"):
            decode(data[:cut])


# --- encoders ------------------------------------------------------------------


@given(int64s, int64s)
def test_encode_lease_grant(ttl: int, lease_id: int) -> None:
    assert codec.encode_lease_grant(ttl, lease_id) == bytes(
        pb.LeaseGrantRequest(ttl=ttl, id=lease_id)
    )


@given(int64s)
def test_encode_lease_revoke(lease_id: int) -> None:
    assert codec.encode_lease_revoke(lease_id) == bytes(pb.LeaseRevokeRequest(id=lease_id))


@given(int64s, st.booleans())
def test_encode_lease_time_to_live(lease_id: int, keys: bool) -> None:
    expected = bytes(pb.LeaseTimeToLiveRequest(id=lease_id, keys=keys))
    assert codec.encode_lease_time_to_live(lease_id, keys) == expected


@given(st.booleans())
def test_encode_member_list(linearizable: bool) -> None:
    expected = bytes(pb.MemberListRequest(linearizable=linearizable))
    assert codec.encode_member_list(linearizable) == expected


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1])
def test_encoders_reject_what_int64_cannot_hold(bad: int) -> None:
    for encode in (codec.encode_lease_grant, codec.encode_lease_revoke):
        with pytest.raises(ValueError, match="int64"):
            encode(bad)


# --- decoders --------------------------------------------------------------------

grants = st.builds(pb.LeaseGrantResponse, header=maybe_headers, id=int64s, ttl=int64s, error=texts)
revokes = st.builds(pb.LeaseRevokeResponse, header=maybe_headers)
ttls = st.builds(
    pb.LeaseTimeToLiveResponse,
    header=maybe_headers,
    id=int64s,
    ttl=int64s,
    granted_ttl=int64s,
    keys=st.lists(st.binary(max_size=10), max_size=3),
)
members_pb = st.builds(
    pb.Member,
    id=uint64s,
    name=texts,
    peer_ur_ls=st.lists(texts, max_size=3),
    client_ur_ls=st.lists(texts, max_size=3),
    is_learner=st.booleans(),
)
member_lists = st.builds(
    pb.MemberListResponse, header=maybe_headers, members=st.lists(members_pb, max_size=3)
)
statuses = st.builds(
    pb.StatusResponse,
    header=maybe_headers,
    version=texts,
    db_size=int64s,
    leader=uint64s,
    raft_index=uint64s,
    raft_term=uint64s,
    raft_applied_index=uint64s,
    errors=st.lists(texts, max_size=3),
    db_size_in_use=int64s,
    is_learner=st.booleans(),
)


def expected_grant(m: pb.LeaseGrantResponse) -> LeaseGrantResult:
    return LeaseGrantResult(header(m), m.id, m.ttl)


def expected_ttl(m: pb.LeaseTimeToLiveResponse) -> LeaseTimeToLiveResult:
    return LeaseTimeToLiveResult(header(m), m.id, m.ttl, m.granted_ttl, list(m.keys))


def expected_members(m: pb.MemberListResponse) -> list[Member]:
    return [Member.from_pb(member) for member in m.members]


CASES: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], object], Callable[[bytes], object]]]
CASES = [
    ("grant", grants, expected_grant, codec.decode_lease_grant_response),
    ("revoke", revokes, header, codec.decode_lease_revoke_response),
    ("time-to-live", ttls, expected_ttl, codec.decode_lease_time_to_live_response),
    ("member list", member_lists, expected_members, codec.decode_member_list_response),
    ("status", statuses, status_from_pb, codec.decode_status_response),
]


@pytest.mark.parametrize(
    ("messages", "expected", "decode"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decoders_match_betterproto(
    messages: st.SearchStrategy[Any],
    expected: Callable[[Any], object],
    decode: Callable[[bytes], object],
) -> None:
    @given(messages)
    def check(message: Any) -> None:
        data = bytes(message)
        result = decode(data)
        assert result == expected(type(message).parse(data))
        ids: dict[bytes, tuple[int, int]] = {}
        assert decode(data, ids) == result  # type: ignore[call-arg]
        assert decode(data, ids) == result  # type: ignore[call-arg]

    check()


@pytest.mark.parametrize(
    ("messages", "expected", "decode"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decoders_take_fields_in_any_order_among_unknown_ones(
    messages: st.SearchStrategy[Any],
    expected: Callable[[Any], object],
    decode: Callable[[bytes], object],
) -> None:
    @given(shuffled(messages))
    def check(case: tuple[Any, bytes]) -> None:
        reference, data = case
        assert decode(data) == expected(reference)

    check()


@pytest.mark.parametrize(
    ("messages", "decode"), [(c[1], c[3]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_truncated_input_raises(
    messages: st.SearchStrategy[Any], decode: Callable[[bytes], object]
) -> None:
    @given(messages)
    def check(message: Any) -> None:
        assert_truncations_raise(decode, message)

    check()


def test_repeated_scalars_last_one_wins_and_wrong_wire_types_are_skipped() -> None:
    # ID twice (the last wins); TTL as a length-delimited field (wrong wire type: skipped)
    data = b"\x10\x05\x10\x07" + b"\x1a\x01x" + b"\x18\x03"
    assert codec.decode_lease_grant_response(data).id == 7
    assert codec.decode_lease_grant_response(data).ttl == 3
    # a header seen twice merges
    data = bytes(pb.LeaseRevokeResponse(header=pb.ResponseHeader(revision=5))) + bytes(
        pb.LeaseRevokeResponse(header=pb.ResponseHeader(raft_term=2))
    )
    assert codec.decode_lease_revoke_response(data) == ResponseHeader(0, 0, 5, 2)


@pytest.mark.parametrize(
    "data",
    [
        b"\x12\x05ab",  # a length past the end
        b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # an 11-byte varint
        b"\x13",  # a group
        b"\x07\x00",  # field number 0
    ],
)
def test_malformed_input_raises(data: bytes) -> None:
    for decode in (codec.decode_lease_grant_response, codec.decode_member_list_response):
        with pytest.raises(ValueError, match="malformed protobuf"):
            decode(data)


def test_malformed_member_raises() -> None:
    # a member (field 2) whose one byte is the start of a longer varint tag
    with pytest.raises(ValueError, match="malformed protobuf"):
        codec.decode_member_list_response(b"\x12\x01\xff")


def test_member_strings_must_be_utf8() -> None:
    data = bytes(pb.MemberListResponse(members=[pb.Member(id=1)])) + b"\x12\x03\x12\x01\xff"
    with pytest.raises(ValueError, match="UTF-8"):
        codec.decode_member_list_response(data)

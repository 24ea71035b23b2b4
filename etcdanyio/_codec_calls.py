"""
The hand-written codec (see :mod:`._codec`) for the frequent calls beyond KV:
lease grant, revoke, time-to-live and keepalive, the member list and status.

These messages are flat (a header and scalars, strings or repeated strings), so
one scanner reads them all: :func:`_scan` collects the header (field 1,
merged), the last value of every varint field and every occurrence of every
length-delimited field, by field number; each decoder then takes the fields it
knows with the wire type it expects. A known field with the wrong wire type
therefore lands in the other table and is ignored, as protobuf says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._codec_decode import (
    _INT64_MAX,
    _TWO64,
    _header,
    _malformed,
    _skip,
    _Truncated,
    _varint,
)
from ._codec_encode import _int64
from ._types import (
    _EMPTY_HEADER,
    LeaseGrantResult,
    LeaseTimeToLiveResult,
    Member,
    ResponseHeader,
    StatusResult,
)

if TYPE_CHECKING:
    from ._codec_decode import IdMemo

__all__ = [
    "decode_lease_grant_response",
    "decode_lease_revoke_response",
    "decode_lease_time_to_live_response",
    "decode_member_list_response",
    "decode_status_response",
    "encode_lease_grant",
    "encode_lease_revoke",
    "encode_lease_time_to_live",
    "encode_member_list",
]


# --- encoding -----------------------------------------------------------------


def encode_lease_grant(ttl: int, lease_id: int = 0) -> bytes:
    """An ``etcdserverpb.LeaseGrantRequest`` (TTL = 1, ID = 2)."""
    out = b"\x08" + _int64(ttl) if ttl else b""
    if lease_id:
        out += b"\x10" + _int64(lease_id)
    return out


def encode_lease_revoke(lease_id: int) -> bytes:
    """An ``etcdserverpb.LeaseRevokeRequest`` (ID = 1)."""
    return b"\x08" + _int64(lease_id) if lease_id else b""


def encode_lease_time_to_live(lease_id: int, keys: bool = False) -> bytes:
    """An ``etcdserverpb.LeaseTimeToLiveRequest`` (ID = 1, keys = 2)."""
    out = b"\x08" + _int64(lease_id) if lease_id else b""
    if keys:
        out += b"\x10\x01"
    return out


def encode_member_list(linearizable: bool) -> bytes:
    """An ``etcdserverpb.MemberListRequest`` (linearizable = 1)."""
    return b"\x08\x01" if linearizable else b""


# --- decoding -----------------------------------------------------------------


def _scan(
    data: bytes, start: int, end: int, with_header: bool, ids: IdMemo | None
) -> tuple[ResponseHeader, dict[int, int], dict[int, list[bytes]]]:
    """The fields of ``data[start:end]``: the header (field 1, if ``with_header``), the
    varint fields (the last one wins, unsigned) and the length-delimited fields (each
    occurrence, in order), by field number. Raises ``IndexError``/``_Truncated``."""
    header: ResponseHeader | None = None
    ints: dict[int, int] = {}
    blobs: dict[int, list[bytes]] = {}
    pos = start
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(data, pos, tag)
        wire_type = tag & 7
        if wire_type == 0 and tag >= 8:
            v = data[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint(data, pos, v)
            ints[tag >> 3] = v
        elif wire_type == 2 and 8 <= tag <= 0xFFFFFFFF:
            n = data[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _varint(data, pos, n)
            stop = pos + n
            if stop > end:
                raise _Truncated
            if tag == 0x0A and with_header:
                header = _header(data, pos, stop, header, ids)
            else:
                number = tag >> 3
                chunk = data[pos:stop]
                if number in blobs:
                    blobs[number].append(chunk)
                else:
                    blobs[number] = [chunk]
            pos = stop
        else:
            pos = _skip(data, pos, tag)
    if pos != end:
        raise _Truncated
    return header or _EMPTY_HEADER, ints, blobs


def _fields(
    data: bytes, ids: IdMemo | None
) -> tuple[ResponseHeader, dict[int, int], dict[int, list[bytes]]]:
    try:
        return _scan(data, 0, len(data), True, ids)
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None


def _int(ints: dict[int, int], number: int) -> int:
    """An int64 field (the varint is two's complement)."""
    v = ints.get(number, 0)
    return v - _TWO64 if v > _INT64_MAX else v


def _text(chunk: bytes) -> str:
    try:
        return chunk.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("a string that is not UTF-8") from None


def decode_lease_grant_response(data: bytes, ids: IdMemo | None = None) -> LeaseGrantResult:
    """An ``etcdserverpb.LeaseGrantResponse`` (ID = 2, TTL = 3; the error string is unused)."""
    header, ints, _ = _fields(data, ids)
    return LeaseGrantResult(header, _int(ints, 2), _int(ints, 3))


def decode_lease_revoke_response(data: bytes, ids: IdMemo | None = None) -> ResponseHeader:
    """The header of an ``etcdserverpb.LeaseRevokeResponse``."""
    return _fields(data, ids)[0]


def decode_lease_time_to_live_response(
    data: bytes, ids: IdMemo | None = None
) -> LeaseTimeToLiveResult:
    """An ``etcdserverpb.LeaseTimeToLiveResponse`` (ID = 2, TTL = 3, grantedTTL = 4,
    keys = 5)."""
    header, ints, blobs = _fields(data, ids)
    keys = blobs.get(5, [])
    return LeaseTimeToLiveResult(header, _int(ints, 2), _int(ints, 3), _int(ints, 4), keys)


def _member(data: bytes) -> Member:
    """``etcdserverpb.Member``: ID = 1 (uint64), name = 2, peerURLs = 3, clientURLs = 4,
    isLearner = 5."""
    try:
        _, ints, blobs = _scan(data, 0, len(data), False, None)
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None
    names = blobs.get(2)
    return Member(
        ints.get(1, 0),
        _text(names[-1]) if names else "",
        [_text(url) for url in blobs.get(3, ())],
        [_text(url) for url in blobs.get(4, ())],
        ints.get(5, 0) != 0,
    )


def decode_member_list_response(data: bytes, ids: IdMemo | None = None) -> list[Member]:
    """The members of an ``etcdserverpb.MemberListResponse`` (members = 2)."""
    return [_member(m) for m in _fields(data, ids)[2].get(2, ())]


def decode_status_response(data: bytes, ids: IdMemo | None = None) -> StatusResult:
    """An ``etcdserverpb.StatusResponse``: version = 2, dbSize = 3, leader = 4,
    raftIndex = 5, raftTerm = 6, raftAppliedIndex = 7, errors = 8, dbSizeInUse = 9,
    isLearner = 10 (later fields are not read)."""
    header, ints, blobs = _fields(data, ids)
    versions = blobs.get(2)
    return StatusResult(
        header,
        _text(versions[-1]) if versions else "",
        _int(ints, 3),
        _int(ints, 9),
        ints.get(4, 0),
        ints.get(5, 0),
        ints.get(6, 0),
        ints.get(7, 0),
        ints.get(10, 0) != 0,
        [_text(e) for e in blobs.get(8, ())],
    )

"""
The decoders of the hand-written protobuf codec: the responses of the hot calls.

``Range``, ``Put``, ``DeleteRange`` and ``Txn`` responses go straight to the
result types (built through :mod:`._codec_construct`), ``LeaseKeepAlive`` to a pair of
ints; the primitives here (varints, skipping, headers, KeyValues) also serve
``_codec_watch`` and ``_codec_calls``. They follow the protobuf rules: unknown
fields (and known fields with the wrong wire type) are skipped, the last value
of a repeated scalar wins, repeated messages append, a singular message seen
twice is merged, and groups, invalid wire types, field number 0, over-long
varints and truncated input raise ``ValueError("malformed protobuf: ...")``.

The decoders are written for CPython's interpreter: plain ``bytes`` indexing,
locals only, one-byte varints and tags decoded inline. A field's bounds are
checked once, when the message ends (``pos != end``): reading past a
submessage's end only ever moves ``pos`` further, and past the whole buffer
raises ``IndexError``, which becomes the ``ValueError``.

Member, cluster and lease IDs are random 64-bit numbers, so their varints run
to 9 or 10 bytes and cost ~1 µs to decode byte by byte; but a client keeps
seeing the same few. Every decoder therefore takes an :data:`IdMemo`, owned by
whoever reads the responses (the client, a watch stream), or ``None`` to decode
them directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._codec_construct import (
    kv_create,
    kv_key,
    kv_lease,
    kv_mod,
    kv_value,
    kv_version,
    make_delete,
    make_header,
    make_put,
    make_range,
    new,
)
from ._types import (
    _EMPTY_HEADER,
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    ResponseHeader,
    TxnResult,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "ID_MEMO_SIZE",
    "IdMemo",
    "decode_delete_range_response",
    "decode_header",
    "decode_kv",
    "decode_lease_keepalive",
    "decode_put_response",
    "decode_range_response",
    "decode_txn_response",
]

_MASK64 = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1
_TWO64 = 1 << 64

#: the ID varints one reader has seen: the 10-byte window starting at a varint (which
#: determines it) -> its value and length; cleared when it reaches :data:`ID_MEMO_SIZE`
IdMemo = dict[bytes, tuple[int, int]]
ID_MEMO_SIZE = 256


class _Truncated(Exception):
    pass


def _malformed(why: str) -> ValueError:
    return ValueError(f"malformed protobuf: {why}")


def _varint(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte ``first`` (>= 0x80) ended at ``pos``.

    Returns the value, truncated to 64 bits as protobuf does, and the new position.
    Two- and three-byte varints (revisions, lengths) are unrolled.
    """
    b = data[pos]
    if b < 0x80:
        return (first & 0x7F) | b << 7, pos + 1
    value = (first & 0x7F) | (b & 0x7F) << 7
    b = data[pos + 1]
    if b < 0x80:
        return value | b << 14, pos + 2
    value |= (b & 0x7F) << 14
    shift = 21
    pos += 2
    b = data[pos]
    pos += 1
    while b >= 0x80:
        value |= (b & 0x7F) << shift
        shift += 7
        if shift > 63:
            raise _malformed("varint longer than 10 bytes")
        b = data[pos]
        pos += 1
    return (value | (b << shift)) & _MASK64, pos


def _id_varint(data: bytes, pos: int, ids: IdMemo | None) -> tuple[int, int]:
    """The varint at ``pos`` (not yet consumed), memoized in ``ids``; returns it and the
    new position."""
    if ids is None:
        return _varint(data, pos + 1, data[pos])
    window = data[pos : pos + 10]
    hit = ids.get(window)
    if hit is None:
        value, stop = _varint(data, pos + 1, data[pos])
        hit = (value, stop - pos)
        if len(ids) >= ID_MEMO_SIZE:
            ids.clear()
        ids[window] = hit
    return hit[0], pos + hit[1]


def _skip(data: bytes, pos: int, tag: int) -> int:
    """Skip the value of an unknown field (or a known one with the wrong wire type)."""
    wire_type = tag & 7
    if tag < 8 or tag > 0xFFFFFFFF:
        raise _malformed(f"invalid field number {tag >> 3}")
    if wire_type == 0:
        b = data[pos]
        pos += 1
        if b >= 0x80:
            pos = _varint(data, pos, b)[1]
        return pos
    if wire_type == 2:
        n = data[pos]
        pos += 1
        if n >= 0x80:
            n, pos = _varint(data, pos, n)
        return pos + n
    if wire_type == 1:
        return pos + 8
    if wire_type == 5:
        return pos + 4
    if wire_type in (3, 4):
        raise _malformed(f"group (wire type {wire_type}) in field {tag >> 3}")
    raise _malformed(f"invalid wire type {wire_type} in field {tag >> 3}")


# _header and _kv first take the fields etcd sends, in the order it sends them,
# in straight-line code; whatever is left (nothing, normally) goes through the
# general loop, which continues with the same locals, so the protobuf rules
# hold whatever the order. The ``pos < end`` guards keep the fast path from
# reading the next field of the enclosing message as one of this message's.
#
# A singular message field seen twice must be merged: read as if its encodings
# were concatenated. Both messages hold only scalars, so that is reading the
# second on top of the first: ``base``.


def _header(
    data: bytes, pos: int, end: int, base: ResponseHeader | None, ids: IdMemo | None
) -> ResponseHeader:
    """``etcdserverpb.ResponseHeader`` in ``data[pos:end]``, merged into ``base``."""
    if base is None:
        cluster_id = member_id = revision = raft_term = 0
    else:
        cluster_id, member_id = base.cluster_id, base.member_id
        revision, raft_term = base.revision, base.raft_term
    if pos < end and data[pos] == 0x08:
        cluster_id = data[pos + 1]
        pos += 2
        if cluster_id >= 0x80:
            cluster_id, pos = _id_varint(data, pos - 1, ids)
    if pos < end and data[pos] == 0x10:
        member_id = data[pos + 1]
        pos += 2
        if member_id >= 0x80:
            member_id, pos = _id_varint(data, pos - 1, ids)
    if pos < end and data[pos] == 0x18:
        revision = data[pos + 1]
        pos += 2
        if revision >= 0x80:
            revision, pos = _varint(data, pos, revision)
            if revision > _INT64_MAX:
                revision -= _TWO64
    if pos < end and data[pos] == 0x20:
        raft_term = data[pos + 1]
        pos += 2
        if raft_term >= 0x80:
            raft_term, pos = _varint(data, pos, raft_term)
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(data, pos, tag)
        if tag == 0x08 or tag == 0x10 or tag == 0x18 or tag == 0x20:
            v = data[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint(data, pos, v)
            if tag == 0x08:
                cluster_id = v
            elif tag == 0x10:
                member_id = v
            elif tag == 0x18:
                revision = v - _TWO64 if v > _INT64_MAX else v
            else:
                raft_term = v
        else:
            pos = _skip(data, pos, tag)
    if pos != end:
        raise _Truncated
    return make_header(cluster_id, member_id, revision, raft_term)


def _kv(data: bytes, pos: int, end: int, base: KeyValue | None, ids: IdMemo | None) -> KeyValue:
    """``mvccpb.KeyValue`` in ``data[pos:end]``, merged into ``base``."""
    if base is None:
        key = value = b""
        create_revision = mod_revision = version = lease = 0
    else:
        key, value, create_revision = base.key, base.value, base.create_revision
        mod_revision, version, lease = base.mod_revision, base.version, base.lease
    if pos < end and data[pos] == 0x0A:
        n = data[pos + 1]
        pos += 2
        if n >= 0x80:
            n, pos = _varint(data, pos, n)
        key = data[pos : pos + n]
        pos += n
    if pos < end and data[pos] == 0x10:
        create_revision = data[pos + 1]
        pos += 2
        if create_revision >= 0x80:
            # The revisions of a store past 16,384 writes: three bytes, inlined.
            b = data[pos]
            if b >= 0x80 and data[pos + 1] < 0x80:
                create_revision = (create_revision & 0x7F) | (b & 0x7F) << 7 | data[pos + 1] << 14
                pos += 2
            else:
                create_revision, pos = _varint(data, pos, create_revision)
                if create_revision > _INT64_MAX:
                    create_revision -= _TWO64
    if pos < end and data[pos] == 0x18:
        mod_revision = data[pos + 1]
        pos += 2
        if mod_revision >= 0x80:
            b = data[pos]
            if b >= 0x80 and data[pos + 1] < 0x80:
                mod_revision = (mod_revision & 0x7F) | (b & 0x7F) << 7 | data[pos + 1] << 14
                pos += 2
            else:
                mod_revision, pos = _varint(data, pos, mod_revision)
                if mod_revision > _INT64_MAX:
                    mod_revision -= _TWO64
    if pos < end and data[pos] == 0x20:
        version = data[pos + 1]
        pos += 2
        if version >= 0x80:
            version, pos = _varint(data, pos, version)
            if version > _INT64_MAX:
                version -= _TWO64
    if pos < end and data[pos] == 0x2A:
        n = data[pos + 1]
        pos += 2
        if n >= 0x80:
            n, pos = _varint(data, pos, n)
        value = data[pos : pos + n]
        pos += n
    if pos < end and data[pos] == 0x30:
        lease = data[pos + 1]
        pos += 2
        if lease >= 0x80:
            lease, pos = _id_varint(data, pos - 1, ids)
            if lease > _INT64_MAX:
                lease -= _TWO64
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(data, pos, tag)
        if tag & 7 == 0 and 0x10 <= tag <= 0x30 and tag != 0x28:
            # the int64 fields: 2 create_revision, 3 mod, 4 version, 6 lease
            v = data[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint(data, pos, v)
                if v > _INT64_MAX:
                    v -= _TWO64
            if tag == 0x10:
                create_revision = v
            elif tag == 0x18:
                mod_revision = v
            elif tag == 0x20:
                version = v
            else:
                lease = v
        elif tag == 0x0A or tag == 0x2A:
            n = data[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _varint(data, pos, n)
            if tag == 0x0A:
                key = data[pos : pos + n]
            else:
                value = data[pos : pos + n]
            pos += n
        else:
            pos = _skip(data, pos, tag)
    if pos != end:
        raise _Truncated
    # make_kv, inlined: this runs once per key of a range.
    kv: KeyValue = new(KeyValue)
    kv_key(kv, key)
    kv_value(kv, value)
    kv_create(kv, create_revision)
    kv_mod(kv, mod_revision)
    kv_version(kv, version)
    kv_lease(kv, lease)
    return kv


def decode_header(data: bytes, ids: IdMemo | None = None) -> ResponseHeader:
    """Decode an ``etcdserverpb.ResponseHeader``."""
    try:
        return _header(data, 0, len(data), None, ids)
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None


def decode_kv(data: bytes, ids: IdMemo | None = None) -> KeyValue:
    """Decode an ``mvccpb.KeyValue``."""
    try:
        return _kv(data, 0, len(data), None, ids)
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None


def _response(
    data: bytes, kvs_tag: int, int_tag: int, bool_tag: int, kv_is_singular: bool, ids: IdMemo | None
) -> tuple[ResponseHeader, list[KeyValue], int, bool]:
    """The shape of the KV responses: a header (field 1), KeyValues (repeated, or
    singular and so merged), an int64 and a bool at the given tags (-1 for none)."""
    header = None
    kvs: list[KeyValue] = []
    number = 0
    flag = False
    pos = 0
    end = len(data)
    try:
        while pos < end:
            tag = data[pos]
            pos += 1
            if tag >= 0x80:
                tag, pos = _varint(data, pos, tag)
            if tag == kvs_tag or tag == 0x0A:
                n = data[pos]
                pos += 1
                if n >= 0x80:
                    n, pos = _varint(data, pos, n)
                stop = pos + n
                if tag == 0x0A:
                    header = _header(data, pos, stop, header, ids)
                elif kv_is_singular and kvs:
                    kvs[0] = _kv(data, pos, stop, kvs[0], ids)
                else:
                    kvs.append(_kv(data, pos, stop, None, ids))
                    if not kv_is_singular:
                        # A range's keys come one after the other: take them in a
                        # tight loop (one-byte tag, as every kvs tag here is).
                        append = kvs.append
                        while stop < end and data[stop] == tag:
                            n = data[stop + 1]
                            pos = stop + 2
                            if n >= 0x80:
                                n, pos = _varint(data, pos, n)
                            stop = pos + n
                            append(_kv(data, pos, stop, None, ids))
                pos = stop
            elif tag in (int_tag, bool_tag):
                v = data[pos]
                pos += 1
                if v >= 0x80:
                    v, pos = _varint(data, pos, v)
                if tag == int_tag:
                    number = v - _TWO64 if v > _INT64_MAX else v
                else:
                    flag = v != 0
            else:
                pos = _skip(data, pos, tag)
        if pos != end:
            raise _Truncated
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None
    return header or _EMPTY_HEADER, kvs, number, flag


def decode_range_response(data: bytes, ids: IdMemo | None = None) -> RangeResult:
    """Decode an ``etcdserverpb.RangeResponse``."""
    header, kvs, count, more = _response(data, 0x12, 0x20, 0x18, False, ids)
    return make_range(header, kvs, count, more)


def decode_delete_range_response(data: bytes, ids: IdMemo | None = None) -> DeleteResult:
    """Decode an ``etcdserverpb.DeleteRangeResponse``."""
    header, prev_kvs, deleted, _ = _response(data, 0x1A, 0x10, -1, False, ids)
    return make_delete(header, deleted, prev_kvs)


_EMPTY_KV = KeyValue(b"", b"", 0, 0, 0, 0)


def decode_put_response(data: bytes, ids: IdMemo | None = None) -> PutResult:
    """Decode an ``etcdserverpb.PutResponse``.

    As betterproto2 reads it, a ``prev_kv`` with every field at its default
    counts as absent.
    """
    header, kvs, _, _ = _response(data, 0x12, -1, -1, True, ids)
    prev_kv = kvs[0] if kvs and kvs[0] != _EMPTY_KV else None
    return make_put(header, prev_kv)


# --- txn ------------------------------------------------------------------------

TxnOpResult = RangeResult | PutResult | DeleteResult | TxnResult


def decode_txn_response(data: bytes, ids: IdMemo | None = None) -> TxnResult:
    """Decode an ``etcdserverpb.TxnResponse`` (nested transactions included)."""
    header: ResponseHeader | None = None
    succeeded = False
    responses: list[TxnOpResult] = []
    # The ops of a transaction often answer with the same bytes (each put: the
    # same header): decode those once. Only put results, which are immutable.
    puts: dict[bytes, TxnOpResult] = {}
    pos = 0
    end = len(data)
    try:
        while pos < end:
            tag = data[pos]
            pos += 1
            if tag >= 0x80:
                tag, pos = _varint(data, pos, tag)
            if tag == 0x0A or tag == 0x1A:
                n = data[pos]
                pos += 1
                if n >= 0x80:
                    n, pos = _varint(data, pos, n)
                stop = pos + n
                if tag == 0x0A:
                    header = _header(data, pos, stop, header, ids)
                else:
                    raw = data[pos:stop]
                    result = puts.get(raw)
                    if result is None:
                        result = _response_op(raw, ids)
                        if type(result) is PutResult:
                            puts[raw] = result
                    responses.append(result)
                pos = stop
            elif tag == 0x10:
                v = data[pos]
                pos += 1
                if v >= 0x80:
                    v, pos = _varint(data, pos, v)
                succeeded = v != 0
            else:
                pos = _skip(data, pos, tag)
        if pos != end:
            raise _Truncated
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None
    return TxnResult(header or _EMPTY_HEADER, succeeded, responses)


_OP_DECODERS: dict[int, Callable[[bytes, IdMemo | None], TxnOpResult]] = {
    0x0A: decode_range_response,
    0x12: decode_put_response,
    0x1A: decode_delete_range_response,
    0x22: decode_txn_response,
}


def _response_op(data: bytes, ids: IdMemo | None) -> TxnOpResult:
    """A ``ResponseOp``: one member of its oneof (the last one, if several)."""
    result: TxnOpResult | None = None
    pos = 0
    end = len(data)
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(data, pos, tag)
        decoder = _OP_DECODERS.get(tag)
        if decoder is None:
            pos = _skip(data, pos, tag)
            continue
        n = data[pos]
        pos += 1
        if n >= 0x80:
            n, pos = _varint(data, pos, n)
        result = decoder(data[pos : pos + n], ids)
        pos += n
    if pos != end:
        raise _Truncated
    if result is None:
        raise _malformed("ResponseOp without a response")
    return result


# --- lease keepalive ------------------------------------------------------------


def decode_lease_keepalive(data: bytes) -> tuple[int, int]:
    """``(ID, TTL)`` of an ``etcdserverpb.LeaseKeepAliveResponse`` (the header is skipped)."""
    lease_id = ttl = 0
    pos = 0
    end = len(data)
    try:
        while pos < end:
            tag = data[pos]
            pos += 1
            if tag >= 0x80:
                tag, pos = _varint(data, pos, tag)
            if tag == 0x10 or tag == 0x18:
                v = data[pos]
                pos += 1
                if v >= 0x80:
                    v, pos = _varint(data, pos, v)
                v = v - _TWO64 if v > _INT64_MAX else v
                if tag == 0x10:
                    lease_id = v
                else:
                    ttl = v
            else:
                pos = _skip(data, pos, tag)
        if pos != end:
            raise _Truncated
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None
    return lease_id, ttl

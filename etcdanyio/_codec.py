"""
A hand-written protobuf wire codec for the hot KV calls (Put, Range, DeleteRange).

betterproto2 stays the reference and the codec for everything else; this module
exists because its generic, reflective codec costs far more per call than the
rest of the client. Encoders emit fields in field-number order and skip
defaults (proto3), so their output is byte-identical to ``bytes(pb.X(...))``.
Decoders go straight to the result types in :mod:`etcdanyio.types` and follow
the protobuf rules: unknown fields (and known fields with the wrong wire type)
are skipped, the last value of a repeated scalar wins, repeated messages
append, a singular message seen twice is merged, and groups, invalid wire
types, field number 0, over-long varints and truncated input raise
``ValueError("malformed protobuf: ...")``.

The decoders are written for CPython's interpreter: plain ``bytes`` indexing,
locals only, one-byte varints and tags decoded inline. A field's bounds are
checked once, when the message ends (``pos != end``): reading past a
submessage's end only ever moves ``pos`` further, and past the whole buffer
raises ``IndexError``, which becomes the ``ValueError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ._events import Event, EventType
from .types import (
    _EMPTY_HEADER,
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    ResponseHeader,
    TxnResult,
    _kv_create,
    _kv_key,
    _kv_lease,
    _kv_mod,
    _kv_value,
    _kv_version,
    _make_delete,
    _make_header,
    _make_put,
    _make_range,
    _new,
    _slot_setters,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "decode_delete_range_response",
    "decode_header",
    "decode_kv",
    "decode_put_response",
    "decode_range_response",
    "encode_delete_range",
    "encode_put",
    "encode_range",
]

_MASK64 = (1 << 64) - 1
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_TWO64 = 1 << 64
_BYTE = tuple(bytes((i,)) for i in range(128))


class _Truncated(Exception):
    pass


def _malformed(why: str) -> ValueError:
    return ValueError(f"malformed protobuf: {why}")


# --- encoding -----------------------------------------------------------------


def _uvarint(n: int) -> bytes:
    """A varint for ``0 <= n < 2**64``."""
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int64(n: int) -> bytes:
    """An int64 varint: negative numbers take ten bytes, two's complement."""
    if n < 0:
        if n < _INT64_MIN:
            raise ValueError(f"{n} does not fit in an int64")
        n += _TWO64
    elif n > _INT64_MAX:
        raise ValueError(f"{n} does not fit in an int64")
    return _uvarint(n)


def encode_put(
    key: bytes,
    value: bytes,
    lease: int = 0,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> bytes:
    """An ``etcdserverpb.PutRequest``."""
    out: list[bytes] = []
    if key:
        out += (b"\x0a", _uvarint(len(key)), key)
    if value:
        out += (b"\x12", _uvarint(len(value)), value)
    if lease:
        out += (b"\x18", _int64(lease))
    if prev_kv:
        out.append(b"\x20\x01")
    if ignore_value:
        out.append(b"\x28\x01")
    if ignore_lease:
        out.append(b"\x30\x01")
    return b"".join(out)


def encode_range(
    key: bytes,
    range_end: bytes = b"",
    limit: int = 0,
    revision: int = 0,
    sort_order: int = 0,
    sort_target: int = 0,
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> bytes:
    """An ``etcdserverpb.RangeRequest`` (``sort_order``/``sort_target`` are the enums' ints)."""
    out: list[bytes] = []
    if key:
        out += (b"\x0a", _uvarint(len(key)), key)
    if range_end:
        out += (b"\x12", _uvarint(len(range_end)), range_end)
    if limit:
        out += (b"\x18", _int64(limit))
    if revision:
        out += (b"\x20", _int64(revision))
    if sort_order:
        out += (b"\x28", _int64(sort_order))
    if sort_target:
        out += (b"\x30", _int64(sort_target))
    if serializable:
        out.append(b"\x38\x01")
    if keys_only:
        out.append(b"\x40\x01")
    if count_only:
        out.append(b"\x48\x01")
    if min_mod_revision:
        out += (b"\x50", _int64(min_mod_revision))
    if max_mod_revision:
        out += (b"\x58", _int64(max_mod_revision))
    if min_create_revision:
        out += (b"\x60", _int64(min_create_revision))
    if max_create_revision:
        out += (b"\x68", _int64(max_create_revision))
    return b"".join(out)


def encode_delete_range(key: bytes, range_end: bytes = b"", prev_kv: bool = False) -> bytes:
    """An ``etcdserverpb.DeleteRangeRequest``."""
    out: list[bytes] = []
    if key:
        out += (b"\x0a", _uvarint(len(key)), key)
    if range_end:
        out += (b"\x12", _uvarint(len(range_end)), range_end)
    if prev_kv:
        out.append(b"\x18\x01")
    return b"".join(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: ``tag`` (pre-encoded), length, payload."""
    return tag + _uvarint(len(payload)) + payload


def encode_compare(
    result: int, target: int, key: bytes, range_end: bytes, operand: int | bytes
) -> bytes:
    """An ``etcdserverpb.Compare``. The operand is a oneof member: always present."""
    out: list[bytes] = []
    if result:
        out += (b"\x08", _int64(result))
    if target:
        out += (b"\x10", _int64(target))
    if key:
        out += (b"\x1a", _uvarint(len(key)), key)
    if isinstance(operand, bytes):
        out += (b"\x3a", _uvarint(len(operand)), operand)
    else:
        # target: VERSION=0 -> field 4, CREATE=1 -> 5, MOD=2 -> 6, LEASE=4 -> 8
        out += (_BYTE[(4 + target) << 3 if target < 3 else 8 << 3], _int64(operand))
    if range_end:
        out += (b"\x82\x04", _uvarint(len(range_end)), range_end)
    return b"".join(out)


#: RequestOp field tags: request_range=1, request_put=2, request_delete_range=3, request_txn=4
OP_RANGE = b"\x0a"
OP_PUT = b"\x12"
OP_DELETE = b"\x1a"
OP_TXN = b"\x22"


def encode_txn(compare: list[bytes], success: list[bytes], failure: list[bytes]) -> bytes:
    """An ``etcdserverpb.TxnRequest`` from encoded Compares and RequestOps."""
    out: list[bytes] = []
    for c in compare:
        out += (b"\x0a", _uvarint(len(c)), c)
    for op in success:
        out += (b"\x12", _uvarint(len(op)), op)
    for op in failure:
        out += (b"\x1a", _uvarint(len(op)), op)
    return b"".join(out)


# --- decoding -----------------------------------------------------------------


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


# Member, cluster and lease IDs are random 64-bit numbers, so their varints run
# to 9 or 10 bytes and cost ~1 µs to decode byte by byte; but a client keeps
# seeing the same few. A varint never needs more than 10 bytes, so the 10-byte
# window starting at it determines its value and length: memoize on that.
_ID_CACHE: dict[bytes, tuple[int, int]] = {}
_ID_CACHE_SIZE = 256


def _id_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` (not yet consumed), memoized; returns it and the new position."""
    window = data[pos : pos + 10]
    hit = _ID_CACHE.get(window)
    if hit is None:
        value, stop = _varint(data, pos + 1, data[pos])
        hit = (value, stop - pos)
        if len(_ID_CACHE) >= _ID_CACHE_SIZE:
            _ID_CACHE.clear()
        _ID_CACHE[window] = hit
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


def _header(data: bytes, pos: int, end: int, base: ResponseHeader | None) -> ResponseHeader:
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
            cluster_id, pos = _id_varint(data, pos - 1)
    if pos < end and data[pos] == 0x10:
        member_id = data[pos + 1]
        pos += 2
        if member_id >= 0x80:
            member_id, pos = _id_varint(data, pos - 1)
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
    return _make_header(cluster_id, member_id, revision, raft_term)


def _kv(data: bytes, pos: int, end: int, base: KeyValue | None = None) -> KeyValue:
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
            lease, pos = _id_varint(data, pos - 1)
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
    # _make_kv, inlined: this runs once per key of a range.
    kv: KeyValue = _new(KeyValue)
    _kv_key(kv, key)
    _kv_value(kv, value)
    _kv_create(kv, create_revision)
    _kv_mod(kv, mod_revision)
    _kv_version(kv, version)
    _kv_lease(kv, lease)
    return kv


def decode_header(data: bytes) -> ResponseHeader:
    """Decode an ``etcdserverpb.ResponseHeader``."""
    try:
        return _header(data, 0, len(data), None)
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None


def decode_kv(data: bytes) -> KeyValue:
    """Decode an ``mvccpb.KeyValue``."""
    try:
        return _kv(data, 0, len(data))
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None


def _response(
    data: bytes, kvs_tag: int, int_tag: int, bool_tag: int, kv_is_singular: bool = False
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
                    header = _header(data, pos, stop, header)
                elif kv_is_singular and kvs:
                    kvs[0] = _kv(data, pos, stop, kvs[0])
                else:
                    kvs.append(_kv(data, pos, stop))
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
                            append(_kv(data, pos, stop))
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


def decode_range_response(data: bytes) -> RangeResult:
    """Decode an ``etcdserverpb.RangeResponse``."""
    header, kvs, count, more = _response(data, 0x12, 0x20, 0x18)
    return _make_range(header, kvs, count, more)


def decode_delete_range_response(data: bytes) -> DeleteResult:
    """Decode an ``etcdserverpb.DeleteRangeResponse``."""
    header, prev_kvs, deleted, _ = _response(data, 0x1A, 0x10, -1)
    return _make_delete(header, deleted, prev_kvs)


_EMPTY_KV = KeyValue(b"", b"", 0, 0, 0, 0)


def decode_put_response(data: bytes) -> PutResult:
    """Decode an ``etcdserverpb.PutResponse``.

    Like :meth:`PutResult.from_pb`, a ``prev_kv`` with every field at its
    default counts as absent.
    """
    header, kvs, _, _ = _response(data, 0x12, -1, -1, kv_is_singular=True)
    prev_kv = kvs[0] if kvs and kvs[0] != _EMPTY_KV else None
    return _make_put(header, prev_kv)


# --- watch ----------------------------------------------------------------------


class WatchResponse(NamedTuple):
    """The fields of an ``etcdserverpb.WatchResponse`` the watch stream needs."""

    header_revision: int
    watch_id: int
    created: bool
    canceled: bool
    compact_revision: int
    cancel_reason: str
    fragment: bool
    events: list[Event]


_EVENT_TYPES = (EventType.PUT, EventType.DELETE)


class _EventCache:
    """
    Decoded events by their bytes, for watchers of the same keys.

    etcd sends each watcher its own WatchResponse, and watchers that lag (under
    a heavy write load, all of them) receive the same event at different
    times, thousands of events apart. The cache keeps two generations, each
    bounded by the bytes of its events: a lookup that hits the old generation
    moves the event to the new one, and a full new generation becomes the old
    one (dropping the previous old one). So it holds at least the last
    ``limit`` bytes of distinct events, at most twice that.
    """

    __slots__ = ("_new", "_old", "_size", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._new: dict[bytes, Event] = {}
        self._old: dict[bytes, Event] = {}
        self._size = 0

    def get(self, raw: bytes) -> Event | None:
        event = self._new.get(raw)
        if event is None:
            event = self._old.pop(raw, None)
            if event is not None:
                self.put(raw, event)
        return event

    def put(self, raw: bytes, event: Event) -> None:
        if self._size >= self.limit:
            self._old = self._new
            self._new = {}
            self._size = 0
        self._new[raw] = event
        self._size += len(raw) + 200  # + the decoded objects, roughly

    def clear(self) -> None:
        self._new.clear()
        self._old.clear()
        self._size = 0


_EVENT_CACHE = _EventCache(4 << 20)

# Event(...) through the slot descriptors, as types.py does for KeyValue: its frozen
# dataclass __init__ costs more than decoding a small event.
_ev_type, _ev_kv, _ev_prev = _slot_setters(Event)


def _event(data: bytes, pos: int, end: int) -> Event:
    """``mvccpb.Event`` in ``data[pos:end]``."""
    kind = 0
    kv: KeyValue | None = None
    prev: KeyValue | None = None
    # What etcd sends, in its order (as in _kv): [type] kv [prev_kv].
    if pos < end and data[pos] == 0x08 and data[pos + 1] < 0x80:
        kind = data[pos + 1]
        pos += 2
    if pos < end and data[pos] == 0x12:
        n = data[pos + 1]
        pos += 2
        if n >= 0x80:
            n, pos = _varint(data, pos, n)
        kv = _kv(data, pos, pos + n)
        pos += n
    while pos < end:
        tag = data[pos]
        pos += 1
        if tag >= 0x80:
            tag, pos = _varint(data, pos, tag)
        if tag == 0x12 or tag == 0x1A:
            n = data[pos]
            pos += 1
            if n >= 0x80:
                n, pos = _varint(data, pos, n)
            stop = pos + n
            if tag == 0x12:
                kv = _kv(data, pos, stop, kv)
            else:
                prev = _kv(data, pos, stop, prev)
            pos = stop
        elif tag == 0x08:
            v = data[pos]
            pos += 1
            if v >= 0x80:
                v, pos = _varint(data, pos, v)
            kind = v
        else:
            pos = _skip(data, pos, tag)
    if pos != end:
        raise _Truncated
    event_type = _EVENT_TYPES[kind] if kind < 2 else EventType(kind)
    event: Event = _new(Event)
    _ev_type(event, event_type)
    _ev_kv(event, kv if kv is not None else _EMPTY_KV)
    _ev_prev(event, prev)
    return event


def decode_watch_response(data: bytes, shared: bool = True) -> WatchResponse:
    """Decode an ``etcdserverpb.WatchResponse``.

    ``shared``: other watchers may receive the same events, so look them up in (and
    add them to) the event cache; a lone watcher's events are decoded directly.
    """
    header: ResponseHeader | None = None
    watch_id = compact_revision = 0
    created = canceled = fragment = False
    reason = ""
    events: list[Event] = []
    pos = 0
    end = len(data)
    try:
        while pos < end:
            tag = data[pos]
            pos += 1
            if tag >= 0x80:
                tag, pos = _varint(data, pos, tag)
            if tag == 0x5A or tag == 0x0A or tag == 0x32:
                n = data[pos]
                pos += 1
                if n >= 0x80:
                    n, pos = _varint(data, pos, n)
                stop = pos + n
                if tag == 0x5A:
                    if not shared:
                        events.append(_event(data, pos, stop))
                        pos = stop
                        continue
                    # Watchers of the same keys get the same event bytes, one response
                    # each: decode them once (events are immutable, so sharing is safe).
                    raw = data[pos:stop]
                    event = _EVENT_CACHE.get(raw)
                    if event is None:
                        event = _event(raw, 0, len(raw))
                        _EVENT_CACHE.put(raw, event)
                    events.append(event)
                elif tag == 0x0A:
                    header = _header(data, pos, stop, header)
                else:
                    reason = data[pos:stop].decode("utf-8", "replace")
                pos = stop
            elif 0x10 <= tag <= 0x38 and tag & 7 == 0:
                v = data[pos]
                pos += 1
                if v >= 0x80:
                    v, pos = _varint(data, pos, v)
                if tag == 0x10:
                    watch_id = v - _TWO64 if v > _INT64_MAX else v
                elif tag == 0x18:
                    created = v != 0
                elif tag == 0x20:
                    canceled = v != 0
                elif tag == 0x28:
                    compact_revision = v - _TWO64 if v > _INT64_MAX else v
                elif tag == 0x38:
                    fragment = v != 0
                # field 6 is a string; a varint there is the wrong wire type: ignored
            else:
                pos = _skip(data, pos, tag)
        if pos != end:
            raise _Truncated
    except (IndexError, _Truncated):
        raise _malformed("truncated input") from None
    revision = header.revision if header is not None else 0
    return WatchResponse(
        revision, watch_id, created, canceled, compact_revision, reason, fragment, events
    )


# --- txn ------------------------------------------------------------------------


TxnOpResult = RangeResult | PutResult | DeleteResult | TxnResult


def decode_txn_response(data: bytes) -> TxnResult:
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
                    header = _header(data, pos, stop, header)
                else:
                    raw = data[pos:stop]
                    result = puts.get(raw)
                    if result is None:
                        result = _response_op(raw)
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


_OP_DECODERS: dict[int, Callable[[bytes], TxnOpResult]] = {
    0x0A: decode_range_response,
    0x12: decode_put_response,
    0x1A: decode_delete_range_response,
    0x22: decode_txn_response,
}


def _response_op(data: bytes) -> TxnOpResult:
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
        result = decoder(data[pos : pos + n])
        pos += n
    if pos != end:
        raise _Truncated
    if result is None:
        raise _malformed("ResponseOp without a response")
    return result


# --- lease keepalive ------------------------------------------------------------


def encode_lease_keepalive(lease_id: int) -> bytes:
    """An ``etcdserverpb.LeaseKeepAliveRequest``."""
    return b"\x08" + _int64(lease_id) if lease_id else b""


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

"""
The encoders of the hand-written protobuf codec: the requests of the hot calls.

``Put``, ``Range``, ``DeleteRange``, ``Txn`` (with its ``Compare`` and
``RequestOp``) and ``LeaseKeepAlive`` requests, from already validated fields
(``_requests`` checks what users pass). Fields are emitted in field-number order
and defaults are skipped (proto3), so the output is byte-identical to
``bytes(pb.X(...))``; the tests prove it against betterproto2. See
:mod:`._codec` for the whole codec.
"""

from __future__ import annotations

__all__ = [
    "OP_DELETE",
    "OP_PUT",
    "OP_RANGE",
    "OP_TXN",
    "encode_compare",
    "encode_delete_range",
    "encode_lease_keepalive",
    "encode_put",
    "encode_range",
    "encode_txn",
    "field",
]

_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)
_TWO64 = 1 << 64
_BYTE = tuple(bytes((i,)) for i in range(128))


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


def encode_lease_keepalive(lease_id: int) -> bytes:
    """An ``etcdserverpb.LeaseKeepAliveRequest``."""
    return b"\x08" + _int64(lease_id) if lease_id else b""

"""
The transaction builders (re-exported by :mod:`etcdanyio.txn`), and the encoding of a
transaction for ``Client.txn``: :func:`check_txn` and :func:`encode_txn`.

Every builder validates its arguments when it is called, with the checks of
``_requests``; the encoding goes through the wire codec (``_speedups.codec``).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING

from ._codec_construct import new, slot_setters
from ._keys import Namespace, to_bytes
from ._requests import check_int, key_range, lease_id, plain_put, put_args, range_fields
from ._speedups import codec as _codec

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

__all__ = [
    "Compare",
    "Delete",
    "Get",
    "Op",
    "Put",
    "Txn",
    "create_revision",
    "delete",
    "get",
    "lease",
    "mod_revision",
    "put",
    "txn",
    "value",
    "version",
]

_NO_NAMESPACE = Namespace()


class _Result(enum.IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class _Target(enum.IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


_SYMBOL = {_Result.EQUAL: "==", _Result.GREATER: ">", _Result.LESS: "<", _Result.NOT_EQUAL: "!="}
_NAME = {
    _Target.VERSION: "version",
    _Target.CREATE: "create_revision",
    _Target.MOD: "mod_revision",
    _Target.VALUE: "value",
    _Target.LEASE: "lease",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Compare:
    """One condition of a transaction: ``target(key) <op> operand``."""

    target: int
    result: int
    key: bytes
    range_end: bytes
    operand: int | bytes

    def __post_init__(self) -> None:
        # Built by txn.value(...) == ... and the like, these hold; a hand-built one is checked
        # here, before it can be sent.
        if isinstance(self.target, bool) or self.target not in _NAME:
            raise ValueError(f"Compare target must be an int from 0 to 4, got {self.target!r}")
        if isinstance(self.result, bool) or self.result not in _SYMBOL:
            raise ValueError(f"Compare result must be an int from 0 to 3, got {self.result!r}")
        # typed bytes, but a hand-built Compare may hold anything
        fields: tuple[object, object] = (self.key, self.range_end)
        if not all(isinstance(field, bytes) for field in fields):
            raise TypeError("Compare key and range_end must be bytes")
        if self.target == _Target.VALUE:
            if not isinstance(self.operand, bytes):
                raise TypeError(f"a value Compare needs a bytes operand, got {self.operand!r}")
        else:
            check_int(self.operand, f"{_NAME[_Target(self.target)]} to compare with")

    def __bool__(self) -> bool:
        raise TypeError("a Compare is not a bool; pass it to txn(compare=[...])")

    def __repr__(self) -> str:
        where = repr(self.key) + (f", end={self.range_end!r}" if self.range_end else "")
        return (
            f"txn.{_NAME[_Target(self.target)]}({where}) "
            f"{_SYMBOL[_Result(self.result)]} {self.operand!r}"
        )

    def _encode(self, ns: Namespace) -> bytes:
        return _codec.encode_compare(
            self.result, self.target, ns.key(self.key), ns.range_end(self.range_end), self.operand
        )


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class _CompareTarget:
    """What a comparison looks at; compare it with ``==``, ``!=``, ``<`` or ``>``."""

    target: _Target
    key: bytes
    range_end: bytes

    __hash__ = None  # type: ignore[assignment]  # == builds a Compare, so no hashing

    def _operand(self, other: object) -> int | bytes:
        if self.target == _Target.VALUE:
            return to_bytes(other, "value to compare with")
        if self.target == _Target.LEASE:
            return lease_id(other)
        return check_int(other, f"{_NAME[self.target]} to compare with")

    def _compare(self, result: _Result, other: object) -> Compare:
        return Compare(
            int(self.target), int(result), self.key, self.range_end, self._operand(other)
        )

    # The comparison dunders build a Compare instead of returning a bool, on purpose.
    def __eq__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare(_Result.EQUAL, other)

    def __ne__(self, other: object) -> Compare:  # type: ignore[override]
        return self._compare(_Result.NOT_EQUAL, other)

    def __lt__(self, other: object) -> Compare:
        return self._compare(_Result.LESS, other)

    def __gt__(self, other: object) -> Compare:
        return self._compare(_Result.GREATER, other)

    def __bool__(self) -> bool:
        raise TypeError(f"compare txn.{_NAME[self.target]}(...) with ==, !=, < or >")


def _target(
    kind: _Target, key: str | bytes, prefix: bool, end: str | bytes | None
) -> _CompareTarget:
    start, range_end = key_range(key, end, prefix=prefix)
    return _CompareTarget(kind, start, range_end)


def value(
    key: str | bytes, *, prefix: bool = False, end: str | bytes | None = None
) -> _CompareTarget:
    """The key's value (compare with ``str`` or ``bytes``)."""
    return _target(_Target.VALUE, key, prefix, end)


def version(
    key: str | bytes, *, prefix: bool = False, end: str | bytes | None = None
) -> _CompareTarget:
    """The key's version; ``== 0`` means the key does not exist."""
    return _target(_Target.VERSION, key, prefix, end)


def create_revision(
    key: str | bytes, *, prefix: bool = False, end: str | bytes | None = None
) -> _CompareTarget:
    """The revision of the key's creation; ``== 0`` means it does not exist."""
    return _target(_Target.CREATE, key, prefix, end)


def mod_revision(
    key: str | bytes, *, prefix: bool = False, end: str | bytes | None = None
) -> _CompareTarget:
    """The revision of the key's last modification."""
    return _target(_Target.MOD, key, prefix, end)


def lease(
    key: str | bytes, *, prefix: bool = False, end: str | bytes | None = None
) -> _CompareTarget:
    """The ID of the key's lease (compare with a ``Lease`` or an int; 0: none)."""
    return _target(_Target.LEASE, key, prefix, end)


@dataclasses.dataclass(frozen=True, slots=True)
class Get:
    """A range read inside a transaction; see :func:`get`."""

    key: bytes
    range_end: bytes
    options: tuple[tuple[str, Any], ...] = ()

    def _encode(self, ns: Namespace) -> bytes:
        fields = range_fields(ns, self.key, self.range_end, **dict(self.options))
        return _codec.field(_codec.OP_RANGE, _codec.encode_range(**fields))


@dataclasses.dataclass(frozen=True, slots=True)
class Put:
    """A write inside a transaction; see :func:`put`."""

    key: bytes
    value: bytes | None
    options: tuple[tuple[str, Any], ...] = ()

    def _encode(self, ns: Namespace) -> bytes:
        if self.options == _PLAIN_PUT and self.value is not None:
            # The common case, validated by put() already: key and value only.
            return _codec.field(_codec.OP_PUT, _codec.encode_put(ns.key(self.key), self.value))
        key, value, lease, prev_kv, ignore_value, ignore_lease = put_args(
            self.key, self.value, **dict(self.options)
        )
        request = _codec.encode_put(ns.key(key), value, lease, prev_kv, ignore_value, ignore_lease)
        return _codec.field(_codec.OP_PUT, request)


@dataclasses.dataclass(frozen=True, slots=True)
class Delete:
    """A delete inside a transaction; see :func:`delete`."""

    key: bytes
    range_end: bytes
    prev_kv: bool = False

    def _encode(self, ns: Namespace) -> bytes:
        request = _codec.encode_delete_range(
            ns.key(self.key), ns.range_end(self.range_end), self.prev_kv
        )
        return _codec.field(_codec.OP_DELETE, request)


@dataclasses.dataclass(frozen=True, slots=True)
class Txn:
    """A nested transaction; see :func:`txn`."""

    compare: tuple[Compare, ...]
    success: tuple[Op, ...]
    failure: tuple[Op, ...]

    def _encode(self, ns: Namespace) -> bytes:
        return _codec.field(_codec.OP_TXN, encode_txn(ns, self.compare, self.success, self.failure))


Op = Get | Put | Delete | Txn


def get(
    key: str | bytes,
    *,
    prefix: bool = False,
    end: str | bytes | None = None,
    **options: Any,
) -> Get:
    """
    Read ``key`` (or a range, with ``prefix=True`` or ``end=``) in the transaction.

    Takes the options of :meth:`Client.get_range`: ``limit``, ``revision``,
    ``sort_order``, ``sort_target``, ``serializable``, ``keys_only``,
    ``count_only`` and the min/max create/mod revision filters.
    """
    start, range_end = key_range(key, end, prefix=prefix)
    range_fields(_NO_NAMESPACE, start, range_end, **options)  # validate now
    return Get(start, range_end, tuple(sorted(options.items())))


def put(
    key: str | bytes,
    value: str | bytes | None = None,
    *,
    lease: Any = None,
    prev_kv: bool = False,
    ignore_value: bool = False,
    ignore_lease: bool = False,
) -> Put:
    """Write ``key`` in the transaction (options as :meth:`Client.put`)."""
    if (
        lease is None
        and prev_kv is False
        and ignore_value is False
        and ignore_lease is False
        and value is not None
    ):
        # The common case (a transaction of many plain puts): only key and value to check.
        key_, value_ = plain_put(key, value)
        op: Put = new(Put)
        _put_key(op, key_)
        _put_value(op, value_)
        _put_options(op, _PLAIN_PUT)
        return op
    options: dict[str, Any] = {
        "lease": lease_id(lease) if lease is not None else None,
        "prev_kv": prev_kv,
        "ignore_value": ignore_value,
        "ignore_lease": ignore_lease,
    }
    key_, value_, _, _, _, _ = put_args(key, value, **options)  # validate now
    return Put(key_, None if ignore_value else value_, tuple(options.items()))


#: The options of a put() with none given.
_PLAIN_PUT = (("lease", None), ("prev_kv", False), ("ignore_value", False), ("ignore_lease", False))
# Building a frozen dataclass through its slots skips object.__setattr__ per field.
_put_key, _put_value, _put_options = slot_setters(Put)


def delete(
    key: str | bytes,
    *,
    prefix: bool = False,
    end: str | bytes | None = None,
    prev_kv: bool = False,
) -> Delete:
    """Delete ``key`` (or a range) in the transaction."""
    start, range_end = key_range(key, end, prefix=prefix)
    return Delete(start, range_end, bool(prev_kv))


def txn(
    compare: Sequence[Compare] = (), success: Sequence[Op] = (), failure: Sequence[Op] = ()
) -> Txn:
    """A nested transaction (etcd 3.3+): its result is a ``TxnResult`` in the responses."""
    return Txn(*check_txn(compare, success, failure))


def check_txn(
    compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
) -> tuple[tuple[Compare, ...], tuple[Op, ...], tuple[Op, ...]]:
    """Validate the three lists of a transaction."""
    for name, items, kinds in (
        ("compare", compare, (Compare,)),
        ("success", success, (Get, Put, Delete, Txn)),
        ("failure", failure, (Get, Put, Delete, Txn)),
    ):
        if not isinstance(items, (list, tuple)):
            raise TypeError(f"{name} must be a list, got {items!r} ({type(items).__name__})")
        for item in items:
            if not isinstance(item, kinds):
                expected = (
                    "txn.value(...) == ... and the like"
                    if name == "compare"
                    else ("txn.get/put/delete/txn(...)")
                )
                raise TypeError(
                    f"{name} items must be {expected}, got {item!r} ({type(item).__name__})"
                )
    return tuple(compare), tuple(success), tuple(failure)


def encode_txn(
    ns: Namespace, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
) -> bytes:
    """The wire form of a TxnRequest."""
    return _codec.encode_txn(
        [c._encode(ns) for c in compare],
        [op._encode(ns) for op in success],
        [op._encode(ns) for op in failure],
    )

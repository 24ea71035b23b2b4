"""
Validated request builders shared by the client calls and ``etcdanyio.txn``.

Everything a user passes is checked here, before any I/O: wrong types raise
``TypeError``, wrong values ``ValueError``, each saying what was expected and
what was got. The namespace prefix is applied here too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._grpc._status import NamedIntEnum
from ._keys import prefix_range_end, to_bytes, to_key

if TYPE_CHECKING:
    from ._keys import Namespace

__all__ = ["SortOrder", "SortTarget"]


class SortOrder(NamedIntEnum):
    """Order of a range's results (``sort_order=``)."""

    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(NamedIntEnum):
    """What a range is sorted by (``sort_target=``)."""

    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


def _enum(value: object, cls: type[SortOrder] | type[SortTarget], what: str) -> int:
    if value is None:
        return 0
    if isinstance(value, cls):
        return int(value)
    if isinstance(value, str) and value.upper() in cls.__members__:
        return int(cls[value.upper()])
    names = ", ".join(repr(n.lower()) for n in cls.__members__)
    raise ValueError(f"{what} must be a {cls.__name__} or one of {names}, got {value!r}")


_INT64_LIMIT = 2**63


def check_int(value: object, what: str, *, minimum: int = 0) -> int:
    """An ``int`` (not a bool) of at least ``minimum``."""
    if type(value) is int and minimum <= value < _INT64_LIMIT:
        return value  # the common case, first
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        if minimum == 1:
            raise ValueError(f"{what} must be a positive int, got {value}")
        qualifier = "negative" if minimum == 0 else f"below {minimum}"
        raise ValueError(f"{what} must not be {qualifier}, got {value}")
    if value >= _INT64_LIMIT:
        raise ValueError(f"{what} must fit in 64 bits, got {value}")
    return value


def check_seconds(value: object, what: str, *, zero: bool = False) -> float:
    """
    A finite number of seconds (``int`` or ``float``, not a bool, never NaN or inf): positive,
    or also 0 with ``zero=True``. The one check of every duration argument, so that a NaN
    never reaches a deadline or a sleep.
    """
    return _seconds(value, what, zero=zero, optional=False)


def check_optional_seconds(value: object, what: str, *, zero: bool = False) -> float | None:
    """:func:`check_seconds`, or ``None`` (no limit)."""
    return None if value is None else _seconds(value, what, zero=zero, optional=True)


def _seconds(value: object, what: str, *, zero: bool, optional: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        allowed = "a number of seconds" + (" or None" if optional else "")
        raise TypeError(f"{what} must be {allowed}, got {value!r} ({type(value).__name__})")
    if not math.isfinite(value):
        hint = " (use None for no limit)" if optional and value == math.inf else ""
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}{hint}")
    if value < 0 or (value == 0 and not zero):
        rule = "must not be negative" if zero else "must be a positive number of seconds"
        raise ValueError(f"{what} {rule}, got {value!r}")
    return float(value)


def lease_id(lease: object) -> int:
    """A lease ID from a ``Lease`` (anything with an int ``.id``), an int, or ``None``."""
    if lease is None:
        return 0
    value = getattr(lease, "id", lease)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(
            f"lease must be a Lease or an int ID, got {lease!r} ({type(lease).__name__})"
        )
    return check_int(value, "lease ID")


def key_range(
    key: object, end: object = None, *, prefix: bool = False, what: str = "key"
) -> tuple[bytes, bytes]:
    """
    ``(key, range_end)`` in etcd's terms, before the namespace.

    ``prefix=True`` selects every key starting with ``key`` (``b""``: all
    keys); ``end`` selects ``[key, end)``; neither selects ``key`` alone.
    """
    if prefix and end is not None:
        raise ValueError("pass either prefix=True or end=, not both")
    if prefix:
        raw = to_bytes(key, what)
        return (raw or b"\0", prefix_range_end(raw))
    start = to_key(key, what)
    if end is None:
        return start, b""
    range_end = to_bytes(end, "range end")
    if range_end == b"\0":
        return start, range_end  # "to the end of the keyspace"
    if not range_end:
        raise ValueError("range end must not be empty (use b'\\0' for 'to the end')")
    if range_end <= start:
        raise ValueError(f"range end {range_end!r} must sort after the start key {start!r}")
    return start, range_end


def range_fields(
    ns: Namespace,
    key: bytes,
    range_end: bytes,
    *,
    limit: int = 0,
    revision: int = 0,
    sort_order: object = None,
    sort_target: object = None,
    serializable: bool = False,
    keys_only: bool = False,
    count_only: bool = False,
    min_mod_revision: int = 0,
    max_mod_revision: int = 0,
    min_create_revision: int = 0,
    max_create_revision: int = 0,
) -> dict[str, Any]:
    """Validated RangeRequest fields, keyed by their proto names."""
    order = _enum(sort_order, SortOrder, "sort_order")
    target = _enum(sort_target, SortTarget, "sort_target")
    if target and not order:
        order = SortOrder.ASCEND  # a sort target alone means "sort by it", as etcdctl does
    if keys_only and count_only:
        raise ValueError("keys_only and count_only exclude each other")
    return {
        "key": ns.key(key),
        "range_end": ns.range_end(range_end),
        "limit": check_int(limit, "limit"),
        "revision": check_int(revision, "revision"),
        "sort_order": order,
        "sort_target": target,
        "serializable": bool(serializable),
        "keys_only": bool(keys_only),
        "count_only": bool(count_only),
        "min_mod_revision": check_int(min_mod_revision, "min_mod_revision"),
        "max_mod_revision": check_int(max_mod_revision, "max_mod_revision"),
        "min_create_revision": check_int(min_create_revision, "min_create_revision"),
        "max_create_revision": check_int(max_create_revision, "max_create_revision"),
    }


def put_args(
    key: object,
    value: object,
    lease: object = None,
    prev_kv: object = False,
    ignore_value: object = False,
    ignore_lease: object = False,
) -> tuple[bytes, bytes, int, bool, bool, bool]:
    """
    The validated fields of a PutRequest, in field order and before the namespace: key,
    value, lease ID, prev_kv, ignore_value, ignore_lease.
    """
    if (
        value is not None
        and lease is None
        and prev_kv is False
        and ignore_value is False
        and ignore_lease is False
    ):
        key_, value_ = plain_put(key, value)
        return key_, value_, 0, False, False, False
    if ignore_value:
        if value is not None and value not in (b"", ""):
            raise ValueError("ignore_value=True keeps the current value; pass no value")
        data = b""
    elif value is None:
        raise TypeError("value must be str or bytes, got None (use ignore_value=True to keep it)")
    else:
        data = to_bytes(value, "value")
    if ignore_lease and lease is not None:
        raise ValueError("ignore_lease=True keeps the current lease; pass no lease")
    return (
        to_key(key),
        data,
        lease_id(lease),
        bool(prev_kv),
        bool(ignore_value),
        bool(ignore_lease),
    )


def plain_put(key: object, value: object) -> tuple[bytes, bytes]:
    """The validated key and value of a put without options (the common case of
    :func:`put_args`, also taken directly by ``txn.put``)."""
    return to_key(key), to_bytes(value, "value")


def get_args(key: object, revision: object, serializable: object) -> tuple[bytes, int, bool]:
    """
    The validated fields of a one-key read (``get``), before the namespace: key, revision,
    serializable. The checks of :func:`key_range` and :func:`range_fields` for them.
    """
    if revision == 0 and type(revision) is int and type(serializable) is bool:
        return to_key(key), 0, serializable  # the common case: only the key to check
    return to_key(key), check_int(revision, "revision"), bool(serializable)

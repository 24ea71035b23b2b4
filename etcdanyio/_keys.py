"""Keys: str/bytes coercion, the prefix range end, and the namespace prefix."""

from __future__ import annotations


def to_bytes(value: object, what: str = "key") -> bytes:
    """
    ``value`` as bytes (``str`` is encoded as UTF-8).

    :raises TypeError: if it is neither ``str`` nor ``bytes``
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, got {value!r} ({type(value).__name__})")


def to_key(value: object, what: str = "key") -> bytes:
    """A non-empty key as bytes; raises ``TypeError``/``ValueError`` before any I/O."""
    key = to_bytes(value, what)
    if not key:
        raise ValueError(f"{what} must not be empty")
    return key


def prefix_range_end(prefix: bytes) -> bytes:
    """
    The range end that selects every key starting with ``prefix``.

    The last byte below 0xff is incremented and what follows it dropped. For an
    empty or all-0xff prefix there is no such key, and etcd's "to the end of
    the keyspace" marker ``b"\\0"`` is returned.
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\0"
    return stripped[:-1] + bytes((stripped[-1] + 1,))

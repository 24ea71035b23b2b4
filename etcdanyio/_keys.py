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


class Namespace:
    """
    A key prefix added to every key and range end sent, and stripped from
    every key returned (Go's ``namespace`` package). The empty namespace
    changes nothing.
    """

    __slots__ = ("_end", "prefix")

    def __init__(self, prefix: bytes = b"") -> None:
        self.prefix = prefix
        self._end = prefix_range_end(prefix) if prefix else b"\0"

    def __bool__(self) -> bool:
        return bool(self.prefix)

    def key(self, key: bytes) -> bytes:
        return self.prefix + key if self.prefix else key

    def range_end(self, end: bytes) -> bytes:
        """``b""`` (one key) stays; ``b"\\0"`` (to the end) becomes the namespace's end."""
        if not self.prefix or not end:
            return end
        if end == b"\0":
            return self._end
        return self.prefix + end

    def strip(self, key: bytes) -> bytes:
        prefix = self.prefix
        if prefix and key.startswith(prefix):
            return key[len(prefix) :]
        return key

"""
Header blocks: requests encoded without touching the HPACK dynamic table, responses decoded.

Every field is either an exact static-table match (one byte) or a literal
"without indexing" (RFC 7541 section 6.2.2), so the block means the same thing
whatever the peer's table holds and can be built once and reused. Only the
per-call fields (``grpc-timeout``, metadata) are encoded per call.
"""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING

import hpack
import hpack.exceptions

from ._h2frames import ErrorCode, ProtocolError

if TYPE_CHECKING:
    from collections.abc import Iterable

# RFC 7541 Appendix A indices used here.
_AUTHORITY = 1
_METHOD_GET = 2
_METHOD_POST = 3
_PATH = 4
_SCHEME_HTTP = 6
_SCHEME_HTTPS = 7
_CONTENT_TYPE = 31
_USER_AGENT = 58


def _int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = bytearray((first | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    return _int(len(data), 7, 0) + data


def indexed(index: int) -> bytes:
    return _int(index, 7, 0x80)


def literal(name: bytes | int, value: bytes) -> bytes:
    """A literal field without indexing; ``name`` is a static index or the name itself."""
    if isinstance(name, int):
        return _int(name, 4, 0) + _string(value)
    return b"\x00" + _string(name) + _string(value)


def _valid_key(key: str) -> bool:
    return (
        bool(key)
        and key.isascii()
        and key == key.lower()
        and all(c.isalnum() or c in "-_." for c in key)
    )


def encode_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> bytes:
    """
    Encode custom metadata as literals.

    :raises ValueError: for a key gRPC does not allow, a reserved key, or a
        text value with characters outside printable ASCII
    """
    out = []
    for key, value in metadata:
        if not _valid_key(key) or key.startswith("grpc-") or key[0] == ":":
            raise ValueError(f"invalid metadata key {key!r}")
        if isinstance(value, bytes):
            if not key.endswith("-bin"):
                raise ValueError(f"binary metadata value needs a key ending in -bin, got {key!r}")
            data = base64.b64encode(value).rstrip(b"=")
        else:
            if key.endswith("-bin"):
                raise ValueError(f"metadata key {key!r} ends in -bin, so its value must be bytes")
            data = value.encode("ascii", "strict") if value.isascii() else b""
            if not value.isascii() or not all(0x20 <= c < 0x7F for c in data):
                raise ValueError(f"metadata value for {key!r} must be printable ASCII")
        out.append(literal(key.encode(), data))
    return b"".join(out)


_UNITS = (("n", 1e9), ("u", 1e6), ("m", 1e3), ("S", 1.0), ("M", 1 / 60), ("H", 1 / 3600))


def encode_timeout(seconds: float) -> str:
    """
    ``grpc-timeout`` for ``seconds`` from now: at most 8 digits, finest unit that fits.

    Rounded up, so a deadline is never reported earlier than it is.
    """
    seconds = max(seconds, 0.0)
    for unit, per_second in _UNITS:
        value = math.ceil(seconds * per_second)
        if value / per_second < seconds:
            value += 1  # the product was rounded down in floating point
        if value < 100_000_000:
            return f"{value}{unit}"
    return "99999999H"


def decode_timeout(value: str) -> float:
    """Inverse of :func:`encode_timeout` (seconds); raises ``ValueError`` on bad input."""
    if not 2 <= len(value) <= 9 or not value[:-1].isdigit():
        raise ValueError(f"bad grpc-timeout {value!r}")
    for unit, per_second in _UNITS:
        if value[-1] == unit:
            return int(value[:-1]) / per_second
    raise ValueError(f"bad grpc-timeout unit in {value!r}")


class RequestHeaders:
    """
    Encodes the request header block of each method once, then reuses it.

    :param authority: the ``:authority`` of every request
    :param tls: ``https`` rather than ``http`` for ``:scheme``
    """

    def __init__(self, authority: str, *, tls: bool, user_agent: str) -> None:
        scheme = indexed(_SCHEME_HTTPS if tls else _SCHEME_HTTP)
        host = literal(_AUTHORITY, authority.encode("idna" if not authority.isascii() else "ascii"))
        agent = literal(_USER_AGENT, user_agent.encode())
        self._prefix = indexed(_METHOD_POST) + scheme
        self._suffix = (
            host + literal(_CONTENT_TYPE, b"application/grpc") + literal(b"te", b"trailers") + agent
        )
        self._get = (indexed(_METHOD_GET) + scheme, host + agent)
        self._cache: dict[str, bytes] = {}

    def block(self, path: str, timeout: float | None = None, extra: bytes = b"") -> bytes:
        """The header block for ``path``, with ``grpc-timeout`` and pre-encoded ``extra`` fields."""
        base = self._cache.get(path)
        if base is None:
            base = self._prefix + literal(_PATH, path.encode("ascii")) + self._suffix
            self._cache[path] = base
        if timeout is None or timeout == math.inf:
            return base + extra if extra else base
        return base + literal(b"grpc-timeout", encode_timeout(timeout).encode()) + extra

    def get_block(self, path: str) -> bytes:
        """The header block of a plain HTTP ``GET`` of ``path`` (not gRPC)."""
        return self._get[0] + literal(_PATH, path.encode("ascii")) + self._get[1]


class ResponseHeaders:
    """
    Decodes a connection's response header blocks (one HPACK decoder: its table is shared).

    A block seen before is answered from a cache while the decoder's dynamic table is
    unchanged: gRPC responses repeat the same few blocks on every call.
    """

    def __init__(self) -> None:
        self._decoder = hpack.Decoder()
        self._cache: dict[bytes, list[tuple[str, str]]] = {}
        self._table_state: tuple[int, object, int] = (0, None, -1)

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """
        The fields of ``block``, in order.

        :raises ProtocolError: ``COMPRESSION_ERROR`` for a block HPACK cannot decode
        """
        header_table = self._decoder.header_table
        table = header_table.dynamic_entries
        # A size update alone changes no entry but must still be replayed: keep maxsize.
        state = (len(table), table[0] if table else None, header_table.maxsize)
        cached_len, cached_front, cached_size = self._table_state
        if state[0] == cached_len and state[1] is cached_front and state[2] == cached_size:
            cached = self._cache.get(block)
            if cached is not None:
                return cached
        else:
            self._cache.clear()
            self._table_state = state
        try:
            headers: list[tuple[str, str]] = list(self._decoder.decode(block))  # type: ignore[arg-type]
        except hpack.exceptions.HPACKError as exc:
            raise ProtocolError(ErrorCode.COMPRESSION_ERROR, f"bad header block: {exc}") from exc
        after = (len(table), table[0] if table else None, header_table.maxsize)
        if after[0] == state[0] and after[1] is state[1] and after[2] == state[2]:
            # Decoding did not touch the table, so replaying the result is exact.
            if len(self._cache) >= 256:
                self._cache.clear()
            self._cache[block] = headers
        else:
            self._cache.clear()
            self._table_state = after
        return headers

"""gRPC message framing: a 1-byte compression flag and a 4-byte big-endian length."""

from __future__ import annotations

import struct

_PREFIX = struct.Struct(">BI")
PREFIX_SIZE = 5


def encode(payload: bytes) -> bytes:
    """Return ``payload`` with the 5-byte uncompressed-message prefix."""
    return _PREFIX.pack(0, len(payload)) + payload


class FramingError(Exception):
    """Raised for a compressed message or one longer than the limit."""


#: a message whose payload is at least this long and spans DATA frames is collected
#: as a list of pieces and joined once, rather than grown in the buffer
_LARGE = 65536


class MessageDecoder:
    """
    Incremental decoder of length-prefixed messages.

    ``feed`` takes any split of the byte stream and returns the messages it
    completed. ``pending`` tells how many more bytes the message in progress
    needs, so a flow-control window can be opened for it.

    Small messages are assembled in a ``bytearray``. A large one (a range of many
    keys: a megabyte over dozens of DATA frames) is kept as the list of its pieces
    and joined once when complete: growing a buffer that size, then slicing and
    copying it out, cost about 1.5 ms per megabyte, mostly in page faults.
    """

    __slots__ = ("_buf", "_need", "_parts", "max_size")

    def __init__(self, max_size: int) -> None:
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._need = 0  # bytes of the large message in progress still to come
        self.max_size = max_size

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        if self._need:
            need = self._need
            n = len(data)
            if n < need:
                self._parts.append(bytes(data))
                self._need = need - n
                return []
            self._parts.append(bytes(data[:need]))
            message = b"".join(self._parts)
            self._parts = []
            self._need = 0
            rest = self.feed(data[need:]) if n > need else []
            rest.insert(0, message)
            return rest
        buf = self._buf
        if not buf:
            # Fast path: the frame holds exactly one whole message.
            n = len(data)
            if n >= PREFIX_SIZE:
                flag, size = _PREFIX.unpack_from(data)
                if n == size + PREFIX_SIZE and not flag and size <= self.max_size:
                    return [bytes(data[PREFIX_SIZE:])]
        buf += data
        out: list[bytes] = []
        start = 0
        end = len(buf)
        while end - start >= PREFIX_SIZE:
            flag, size = _PREFIX.unpack_from(buf, start)
            if flag:
                raise FramingError("compressed message received, but no compression was agreed")
            if size > self.max_size:
                raise FramingError(f"received message larger than max ({size} vs. {self.max_size})")
            stop = start + PREFIX_SIZE + size
            if stop > end:
                if size >= _LARGE:
                    # collect the rest as pieces (see the class docstring)
                    self._parts.append(bytes(buf[start + PREFIX_SIZE :]))
                    self._need = stop - end
                    start = end
                break
            out.append(bytes(buf[start + PREFIX_SIZE : stop]))
            start = stop
        if start:
            del buf[:start]
        return out

    @property
    def pending(self) -> int:
        """Bytes still needed to finish the message in progress (0 if none is started)."""
        if self._need:
            return self._need
        n = len(self._buf)
        if not n:
            return 0
        if n < PREFIX_SIZE:
            return PREFIX_SIZE - n
        _, size = _PREFIX.unpack_from(self._buf)
        return PREFIX_SIZE + int(size) - n

    @property
    def buffered(self) -> int:
        if self._need:  # a large message's pieces, and its prefix
            return PREFIX_SIZE + sum(len(part) for part in self._parts)
        return len(self._buf)

"""
The decoder of ``etcdserverpb.WatchResponse`` (the hand-written codec, see
:mod:`._codec`), and the cache of decoded events a watch stream keeps.

It reads fields by the rules of :mod:`._codec_decode`, whose primitives it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ._codec_construct import new, slot_setters
from ._codec_decode import (
    _EMPTY_KV,
    _INT64_MAX,
    _TWO64,
    IdMemo,
    _header,
    _kv,
    _malformed,
    _skip,
    _Truncated,
    _varint,
)
from ._events import Event, EventType

if TYPE_CHECKING:
    from ._types import KeyValue, ResponseHeader

__all__ = ["EVENT_CACHE_BYTES", "EventCache", "WatchResponse", "decode_watch_response"]


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


class EventCache:
    """
    Decoded events by their bytes, for the watchers of one stream that watch the same keys.

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


#: the bound of a watch stream's :class:`EventCache`
EVENT_CACHE_BYTES = 4 << 20

# Event(...) through the slot descriptors, as _codec_construct does for KeyValue: its frozen
# dataclass __init__ costs more than decoding a small event.
_ev_type, _ev_kv, _ev_prev = slot_setters(Event)


def _event(data: bytes, pos: int, end: int, ids: IdMemo | None) -> Event:
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
        kv = _kv(data, pos, pos + n, None, ids)
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
                kv = _kv(data, pos, stop, kv, ids)
            else:
                prev = _kv(data, pos, stop, prev, ids)
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
    event: Event = new(Event)
    _ev_type(event, event_type)
    _ev_kv(event, kv if kv is not None else _EMPTY_KV)
    _ev_prev(event, prev)
    return event


def decode_watch_response(
    data: bytes, events: EventCache | None = None, ids: IdMemo | None = None
) -> WatchResponse:
    """Decode an ``etcdserverpb.WatchResponse``.

    ``events``: the stream's cache, when other watchers may receive the same events: they
    are looked up in it (and added to it); ``None``: decode them directly (a lone watcher).
    ``ids``: the stream's memo of ID varints (``None``: decode them directly).
    """
    header: ResponseHeader | None = None
    watch_id = compact_revision = 0
    created = canceled = fragment = False
    reason = ""
    decoded: list[Event] = []
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
                    if events is None:
                        decoded.append(_event(data, pos, stop, ids))
                        pos = stop
                        continue
                    # Watchers of the same keys get the same event bytes, one response
                    # each: decode them once (events are immutable, so sharing is safe).
                    raw = data[pos:stop]
                    event = events.get(raw)
                    if event is None:
                        event = _event(raw, 0, len(raw), ids)
                        events.put(raw, event)
                    decoded.append(event)
                elif tag == 0x0A:
                    header = _header(data, pos, stop, header, ids)
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
        revision, watch_id, created, canceled, compact_revision, reason, fragment, decoded
    )

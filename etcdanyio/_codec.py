"""
A hand-written protobuf wire codec for the hot calls, in three modules by job:

- :mod:`._codec_encode`: the requests (Put, Range, DeleteRange, Txn, LeaseKeepAlive);
- :mod:`._codec_decode`: their responses, and the primitives every decoder uses;
- :mod:`._codec_watch`: WatchResponse, and the event cache of a watch stream.

betterproto2 stays the codec for everything else; these exist because its
generic, reflective codec costs far more per call than the rest of the client.
The tests prove them equal to betterproto2 (``tests/_reference.py``).

This module gathers their API into one namespace, the pure-Python build; it is
what type checkers see of :data:`etcdanyio._speedups.codec`, which at run time is
the same namespace gathered from the compiled build when there is one
(``scripts/build_compiled.py``). The decoders of the colder calls
(``_codec_calls``) are pure Python in both builds.
"""

from __future__ import annotations

from ._codec_decode import (
    ID_MEMO_SIZE,
    IdMemo,
    decode_delete_range_response,
    decode_header,
    decode_kv,
    decode_lease_keepalive,
    decode_put_response,
    decode_range_response,
    decode_txn_response,
)
from ._codec_encode import (
    OP_DELETE,
    OP_PUT,
    OP_RANGE,
    OP_TXN,
    encode_compare,
    encode_delete_range,
    encode_lease_keepalive,
    encode_put,
    encode_range,
    encode_txn,
    field,
)
from ._codec_watch import EVENT_CACHE_BYTES, EventCache, WatchResponse, decode_watch_response

__all__ = [
    "EVENT_CACHE_BYTES",
    "ID_MEMO_SIZE",
    "OP_DELETE",
    "OP_PUT",
    "OP_RANGE",
    "OP_TXN",
    "EventCache",
    "IdMemo",
    "WatchResponse",
    "decode_delete_range_response",
    "decode_header",
    "decode_kv",
    "decode_lease_keepalive",
    "decode_put_response",
    "decode_range_response",
    "decode_txn_response",
    "decode_watch_response",
    "encode_compare",
    "encode_delete_range",
    "encode_lease_keepalive",
    "encode_put",
    "encode_range",
    "encode_txn",
    "field",
]

#: the modules a build is made of, in import order (each has a compiled twin ``<name>_c``)
PARTS = ("_codec_encode", "_codec_decode", "_codec_watch")

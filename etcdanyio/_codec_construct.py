"""
Fast constructors of the frozen result types, for the wire codec.

A frozen dataclass's ``__init__`` stores each field with ``object.__setattr__``,
which costs more than decoding the field; storing through the slot descriptors
directly is about twice as fast and yields instances indistinguishable from
``cls(...)`` (equal, same repr and hash, still frozen). The decoders
(``_codec_decode``, ``_codec_watch``) and the transaction builders (``_txn``)
build their objects with these.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._types import DeleteResult, KeyValue, PutResult, RangeResult, ResponseHeader

__all__ = [
    "make_delete",
    "make_header",
    "make_kv",
    "make_put",
    "make_range",
    "new",
    "slot_setters",
]

#: an instance of a class, no ``__init__`` run: fill it with :func:`slot_setters`
new = object.__new__


def slot_setters(cls: type) -> tuple[Any, ...]:
    """The ``__set__`` of each field's slot descriptor of the dataclass ``cls``, in order."""
    return tuple(cls.__dict__[f.name].__set__ for f in dataclasses.fields(cls))


_h_cluster, _h_member, _h_revision, _h_term = slot_setters(ResponseHeader)
#: KeyValue's field setters (the decoder of a range's keys inlines :func:`make_kv`)
kv_key, kv_value, kv_create, kv_mod, kv_version, kv_lease = slot_setters(KeyValue)
_put_header, _put_prev = slot_setters(PutResult)
_range_header, _range_kvs, _range_count, _range_more = slot_setters(RangeResult)
_del_header, _del_deleted, _del_prev = slot_setters(DeleteResult)


def make_header(cluster_id: int, member_id: int, revision: int, raft_term: int) -> ResponseHeader:
    h: ResponseHeader = new(ResponseHeader)
    _h_cluster(h, cluster_id)
    _h_member(h, member_id)
    _h_revision(h, revision)
    _h_term(h, raft_term)
    return h


def make_kv(
    key: bytes, value: bytes, create_revision: int, mod_revision: int, version: int, lease: int
) -> KeyValue:
    kv: KeyValue = new(KeyValue)
    kv_key(kv, key)
    kv_value(kv, value)
    kv_create(kv, create_revision)
    kv_mod(kv, mod_revision)
    kv_version(kv, version)
    kv_lease(kv, lease)
    return kv


def make_put(header: ResponseHeader, prev_kv: KeyValue | None) -> PutResult:
    r: PutResult = new(PutResult)
    _put_header(r, header)
    _put_prev(r, prev_kv)
    return r


def make_range(header: ResponseHeader, kvs: list[KeyValue], count: int, more: bool) -> RangeResult:
    r: RangeResult = new(RangeResult)
    _range_header(r, header)
    _range_kvs(r, kvs)
    _range_count(r, count)
    _range_more(r, more)
    return r


def make_delete(header: ResponseHeader, deleted: int, prev_kvs: list[KeyValue]) -> DeleteResult:
    r: DeleteResult = new(DeleteResult)
    _del_header(r, header)
    _del_deleted(r, deleted)
    _del_prev(r, prev_kvs)
    return r

"""
Result types. etcd's protobuf messages are converted into these in one place
(the ``from_pb`` functions here), so generated classes never reach users.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._pb import etcdserverpb, mvccpb

__all__ = ["DeleteResult", "KeyValue", "PutResult", "RangeResult", "ResponseHeader"]


@dataclasses.dataclass(frozen=True, slots=True)
class ResponseHeader:
    """Where and when a response was produced."""

    #: the cluster that answered
    cluster_id: int
    #: the member that answered
    member_id: int
    #: the store's revision when the request was served
    revision: int
    #: the Raft term of the member
    raft_term: int

    @classmethod
    def from_pb(cls, pb: etcdserverpb.ResponseHeader | None) -> ResponseHeader:
        if pb is None:
            return _EMPTY_HEADER
        return cls(pb.cluster_id, pb.member_id, pb.revision, pb.raft_term)


_EMPTY_HEADER = ResponseHeader(0, 0, 0, 0)


@dataclasses.dataclass(frozen=True, slots=True)
class KeyValue:
    """A key and its value, with the revisions that describe its history."""

    key: bytes
    value: bytes
    #: revision of the last creation of the key
    create_revision: int
    #: revision of the last modification
    mod_revision: int
    #: number of modifications since creation (a delete resets it to 0)
    version: int
    #: the ID of the lease attached to the key, 0 for none
    lease: int

    @classmethod
    def from_pb(cls, pb: mvccpb.KeyValue) -> KeyValue:
        return cls(pb.key, pb.value, pb.create_revision, pb.mod_revision, pb.version, pb.lease)


@dataclasses.dataclass(frozen=True, slots=True)
class PutResult:
    header: ResponseHeader
    #: the key before this put, if ``prev_kv=True`` was asked and it existed
    prev_kv: KeyValue | None

    @classmethod
    def from_pb(cls, pb: etcdserverpb.PutResponse) -> PutResult:
        prev = pb.prev_kv
        return cls(ResponseHeader.from_pb(pb.header), KeyValue.from_pb(prev) if prev else None)


@dataclasses.dataclass(frozen=True, slots=True)
class RangeResult:
    header: ResponseHeader
    #: the keys, in the requested order
    kvs: list[KeyValue]
    #: how many keys the range holds in all (not only those returned)
    count: int
    #: ``True`` if a limit cut the result short
    more: bool

    @classmethod
    def from_pb(cls, pb: etcdserverpb.RangeResponse) -> RangeResult:
        return cls(
            ResponseHeader.from_pb(pb.header),
            [KeyValue.from_pb(kv) for kv in pb.kvs],
            pb.count,
            pb.more,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteResult:
    header: ResponseHeader
    #: how many keys were deleted
    deleted: int
    #: the deleted keys, if ``prev_kv=True`` was asked
    prev_kvs: list[KeyValue]

    @classmethod
    def from_pb(cls, pb: etcdserverpb.DeleteRangeResponse) -> DeleteResult:
        return cls(
            ResponseHeader.from_pb(pb.header),
            pb.deleted,
            [KeyValue.from_pb(kv) for kv in pb.prev_kvs],
        )

"""
The result types (re-exported by :mod:`etcdanyio.types`): frozen dataclasses, data only.

The hot responses (KV, transactions, watch, leases, status, member list) are decoded
straight into them by the wire codec (``_codec_decode``, built through
``_codec_construct``); the colder ones are converted from betterproto2 messages by the
``from_pb`` functions here, so generated classes never reach users.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, SupportsIndex, overload

from ._grpc._status import NamedIntEnum

if TYPE_CHECKING:
    from collections.abc import Iterator

    from ._pb import etcdserverpb, mvccpb

__all__ = [
    "Alarm",
    "AlarmType",
    "CompactResult",
    "DeleteResult",
    "HashKVResult",
    "HealthResult",
    "KeyValue",
    "Member",
    "MemberAddResult",
    "PutResult",
    "RangeResult",
    "ResponseHeader",
    "StatusResult",
    "TxnResult",
]


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
    """What :meth:`Client.put` (and a transaction's put) returns."""

    header: ResponseHeader
    #: the key before this put, if ``prev_kv=True`` was asked and it existed
    prev_kv: KeyValue | None


@dataclasses.dataclass(frozen=True, slots=True)
class RangeResult:
    """
    The keys a range read returned; also a sequence of them: ``len()``, iteration and
    indexing go over ``.kvs``. It is true when the range holds any key (``.count > 0``), also
    for ``count_only=True`` and when ``limit`` returned fewer keys than the range holds.
    """

    header: ResponseHeader
    #: the keys, in the requested order
    kvs: list[KeyValue]
    #: how many keys the range holds in all (not only those returned)
    count: int
    #: ``True`` if a limit cut the result short
    more: bool

    def __len__(self) -> int:
        return len(self.kvs)

    def __iter__(self) -> Iterator[KeyValue]:
        return iter(self.kvs)

    @overload
    def __getitem__(self, index: SupportsIndex) -> KeyValue: ...
    @overload
    def __getitem__(self, index: slice) -> list[KeyValue]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> KeyValue | list[KeyValue]:
        return self.kvs[index]

    def __bool__(self) -> bool:
        return self.count > 0


@dataclasses.dataclass(frozen=True, slots=True)
class DeleteResult:
    """
    What a delete removed; also a sequence of the deleted keys as they were (``.prev_kvs``,
    filled with ``prev_kv=True``): ``len()``, iteration and indexing go over them. It is true
    when anything was deleted (``.deleted > 0``), with or without ``prev_kv``.
    """

    header: ResponseHeader
    #: how many keys were deleted
    deleted: int
    #: the deleted keys, if ``prev_kv=True`` was asked
    prev_kvs: list[KeyValue]

    def __len__(self) -> int:
        return len(self.prev_kvs)

    def __iter__(self) -> Iterator[KeyValue]:
        return iter(self.prev_kvs)

    @overload
    def __getitem__(self, index: SupportsIndex) -> KeyValue: ...
    @overload
    def __getitem__(self, index: slice) -> list[KeyValue]: ...
    def __getitem__(self, index: SupportsIndex | slice) -> KeyValue | list[KeyValue]:
        return self.prev_kvs[index]

    def __bool__(self) -> bool:
        return self.deleted > 0


@dataclasses.dataclass(frozen=True, slots=True)
class TxnResult:
    """What :meth:`Client.txn` (and a nested transaction) returns."""

    header: ResponseHeader
    #: ``True`` if every compare held and ``success`` ran; ``False`` if ``failure`` ran
    succeeded: bool
    #: one result per operation that ran, in order
    responses: list[RangeResult | PutResult | DeleteResult | TxnResult]


@dataclasses.dataclass(frozen=True, slots=True)
class CompactResult:
    """What :meth:`Client.compact` returns: the header of the compaction's answer."""

    header: ResponseHeader


# -- cluster and maintenance -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """One member of the cluster, as ``members()`` lists it."""

    #: the member ID (an unsigned 64-bit int)
    id: int
    #: the member's ``--name``; empty for a member added but never started
    name: str
    #: the URLs the other members reach it at
    peer_urls: list[str]
    #: the URLs clients reach it at; empty for a member added but never started
    client_urls: list[str]
    #: ``True`` for a learner: it receives the log but does not vote (see ``member_promote``)
    is_learner: bool

    @classmethod
    def from_pb(cls, pb: etcdserverpb.Member) -> Member:
        return cls(pb.id, pb.name, list(pb.peer_ur_ls), list(pb.client_ur_ls), pb.is_learner)


@dataclasses.dataclass(frozen=True, slots=True)
class MemberAddResult:
    """What :meth:`Client.member_add` returns."""

    header: ResponseHeader
    #: the member just added (no name and no client URLs until it starts)
    member: Member
    #: every member after the addition, the new one included
    members: list[Member]

    @classmethod
    def from_pb(cls, pb: etcdserverpb.MemberAddResponse) -> MemberAddResult:
        members = [Member.from_pb(m) for m in pb.members]
        if pb.member is not None:
            member = Member.from_pb(pb.member)
        else:  # never seen from etcd; keep the type total
            member = Member(0, "", [], [], is_learner=False)
        return cls(ResponseHeader.from_pb(pb.header), member, members)


@dataclasses.dataclass(frozen=True, slots=True)
class StatusResult:
    """What one member says about itself (``status()``)."""

    #: ``.member_id`` is the member that answered
    header: ResponseHeader
    #: the etcd server version of the member, e.g. ``"3.5.1"``
    version: str
    #: bytes the backend database file takes on disk
    db_size: int
    #: bytes of it in use (the rest is free pages, reclaimed by ``defragment()``)
    db_size_in_use: int
    #: the member ID of the leader as this member sees it; 0 if it knows none
    leader: int
    #: the member's Raft committed index
    raft_index: int
    #: the member's Raft term
    raft_term: int
    #: the member's Raft applied index
    raft_applied_index: int
    #: whether the member is a learner
    is_learner: bool
    #: alarm and health messages, e.g. ``["memberID:... alarm:NOSPACE "]``
    errors: list[str]

    @property
    def member_id(self) -> int:
        """The ID of the member that answered."""
        return self.header.member_id


class AlarmType(NamedIntEnum):
    """The kind of an alarm (etcd's ``AlarmType``)."""

    #: no alarm; in a request: any kind
    NONE = 0
    #: the backend quota (``--quota-backend-bytes``) is exhausted: only reads and deletes work
    NOSPACE = 1
    #: a consistency check found the member's data corrupt
    CORRUPT = 2


@dataclasses.dataclass(frozen=True, slots=True)
class Alarm:
    """An alarm raised on one member."""

    #: the member the alarm is raised on
    member_id: int
    alarm: AlarmType

    @classmethod
    def from_pb(cls, pb: etcdserverpb.AlarmMember) -> Alarm:
        return cls(pb.member_id, AlarmType(int(pb.alarm)))


@dataclasses.dataclass(frozen=True, slots=True)
class HashKVResult:
    """A hash of one member's key-value history up to a revision (``hash_kv()``)."""

    #: ``.member_id`` is the member that computed the hash
    header: ResponseHeader
    #: CRC-32 of the MVCC keys and values in ``(compact_revision, revision]``
    hash: int
    #: the member's compaction revision when the hash was computed
    compact_revision: int

    @classmethod
    def from_pb(cls, pb: etcdserverpb.HashKvResponse) -> HashKVResult:
        return cls(ResponseHeader.from_pb(pb.header), pb.hash, pb.compact_revision)


@dataclasses.dataclass(frozen=True, slots=True)
class HealthResult:
    """Whether a member is healthy, in the sense of ``etcdctl endpoint health``."""

    #: ``True`` if a linearizable read succeeded and no alarm is raised
    healthy: bool
    #: why not, when unhealthy (empty when healthy)
    reason: str
    #: seconds the check took
    took: float


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseGrantResult:
    """What :meth:`Client.lease_grant` returns: the new lease's ID and granted TTL."""

    header: ResponseHeader
    #: the lease ID
    id: int
    #: the TTL the server granted (it may raise a short one to its minimum)
    ttl: int


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseTimeToLiveResult:
    """What :meth:`Client.lease_time_to_live` returns: a lease's remaining and granted TTL."""

    header: ResponseHeader
    #: the lease ID
    id: int
    #: seconds left; -1 if the lease does not exist (expired or revoked)
    ttl: int
    #: the TTL granted at creation (or at the last keepalive)
    granted_ttl: int
    #: the keys attached, if ``keys=True`` was asked
    keys: list[bytes]

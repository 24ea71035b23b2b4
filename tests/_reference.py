"""
The reference serialization path: etcdanyio's requests and results through betterproto2.

The package encodes and decodes its hot calls with its own codec (``etcdanyio._codec``);
the tests prove that codec equal to betterproto2, the generated classes of etcd's
.proto files, through these functions: requests built as betterproto2 messages from the
same validated fields (``etcdanyio._requests``), and results converted from parsed
betterproto2 messages, field by field. Benchmarks compare against them too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

from etcdanyio._pb import etcdserverpb as pb
from etcdanyio._requests import put_args, range_fields
from etcdanyio._txn import Compare, Delete, Get, Put, Txn, _Target
from etcdanyio.types import (
    DeleteResult,
    KeyValue,
    PutResult,
    RangeResult,
    ResponseHeader,
    StatusResult,
    TxnResult,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from etcdanyio._keys import Namespace
    from etcdanyio.txn import Op

__all__ = [
    "compare_to_pb",
    "delete_from_pb",
    "delete_request",
    "op_to_pb",
    "put_from_pb",
    "put_request",
    "range_from_pb",
    "range_request",
    "status_from_pb",
    "to_pb",
    "txn_from_pb",
    "txn_request",
]


# --- requests -------------------------------------------------------------------------


def range_request(ns: Namespace, key: bytes, range_end: bytes, **options: Any) -> pb.RangeRequest:
    fields = range_fields(ns, key, range_end, **options)
    fields["sort_order"] = pb.RangeRequestSortOrder(fields["sort_order"])
    fields["sort_target"] = pb.RangeRequestSortTarget(fields["sort_target"])
    return pb.RangeRequest(**fields)


def put_request(ns: Namespace, key: object, value: object, **options: Any) -> pb.PutRequest:
    key_, value_, lease, prev_kv, ignore_value, ignore_lease = put_args(key, value, **options)
    return pb.PutRequest(
        key=ns.key(key_),
        value=value_,
        lease=lease,
        prev_kv=prev_kv,
        ignore_value=ignore_value,
        ignore_lease=ignore_lease,
    )


def delete_request(
    ns: Namespace, key: bytes, range_end: bytes, *, prev_kv: bool = False
) -> pb.DeleteRangeRequest:
    return pb.DeleteRangeRequest(
        key=ns.key(key), range_end=ns.range_end(range_end), prev_kv=bool(prev_kv)
    )


def compare_to_pb(compare: Compare, ns: Namespace) -> pb.Compare:
    message = pb.Compare(
        result=pb.CompareCompareResult(compare.result),
        target=pb.CompareCompareTarget(compare.target),
        key=ns.key(compare.key),
        range_end=ns.range_end(compare.range_end),
    )
    target = compare.target
    if target == _Target.VALUE:
        message.value = compare.operand  # type: ignore[assignment]
    elif target == _Target.VERSION:
        message.version = compare.operand  # type: ignore[assignment]
    elif target == _Target.CREATE:
        message.create_revision = compare.operand  # type: ignore[assignment]
    elif target == _Target.MOD:
        message.mod_revision = compare.operand  # type: ignore[assignment]
    else:
        message.lease = compare.operand  # type: ignore[assignment]
    return message


def op_to_pb(op: Op, ns: Namespace) -> pb.RequestOp:
    if isinstance(op, Get):
        return pb.RequestOp(
            request_range=range_request(ns, op.key, op.range_end, **dict(op.options))
        )
    if isinstance(op, Put):
        return pb.RequestOp(request_put=put_request(ns, op.key, op.value, **dict(op.options)))
    if isinstance(op, Delete):
        return pb.RequestOp(
            request_delete_range=delete_request(ns, op.key, op.range_end, prev_kv=op.prev_kv)
        )
    if isinstance(op, Txn):
        return pb.RequestOp(request_txn=txn_request(ns, op.compare, op.success, op.failure))
    raise TypeError(f"not a transaction op: {op!r}")


def txn_request(
    ns: Namespace, compare: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
) -> pb.TxnRequest:
    return pb.TxnRequest(
        compare=[compare_to_pb(c, ns) for c in compare],
        success=[op_to_pb(op, ns) for op in success],
        failure=[op_to_pb(op, ns) for op in failure],
    )


# --- results --------------------------------------------------------------------------


def put_from_pb(message: pb.PutResponse) -> PutResult:
    prev = message.prev_kv
    return PutResult(
        ResponseHeader.from_pb(message.header), KeyValue.from_pb(prev) if prev else None
    )


def range_from_pb(message: pb.RangeResponse) -> RangeResult:
    return RangeResult(
        ResponseHeader.from_pb(message.header),
        [KeyValue.from_pb(kv) for kv in message.kvs],
        message.count,
        message.more,
    )


def delete_from_pb(message: pb.DeleteRangeResponse) -> DeleteResult:
    return DeleteResult(
        ResponseHeader.from_pb(message.header),
        message.deleted,
        [KeyValue.from_pb(kv) for kv in message.prev_kvs],
    )


def txn_from_pb(message: pb.TxnResponse) -> TxnResult:
    responses: list[RangeResult | PutResult | DeleteResult | TxnResult] = []
    for op in message.responses:
        if op.response_range is not None:
            responses.append(range_from_pb(op.response_range))
        elif op.response_put is not None:
            responses.append(put_from_pb(op.response_put))
        elif op.response_delete_range is not None:
            responses.append(delete_from_pb(op.response_delete_range))
        elif op.response_txn is not None:
            responses.append(txn_from_pb(op.response_txn))
    return TxnResult(ResponseHeader.from_pb(message.header), message.succeeded, responses)


def status_from_pb(message: pb.StatusResponse) -> StatusResult:
    return StatusResult(
        ResponseHeader.from_pb(message.header),
        message.version,
        message.db_size,
        message.db_size_in_use,
        message.leader,
        message.raft_index,
        message.raft_term,
        message.raft_applied_index,
        message.is_learner,
        list(message.errors),
    )


@overload
def to_pb(item: Compare, ns: Namespace) -> pb.Compare: ...
@overload
def to_pb(item: Get | Put | Delete | Txn, ns: Namespace) -> pb.RequestOp: ...
def to_pb(item: Compare | Op, ns: Namespace) -> pb.Compare | pb.RequestOp:
    """A transaction's compare or op as betterproto2 builds it."""
    if isinstance(item, Compare):
        return compare_to_pb(item, ns)
    return op_to_pb(item, ns)

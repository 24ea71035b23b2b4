"""The hand-written Txn encoding and decoding agree with betterproto2's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from etcdanyio import _codec, txn
from etcdanyio._keys import Namespace
from etcdanyio._pb import etcdserverpb as pb
from etcdanyio._pb import mvccpb
from etcdanyio._txn import encode_txn
from tests._reference import txn_from_pb, txn_request
from tests.unit.codec_builds import build_id, codec_builds

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module", autouse=True, params=codec_builds(), ids=build_id)
def codec_build(request: pytest.FixtureRequest) -> Iterator[None]:
    """Run every test of this module against each build of the codec (see codec_builds)."""
    global _codec
    saved, _codec = _codec, request.param
    yield
    _codec = saved


keys = st.binary(min_size=1, max_size=8)
ints = st.integers(min_value=0, max_value=2**63 - 1)


def _compare(kind: int, key: bytes, op: int, operand: object, prefix: bool) -> txn.Compare:
    targets = [txn.version, txn.create_revision, txn.mod_revision, txn.value, txn.lease]
    target = targets[kind](key, prefix=prefix)
    if kind == 3:
        operand = b"v%d" % (operand if isinstance(operand, int) else 0)
    ops = [target.__eq__, target.__ne__, target.__lt__, target.__gt__]
    result = ops[op](operand)
    assert isinstance(result, txn.Compare)
    return result


compares = st.builds(
    _compare,
    st.integers(0, 4),
    keys,
    st.integers(0, 3),
    ints,
    st.booleans(),
)
ops = st.one_of(
    st.builds(lambda k, p, lim: txn.get(k, prefix=p, limit=lim), keys, st.booleans(), ints),
    st.builds(
        lambda k, v, lease, prev: txn.put(k, v, lease=lease or None, prev_kv=prev),
        keys,
        st.binary(max_size=20),
        ints,
        st.booleans(),
    ),
    st.builds(
        lambda k, p, prev: txn.delete(k, prefix=p, prev_kv=prev), keys, st.booleans(), st.booleans()
    ),
)
nested = st.builds(
    lambda c, s, f: txn.txn(c, s, f),
    st.lists(compares, max_size=2),
    st.lists(ops, max_size=2),
    st.lists(ops, max_size=2),
)


@given(
    st.lists(compares, max_size=4),
    st.lists(st.one_of(ops, nested), max_size=4),
    st.lists(st.one_of(ops, nested), max_size=4),
    st.sampled_from([b"", b"ns/", b"\xff\xff"]),
)
def test_encode_txn_matches_betterproto(
    compare: list[txn.Compare], success: list[txn.Op], failure: list[txn.Op], prefix: bytes
) -> None:
    ns = Namespace(prefix)
    assert encode_txn(ns, compare, success, failure) == bytes(
        txn_request(ns, compare, success, failure)
    )


def _kv(i: int) -> mvccpb.KeyValue:
    return mvccpb.KeyValue(key=b"k%d" % i, value=b"v", create_revision=i, mod_revision=i, version=1)


def test_decode_txn_response_matches_betterproto() -> None:
    header = pb.ResponseHeader(cluster_id=2**63 + 1, member_id=2**62 + 3, revision=3, raft_term=4)
    inner = pb.TxnResponse(
        header=header,
        succeeded=True,
        responses=[pb.ResponseOp(response_put=pb.PutResponse(header=header, prev_kv=_kv(1)))],
    )
    response = pb.TxnResponse(
        header=header,
        succeeded=False,
        responses=[
            pb.ResponseOp(
                response_range=pb.RangeResponse(header=header, kvs=[_kv(1), _kv(2)], count=2)
            ),
            pb.ResponseOp(response_put=pb.PutResponse(header=header)),
            pb.ResponseOp(
                response_delete_range=pb.DeleteRangeResponse(
                    header=header, deleted=1, prev_kvs=[_kv(3)]
                )
            ),
            pb.ResponseOp(response_txn=inner),
        ],
    )
    expected = txn_from_pb(response)
    assert _codec.decode_txn_response(bytes(response)) == expected
    ids: _codec.IdMemo = {}
    assert _codec.decode_txn_response(bytes(response), ids) == expected
    assert _codec.decode_txn_response(bytes(response), ids) == expected
    assert ids


def test_decode_txn_response_rejects_truncation() -> None:
    data = bytes(
        pb.TxnResponse(succeeded=True, responses=[pb.ResponseOp(response_put=pb.PutResponse())])
    )
    with pytest.raises(ValueError, match="malformed"):
        _codec.decode_txn_response(data[:-1] + b"\x0a")

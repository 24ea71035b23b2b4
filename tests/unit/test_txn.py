"""
The transaction builders (``etcdanyio.txn``): immutability, comparisons, the protobuf they
produce (with and without a namespace), and validation at build time.
"""

from __future__ import annotations

import dataclasses
import operator
import types
from typing import TYPE_CHECKING, Any

import betterproto2
import pytest

from etcdanyio import txn
from etcdanyio._keys import Namespace
from etcdanyio._pb import etcdserverpb as pb
from tests._reference import to_pb

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.unit

#: ``txn`` without its annotations, for calls that are wrong on purpose
loose: Any = txn

NO_NS = Namespace()
NS = Namespace(b"ns/")

TARGETS: list[tuple[Callable[..., Any], pb.CompareCompareTarget, str, object, object]] = [
    # builder, pb target, oneof field, operand given, operand on the wire
    (txn.value, pb.CompareCompareTarget.VALUE, "value", "v", b"v"),
    (txn.version, pb.CompareCompareTarget.VERSION, "version", 3, 3),
    (txn.create_revision, pb.CompareCompareTarget.CREATE, "create_revision", 7, 7),
    (txn.mod_revision, pb.CompareCompareTarget.MOD, "mod_revision", 9, 9),
    (txn.lease, pb.CompareCompareTarget.LEASE, "lease", 0x1234, 0x1234),
]
OPERATORS: list[tuple[Callable[[Any, Any], Any], pb.CompareCompareResult, str]] = [
    (operator.eq, pb.CompareCompareResult.EQUAL, "=="),
    (operator.ne, pb.CompareCompareResult.NOT_EQUAL, "!="),
    (operator.lt, pb.CompareCompareResult.LESS, "<"),
    (operator.gt, pb.CompareCompareResult.GREATER, ">"),
]


def _wire(message: betterproto2.Message) -> Any:
    """``message`` serialized and parsed back: what etcd would see."""
    return type(message).parse(bytes(message))


# -- immutability -------------------------------------------------------------------------------


def test_compare_and_target_are_frozen_and_slotted() -> None:
    target = txn.version("k")
    compare = target == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        compare.key = b"other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        compare.operand = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.key = b"other"  # type: ignore[misc]
    for obj in (target, compare):
        assert not hasattr(obj, "__dict__")
    assert compare.key == b"k"
    assert compare.operand == 1


@pytest.mark.parametrize(
    "op",
    [
        pytest.param(txn.get("k"), id="get"),
        pytest.param(txn.put("k", "v"), id="put"),
        pytest.param(txn.delete("k"), id="delete"),
        pytest.param(txn.txn([txn.version("k") == 0], [txn.put("k", "v")]), id="txn"),
    ],
)
def test_ops_are_frozen_and_slotted(op: txn.Op) -> None:
    field = dataclasses.fields(op)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(op, field, b"other")
    assert not hasattr(op, "__dict__")


@pytest.mark.parametrize(("compare", "result", "symbol"), OPERATORS, ids=[o[2] for o in OPERATORS])
def test_comparing_returns_a_new_compare_and_leaves_the_target(
    compare: Callable[[Any, Any], Any], result: pb.CompareCompareResult, symbol: str
) -> None:
    target = txn.mod_revision("k", end="z")
    before = (target.target, target.key, target.range_end)
    first = compare(target, 5)
    second = compare(target, 6)
    assert isinstance(first, txn.Compare)
    assert first is not second
    assert (first.result, first.operand) == (int(result), 5)
    assert (second.result, second.operand) == (int(result), 6)
    assert (target.target, target.key, target.range_end) == before
    assert (first.key, first.range_end) == (b"k", b"z")
    # The same comparison again gives an equal (but new) object.
    again = compare(target, 5)
    assert again is not first
    assert dataclasses.astuple(again) == dataclasses.astuple(first)


def test_all_four_comparisons_from_one_target_are_independent() -> None:
    target = txn.version("k")
    compares = [target == 1, target != 2, target < 3, target > 4]
    assert [(c.result, c.operand) for c in compares] == [(0, 1), (3, 2), (2, 3), (1, 4)]


def test_reflected_comparisons_keep_their_meaning() -> None:
    # ``5 < target`` means ``target > 5``; Python reflects it to target.__gt__(5).
    gt = operator.lt(5, txn.version("k"))
    assert (gt.result, gt.operand) == (pb.CompareCompareResult.GREATER, 5)
    lt = operator.gt(5, txn.version("k"))
    assert (lt.result, lt.operand) == (pb.CompareCompareResult.LESS, 5)
    eq = operator.eq(0, txn.version("k"))
    assert (eq.result, eq.operand) == (pb.CompareCompareResult.EQUAL, 0)
    assert isinstance(eq, txn.Compare)


@pytest.mark.parametrize(
    "compare",
    [
        pytest.param(operator.le, id="<="),
        pytest.param(operator.ge, id=">="),
    ],
)
def test_unsupported_comparisons_raise(compare: Callable[[Any, Any], Any]) -> None:
    with pytest.raises(TypeError):
        compare(txn.version("k"), 1)


def test_compare_is_not_a_bool() -> None:
    compare = txn.version("k") == 0
    message = r"^a Compare is not a bool; pass it to txn\(compare=\[\.\.\.\]\)$"
    with pytest.raises(TypeError, match=message):
        bool(compare)

    def branch_on(value: object) -> str:
        if value:
            return "yes"
        return "no"

    with pytest.raises(TypeError, match=message):
        branch_on(compare)
    with pytest.raises(TypeError, match=message):
        _ = not compare
    with pytest.raises(TypeError, match=message):
        _ = 0 < txn.version("k") < 5  # chained: needs bool() of the first


def test_target_is_not_a_bool_nor_hashable() -> None:
    with pytest.raises(TypeError, match=r"^compare txn\.lease\(\.\.\.\) with ==, !=, < or >$"):
        bool(txn.lease("k"))
    with pytest.raises(TypeError):
        hash(txn.value("k"))


@pytest.mark.parametrize(
    ("compare", "expected"),
    [
        pytest.param(txn.version("k") == 0, "txn.version(b'k') == 0", id="version"),
        pytest.param(
            txn.value("a", end="b") != "x", "txn.value(b'a', end=b'b') != b'x'", id="value-end"
        ),
        pytest.param(txn.mod_revision("k") > 5, "txn.mod_revision(b'k') > 5", id="mod"),
        pytest.param(txn.create_revision("k") < 2, "txn.create_revision(b'k') < 2", id="create"),
        pytest.param(txn.lease("k") == 7, "txn.lease(b'k') == 7", id="lease"),
        pytest.param(
            txn.version("p/", prefix=True) > 0, "txn.version(b'p/', end=b'p0') > 0", id="prefix"
        ),
    ],
)
def test_compare_repr(compare: txn.Compare, expected: str) -> None:
    assert repr(compare) == expected


# -- compares and ops as betterproto2 messages -----------------------------------------------


@pytest.mark.parametrize(
    ("builder", "target", "field", "given", "wire"), TARGETS, ids=[t[2] for t in TARGETS]
)
@pytest.mark.parametrize(("compare", "result", "symbol"), OPERATORS, ids=[o[2] for o in OPERATORS])
def test_compare_to_pb(
    builder: Callable[..., Any],
    target: pb.CompareCompareTarget,
    field: str,
    given: object,
    wire: object,
    compare: Callable[[Any, Any], Any],
    result: pb.CompareCompareResult,
    symbol: str,
) -> None:
    built = compare(builder("k"), given)
    for ns, key in ((NO_NS, b"k"), (NS, b"ns/k")):
        message = _wire(to_pb(built, ns))
        assert message.target == target
        assert message.result == result
        assert message.key == key
        assert message.range_end == b""
        assert betterproto2.which_one_of(message, "target_union") == (field, wire)
    assert symbol in repr(built)


@pytest.mark.parametrize(
    ("builder", "target", "field", "zero"),
    [
        (txn.version, pb.CompareCompareTarget.VERSION, "version", 0),
        (txn.create_revision, pb.CompareCompareTarget.CREATE, "create_revision", 0),
        (txn.mod_revision, pb.CompareCompareTarget.MOD, "mod_revision", 0),
        (txn.lease, pb.CompareCompareTarget.LEASE, "lease", 0),
        (txn.value, pb.CompareCompareTarget.VALUE, "value", b""),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_zero_operand_is_still_sent(
    builder: Callable[..., Any], target: pb.CompareCompareTarget, field: str, zero: object
) -> None:
    # A oneof member is on the wire even at its default value ("version == 0" is the classic).
    message = _wire(to_pb((builder("k") == zero), NO_NS))
    assert message.target == target
    assert betterproto2.which_one_of(message, "target_union") == (field, zero)


def test_lease_operand_accepts_a_lease_object() -> None:
    fake_lease = types.SimpleNamespace(id=0xABC)
    compare = txn.lease("k") == fake_lease
    assert compare.operand == 0xABC


@pytest.mark.parametrize(
    ("kwargs", "plain", "namespaced"),
    [
        pytest.param({}, (b"a", b""), (b"ns/a", b""), id="single"),
        pytest.param({"prefix": True}, (b"a", b"b"), (b"ns/a", b"ns/b"), id="prefix"),
        pytest.param({"end": "c"}, (b"a", b"c"), (b"ns/a", b"ns/c"), id="end"),
        pytest.param({"end": b"\0"}, (b"a", b"\0"), (b"ns/a", b"ns0"), id="to-the-end"),
    ],
)
def test_compare_ranges_with_and_without_namespace(
    kwargs: dict[str, Any], plain: tuple[bytes, bytes], namespaced: tuple[bytes, bytes]
) -> None:
    compare = txn.version("a", **kwargs) > 0
    for ns, expected in ((NO_NS, plain), (NS, namespaced)):
        message = to_pb(compare, ns)
        assert (message.key, message.range_end) == expected


@pytest.mark.parametrize(
    ("prefix", "plain", "namespaced"),
    [
        pytest.param(b"", (b"\0", b"\0"), (b"ns/\0", b"ns0"), id="empty"),
        pytest.param(b"\xff", (b"\xff", b"\0"), (b"ns/\xff", b"ns0"), id="all-ff"),
        pytest.param(b"a\xff", (b"a\xff", b"b"), (b"ns/a\xff", b"ns/b"), id="trailing-ff"),
    ],
)
def test_prefix_end_is_computed_within_the_namespace(
    prefix: bytes, plain: tuple[bytes, bytes], namespaced: tuple[bytes, bytes]
) -> None:
    compare = txn.value(prefix, prefix=True) != b"x"
    for ns, expected in ((NO_NS, plain), (NS, namespaced)):
        message = to_pb(compare, ns)
        assert (message.key, message.range_end) == expected


# -- operations ---------------------------------------------------------------------------------


def test_get_to_pb() -> None:
    op = txn.get(
        "a",
        prefix=True,
        limit=3,
        revision=7,
        sort_order="descend",
        sort_target="mod",
        keys_only=True,
        serializable=True,
        min_mod_revision=1,
        max_mod_revision=9,
        min_create_revision=2,
        max_create_revision=8,
    )
    for ns, key, end in ((NO_NS, b"a", b"b"), (NS, b"ns/a", b"ns/b")):
        request = _wire(to_pb(op, ns)).request_range
        assert request == pb.RangeRequest(
            key=key,
            range_end=end,
            limit=3,
            revision=7,
            sort_order=pb.RangeRequestSortOrder.DESCEND,
            sort_target=pb.RangeRequestSortTarget.MOD,
            keys_only=True,
            serializable=True,
            min_mod_revision=1,
            max_mod_revision=9,
            min_create_revision=2,
            max_create_revision=8,
        )


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (txn.get("a", sort_target="version"), pb.RangeRequestSortTarget.VERSION),
        (txn.get("a", sort_target="Create"), pb.RangeRequestSortTarget.CREATE),
        (txn.get("a", sort_target="VALUE"), pb.RangeRequestSortTarget.VALUE),
    ],
)
def test_get_sort_target_alone_ascends(
    target: txn.Get, expected: pb.RangeRequestSortTarget
) -> None:
    request = to_pb(target, NO_NS).request_range
    assert request is not None
    assert request.sort_target == expected
    assert request.sort_order == pb.RangeRequestSortOrder.ASCEND


def test_get_count_only_and_single_key() -> None:
    request = to_pb(txn.get("k", count_only=True), NS).request_range
    assert request == pb.RangeRequest(key=b"ns/k", count_only=True)


def test_put_to_pb() -> None:
    fake_lease = types.SimpleNamespace(id=0x77)
    op = txn.put("k", b"v", lease=fake_lease, prev_kv=True)
    for ns, key in ((NO_NS, b"k"), (NS, b"ns/k")):
        request = _wire(to_pb(op, ns)).request_put
        assert request == pb.PutRequest(key=key, value=b"v", lease=0x77, prev_kv=True)


def test_put_ignore_value_and_lease_to_pb() -> None:
    request = to_pb(txn.put("k", ignore_value=True, ignore_lease=True), NS).request_put
    assert request == pb.PutRequest(key=b"ns/k", ignore_value=True, ignore_lease=True)


def test_put_accepts_bytearray_and_memoryview() -> None:
    request = to_pb(txn.put(bytearray(b"k"), memoryview(b"v")), NO_NS).request_put  # type: ignore[arg-type]
    assert request is not None
    assert (request.key, request.value) == (b"k", b"v")
    assert type(request.key) is bytes


@pytest.mark.parametrize(
    ("op", "plain", "namespaced"),
    [
        pytest.param(txn.delete("k"), (b"k", b""), (b"ns/k", b""), id="single"),
        pytest.param(
            txn.delete("p/", prefix=True), (b"p/", b"p0"), (b"ns/p/", b"ns/p0"), id="prefix"
        ),
        pytest.param(
            txn.delete("", prefix=True), (b"\0", b"\0"), (b"ns/\0", b"ns0"), id="everything"
        ),
        pytest.param(txn.delete("a", end="c"), (b"a", b"c"), (b"ns/a", b"ns/c"), id="range"),
    ],
)
def test_delete_to_pb(
    op: txn.Delete, plain: tuple[bytes, bytes], namespaced: tuple[bytes, bytes]
) -> None:
    for ns, (key, end) in ((NO_NS, plain), (NS, namespaced)):
        request = _wire(to_pb(op, ns)).request_delete_range
        assert request == pb.DeleteRangeRequest(key=key, range_end=end)
    with_prev = to_pb(txn.delete("k", prev_kv=True), NO_NS).request_delete_range
    assert with_prev == pb.DeleteRangeRequest(key=b"k", prev_kv=True)


def test_nested_txn_to_pb_applies_the_namespace_all_the_way_down() -> None:
    inner = txn.txn(
        compare=[txn.value("c") == "1"],
        success=[txn.put("d", "2")],
        failure=[txn.delete("e", prefix=True)],
    )
    outer = txn.txn(compare=[txn.version("a") > 0], success=[inner], failure=[txn.get("b")])
    request = _wire(to_pb(outer, NS)).request_txn
    assert request.compare[0].key == b"ns/a"
    nested = request.success[0].request_txn
    assert nested.compare[0].key == b"ns/c"
    assert nested.compare[0].value == b"1"
    assert nested.success[0].request_put.key == b"ns/d"
    assert nested.failure[0].request_delete_range.key == b"ns/e"
    assert nested.failure[0].request_delete_range.range_end == b"ns/f"
    assert request.failure[0].request_range.key == b"ns/b"
    # Without the namespace nothing is added.
    plain = _wire(to_pb(outer, NO_NS)).request_txn
    assert plain.success[0].request_txn.success[0].request_put.key == b"d"


def test_txn_keeps_its_lists_as_tuples() -> None:
    compares = [txn.version("a") == 0]
    ops = [txn.put("a", "1")]
    nested = txn.txn(compares, ops, [])
    compares.append(txn.version("b") == 0)  # the builder took a copy
    assert nested.compare == (txn.version("a") == 0,)
    assert nested.success == tuple(ops)
    assert nested.failure == ()


# -- validation at build time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        pytest.param(
            lambda: loose.version(3),
            TypeError,
            r"key must be str or bytes, got 3 \(int\)",
            id="target-int-key",
        ),
        pytest.param(
            lambda: loose.value(""), ValueError, "key must not be empty", id="target-empty-key"
        ),
        pytest.param(
            lambda: loose.version("b", end="a"),
            ValueError,
            "must sort after",
            id="target-end-before",
        ),
        pytest.param(
            lambda: loose.version("a", end="a"),
            ValueError,
            "must sort after",
            id="target-end-equal",
        ),
        pytest.param(
            lambda: loose.version("a", prefix=True, end="b"),
            ValueError,
            "either prefix=True or end=",
            id="target-prefix-and-end",
        ),
        pytest.param(
            lambda: loose.version("a", end=3),
            TypeError,
            r"range end must be str or bytes, got 3 \(int\)",
            id="target-int-end",
        ),
        pytest.param(
            lambda: loose.version("k") == "1",
            TypeError,
            r"version to compare with must be an int, got '1' \(str\)",
            id="version-str",
        ),
        pytest.param(
            lambda: operator.eq(loose.version("k"), True),
            TypeError,
            r"got True \(bool\)",
            id="version-bool",
        ),
        pytest.param(
            lambda: loose.version("k") > -1,
            ValueError,
            "must not be negative",
            id="version-negative",
        ),
        pytest.param(lambda: loose.mod_revision("k") < 2**63, ValueError, "64 bits", id="mod-huge"),
        pytest.param(
            lambda: loose.create_revision("k") == 1.5,
            TypeError,
            r"got 1\.5 \(float\)",
            id="create-float",
        ),
        pytest.param(
            lambda: loose.value("k") == 3,
            TypeError,
            r"value to compare with must be str or bytes, got 3 \(int\)",
            id="value-int",
        ),
        pytest.param(
            lambda: operator.eq(loose.value("k"), None),
            TypeError,
            r"got None \(NoneType\)",
            id="value-none",
        ),
        pytest.param(
            lambda: loose.lease("k") == -1, ValueError, "must not be negative", id="lease-negative"
        ),
        pytest.param(
            lambda: loose.lease("k") == "1",
            TypeError,
            "lease must be a Lease or an int ID",
            id="lease-str",
        ),
        pytest.param(lambda: loose.get(""), ValueError, "key must not be empty", id="get-empty"),
        pytest.param(
            lambda: loose.get(3.5),
            TypeError,
            r"key must be str or bytes, got 3\.5 \(float\)",
            id="get-float",
        ),
        pytest.param(
            lambda: loose.get("a", prefix=True, end="b"),
            ValueError,
            "either prefix=True or end=",
            id="get-prefix-and-end",
        ),
        pytest.param(
            lambda: loose.get("k", limit=-1),
            ValueError,
            "limit must not be negative",
            id="get-limit-negative",
        ),
        pytest.param(
            lambda: loose.get("k", limit=True),
            TypeError,
            r"limit must be an int, got True \(bool\)",
            id="get-limit-bool",
        ),
        pytest.param(
            lambda: loose.get("k", revision=2**63),
            ValueError,
            "revision must fit in 64 bits",
            id="get-revision-huge",
        ),
        pytest.param(
            lambda: loose.get("k", sort_order="up"),
            ValueError,
            "sort_order must be a SortOrder or one of",
            id="get-sort-order",
        ),
        pytest.param(
            lambda: loose.get("k", sort_target="size"),
            ValueError,
            "sort_target must be a SortTarget or one of",
            id="get-sort-target",
        ),
        pytest.param(
            lambda: loose.get("k", keys_only=True, count_only=True),
            ValueError,
            "exclude each other",
            id="get-keys-and-count",
        ),
        pytest.param(lambda: loose.get("k", limt=3), TypeError, "limt", id="get-unknown-option"),
        pytest.param(
            lambda: loose.put("", "v"), ValueError, "key must not be empty", id="put-empty-key"
        ),
        pytest.param(
            lambda: loose.put(None, "v"), TypeError, r"got None \(NoneType\)", id="put-none-key"
        ),
        pytest.param(
            lambda: loose.put("k", 3),
            TypeError,
            r"value must be str or bytes, got 3 \(int\)",
            id="put-int-value",
        ),
        pytest.param(
            lambda: loose.put("k"),
            TypeError,
            "value must be str or bytes, got None",
            id="put-no-value",
        ),
        pytest.param(
            lambda: loose.put("k", [b"v"]), TypeError, r"got \[b'v'\] \(list\)", id="put-list-value"
        ),
        pytest.param(
            lambda: loose.put("k", "v", ignore_value=True),
            ValueError,
            "ignore_value",
            id="put-ignore-value-with-value",
        ),
        pytest.param(
            lambda: loose.put("k", "v", lease=5, ignore_lease=True),
            ValueError,
            "ignore_lease",
            id="put-ignore-lease-with-lease",
        ),
        pytest.param(
            lambda: loose.put("k", "v", lease=-1),
            ValueError,
            "lease ID must not be negative",
            id="put-lease-negative",
        ),
        pytest.param(
            lambda: loose.put("k", "v", lease=2**63), ValueError, "64 bits", id="put-lease-huge"
        ),
        pytest.param(
            lambda: loose.put("k", "v", lease=1.0),
            TypeError,
            r"lease must be a Lease or an int ID, got 1\.0 \(float\)",
            id="put-lease-float",
        ),
        pytest.param(
            lambda: loose.put("k", "v", lease=True),
            TypeError,
            "lease must be a Lease or an int ID",
            id="put-lease-bool",
        ),
        pytest.param(
            lambda: loose.delete(""), ValueError, "key must not be empty", id="delete-empty"
        ),
        pytest.param(
            lambda: loose.delete("b", end="a"),
            ValueError,
            "must sort after",
            id="delete-end-before",
        ),
        pytest.param(
            lambda: loose.delete(b"k", prefix=True, end="z"),
            ValueError,
            "either prefix=True or end=",
            id="delete-prefix-and-end",
        ),
        pytest.param(
            lambda: loose.txn(compare="x"),
            TypeError,
            r"compare must be a list, got 'x' \(str\)",
            id="txn-compare-str",
        ),
        pytest.param(
            lambda: loose.txn(compare=loose.version("k") == 0),
            TypeError,
            r"compare must be a list, got .* \(Compare\)",
            id="txn-compare-single",
        ),
        pytest.param(
            lambda: loose.txn(compare=[1]),
            TypeError,
            r"compare items must be .*, got 1 \(int\)",
            id="txn-compare-int-item",
        ),
        pytest.param(
            lambda: loose.txn(compare=[txn.version("k")]),
            TypeError,
            r"compare items must be .*\(_CompareTarget\)",
            id="txn-compare-target-item",
        ),
        pytest.param(
            lambda: loose.txn(compare=[txn.put("k", "v")]),
            TypeError,
            r"compare items must be .*\(Put\)",
            id="txn-compare-op-item",
        ),
        pytest.param(
            lambda: loose.txn(success=None),
            TypeError,
            r"success must be a list, got None \(NoneType\)",
            id="txn-success-none",
        ),
        pytest.param(
            lambda: loose.txn(success=[txn.version("k") == 0]),
            TypeError,
            r"success items must be txn\.get/put/delete/txn\(\.\.\.\), got .*\(Compare\)",
            id="txn-success-compare",
        ),
        pytest.param(
            lambda: loose.txn(failure=[("put", "k", "v")]),
            TypeError,
            r"failure items must be .*\(tuple\)",
            id="txn-failure-tuple-item",
        ),
        pytest.param(
            lambda: loose.txn(failure=(op for op in [txn.get("k")])),
            TypeError,
            r"failure must be a list, got .*\(generator\)",
            id="txn-failure-generator",
        ),
    ],
)
def test_builders_validate_when_called(
    build: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build()

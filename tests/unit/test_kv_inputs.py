"""
Bad input to every KV call raises ``TypeError``/``ValueError`` before any I/O (reliability.md §2.7).

The client points at ``127.0.0.1:1`` and its channel's dialer is replaced by one that records the
attempt and raises: a call that got past validation would fail with ``DialAttemptedError`` (or,
failing that, ``ConnectionFailedError``), never with the ``TypeError``/``ValueError`` expected.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import pytest

import etcdanyio
from etcdanyio import txn
from etcdanyio._pager import RangePager

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

pytestmark = pytest.mark.unit


class DialAttemptedError(AssertionError):
    """Raised by the fake dialer: the call got as far as connecting."""


class Dialer:
    def __init__(self) -> None:
        self.attempts: list[object] = []

    async def __call__(self, endpoint: object) -> Any:
        self.attempts.append(endpoint)
        raise DialAttemptedError(f"dialed {endpoint}: the input was not rejected before I/O")


@pytest.fixture
async def client_and_dialer(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[etcdanyio.Client, Dialer]]:
    namespace = getattr(request, "param", None)
    dialer = Dialer()
    async with etcdanyio.open_etcd("127.0.0.1:1", connect_timeout=0.5, namespace=namespace) as c:
        channel = c._core.channel
        assert hasattr(channel, "_connect")  # the hook this test relies on still exists
        channel._connect = dialer
        yield c, dialer


Call = Any  # a lambda taking the client; returns a coroutine, a pager, or raises


def _param(
    call: Call,
    error: type[Exception] | tuple[type[Exception], ...],
    message: str,
    case_id: str,
) -> Any:
    return pytest.param(call, error, message, id=case_id)


def _with_arg(call: Callable[[etcdanyio.Client, Any], Any], arg: object) -> Call:
    return lambda c: call(c, arg)


def _with_option(method: Callable[..., Any], option: str, value: object) -> Call:
    return lambda c: method(c, **{option: value})


KEY_TYPES: list[tuple[object, str]] = [
    (3, r"3 \(int\)"),
    (3.5, r"3\.5 \(float\)"),
    (None, r"None \(NoneType\)"),
    ([b"k"], r"\[b'k'\] \(list\)"),
    ({"k": 1}, r"\{'k': 1\} \(dict\)"),
]

# Every method that takes a key (or prefix, or start) as its first argument.
KEYED: list[tuple[str, Callable[[etcdanyio.Client, Any], Any], str]] = [
    ("put", lambda c, k: c.put(k, "v"), "key"),
    ("get", lambda c, k: c.get(k), "key"),
    ("get_prefix", lambda c, k: c.get_prefix(k), "prefix"),
    ("get_range", lambda c, k: c.get_range(k, "zzz"), "key"),
    ("get_keys", lambda c, k: c.get_keys(k), "prefix"),
    ("iter_prefix", lambda c, k: c.iter_prefix(k), "prefix"),
    ("iter_range", lambda c, k: c.iter_range(k, "zzz"), "key"),
    ("delete", lambda c, k: c.delete(k), "key"),
    ("delete_prefix", lambda c, k: c.delete_prefix(k), "prefix"),
    ("delete_range", lambda c, k: c.delete_range(k, "zzz"), "key"),
    ("create", lambda c, k: c.create(k, "v"), "key"),
    ("replace", lambda c, k: c.replace(k, "old", "new"), "key"),
]

KEY_TYPE_CASES = [
    _param(
        _with_arg(call, bad),
        TypeError,
        rf"^{what} must be str or bytes, got {shown}$",
        case_id=f"{name}-key-{type(bad).__name__}",
    )
    for name, call, what in KEYED
    for bad, shown in KEY_TYPES
]

# Methods whose key must not be empty (a prefix may: b"" means every key).
EMPTY_KEY_CASES = [
    _param(
        _with_arg(call, empty),
        ValueError,
        r"^key must not be empty$",
        case_id=f"{name}-empty-{type(empty).__name__}",
    )
    for name, call, what in KEYED
    if what == "key"
    for empty in ("", b"")
]

RANGE_CASES = [
    _param(
        lambda c: c.get_range("b", "a"),
        ValueError,
        r"range end b'a' must sort after the start key b'b'",
        "get_range-end-before",
    ),
    _param(
        lambda c: c.get_range("a", "a"),
        ValueError,
        "must sort after the start key",
        "get_range-end-equal",
    ),
    _param(
        lambda c: c.get_range("a", ""),
        ValueError,
        r"range end must not be empty \(use b'\\0' for 'to the end'\)",
        "get_range-end-empty",
    ),
    _param(
        lambda c: c.get_range("a", 7),
        TypeError,
        r"^range end must be str or bytes, got 7 \(int\)$",
        "get_range-end-int",
    ),
    _param(
        lambda c: c.iter_range("b", "a"),
        ValueError,
        "must sort after the start key",
        "iter_range-end-before",
    ),
    _param(
        lambda c: c.iter_range("a", 1.5),
        TypeError,
        r"range end must be str or bytes, got 1\.5 \(float\)",
        "iter_range-end-float",
    ),
    _param(
        lambda c: c.delete_range("b", "a"),
        ValueError,
        "must sort after the start key",
        "delete_range-end-before",
    ),
    _param(
        lambda c: c.delete_range("a", "a"),
        ValueError,
        "must sort after the start key",
        "delete_range-end-equal",
    ),
    _param(
        lambda c: c.delete_range("a", [1]),
        TypeError,
        r"range end must be str or bytes, got \[1\] \(list\)",
        "delete_range-end-list",
    ),
    _param(lambda c: c.get("\ud800"), ValueError, "surrogate", "get-lone-surrogate"),
    _param(lambda c: c.put("k", "\udfff"), ValueError, "surrogate", "put-value-lone-surrogate"),
]

VALUE_CASES = [
    _param(
        lambda c: c.put("k", 3),
        TypeError,
        r"^value must be str or bytes, got 3 \(int\)$",
        "put-value-int",
    ),
    _param(
        lambda c: c.put("k", 3.5),
        TypeError,
        r"^value must be str or bytes, got 3\.5 \(float\)$",
        "put-value-float",
    ),
    _param(
        lambda c: c.put("k", [b"v"]),
        TypeError,
        r"^value must be str or bytes, got \[b'v'\] \(list\)$",
        "put-value-list",
    ),
    _param(
        lambda c: c.put("k", None),
        TypeError,
        r"^value must be str or bytes, got None \(use ignore_value=True",
        "put-value-none",
    ),
    _param(
        lambda c: c.put("k"), TypeError, "value must be str or bytes, got None", "put-value-missing"
    ),
    _param(
        lambda c: c.create("k", 3),
        TypeError,
        r"value must be str or bytes, got 3 \(int\)",
        "create-value-int",
    ),
    _param(
        lambda c: c.create("k", None),
        TypeError,
        "value must be str or bytes, got None",
        "create-value-none",
    ),
    _param(
        lambda c: c.replace("k", 3, "new"),
        TypeError,
        r"value to compare with must be str or bytes, got 3 \(int\)",
        "replace-old-int",
    ),
    _param(
        lambda c: c.replace("k", "old", None),
        TypeError,
        r"new value must be str or bytes, got None \(NoneType\)",
        "replace-new-none",
    ),
    _param(
        lambda c: c.replace("k", "old", 1.5),
        TypeError,
        r"new value must be str or bytes, got 1\.5 \(float\)",
        "replace-new-float",
    ),
]

PUT_OPTION_CASES = [
    _param(
        lambda c: c.put("k", "v", ignore_value=True),
        ValueError,
        r"^ignore_value=True keeps the current value; pass no value$",
        "put-ignore-value-with-value",
    ),
    _param(
        lambda c: c.put("k", b"v", ignore_value=True),
        ValueError,
        "ignore_value=True keeps the current value",
        "put-ignore-value-with-bytes",
    ),
    _param(
        lambda c: c.put("k", "v", lease=7, ignore_lease=True),
        ValueError,
        r"^ignore_lease=True keeps the current lease; pass no lease$",
        "put-ignore-lease-with-lease",
    ),
    _param(
        lambda c: c.put("k", "v", lease=-1),
        ValueError,
        r"^lease ID must not be negative, got -1$",
        "put-lease-negative",
    ),
    _param(
        lambda c: c.put("k", "v", lease=2**63),
        ValueError,
        r"^lease ID must fit in 64 bits",
        "put-lease-huge",
    ),
    _param(
        lambda c: c.put("k", "v", lease="12"),
        TypeError,
        r"^lease must be a Lease or an int ID, got '12' \(str\)$",
        "put-lease-str",
    ),
    _param(
        lambda c: c.put("k", "v", lease=1.0),
        TypeError,
        r"lease must be a Lease or an int ID, got 1\.0 \(float\)",
        "put-lease-float",
    ),
    _param(
        lambda c: c.put("k", "v", lease=True),
        TypeError,
        r"lease must be a Lease or an int ID, got True \(bool\)",
        "put-lease-bool",
    ),
    _param(
        lambda c: c.create("k", "v", lease=-5),
        ValueError,
        "lease ID must not be negative",
        "create-lease-negative",
    ),
]

# (option, value, error, message): every int option of the range calls.
INT_OPTIONS: list[tuple[str, object, type[Exception], str]] = [
    (option, bad, error, message)
    for option in (
        "limit",
        "revision",
        "min_mod_revision",
        "max_mod_revision",
        "min_create_revision",
        "max_create_revision",
    )
    for bad, error, message in (
        (-1, ValueError, rf"^{option} must not be negative, got -1$"),
        (2**63, ValueError, rf"^{option} must fit in 64 bits, got {2**63}$"),
        (2**64 + 1, ValueError, rf"^{option} must fit in 64 bits"),
        (True, TypeError, rf"^{option} must be an int, got True \(bool\)$"),
        (1.0, TypeError, rf"^{option} must be an int, got 1\.0 \(float\)$"),
        ("5", TypeError, rf"^{option} must be an int, got '5' \(str\)$"),
        (None, TypeError, rf"^{option} must be an int, got None \(NoneType\)$"),
    )
]

RANGE_OPTION_CASES = [
    _param(
        _with_option(method, option, bad),
        error,
        message,
        case_id=f"{name}-{option}-{bad!r}"[:60],
    )
    for name, method in (
        ("get_prefix", lambda c, **kw: c.get_prefix("p/", **kw)),
        ("get_range", lambda c, **kw: c.get_range("a", "b", **kw)),
        ("get_all", lambda c, **kw: c.get_all(**kw)),
    )
    for option, bad, error, message in INT_OPTIONS
]

OTHER_RANGE_CASES = [
    _param(
        lambda c: c.get("k", revision=-1),
        ValueError,
        r"^revision must not be negative, got -1$",
        "get-revision-negative",
    ),
    _param(
        lambda c: c.get("k", revision=2**63),
        ValueError,
        "revision must fit in 64 bits",
        "get-revision-huge",
    ),
    _param(
        lambda c: c.get("k", revision=False),
        TypeError,
        r"revision must be an int, got False \(bool\)",
        "get-revision-bool",
    ),
    _param(
        lambda c: c.get("k", revision=1.5),
        TypeError,
        r"revision must be an int, got 1\.5 \(float\)",
        "get-revision-float",
    ),
    _param(
        lambda c: c.get_keys("p/", revision=-3),
        ValueError,
        "revision must not be negative",
        "get_keys-revision-negative",
    ),
    _param(
        lambda c: c.get_keys("p/", revision=True),
        TypeError,
        "revision must be an int",
        "get_keys-revision-bool",
    ),
    _param(
        lambda c: c.get_prefix("p/", keys_only=True, count_only=True),
        ValueError,
        r"^keys_only and count_only exclude each other$",
        "get_prefix-keys-and-count",
    ),
    _param(
        lambda c: c.get_range("a", "b", keys_only=True, count_only=True),
        ValueError,
        "exclude each other",
        "get_range-keys-and-count",
    ),
    _param(
        lambda c: c.get_prefix("p/", sort_order="up"),
        ValueError,
        r"^sort_order must be a SortOrder or one of 'none', 'ascend', 'descend', got 'up'$",
        "sort-order-bad-str",
    ),
    _param(
        lambda c: c.get_prefix("p/", sort_order=""),
        ValueError,
        "sort_order must be a SortOrder",
        "sort-order-empty-str",
    ),
    _param(
        lambda c: c.get_prefix("p/", sort_order=etcdanyio.SortTarget.KEY),
        ValueError,
        "sort_order must be a SortOrder",
        "sort-order-wrong-enum",
    ),
    _param(
        lambda c: c.get_prefix("p/", sort_order=2),
        ValueError,
        "sort_order must be a SortOrder",
        "sort-order-int",
    ),
    _param(
        lambda c: c.get_prefix("p/", sort_target="size"),
        ValueError,
        r"^sort_target must be a SortTarget or one of 'key', 'version', 'create', 'mod', "
        r"'value', got 'size'$",
        "sort-target-bad-str",
    ),
    _param(
        lambda c: c.get_range("a", "b", sort_target="create_revision"),
        ValueError,
        "sort_target must be a SortTarget",
        "sort-target-long-name",
    ),
    _param(
        lambda c: c.get_prefix("p/", sort_target=etcdanyio.SortOrder.ASCEND),
        ValueError,
        "sort_target must be a SortTarget",
        "sort-target-wrong-enum",
    ),
    _param(lambda c: c.get_prefix("p/", limt=3), TypeError, "limt", "get_prefix-unknown-option"),
    _param(lambda c: c.get_all(end=b"z"), TypeError, "end", "get_all-unknown-option"),
]

PAGER_CASES = [
    _param(
        lambda c: c.iter_prefix("p/", page_size=0),
        ValueError,
        r"^page_size must be a positive int, got 0$",
        "iter_prefix-page-size-0",
    ),
    _param(
        lambda c: c.iter_prefix("p/", page_size=-2),
        ValueError,
        "page_size must be a positive int, got -2",
        "iter_prefix-page-size-negative",
    ),
    _param(
        lambda c: c.iter_range("a", "b", page_size=0),
        ValueError,
        "page_size must be a positive int, got 0",
        "iter_range-page-size-0",
    ),
    _param(
        lambda c: c.iter_prefix("p/", page_size=True),
        (TypeError, ValueError),
        "page_size",
        "iter_prefix-page-size-bool",
    ),
    _param(
        lambda c: c.iter_prefix("p/", revision=-1),
        ValueError,
        "revision must not be negative",
        "iter_prefix-revision-negative",
    ),
    _param(
        lambda c: c.iter_range("a", "b", revision=2**63),
        ValueError,
        "revision must fit in 64 bits",
        "iter_range-revision-huge",
    ),
    _param(
        lambda c: c.iter_prefix("p/", revision=None),
        TypeError,
        r"revision must be an int, got None",
        "iter_prefix-revision-none",
    ),
]

DELETE_CASES = [
    _param(
        lambda c: c.delete_prefix(None),
        TypeError,
        r"^prefix must be str or bytes, got None \(NoneType\)$",
        "delete_prefix-none",
    ),
    _param(
        lambda c: c.delete_range("", "b"),
        ValueError,
        "key must not be empty",
        "delete_range-empty-start",
    ),
]

TXN_CASES = [
    _param(
        lambda c: c.txn(compare="x"),
        TypeError,
        r"^compare must be a list, got 'x' \(str\)$",
        "txn-compare-str",
    ),
    _param(
        lambda c: c.txn(compare=txn.version("k") == 0),
        TypeError,
        r"compare must be a list, got .*\(Compare\)",
        "txn-compare-not-a-list",
    ),
    _param(
        lambda c: c.txn(compare=None),
        TypeError,
        r"compare must be a list, got None \(NoneType\)",
        "txn-compare-none",
    ),
    _param(
        lambda c: c.txn(compare=[True]),
        TypeError,
        r"^compare items must be txn\.value\(\.\.\.\) == \.\.\. and the like, got True \(bool\)$",
        "txn-compare-bool-item",
    ),
    _param(
        lambda c: c.txn(compare=[txn.version("k")]),
        TypeError,
        r"compare items must be .*\(_CompareTarget\)",
        "txn-compare-target-item",
    ),
    _param(
        lambda c: c.txn(compare=[txn.get("k")]),
        TypeError,
        r"compare items must be .*\(Get\)",
        "txn-compare-op-item",
    ),
    _param(
        lambda c: c.txn(success=txn.put("k", "v")),
        TypeError,
        r"success must be a list, got .*\(Put\)",
        "txn-success-not-a-list",
    ),
    _param(
        lambda c: c.txn(success=[txn.put("k", "v"), "get k"]),
        TypeError,
        r"^success items must be txn\.get/put/delete/txn\(\.\.\.\), got 'get k' \(str\)$",
        "txn-success-str-item",
    ),
    _param(
        lambda c: c.txn(success=[txn.version("k") == 0]),
        TypeError,
        r"success items must be .*\(Compare\)",
        "txn-success-compare-item",
    ),
    _param(
        lambda c: c.txn(failure=[None]),
        TypeError,
        r"failure items must be .*got None \(NoneType\)",
        "txn-failure-none-item",
    ),
    _param(
        lambda c: c.txn(failure={txn.get("k")}),
        TypeError,
        r"failure must be a list, got .*\(set\)",
        "txn-failure-set",
    ),
    _param(
        lambda c: c.txn(failure=iter([txn.get("k")])),
        TypeError,
        r"failure must be a list, got .*\(list_iterator\)",
        "txn-failure-iterator",
    ),
]

COMPACT_CASES = [
    _param(
        lambda c: c.compact(0), ValueError, r"^revision must be a positive int, got 0$", "compact-0"
    ),
    _param(
        lambda c: c.compact(-5),
        ValueError,
        r"revision must be a positive int, got -5",
        "compact-negative",
    ),
    _param(lambda c: c.compact(2**63), ValueError, "revision must fit in 64 bits", "compact-huge"),
    _param(
        lambda c: c.compact(True),
        TypeError,
        r"^revision must be an int, got True \(bool\)$",
        "compact-bool",
    ),
    _param(
        lambda c: c.compact("10"),
        TypeError,
        r"revision must be an int, got '10' \(str\)",
        "compact-str",
    ),
    _param(
        lambda c: c.compact(10.0),
        TypeError,
        r"revision must be an int, got 10\.0 \(float\)",
        "compact-float",
    ),
    _param(
        lambda c: c.compact(None), TypeError, r"revision must be an int, got None", "compact-none"
    ),
]

ALL_CASES = [
    *KEY_TYPE_CASES,
    *EMPTY_KEY_CASES,
    *RANGE_CASES,
    *VALUE_CASES,
    *PUT_OPTION_CASES,
    *RANGE_OPTION_CASES,
    *OTHER_RANGE_CASES,
    *PAGER_CASES,
    *DELETE_CASES,
    *TXN_CASES,
    *COMPACT_CASES,
]


async def _invoke(client: etcdanyio.Client, call: Call) -> None:
    result = call(client)
    if inspect.isawaitable(result):
        await result
    elif isinstance(result, RangePager):
        await result.__anext__()  # reaching the network here fails the test


@pytest.mark.parametrize(("call", "error", "message"), ALL_CASES)
async def test_bad_input_raises_before_io(
    client_and_dialer: tuple[etcdanyio.Client, Dialer],
    call: Call,
    error: type[Exception] | tuple[type[Exception], ...],
    message: str,
) -> None:
    client, dialer = client_and_dialer
    with pytest.raises(error, match=message) as info:
        await _invoke(client, call)
    assert not isinstance(info.value, etcdanyio.EtcdError)
    assert dialer.attempts == []


@pytest.mark.parametrize("client_and_dialer", [b"ns/", "ns/"], indirect=True, ids=["bytes", "str"])
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        *[p for p in KEY_TYPE_CASES if "-key-float" in str(p.id)],
        *EMPTY_KEY_CASES[:4],
        *RANGE_CASES[:3],
        *PUT_OPTION_CASES[:3],
        *TXN_CASES[:4],
    ],
)
async def test_bad_input_raises_before_io_with_a_namespace(
    client_and_dialer: tuple[etcdanyio.Client, Dialer],
    call: Call,
    error: type[Exception],
    message: str,
) -> None:
    client, dialer = client_and_dialer
    assert client.namespace == b"ns/"
    with pytest.raises(error, match=message):
        await _invoke(client, call)
    assert dialer.attempts == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.iter_prefix(3), id="iter_prefix-key"),
        pytest.param(lambda c: c.iter_prefix("p/", page_size=0), id="iter_prefix-page-size"),
        pytest.param(lambda c: c.iter_prefix("p/", revision=-1), id="iter_prefix-revision"),
        pytest.param(lambda c: c.iter_range("b", "a"), id="iter_range-end"),
    ],
)
async def test_pager_validates_when_created(
    client_and_dialer: tuple[etcdanyio.Client, Dialer], call: Call
) -> None:
    # iter_prefix/iter_range are plain functions: they fail where they are called.
    client, _ = client_and_dialer
    with pytest.raises((TypeError, ValueError)):
        call(client)


@pytest.mark.parametrize(
    "page_size",
    [pytest.param(2.5, id="float"), pytest.param("3", id="str"), pytest.param(2**63, id="huge")],
)
async def test_pager_rejects_a_non_int_page_size_when_created(
    client_and_dialer: tuple[etcdanyio.Client, Dialer], page_size: object
) -> None:
    client, _ = client_and_dialer
    with pytest.raises((TypeError, ValueError), match="page_size"):
        client.iter_prefix("p/", page_size=page_size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        pytest.param(
            {"namespace": 3},
            TypeError,
            r"^namespace must be str or bytes, got 3 \(int\)$",
            id="namespace-int",
        ),
        pytest.param(
            {"timeout": 0},
            ValueError,
            r"^timeout must be a positive number of seconds, got 0$",
            id="timeout-0",
        ),
        pytest.param(
            {"timeout": -1.0},
            ValueError,
            "timeout must be a positive number of seconds",
            id="timeout-negative",
        ),
        pytest.param(
            {"timeout": True},
            TypeError,
            r"timeout must be a number of seconds or None, got True \(bool\)",
            id="timeout-bool",
        ),
        pytest.param(
            {"connect_timeout": 0},
            ValueError,
            "connect_timeout must be a positive number",
            id="connect-timeout-0",
        ),
    ],
)
async def test_open_etcd_rejects_bad_options(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        async with etcdanyio.open_etcd("127.0.0.1:1", **kwargs):
            pytest.fail("the block must not run")


async def test_valid_input_does_reach_the_dialer(
    client_and_dialer: tuple[etcdanyio.Client, Dialer],
) -> None:
    """The harness itself: a valid call gets past validation and tries to connect."""
    client, dialer = client_and_dialer
    with pytest.raises(DialAttemptedError):
        await client.put("k", "v")
    assert len(dialer.attempts) == 1


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.get_range("a", None), id="get_range"),
        pytest.param(lambda c: c.iter_range("a", None), id="iter_range"),
        pytest.param(lambda c: c.delete_range("a", None), id="delete_range"),
    ],
)
async def test_range_end_none_is_rejected(
    client_and_dialer: tuple[etcdanyio.Client, Dialer], call: Call
) -> None:
    client, dialer = client_and_dialer
    with pytest.raises(TypeError, match=r"range end must be str or bytes, got None"):
        await _invoke(client, call)
    assert dialer.attempts == []

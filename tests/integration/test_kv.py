"""
The KV API against a real etcd: every range option, puts, deletes, transactions, compaction,
paging, namespaces, the default timeout, and etcd's errors (typed, verbatim, ``.applied``).

Ground truth for the key checks is read with the JSON-gateway oracle (``_kit/oracle.py``), which
shares no code with the client. Every test works under its own random key prefix.
"""

from __future__ import annotations

import types
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread
import pytest

import etcdanyio
from etcdanyio import SortOrder, SortTarget, txn
from etcdanyio.types import DeleteResult, KeyValue, PutResult, RangeResult, TxnResult

from ._kit.oracle import KV, Oracle, OracleError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator

    from etcdanyio.testing import EtcdServer

from ._kit.helpers import ask

pytestmark = pytest.mark.integration

T = TypeVar("T")

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE = "etcdserver: mvcc: required revision is a future revision"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
KEY_NOT_FOUND = "etcdserver: key not found"
DUPLICATE_KEY = "etcdserver: duplicate key given in txn request"
TOO_MANY_OPS = "etcdserver: too many operations in txn request"
TOO_LARGE = "etcdserver: request is too large"


@pytest.fixture
def prefix() -> bytes:
    return f"test_kv/{uuid.uuid4().hex}/".encode()


@pytest.fixture
def oracle(etcd_server: EtcdServer) -> Oracle:
    return Oracle(etcd_server.endpoint)


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


@pytest.fixture
def lease(oracle: Oracle) -> Iterator[int]:
    """A real lease (TTL 60 s), granted and revoked through the gateway."""
    lease_id = oracle.lease_grant(60)
    yield lease_id
    oracle.lease_revoke(lease_id)


async def value_of(oracle: Oracle, key: bytes) -> bytes | None:
    """The key's current value as the oracle reads it."""
    found = await ask(oracle.get, key)
    return None if found is None else found[0]


def keys(result: RangeResult) -> list[bytes]:
    return [kv.key for kv in result.kvs]


def check_error(
    error: etcdanyio.EtcdError,
    cls: type[etcdanyio.RpcError],
    status: etcdanyio.Status,
    message: str,
) -> None:
    """Exactly ``cls``, with etcd's status and verbatim message, certainly not applied."""
    assert type(error) is cls, repr(error)
    assert isinstance(error, etcdanyio.RpcError)
    assert error.status is status
    assert error.message == message
    assert message in str(error)
    assert error.applied is False


# -- put and get --------------------------------------------------------------------------------


async def test_put_get_str_and_bytes(
    client: etcdanyio.Client, prefix: bytes, oracle: Oracle
) -> None:
    put = await client.put((prefix + b"s").decode(), "héllo")
    await client.put(prefix + b"b", b"\x00\xff")
    kv = await client.get((prefix + b"s").decode())
    assert kv == KeyValue(
        prefix + b"s", "héllo".encode(), put.header.revision, put.header.revision, 1, 0
    )
    got = await client.get(prefix + b"b")
    assert got is not None
    assert got.value == b"\x00\xff"
    assert await client.get(prefix + b"missing") is None
    # The oracle agrees on the value and on the revision of the write.
    assert await ask(oracle.get, prefix + b"s") == ("héllo".encode(), put.header.revision)
    again = await client.put(prefix + b"s", "again")
    assert again.header.revision > put.header.revision
    assert again.prev_kv is None  # not asked for
    kv = await client.get(prefix + b"s")
    assert kv is not None
    assert (kv.version, kv.create_revision, kv.mod_revision) == (
        2,
        put.header.revision,
        again.header.revision,
    )


async def test_put_prev_kv(client: etcdanyio.Client, prefix: bytes) -> None:
    first = await client.put(prefix + b"k", "v1", prev_kv=True)
    assert first.prev_kv is None  # nothing was there
    second = await client.put(prefix + b"k", "v2", prev_kv=True)
    assert second.prev_kv == KeyValue(
        prefix + b"k", b"v1", first.header.revision, first.header.revision, 1, 0
    )


async def test_put_ignore_value(
    client: etcdanyio.Client, prefix: bytes, oracle: Oracle, lease: int
) -> None:
    await client.put(prefix + b"k", "kept")
    result = await client.put(prefix + b"k", ignore_value=True, lease=lease, prev_kv=True)
    assert result.prev_kv is not None
    assert result.prev_kv.lease == 0
    kv = await client.get(prefix + b"k")
    assert kv is not None
    assert (kv.value, kv.lease, kv.version) == (b"kept", lease, 2)
    await client.put(prefix + b"k", b"", ignore_value=True)  # an empty value is "no value" too
    assert await ask(oracle.get, prefix + b"k") == (b"kept", kv.mod_revision + 1)

    with pytest.raises(etcdanyio.RpcError) as info:
        await client.put(prefix + b"missing", ignore_value=True)
    check_error(
        info.value, etcdanyio.KeyNotFoundError, etcdanyio.Status.INVALID_ARGUMENT, KEY_NOT_FOUND
    )
    assert await ask(oracle.get, prefix + b"missing") is None


async def test_put_lease_and_ignore_lease(
    client: etcdanyio.Client, prefix: bytes, oracle: Oracle, lease: int
) -> None:
    await client.put(prefix + b"k", "v1", lease=lease)
    kv = await client.get(prefix + b"k")
    assert kv is not None
    assert kv.lease == lease
    assert await ask(oracle.lease_keys, lease) == [prefix + b"k"]

    await client.put(prefix + b"k", "v2", ignore_lease=True)
    kv = await client.get(prefix + b"k")
    assert kv is not None
    assert (kv.value, kv.lease) == (b"v2", lease)

    await client.put(prefix + b"k", "v3")  # neither lease nor ignore_lease: detached
    kv = await client.get(prefix + b"k")
    assert kv is not None
    assert kv.lease == 0
    assert await ask(oracle.lease_keys, lease) == []

    # Anything with an int .id is a lease; 0 means "no lease".
    await client.put(prefix + b"l", "v", lease=types.SimpleNamespace(id=lease))
    await client.put(prefix + b"z", "v", lease=0)
    assert await ask(oracle.lease_keys, lease) == [prefix + b"l"]
    zero = await client.get(prefix + b"z")
    assert zero is not None
    assert zero.lease == 0

    with pytest.raises(etcdanyio.RpcError) as info:
        await client.put(prefix + b"missing", "v", ignore_lease=True)
    check_error(
        info.value, etcdanyio.KeyNotFoundError, etcdanyio.Status.INVALID_ARGUMENT, KEY_NOT_FOUND
    )


async def test_unknown_lease_is_lease_not_found(
    client: etcdanyio.Client, prefix: bytes, oracle: Oracle, lease: int
) -> None:
    unknown = lease ^ 0x5A5A5A5A  # a real ID, altered: granted by nobody
    for attempt in (
        lambda: client.put(prefix + b"k", "v", lease=unknown),
        lambda: client.create(prefix + b"k", "v", lease=unknown),
        lambda: client.txn(success=[txn.put(prefix + b"k", "v", lease=unknown)]),
    ):
        with pytest.raises(etcdanyio.LeaseNotFoundError) as info:
            await attempt()
        check_error(
            info.value,
            etcdanyio.LeaseNotFoundError,
            etcdanyio.Status.NOT_FOUND,
            LEASE_NOT_FOUND,
        )
    assert await ask(oracle.get, prefix + b"k") is None


async def test_request_too_large(client: etcdanyio.Client, prefix: bytes) -> None:
    # etcd's default --max-request-bytes is 1.5 MiB; gRPC's own limit (2 MiB) is not reached.
    with pytest.raises(etcdanyio.RequestTooLargeError) as info:
        await client.put(prefix + b"big", b"x" * 1_600_000)
    check_error(
        info.value, etcdanyio.RequestTooLargeError, etcdanyio.Status.INVALID_ARGUMENT, TOO_LARGE
    )
    assert await client.get(prefix + b"big") is None


# -- range options ------------------------------------------------------------------------------


async def test_limit_more_count(client: etcdanyio.Client, prefix: bytes) -> None:
    for name in "edcba":
        await client.put(prefix + name.encode(), name)
    page = await client.get_prefix(prefix, limit=2)
    assert keys(page) == [prefix + b"a", prefix + b"b"]
    assert (page.count, page.more) == (5, True)
    page = await client.get_prefix(prefix, limit=5)
    assert len(page.kvs) == 5
    assert (page.count, page.more) == (5, False)
    page = await client.get_prefix(prefix, limit=0)
    assert keys(page) == [prefix + n for n in (b"a", b"b", b"c", b"d", b"e")]
    assert (page.count, page.more) == (5, False)
    page = await client.get_range(prefix + b"b", prefix + b"e", limit=1)
    assert keys(page) == [prefix + b"b"]
    assert (page.count, page.more) == (3, True)


async def test_revision_reads(client: etcdanyio.Client, prefix: bytes, oracle: Oracle) -> None:
    r1 = (await client.put(prefix + b"k", "v1")).header.revision
    r2 = (await client.put(prefix + b"k", "v2")).header.revision
    await client.put(prefix + b"j", "j")
    await client.delete(prefix + b"k")
    assert await client.get(prefix + b"k") is None
    old = await client.get(prefix + b"k", revision=r1)
    assert old is not None
    assert (old.value, old.mod_revision, old.version) == (b"v1", r1, 1)
    newer = await client.get(prefix + b"k", revision=r2)
    assert newer is not None
    assert (newer.value, newer.version) == (b"v2", 2)
    at_r1 = await client.get_prefix(prefix, revision=r1)
    assert [(kv.key, kv.value) for kv in at_r1.kvs] == [(prefix + b"k", b"v1")]
    assert at_r1.header.revision > r2  # the header says the store's revision, not the one read
    assert await client.get_keys(prefix, revision=r2) == [prefix + b"k"]
    assert await client.get_keys(prefix) == [prefix + b"j"]
    ranged = await client.get_range(prefix + b"a", prefix + b"z", revision=r2)
    assert [kv.value for kv in ranged.kvs] == [b"v2"]
    # The oracle reads the same history.
    assert await ask(oracle.get, prefix + b"k", revision=r1) == (b"v1", r1)


async def _sort_fixture(client: etcdanyio.Client, prefix: bytes) -> dict[str, list[bytes]]:
    """
    Four keys whose order differs by every sort target (and from every reverse order).

    Created c, a, d, b; written again b, c, a, c, c, a (versions a 3, b 2, c 4, d 1); finally
    rewritten d, b, c, a (the mod order) with the values a "4", b "1", c "3", d "2".
    """
    final = {"a": "4", "b": "1", "c": "3", "d": "2"}
    for name in "cadb" + "bcacca":
        await client.put(prefix + name.encode(), "initial")
    for name in "dbca":
        await client.put(prefix + name.encode(), final[name])
    orders = {
        "key": "abcd",
        "create": "cadb",
        "version": "dbac",
        "mod": "dbca",
        "value": "bdca",
    }
    return {target: [prefix + n.encode() for n in order] for target, order in orders.items()}


@pytest.mark.parametrize(
    ("target", "enum"),
    [
        ("key", SortTarget.KEY),
        ("version", SortTarget.VERSION),
        ("create", SortTarget.CREATE),
        ("mod", SortTarget.MOD),
        ("value", SortTarget.VALUE),
    ],
)
async def test_sort(client: etcdanyio.Client, prefix: bytes, target: str, enum: SortTarget) -> None:
    orders = await _sort_fixture(client, prefix)
    # The orders are pairwise different, ascending and descending, so each check can fail.
    all_orders = [tuple(o) for o in orders.values()] + [tuple(reversed(o)) for o in orders.values()]
    assert len(set(all_orders)) == 10
    ascending = orders[target]
    descending = list(reversed(ascending))
    for order, expected in (
        (SortOrder.ASCEND, ascending),
        ("ascend", ascending),
        ("ASCEND", ascending),
        (SortOrder.DESCEND, descending),
        ("descend", descending),
    ):
        for sort_target in (enum, target, target.upper()):
            result = await client.get_prefix(prefix, sort_order=order, sort_target=sort_target)
            assert keys(result) == expected, (order, sort_target)
    # A sort target alone sorts ascending by it.
    assert keys(await client.get_prefix(prefix, sort_target=enum)) == ascending
    assert keys(await client.get_prefix(prefix, sort_target=target)) == ascending
    assert keys(await client.get_prefix(prefix, sort_order="none", sort_target=enum)) == ascending
    # Sorting with a limit: the first of the sorted whole, not of the key order.
    limited = await client.get_prefix(prefix, sort_order="descend", sort_target=enum, limit=2)
    assert keys(limited) == descending[:2]
    assert (limited.count, limited.more) == (4, True)
    # The same through get_range and a transaction's get.
    ranged = await client.get_range(
        prefix + b"a", prefix + b"e", sort_order="descend", sort_target=target
    )
    assert keys(ranged) == descending
    response = await client.txn(
        success=[txn.get(prefix, prefix=True, sort_order=SortOrder.DESCEND, sort_target=enum)]
    )
    inner = response.responses[0]
    assert isinstance(inner, RangeResult)
    assert keys(inner) == descending


async def test_sort_order_alone_sorts_by_key(client: etcdanyio.Client, prefix: bytes) -> None:
    orders = await _sort_fixture(client, prefix)
    assert keys(await client.get_prefix(prefix, sort_order="descend")) == orders["key"][::-1]
    assert keys(await client.get_prefix(prefix, sort_order=SortOrder.ASCEND)) == orders["key"]
    assert keys(await client.get_prefix(prefix, sort_order=SortOrder.NONE)) == orders["key"]


async def test_serializable(client: etcdanyio.Client, prefix: bytes) -> None:
    put = await client.put(prefix + b"k", "v")
    kv = await client.get(prefix + b"k", serializable=True)
    assert kv is not None
    assert (kv.value, kv.mod_revision) == (b"v", put.header.revision)
    result = await client.get_prefix(prefix, serializable=True)
    assert keys(result) == [prefix + b"k"]
    assert result.header.revision >= put.header.revision
    ranged = await client.get_range(prefix + b"a", prefix + b"z", serializable=True, limit=1)
    assert keys(ranged) == [prefix + b"k"]
    assert [kv.key async for kv in client.iter_prefix(prefix, serializable=True)] == [prefix + b"k"]


async def test_keys_only(client: etcdanyio.Client, prefix: bytes) -> None:
    puts = [await client.put(prefix + n, b"value-" + n) for n in (b"a", b"b", b"c")]
    result = await client.get_prefix(prefix, keys_only=True)
    assert keys(result) == [prefix + b"a", prefix + b"b", prefix + b"c"]
    assert [kv.value for kv in result.kvs] == [b"", b"", b""]
    assert [kv.mod_revision for kv in result.kvs] == [p.header.revision for p in puts]
    assert result.count == 3
    assert await client.get_keys(prefix) == [prefix + b"a", prefix + b"b", prefix + b"c"]
    assert await client.get_keys(prefix + b"b") == [prefix + b"b"]
    walked = [kv async for kv in client.iter_prefix(prefix, keys_only=True, page_size=2)]
    assert [(kv.key, kv.value) for kv in walked] == [(kv.key, b"") for kv in result.kvs]


async def test_count_only(client: etcdanyio.Client, prefix: bytes) -> None:
    for n in range(4):
        await client.put(prefix + b"%d" % n, "v")
    result = await client.get_prefix(prefix, count_only=True)
    assert (result.kvs, result.count, result.more) == ([], 4, False)
    result = await client.get_range(prefix + b"1", prefix + b"3", count_only=True)
    assert (result.kvs, result.count) == ([], 2)
    assert (await client.get_prefix(prefix + b"none", count_only=True)).count == 0


async def test_revision_filters(client: etcdanyio.Client, prefix: bytes) -> None:
    ra = (await client.put(prefix + b"a", "1")).header.revision
    rb = (await client.put(prefix + b"b", "1")).header.revision
    rc = (await client.put(prefix + b"c", "1")).header.revision
    ra2 = (await client.put(prefix + b"a", "2")).header.revision  # a: created ra, modified ra2
    assert ra < rb < rc < ra2
    a, b, c = prefix + b"a", prefix + b"b", prefix + b"c"
    cases: list[tuple[dict[str, Any], list[bytes]]] = [
        ({"min_mod_revision": rc}, [a, c]),
        ({"max_mod_revision": rb}, [b]),
        ({"min_mod_revision": rb, "max_mod_revision": rc}, [b, c]),
        ({"min_create_revision": rb}, [b, c]),
        ({"max_create_revision": ra}, [a]),
        ({"min_create_revision": rb, "max_create_revision": rb}, [b]),
        ({"min_create_revision": rb, "max_mod_revision": rb}, [b]),
        ({"min_mod_revision": ra2 + 1}, []),
    ]
    for options, expected in cases:
        result = await client.get_prefix(prefix, **options)
        assert keys(result) == expected, options
        ranged = await client.get_range(a, prefix + b"d", **options)
        assert keys(ranged) == expected, options


async def test_get_range_half_open_and_to_the_end(client: etcdanyio.Client, prefix: bytes) -> None:
    for name in (b"a", b"b", b"c"):
        await client.put(prefix + name, name)
    assert keys(await client.get_range(prefix + b"a", prefix + b"c")) == [
        prefix + b"a",
        prefix + b"b",
    ]
    assert keys(await client.get_range(prefix + b"b", prefix + b"b\0")) == [prefix + b"b"]
    assert keys(await client.get_range((prefix + b"b").decode(), (prefix + b"z").decode())) == [
        prefix + b"b",
        prefix + b"c",
    ]
    # b"\0": from the start key to the end of the keyspace. These keys sort after every other
    # test's, and a limit keeps the check exact even if another run's keys are still there.
    high = b"\xfe" + prefix
    try:
        for name in (b"a", b"b", b"c"):
            await client.put(high + name, name)
        result = await client.get_range(high + b"b", b"\0", limit=2)
        assert keys(result) == [high + b"b", high + b"c"]
        everything = await client.get_range(high + b"a", b"\0")
        assert keys(everything)[:3] == [high + b"a", high + b"b", high + b"c"]
        assert everything.count >= 3
        walked = [kv.key async for kv in client.iter_range(high + b"a", b"\0", page_size=1)]
        assert walked[:3] == [high + b"a", high + b"b", high + b"c"]
    finally:
        await client.delete_prefix(high)


async def test_get_all_and_get_keys(
    client: etcdanyio.Client, etcd_server: EtcdServer, prefix: bytes
) -> None:
    # The whole keyspace is shared with other tests: look at it through a namespace.
    async with etcdanyio.open_etcd(etcd_server.endpoints, namespace=prefix) as ns:
        for name in (b"b", b"a", b"c/1"):
            await ns.put(name, name)
        await client.put(prefix[:-1], "outside")  # the namespace without its slash
        everything = await ns.get_all()
        assert keys(everything) == [b"a", b"b", b"c/1"]
        assert [kv.value for kv in everything.kvs] == [b"a", b"b", b"c/1"]
        assert everything.count == 3
        limited = await ns.get_all(limit=1, sort_order="descend")
        assert (keys(limited), limited.more) == ([b"c/1"], True)
        assert (await ns.get_all(count_only=True)).count == 3
        assert await ns.get_keys() == [b"a", b"b", b"c/1"]
        assert await ns.get_keys("c/") == [b"c/1"]
    # Without a namespace, get_all sees at least these (and whatever other tests left).
    total = await client.get_all(count_only=True)
    assert total.count >= 4
    await client.delete(prefix[:-1])


# -- deletes ------------------------------------------------------------------------------------


async def test_delete(client: etcdanyio.Client, prefix: bytes, oracle: Oracle) -> None:
    put = await client.put(prefix + b"k", "v")
    result = await client.delete(prefix + b"k", prev_kv=True)
    assert result.deleted == 1
    assert result.prev_kvs == [
        KeyValue(prefix + b"k", b"v", put.header.revision, put.header.revision, 1, 0)
    ]
    assert result.header.revision == put.header.revision + 1
    assert await ask(oracle.get, prefix + b"k") is None
    missing = await client.delete(prefix + b"k", prev_kv=True)
    assert (missing.deleted, missing.prev_kvs) == (0, [])
    await client.put(prefix + b"j", "v")
    plain = await client.delete(prefix + b"j")
    assert (plain.deleted, plain.prev_kvs) == (1, [])


async def test_delete_prefix(client: etcdanyio.Client, prefix: bytes, oracle: Oracle) -> None:
    for key in (b"p", b"p/", b"p/a", b"p/b/c", b"p0", b"o"):
        await client.put(prefix + key, key)
    result = await client.delete_prefix(prefix + b"p/", prev_kv=True)
    assert result.deleted == 3
    assert [(kv.key, kv.value) for kv in result.prev_kvs] == [
        (prefix + b"p/", b"p/"),
        (prefix + b"p/a", b"p/a"),
        (prefix + b"p/b/c", b"p/b/c"),
    ]
    remaining = await ask(oracle.range_prefix, prefix)
    assert [kv.key for kv in remaining] == [prefix + b"o", prefix + b"p", prefix + b"p0"]
    plain = await client.delete_prefix(prefix + b"p")
    assert (plain.deleted, plain.prev_kvs) == (2, [])
    assert [kv.key for kv in await ask(oracle.range_prefix, prefix)] == [prefix + b"o"]


async def test_delete_range(client: etcdanyio.Client, prefix: bytes, oracle: Oracle) -> None:
    for key in (b"a", b"b", b"c", b"d"):
        await client.put(prefix + key, key)
    result = await client.delete_range(prefix + b"b", prefix + b"d", prev_kv=True)
    assert result.deleted == 2
    assert [kv.key for kv in result.prev_kvs] == [prefix + b"b", prefix + b"c"]
    assert [kv.key for kv in await ask(oracle.range_prefix, prefix)] == [
        prefix + b"a",
        prefix + b"d",
    ]
    none = await client.delete_range(prefix + b"b", prefix + b"c")
    assert none.deleted == 0


# -- compaction ---------------------------------------------------------------------------------


async def test_compact(client: etcdanyio.Client, prefix: bytes, oracle: Oracle) -> None:
    r1 = (await client.put(prefix + b"k", "v1")).header.revision
    r2 = (await client.put(prefix + b"k", "v2")).header.revision
    result = await client.compact(r2)
    assert result.header.revision >= r2
    for read in (
        lambda: client.get(prefix + b"k", revision=r1),
        lambda: client.get_prefix(prefix, revision=r1),
        lambda: client.get_keys(prefix, revision=r1),
    ):
        with pytest.raises(etcdanyio.CompactedError) as info:
            await read()
        check_error(info.value, etcdanyio.CompactedError, etcdanyio.Status.OUT_OF_RANGE, COMPACTED)
    # The gateway says the same, word for word.
    with pytest.raises(OracleError) as oracle_info:
        await ask(oracle.get, prefix + b"k", revision=r1)
    assert oracle_info.value.message == COMPACTED
    # The compaction revision itself is still readable.
    kept = await client.get(prefix + b"k", revision=r2)
    assert kept is not None
    assert kept.value == b"v2"
    # Compacting again, or below, is refused; a write that was refused did not apply.
    for revision in (r2, r1):
        with pytest.raises(etcdanyio.CompactedError) as info:
            await client.compact(revision)
        check_error(info.value, etcdanyio.CompactedError, etcdanyio.Status.OUT_OF_RANGE, COMPACTED)
    current = await ask(oracle.revision)
    with pytest.raises(etcdanyio.FutureRevisionError) as future:
        await client.compact(current + 1000)
    check_error(future.value, etcdanyio.FutureRevisionError, etcdanyio.Status.OUT_OF_RANGE, FUTURE)
    with pytest.raises(etcdanyio.FutureRevisionError) as future:
        await client.get(prefix + b"k", revision=current + 1000)
    check_error(future.value, etcdanyio.FutureRevisionError, etcdanyio.Status.OUT_OF_RANGE, FUTURE)
    # A physical compaction returns once it is done; the history before it is gone.
    r3 = (await client.put(prefix + b"k", "v3")).header.revision
    physical = await client.compact(r3, physical=True)
    assert physical.header.revision >= r3
    with pytest.raises(etcdanyio.CompactedError):
        await client.get(prefix + b"k", revision=r2)
    assert await ask(oracle.get, prefix + b"k") == (b"v3", r3)


async def test_pager_on_a_compacted_revision(client: etcdanyio.Client, prefix: bytes) -> None:
    for n in range(4):
        await client.put(prefix + b"%d" % n, "v")
    pages = client.iter_prefix(prefix, page_size=2)
    first = await pages.__anext__()
    assert first.key == prefix + b"0"
    # Move past the walk's revision and compact it away: the next page cannot be read.
    head = (await client.put(prefix + b"x", "v")).header.revision
    await client.compact(head)
    await pages.__anext__()  # still buffered
    with pytest.raises(etcdanyio.CompactedError) as info:
        await pages.__anext__()
    check_error(info.value, etcdanyio.CompactedError, etcdanyio.Status.OUT_OF_RANGE, COMPACTED)


# -- transactions -------------------------------------------------------------------------------


async def test_txn_every_target_and_operator(
    client: etcdanyio.Client, prefix: bytes, lease: int
) -> None:
    key = prefix + b"k"
    created = (await client.put(key, "m", lease=lease)).header.revision
    modified = (await client.put(key, "m", ignore_lease=True)).header.revision
    kv = await client.get(key)
    assert kv is not None
    assert (kv.version, kv.create_revision, kv.mod_revision, kv.lease) == (
        2,
        created,
        modified,
        lease,
    )
    # target: (equal, smaller, greater) operands
    operands: list[tuple[Callable[..., Any], tuple[object, object, object]]] = [
        (txn.value, (b"m", "a", b"z")),
        (txn.version, (2, 1, 3)),
        (txn.create_revision, (created, created - 1, created + 1)),
        (txn.mod_revision, (modified, modified - 1, modified + 1)),
        (txn.lease, (lease, 0, lease + 1)),
    ]
    for target, (equal, smaller, greater) in operands:
        cases = [
            (target(key) == equal, True),
            (target(key) == greater, False),
            (target(key) != greater, True),
            (target(key) != equal, False),
            (target(key) < greater, True),
            (target(key) < equal, False),
            (target(key) > smaller, True),
            (target(key) > equal, False),
        ]
        for compare, holds in cases:
            result = await client.txn(
                compare=[compare],
                success=[txn.get(key, keys_only=True)],
                failure=[txn.get(key, count_only=True)],
            )
            assert result.succeeded is holds, compare
            assert len(result.responses) == 1
            (response,) = result.responses
            assert isinstance(response, RangeResult)
            # Which branch ran shows in its result: keys_only has the key, count_only has none.
            assert keys(response) == ([key] if holds else []), compare
            assert response.count == 1


async def test_txn_compares_on_a_missing_key(client: etcdanyio.Client, prefix: bytes) -> None:
    key = prefix + b"missing"
    for compare, holds in (
        (txn.version(key) == 0, True),
        (txn.create_revision(key) == 0, True),
        (txn.mod_revision(key) == 0, True),
        (txn.lease(key) == 0, True),
        (txn.version(key) > 0, False),
        # etcd fails every value comparison on a missing key, even "!= anything".
        (txn.value(key) == b"", False),
        (txn.value(key) != b"x", False),
    ):
        result = await client.txn(compare=[compare])
        assert result.succeeded is holds, compare
        assert result.responses == []


async def test_txn_range_compares(client: etcdanyio.Client, prefix: bytes) -> None:
    await client.put(prefix + b"r/a", "1")
    for _ in range(3):
        await client.put(prefix + b"r/b", "2")
    await client.put(prefix + b"r0", "outside")  # right after the prefix range: never compared
    for compare, holds in (
        (txn.version(prefix + b"r/", prefix=True) > 0, True),
        (txn.version(prefix + b"r/", prefix=True) == 1, False),  # r/b has version 3
        (txn.version(prefix + b"r/", prefix=True) < 4, True),
        (txn.version(prefix + b"r/", prefix=True) < 3, False),
        (txn.value(prefix + b"r/", prefix=True) != "outside", True),
        (txn.value(prefix + b"r/", prefix=True) < "3", True),
        (txn.value(prefix + b"r/", prefix=True) == "1", False),
        (txn.version(prefix + b"r/a", end=prefix + b"r/b") == 1, True),  # only r/a
        (txn.version(prefix + b"r/a", end=prefix + b"r/c") == 1, False),
        (txn.value(prefix + b"r/b", end=prefix + b"r/c") == "2", True),
        (txn.create_revision(prefix + b"r/", prefix=True) > 0, True),
        (txn.lease(prefix + b"r/", prefix=True) == 0, True),
        (txn.version(prefix + b"r/", prefix=True) != 2, True),
        (txn.version(prefix + b"r0", end=b"\0") > 100, False),
    ):
        result = await client.txn(compare=[compare])
        assert result.succeeded is holds, compare


async def test_txn_branches_and_typed_responses(
    client: etcdanyio.Client, prefix: bytes, oracle: Oracle
) -> None:
    k = {name: prefix + name.encode() for name in ("get", "put", "del", "nested", "flag")}
    await client.put(k["get"], "g")
    before = await client.put(k["put"], "p0")
    await client.put(k["del"], "d")
    success: list[txn.Op] = [
        txn.get(k["get"]),
        txn.put(k["put"], "p1", prev_kv=True),
        txn.delete(k["del"], prev_kv=True),
        txn.txn(
            compare=[txn.version(k["nested"]) == 0],
            success=[txn.put(k["nested"], "n"), txn.get(k["get"], keys_only=True)],
            failure=[txn.get(k["nested"])],
        ),
    ]
    failure: list[txn.Op] = [txn.get(k["put"]), txn.put(k["flag"], "failed")]

    result = await client.txn(
        compare=[txn.value(k["get"]) == "g"], success=success, failure=failure
    )
    assert isinstance(result, TxnResult)
    assert result.succeeded is True
    got, put, deleted, nested = result.responses
    assert isinstance(got, RangeResult)
    assert [(kv.key, kv.value) for kv in got.kvs] == [(k["get"], b"g")]
    assert isinstance(put, PutResult)
    assert put.prev_kv is not None
    assert (put.prev_kv.key, put.prev_kv.value, put.prev_kv.mod_revision) == (
        k["put"],
        b"p0",
        before.header.revision,
    )
    assert isinstance(deleted, DeleteResult)
    assert deleted.deleted == 1
    assert [(kv.key, kv.value) for kv in deleted.prev_kvs] == [(k["del"], b"d")]
    assert isinstance(nested, TxnResult)
    assert nested.succeeded is True
    assert [type(r) for r in nested.responses] == [PutResult, RangeResult]
    inner_get = nested.responses[1]
    assert isinstance(inner_get, RangeResult)
    assert [(kv.key, kv.value) for kv in inner_get.kvs] == [(k["get"], b"")]
    # Every op of the transaction has the transaction's revision.
    assert put.header.revision == result.header.revision
    assert (await ask(oracle.get, k["put"])) == (b"p1", result.header.revision)
    assert (await ask(oracle.get, k["nested"])) == (b"n", result.header.revision)
    assert await ask(oracle.get, k["del"]) is None
    assert await ask(oracle.get, k["flag"]) is None

    # Now the compare fails: only the failure branch runs (and the nested txn's failure too).
    again = await client.txn(compare=[txn.value(k["get"]) == "x"], success=success, failure=failure)
    assert again.succeeded is False
    read, flagged = again.responses
    assert isinstance(read, RangeResult)
    assert [kv.value for kv in read.kvs] == [b"p1"]
    assert isinstance(flagged, PutResult)
    assert flagged.prev_kv is None
    assert await ask(oracle.get, k["flag"]) == (b"failed", again.header.revision)
    assert await value_of(oracle, k["put"]) == b"p1"

    nested_failure = await client.txn(success=[success[3]])
    (inner,) = nested_failure.responses
    assert isinstance(inner, TxnResult)
    assert inner.succeeded is False  # the key exists now
    (inner_read,) = inner.responses
    assert isinstance(inner_read, RangeResult)
    assert [kv.value for kv in inner_read.kvs] == [b"n"]


async def test_txn_empty_and_several_compares(client: etcdanyio.Client, prefix: bytes) -> None:
    empty = await client.txn()
    assert (empty.succeeded, empty.responses) == (True, [])
    await client.put(prefix + b"a", "1")
    both = [txn.value(prefix + b"a") == "1", txn.version(prefix + b"b") == 0]
    assert (await client.txn(compare=both)).succeeded is True
    one_fails = [txn.value(prefix + b"a") == "1", txn.version(prefix + b"a") == 0]
    assert (await client.txn(compare=one_fails)).succeeded is False
    assert (await client.txn(compare=tuple(both))).succeeded is True  # a tuple is fine too


async def test_txn_doubly_nested(client: etcdanyio.Client, prefix: bytes) -> None:
    innermost = txn.txn(success=[txn.put(prefix + b"deep", "3")])
    middle = txn.txn(success=[innermost, txn.put(prefix + b"mid", "2")])
    result = await client.txn(success=[middle, txn.put(prefix + b"top", "1")])
    outer, top = result.responses
    assert isinstance(outer, TxnResult)
    assert isinstance(top, PutResult)
    inner, mid = outer.responses
    assert isinstance(inner, TxnResult)
    assert isinstance(mid, PutResult)
    assert [type(r) for r in inner.responses] == [PutResult]
    assert await client.get_keys(prefix) == [prefix + b"deep", prefix + b"mid", prefix + b"top"]
    # Responses that carry (almost) nothing are still typed, one per op.
    sparse = await client.txn(
        success=[
            txn.txn(),
            txn.txn(compare=[txn.version(prefix + b"deep") == 99]),
            txn.get(prefix + b"missing", count_only=True),
            txn.delete(prefix + b"missing"),
        ]
    )
    empty_ok, empty_failed, count, nothing = sparse.responses
    assert isinstance(empty_ok, TxnResult)
    assert (empty_ok.succeeded, empty_ok.responses) == (True, [])
    assert isinstance(empty_failed, TxnResult)
    assert (empty_failed.succeeded, empty_failed.responses) == (False, [])
    assert isinstance(count, RangeResult)
    assert (count.kvs, count.count) == ([], 0)
    assert isinstance(nothing, DeleteResult)
    assert nothing.deleted == 0


async def test_txn_errors(client: etcdanyio.Client, prefix: bytes, oracle: Oracle) -> None:
    with pytest.raises(etcdanyio.DuplicateKeyError) as info:
        await client.txn(success=[txn.put(prefix + b"k", "1"), txn.put(prefix + b"k", "2")])
    check_error(
        info.value, etcdanyio.DuplicateKeyError, etcdanyio.Status.INVALID_ARGUMENT, DUPLICATE_KEY
    )
    with pytest.raises(etcdanyio.DuplicateKeyError):  # a delete overlapping a put, too
        await client.txn(success=[txn.put(prefix + b"k", "1"), txn.delete(prefix, prefix=True)])
    assert await ask(oracle.get, prefix + b"k") is None

    # etcd's --max-txn-ops is 128: 128 operations pass, 129 are refused.
    ok = await client.txn(success=[txn.get(prefix + b"k")] * 128)
    assert len(ok.responses) == 128
    with pytest.raises(etcdanyio.RpcError) as too_many:
        await client.txn(success=[txn.get(prefix + b"k")] * 129)
    check_error(
        too_many.value, etcdanyio.TooManyOpsError, etcdanyio.Status.INVALID_ARGUMENT, TOO_MANY_OPS
    )
    with pytest.raises(etcdanyio.RpcError) as too_many:
        await client.txn(compare=[txn.version(prefix + b"k") == 0] * 129)
    assert too_many.value.message == TOO_MANY_OPS


async def test_create_and_replace(
    client: etcdanyio.Client, prefix: bytes, oracle: Oracle, lease: int
) -> None:
    key = prefix + b"k"
    assert await client.create(key, "first") is True
    assert await client.create(key, "second") is False
    assert await value_of(oracle, key) == b"first"
    assert await client.replace(key, "wrong", "new") is False
    assert await value_of(oracle, key) == b"first"
    assert await client.replace(key, b"first", "new") is True
    assert await value_of(oracle, key) == b"new"
    assert await client.replace(prefix + b"missing", "", "x") is False
    assert await client.get(prefix + b"missing") is None
    assert await client.create(prefix + b"leased", "v", lease=lease) is True
    assert await ask(oracle.lease_keys, lease) == [prefix + b"leased"]


# -- paging -------------------------------------------------------------------------------------


async def test_iter_prefix_pages(client: etcdanyio.Client, prefix: bytes) -> None:
    expected = [prefix + b"%02d" % n for n in range(10)]
    for key in reversed(expected):
        await client.put(key, key)
    await client.put(prefix[:-1] + b"0", "outside")  # right after the prefix
    for page_size in (1, 2, 3, 5, 9, 10, 11, 1000):
        pages = client.iter_prefix(prefix, page_size=page_size)
        walked = [kv async for kv in pages]
        assert [kv.key for kv in walked] == expected, page_size
        assert [kv.value for kv in walked] == expected
        assert pages.revision > 0
    empty = client.iter_prefix(prefix + b"none/", page_size=2)
    assert [kv async for kv in empty] == []
    ranged = [kv.key async for kv in client.iter_range(prefix + b"03", prefix + b"07", page_size=2)]
    assert ranged == expected[3:7]
    await client.delete(prefix[:-1] + b"0")


async def test_iter_prefix_reads_one_revision(
    client: etcdanyio.Client, prefix: bytes, oracle: Oracle
) -> None:
    for n in range(9):
        await client.put(prefix + b"%d" % n, b"old")
    snapshot = await ask(oracle.range_prefix, prefix)
    head = await ask(oracle.revision)
    pages = client.iter_prefix(prefix, page_size=3)
    walked: list[KeyValue] = [await pages.__anext__()]
    assert pages.revision == head  # the first page's revision
    # Change the range behind the cursor, under it and ahead of it.
    await client.put(prefix + b"0", b"new")
    await client.put(prefix + b"5", b"new")
    await client.delete(prefix + b"7")
    await client.put(prefix + b"4x", b"inserted")
    await client.put(prefix + b"9", b"appended")
    walked += [kv async for kv in pages]
    assert pages.revision == head
    assert [
        KV(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version) for kv in walked
    ] == snapshot
    now = await ask(oracle.range_prefix, prefix)
    assert len(now) == 10  # the writes did happen
    # An explicit revision is kept, and read from the first page on.
    at_head = client.iter_prefix(prefix, page_size=2, revision=head)
    assert at_head.revision == head
    assert [kv.value async for kv in at_head] == [b"old"] * 9
    between = client.iter_range(prefix + b"3", prefix + b"8", page_size=2, revision=head)
    assert [kv.key async for kv in between] == [prefix + b"%d" % n for n in range(3, 8)]


# -- namespaces ---------------------------------------------------------------------------------


async def test_namespace(
    client: etcdanyio.Client, etcd_server: EtcdServer, prefix: bytes, oracle: Oracle
) -> None:
    space = prefix + b"ns/"
    # Neighbours just outside the namespace, on both sides.
    for outside in (prefix + b"ns", prefix + b"ns.", prefix + b"ns0", prefix + b"nr/a"):
        await client.put(outside, "outside")
    async with etcdanyio.open_etcd(etcd_server.endpoints, namespace=space) as ns:
        assert ns.namespace == space
        put = await ns.put("a", "1")
        await ns.put(b"b/1", "2")
        await ns.put(b"\xff", "3")
        # On the wire the keys carry the prefix: the plain client and the oracle see it.
        assert await client.get_keys(space) == [space + b"a", space + b"b/1", space + b"\xff"]
        assert await ask(oracle.get, space + b"a") == (b"1", put.header.revision)
        # Results come back without it.
        kv = await ns.get("a")
        assert kv is not None
        assert kv.key == b"a"
        assert await ns.get(space + b"a") is None  # not prefixed twice
        assert keys(await ns.get_prefix(b"")) == [b"a", b"b/1", b"\xff"]
        assert keys(await ns.get_prefix("b/")) == [b"b/1"]
        assert keys(await ns.get_prefix(b"\xff")) == [b"\xff"]
        assert keys(await ns.get_range("a", b"\0")) == [b"a", b"b/1", b"\xff"]
        assert keys(await ns.get_range("a", "b/2")) == [b"a", b"b/1"]
        assert (await ns.get_all(count_only=True)).count == 3
        assert keys(await ns.get_all(sort_order="descend")) == [b"\xff", b"b/1", b"a"]
        prev = await ns.put("a", "1b", prev_kv=True)
        assert prev.prev_kv is not None
        assert (prev.prev_kv.key, prev.prev_kv.value) == (b"a", b"1")
        deleted = await ns.delete("b/1", prev_kv=True)
        assert [kv.key for kv in deleted.prev_kvs] == [b"b/1"]
        await ns.put(b"b/1", "2")

        # Transactions: compares, ops and responses, nested ones too.
        result = await ns.txn(
            compare=[txn.value("a") == "1b", txn.version("b/", prefix=True) > 0],
            success=[
                txn.get("", prefix=True),
                txn.put("c", "4", prev_kv=True),
                txn.txn(
                    success=[
                        txn.get("a"),
                        txn.delete("b/", prefix=True, prev_kv=True),
                        txn.put("a", "1c", prev_kv=True),
                    ]
                ),
            ],
        )
        assert result.succeeded is True
        listing, put_c, nested = result.responses
        assert isinstance(listing, RangeResult)
        assert keys(listing) == [b"a", b"b/1", b"\xff"]
        assert isinstance(put_c, PutResult)
        assert put_c.prev_kv is None
        assert isinstance(nested, TxnResult)
        inner_get, inner_delete, inner_put = nested.responses
        assert isinstance(inner_get, RangeResult)
        assert keys(inner_get) == [b"a"]
        assert isinstance(inner_delete, DeleteResult)
        assert [kv.key for kv in inner_delete.prev_kvs] == [b"b/1"]
        assert isinstance(inner_put, PutResult)
        assert inner_put.prev_kv is not None
        assert inner_put.prev_kv.key == b"a"
        assert await client.get_keys(space) == [space + b"a", space + b"c", space + b"\xff"]
        # A namespaced compare never looks outside: this is space + space + "a", absent.
        assert (await ns.txn(compare=[txn.version(space + b"a") > 0])).succeeded is False
        assert (await ns.txn(compare=[txn.version("a") > 0])).succeeded is True

        assert await ns.create("a", "x") is False
        assert await ns.create("d", "5") is True
        assert await ns.replace("d", "5", "6") is True
        assert await value_of(oracle, space + b"d") == b"6"

        # Paging inside the namespace.
        for n in range(5):
            await ns.put(b"p/%d" % n, "v")
        walked = [kv.key async for kv in ns.iter_prefix(b"", page_size=2)]
        assert walked == [b"a", b"c", b"d", *(b"p/%d" % n for n in range(5)), b"\xff"]
        assert [kv.key async for kv in ns.iter_prefix("p/", page_size=3)] == [
            b"p/%d" % n for n in range(5)
        ]
        assert [kv.key async for kv in ns.iter_range("c", b"\0", page_size=4)] == walked[1:]

        # delete_range to the end and delete_prefix(b"") stay inside the namespace.
        gone = await ns.delete_range("p/3", b"\0", prev_kv=True)
        assert [kv.key for kv in gone.prev_kvs] == [b"p/3", b"p/4", b"\xff"]
        everything = await ns.delete_prefix(b"", prev_kv=True)
        assert [kv.key for kv in everything.prev_kvs] == [b"a", b"c", b"d", b"p/0", b"p/1", b"p/2"]
        assert (await ns.get_all()).kvs == []
    remaining = [kv.key for kv in await ask(oracle.range_prefix, prefix)]
    assert remaining == [prefix + b"nr/a", prefix + b"ns", prefix + b"ns.", prefix + b"ns0"]


async def test_namespace_as_str_and_errors(
    etcd_server: EtcdServer, prefix: bytes, oracle: Oracle
) -> None:
    async with etcdanyio.open_etcd(
        etcd_server.endpoints, namespace=(prefix + b"s/").decode()
    ) as ns:
        assert ns.namespace == prefix + b"s/"
        await ns.put("k", "v")
        assert await ask(oracle.get, prefix + b"s/k") is not None
        with pytest.raises(etcdanyio.DuplicateKeyError) as info:
            await ns.txn(success=[txn.put("k", "1"), txn.put("k", "2")])
        assert info.value.message == DUPLICATE_KEY
        with pytest.raises(etcdanyio.RpcError) as missing:
            await ns.put("missing", ignore_value=True)
        assert missing.value.message == KEY_NOT_FOUND


# -- the client-wide timeout --------------------------------------------------------------------


async def test_default_timeout(etcd_server: EtcdServer, prefix: bytes, oracle: Oracle) -> None:
    # Far too short for any call to finish: every call raises the built-in TimeoutError.
    async with etcdanyio.open_etcd(etcd_server.endpoints, timeout=1e-6) as hurried:
        with pytest.raises(TimeoutError):
            await hurried.get(prefix + b"k")
        with pytest.raises(TimeoutError):
            await hurried.put(prefix + b"k", "v")
        with pytest.raises(TimeoutError):
            await hurried.txn(success=[txn.get(prefix + b"k")])
        with pytest.raises(TimeoutError):
            await hurried.compact(1)
    assert await ask(oracle.get, prefix + b"k") is None
    # A generous default leaves calls alone.
    async with etcdanyio.open_etcd(etcd_server.endpoints, timeout=30) as patient:
        await patient.put(prefix + b"k", "v")
        kv = await patient.get(prefix + b"k")
        assert kv is not None
        assert kv.value == b"v"
    assert await ask(oracle.get, prefix + b"k") is not None


async def test_a_cancel_scope_deadline_never_escapes_as_an_error(
    client: etcdanyio.Client, prefix: bytes
) -> None:
    """
    A read bounded by the caller's scope either returns or is cancelled by that scope. The
    window is narrow (a few percent of tries at sub-millisecond deadlines), so this tries until
    the first escape, up to a bound that makes a miss vanishingly unlikely.
    """
    await client.put(prefix + b"k", "v")
    deadlines = (1e-6, 1e-5, 1e-4, 3e-4)
    escaped: list[BaseException] = []
    for attempt in range(1200):
        deadline = deadlines[attempt % len(deadlines)]
        try:
            if attempt % 2:
                with anyio.move_on_after(deadline):
                    await client.get(prefix + b"k")
            else:
                try:
                    with anyio.fail_after(deadline):
                        await client.get(prefix + b"k")
                except TimeoutError:
                    pass
        except etcdanyio.EtcdError as exc:
            escaped.append(exc)
            break
    assert escaped == []

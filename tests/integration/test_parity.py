"""
Parity with the clients people migrate from: one test per row of ``docs/migrating.md``.

Every row of every table in that document names, in its last column, the ID of the function
here that runs the etcdanyio side of the row against real etcd (``@row("gw.create")``);
``test_every_row_has_a_test`` checks both directions, so the table cannot drift from the code.
``test_row[<backend>-<id>]`` runs one row under one backend.

Rows that change cluster-wide state (compaction, alarms, membership, auth) run against a
scratch member of this module (or a fresh one), never against the session's ``etcd_server``. Waits
are bounded by ``anyio.fail_after`` and driven by watches, events or task starts, never by
sleeping for a state.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import pickle
import re
import socket
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.to_thread
import pytest
import trustme

import etcdanyio
import etcdanyio.sync
from etcdanyio import (
    AlarmType,
    CompactedError,
    ConnectionFailedError,
    EtcdError,
    EventType,
    Filter,
    FutureRevisionError,
    LeaseExpiredError,
    LeaseNotFoundError,
    NoSpaceError,
    Permission,
    RangeResult,
    RpcError,
    SortOrder,
    SortTarget,
    Status,
    WatchCompactedError,
    txn,
)
from etcdanyio.recipes import watch_matching
from etcdanyio.testing import EtcdServer, TLSFiles

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from etcdanyio import Client

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"
#: the bound of one row's test (most take a few milliseconds)
ROW_TIMEOUT = 15.0
#: how long a wait that must time out is given
SHORT = 0.2


@dataclasses.dataclass
class Tls:
    server: EtcdServer
    ca_file: str
    cert_file: str
    key_file: str


@dataclasses.dataclass
class Ctx:
    """What a row's test gets: a client of the session member and a unique key prefix."""

    client: Client
    prefix: str
    etcd_server: EtcdServer
    scratch: EtcdServer
    tls: Tls

    def key(self, name: str) -> str:
        return self.prefix + name


ROWS: dict[str, Callable[[Ctx], Awaitable[None]]] = {}


def row(
    *ids: str,
) -> Callable[[Callable[[Ctx], Awaitable[None]]], Callable[[Ctx], Awaitable[None]]]:
    """Register the decorated test as the etcdanyio side of the rows ``ids``."""

    def register(test: Callable[[Ctx], Awaitable[None]]) -> Callable[[Ctx], Awaitable[None]]:
        for row_id in ids:
            assert row_id not in ROWS, f"row {row_id} registered twice"
            ROWS[row_id] = test
        return test

    return register


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- client


@row("gw.client", "etcetra.client", "etcetra.connect", "aetcd.client", "etcd3py.client")
@row("etcd3.client")
async def open_and_close(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(
        ctx.etcd_server.endpoints, timeout=5, connect_timeout=2
    ) as client:
        await client.put(ctx.key("a"), "1")
        kv = await client.get(ctx.key("a"))
        assert kv is not None
        assert kv.value == b"1"
        assert kv.value.decode() == "1"  # results are bytes; decode them yourself
    with pytest.raises(anyio.ClosedResourceError):
        await client.get(ctx.key("a"))


@row("gw.tls", "etcetra.tls", "etcd3py.tls", "etcd3.tls")
async def tls_client(ctx: Ctx) -> None:
    tls = ctx.tls
    context = etcdanyio.tls_context(tls.ca_file, tls.cert_file, tls.key_file)
    async with etcdanyio.open_etcd(tls.server.endpoints, ssl_context=context) as client:
        await client.put(ctx.key("a"), "1")
        kv = await client.get(ctx.key("a"))
        assert kv is not None
        assert kv.value == b"1"
        # the HTTP endpoints go over the same TLS context (as HTTP/2, ALPN h2)
        assert (await client.version()).server
        assert (await client.http_health()).healthy
        assert "etcd_server_has_leader" in await client.metrics()


@row("etcd3py.auth")
async def auth(ctx: Ctx) -> None:
    async with EtcdServer() as server:
        async with etcdanyio.open_etcd(server.endpoints) as admin:
            await admin.user_add("root", "rootpw")
            await admin.user_grant_role("root", "root")
            await admin.auth_enable()
        async with etcdanyio.open_etcd(
            server.endpoints, username="root", password="rootpw"
        ) as root:
            assert (await root.auth_status()).enabled
            await root.put("k", "v")
            await root.auth_disable()
        async with etcdanyio.open_etcd(server.endpoints) as anonymous:
            assert not (await anonymous.auth_status()).enabled


@row("etcd3py.users")
async def users(ctx: Ctx) -> None:
    user, role = f"u-{uuid.uuid4().hex}", f"r-{uuid.uuid4().hex}"
    client = ctx.client
    await client.role_add(role)
    await client.user_add(user, "pw1")
    try:
        await client.user_change_password(user, "pw2")
        await client.user_grant_role(user, role)
        assert await client.user_get(user) == [role]
        assert user in await client.user_list()
        await client.user_revoke_role(user, role)
        assert await client.user_get(user) == []
    finally:
        await client.user_delete(user)
        await client.role_delete(role)
    assert user not in await client.user_list()


@row("etcd3py.roles")
async def roles(ctx: Ctx) -> None:
    role = f"r-{uuid.uuid4().hex}"
    client = ctx.client
    await client.role_add(role)
    try:
        await client.role_grant_permission(
            role, ctx.prefix, prefix=True, permission=Permission.READ
        )
        [granted] = await client.role_get(role)
        assert granted.permission is Permission.READ
        assert granted.key == ctx.prefix.encode()
        assert role in await client.role_list()
        await client.role_revoke_permission(role, ctx.prefix, prefix=True)
        assert await client.role_get(role) == []
        with pytest.raises(TypeError, match="permission"):
            await client.role_grant_permission(role, ctx.prefix)  # type: ignore[call-arg]
        assert await client.role_get(role) == []  # nothing was granted by default
        await client.role_grant_permission(role, ctx.key("k"), permission="readwrite")
        [granted] = await client.role_get(role)
        assert granted.permission is Permission.READWRITE
        with pytest.raises(etcdanyio.PermissionNotGrantedError) as absent:
            await client.role_revoke_permission(role, ctx.key("other"))
        assert isinstance(absent.value, etcdanyio.AuthError)
    finally:
        await client.role_delete(role)
    with pytest.raises(etcdanyio.RoleNotFoundError) as gone:
        await client.role_get(role)
    assert gone.value.message == "etcdserver: role name not found"


# ---------------------------------------------------------------------- key-value


@row("gw.create", "etcd3.put_if_not_exists")
async def create(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        assert await ctx.client.create(ctx.key("a"), "1", lease=lease)
        assert not await ctx.client.create(ctx.key("a"), "2")
        kv = await ctx.client.get(ctx.key("a"))
        assert kv is not None
        assert (kv.value, kv.lease) == (b"1", lease.id)


@row("gw.replace", "etcd3.replace")
async def replace(ctx: Ctx) -> None:
    await ctx.client.put(ctx.key("a"), "old")
    assert not await ctx.client.replace(ctx.key("a"), "other", "new")
    assert await ctx.client.replace(ctx.key("a"), "old", "new")
    kv = await ctx.client.get(ctx.key("a"))
    assert kv is not None
    assert kv.value == b"new"


@row("aetcd.replace")
async def replace_with_lease(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    await client.put(key, "old")
    async with client.lease(10) as lease:
        assert not await client.replace(key, "other", "new", lease=lease)
        assert await client.replace(key, "old", "new", lease=lease.id)
        kv = await client.get(key)
        assert kv is not None
        assert (kv.value, kv.lease) == (b"new", lease.id)
        assert await client.replace(key, "new", "newer")  # no lease: detached, as a put does
        kv = await client.get(key)
        assert kv is not None
        assert (kv.value, kv.lease) == (b"newer", 0)
    with pytest.raises(etcdanyio.LeaseNotFoundError):
        await client.replace(key, "newer", "x", lease=0x7FFF_FFFF_FFFF_0002)


async def _three(ctx: Ctx) -> list[int]:
    """Put ``a``, ``b``, ``c`` (values 3, 1, 2); return their revisions."""
    return [
        (await ctx.client.put(ctx.key(name), value)).header.revision
        for name, value in (("a", "3"), ("b", "1"), ("c", "2"))
    ]


@row("gw.get", "etcd3py.range")
async def get_with_options(ctx: Ctx) -> None:
    client = ctx.client
    revisions = await _three(ctx)
    kv = await client.get(ctx.key("a"))
    assert kv is not None
    assert (kv.key, kv.value, kv.mod_revision) == (ctx.key("a").encode(), b"3", revisions[0])
    assert await client.get(ctx.key("missing")) is None
    page = await client.get_range(
        ctx.key("a"), ctx.key("c"), limit=1, revision=revisions[-1], serializable=True
    )
    assert [kv.key for kv in page.kvs] == [ctx.key("a").encode()]
    assert (page.count, page.more) == (2, True)
    counted = await client.get_prefix(ctx.prefix, count_only=True)
    assert (counted.count, counted.kvs) == (3, [])


@row("etcetra.get", "aetcd.get", "etcd3.get")
async def get_one(ctx: Ctx) -> None:
    client = ctx.client
    first = (await client.put(ctx.key("a"), "1")).header.revision
    await client.put(ctx.key("a"), "2")
    kv = await client.get(ctx.key("a"))
    assert kv is not None
    assert (kv.value, kv.version, kv.create_revision) == (b"2", 2, first)
    old = await client.get(ctx.key("a"), revision=first, serializable=True)
    assert old is not None
    assert old.value == b"1"
    assert await client.get(ctx.key("b")) is None


@row("gw.get_prefix", "aetcd.get_prefix", "etcd3.get_prefix")
async def get_prefix_sorted(ctx: Ctx) -> None:
    await _three(ctx)
    page = await ctx.client.get_prefix(ctx.prefix, sort_order="descend", sort_target="value")
    assert [kv.value for kv in page.kvs] == [b"3", b"2", b"1"]
    keys = await ctx.client.get_prefix(ctx.prefix, keys_only=True, sort_target=SortTarget.KEY)
    assert [kv.value for kv in keys.kvs] == [b"", b"", b""]
    assert [kv.key async for kv in ctx.client.iter_prefix(ctx.prefix, page_size=2)] == [
        ctx.key(n).encode() for n in "abc"
    ]


@row("aetcd.range_sequence")
async def range_results_are_sequences(ctx: Ctx) -> None:
    client = ctx.client
    await _three(ctx)
    page = await client.get_prefix(ctx.prefix)
    assert len(page) == 3
    assert [kv.value for kv in page] == [b"3", b"1", b"2"]
    assert page[0].key == ctx.key("a").encode()
    assert page[-1].key == ctx.key("c").encode()
    assert [kv.value for kv in page[1:]] == [b"1", b"2"]
    assert page
    limited = await client.get_prefix(ctx.prefix, limit=1)
    assert (len(limited), bool(limited), limited.more) == (1, True, True)
    counted = await client.get_prefix(ctx.prefix, count_only=True)
    assert (len(counted), bool(counted)) == (0, True)  # true: the range holds keys
    empty = await client.get_prefix(ctx.key("nothing/"))
    assert (len(empty), bool(empty), list(empty)) == (0, False, [])
    with pytest.raises(IndexError):
        empty[0]
    deleted = await client.delete_prefix(ctx.prefix, prev_kv=True)
    assert (len(deleted), bool(deleted)) == (3, True)
    assert sorted(kv.value for kv in deleted) == [b"1", b"2", b"3"]
    await client.put(ctx.key("a"), "1")
    quiet = await client.delete(ctx.key("a"))  # no prev_kv: nothing to list, but deleted
    assert (len(quiet), bool(quiet), quiet.deleted) == (0, True, 1)
    assert not await client.delete(ctx.key("a"))


@row("gw.get_all", "aetcd.get_all", "etcd3.get_all")
async def get_all_sorted(ctx: Ctx) -> None:
    await _three(ctx)
    # A namespaced client sees only its part of the keyspace: get_all() is then ours alone.
    async with etcdanyio.open_etcd(ctx.etcd_server.endpoints, namespace=ctx.prefix) as scoped:
        everything = await scoped.get_all(sort_order=SortOrder.DESCEND, sort_target="mod")
        assert [kv.key for kv in everything.kvs] == [b"c", b"b", b"a"]
        keys = await scoped.get_all(keys_only=True)
        assert [(kv.key, kv.value) for kv in keys.kvs] == [(b"a", b""), (b"b", b""), (b"c", b"")]


@row("etcetra.get_prefix")
async def get_prefix_revision_filters(ctx: Ctx) -> None:
    revisions = await _three(ctx)
    newer = await ctx.client.get_prefix(ctx.prefix, min_mod_revision=revisions[1])
    assert [kv.key for kv in newer.kvs] == [ctx.key("b").encode(), ctx.key("c").encode()]
    older = await ctx.client.get_prefix(
        ctx.prefix, max_create_revision=revisions[0], revision=revisions[1]
    )
    assert [kv.key for kv in older.kvs] == [ctx.key("a").encode()]
    # exactly the prefix: not a sibling inside etcetra's range for it (".../" -> ".../", "..0/")
    await ctx.client.put(ctx.prefix[:-1] + "~", "sibling")
    assert (await ctx.client.get_prefix(ctx.prefix, count_only=True)).count == 3


@row("etcetra.get_range", "aetcd.get_range", "etcd3.get_range")
async def get_range(ctx: Ctx) -> None:
    await _three(ctx)
    page = await ctx.client.get_range(
        ctx.key("a"), ctx.key("c"), sort_order="descend", sort_target="key"
    )
    assert [kv.key for kv in page.kvs] == [ctx.key("b").encode(), ctx.key("a").encode()]
    limited = await ctx.client.get_range(ctx.key("a"), b"\0", limit=2, min_mod_revision=1)
    assert len(limited.kvs) == 2
    assert limited.more


@row("etcetra.keys_prefix")
async def keys_prefix(ctx: Ctx) -> None:
    await _three(ctx)
    expected = [ctx.key(n).encode() for n in "abc"]
    assert await ctx.client.get_keys(ctx.prefix) == expected
    page = await ctx.client.get_prefix(ctx.prefix, keys_only=True, sort_order="descend")
    assert [kv.key for kv in page.kvs] == expected[::-1]


@row("etcetra.keys_range")
async def keys_range(ctx: Ctx) -> None:
    await _three(ctx)
    page = await ctx.client.get_range(ctx.key("b"), ctx.key("z"), keys_only=True)
    assert [(kv.key, kv.value) for kv in page.kvs] == [
        (ctx.key("b").encode(), b""),
        (ctx.key("c").encode(), b""),
    ]


@row("gw.put", "aetcd.put", "etcd3.put")
async def put(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        result = await ctx.client.put(ctx.key("a"), b"\x00bytes", lease=lease)
        assert result.header.revision > 0
        kv = await ctx.client.get(ctx.key("a"))
        assert kv is not None
        assert (kv.value, kv.lease) == (b"\x00bytes", lease.id)
    assert await ctx.client.get(ctx.key("a")) is None  # the lease was revoked on exit


@row("etcetra.put")
async def put_prev_kv(ctx: Ctx) -> None:
    assert (await ctx.client.put(ctx.key("a"), "1", prev_kv=True)).prev_kv is None
    previous = (await ctx.client.put(ctx.key("a"), "2", prev_kv=True)).prev_kv
    assert previous is not None
    assert previous.value == b"1"


@row("etcd3py.put")
async def put_ignore(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    async with client.lease(10) as lease:
        await client.put(key, "1", lease=lease)
        await client.put(key, "2", ignore_lease=True)
        await client.put(key, ignore_value=True, ignore_lease=True)
        kv = await client.get(key)
        assert kv is not None
        assert (kv.value, kv.lease, kv.version) == (b"2", lease.id, 3)


@row("gw.delete", "aetcd.delete", "etcd3.delete")
async def delete(ctx: Ctx) -> None:
    await ctx.client.put(ctx.key("a"), "1")
    assert (await ctx.client.delete(ctx.key("a"))).deleted == 1
    assert (await ctx.client.delete(ctx.key("a"))).deleted == 0


@row("etcetra.delete")
async def delete_prev_kv(ctx: Ctx) -> None:
    await ctx.client.put(ctx.key("a"), "1")
    result = await ctx.client.delete(ctx.key("a"), prev_kv=True)
    assert [(kv.key, kv.value) for kv in result.prev_kvs] == [(ctx.key("a").encode(), b"1")]


@row("gw.delete_prefix", "etcetra.delete_prefix", "aetcd.delete_prefix", "etcd3.delete_prefix")
async def delete_prefix(ctx: Ctx) -> None:
    await _three(ctx)
    sibling = ctx.prefix[:-1] + "~"  # not under the prefix, though inside etcetra's range for it
    await ctx.client.put(sibling, "keep")
    result = await ctx.client.delete_prefix(ctx.prefix, prev_kv=True)
    assert result.deleted == 3
    assert sorted(kv.value for kv in result.prev_kvs) == [b"1", b"2", b"3"]
    assert await ctx.client.get(sibling) is not None


@row("etcetra.delete_range", "aetcd.delete_range", "etcd3py.delete_range")
async def delete_range(ctx: Ctx) -> None:
    await _three(ctx)
    result = await ctx.client.delete_range(ctx.key("a"), ctx.key("c"), prev_kv=True)
    assert result.deleted == 2
    assert [kv.key for kv in result.prev_kvs] == [ctx.key("a").encode(), ctx.key("b").encode()]
    assert (await ctx.client.delete_prefix(ctx.prefix)).deleted == 1


@row("etcd3.get_response")
async def raw_response(ctx: Ctx) -> None:
    revisions = await _three(ctx)
    page = await ctx.client.get_prefix(ctx.prefix, limit=2)
    assert (page.count, page.more, len(page.kvs)) == (3, True, 2)
    assert page.header.revision >= revisions[-1]
    assert page.header.member_id
    one = await ctx.client.get_result(ctx.key("a"))
    assert one.header.revision >= revisions[-1]
    assert [kv.value for kv in one] == [b"3"]
    missing = await ctx.client.get_result(ctx.key("missing"), serializable=True)
    assert not missing
    assert missing.header.revision >= revisions[-1]  # the revision a create must compare with
    old = await ctx.client.get_result(ctx.key("a"), revision=revisions[0])
    assert old[0].mod_revision == revisions[0]


# --------------------------------------------------------------------- transactions


@row("gw.transaction", "aetcd.transaction", "etcd3.transaction")
async def transaction(ctx: Ctx) -> None:
    client, a, b = ctx.client, ctx.key("a"), ctx.key("b")
    await client.put(a, "1")
    result = await client.txn(
        compare=[txn.value(a) == "1", txn.version(b) == 0, txn.mod_revision(a) > 0],
        success=[txn.put(b, "2"), txn.get(a), txn.delete(a, prev_kv=True)],
        failure=[txn.get(b)],
    )
    assert result.succeeded
    put_result, got, deleted = result.responses
    assert isinstance(put_result, etcdanyio.PutResult)
    assert isinstance(got, RangeResult)
    assert got.kvs[0].value == b"1"
    assert isinstance(deleted, etcdanyio.DeleteResult)
    assert [kv.value for kv in deleted.prev_kvs] == [b"1"]
    nested = await client.txn(
        compare=[txn.create_revision(a) != 0],
        failure=[txn.txn(compare=[txn.lease(b) == 0], success=[txn.get(b)])],
    )
    assert not nested.succeeded
    inner = nested.responses[0]
    assert isinstance(inner, etcdanyio.TxnResult)
    assert inner.succeeded


@row("etcetra.txn")
async def txn_without_compare(ctx: Ctx) -> None:
    await ctx.client.put(ctx.key("a"), "1")
    result = await ctx.client.txn(success=[txn.get(ctx.key("a")), txn.put(ctx.key("b"), "2")])
    assert result.succeeded
    got = result.responses[0]
    assert isinstance(got, RangeResult)
    assert {kv.key.decode(): kv.value.decode() for kv in got.kvs} == {ctx.key("a"): "1"}


@row("etcetra.txn_compare")
async def txn_compare(ctx: Ctx) -> None:
    client, a, b = ctx.client, ctx.key("a"), ctx.key("b")
    await client.put(a, "asd")
    await client.put(b, "asdg")
    result = await client.txn(
        compare=[txn.value(a) == "asd", txn.value(b) > "asdf", txn.value(a) < "b"],
        success=[txn.get(a)],
        failure=[txn.get(b)],
    )
    assert result.succeeded  # "<" is LESS here
    got = result.responses[0]
    assert isinstance(got, RangeResult)
    assert got.kvs[0].value == b"asd"


@row("etcd3py.txn")
async def txn_if_then_else(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    await client.put(key, "bar")
    compare = [txn.value(key) == "bar"]
    then = [txn.put(key, "bra")]
    otherwise = [txn.get(key)]
    assert (await client.txn(compare, then, otherwise)).succeeded
    failed = await client.txn(compare, then, otherwise)
    assert not failed.succeeded
    got = failed.responses[0]
    assert isinstance(got, RangeResult)
    assert got.kvs[0].value == b"bra"


# --------------------------------------------------------------------------- leases


@row("gw.lease", "etcd3.lease")
async def lease_scope(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    async with client.lease(10) as lease:
        await client.put(key, "v", lease=lease)
        assert 0 < await lease.remaining_ttl() <= 10
        assert await lease.keepalive_once() == 10
        assert await lease.keys() == [key.encode()]
    assert await client.get(key) is None
    assert (await client.lease_time_to_live(lease.id)).ttl == -1


@row("etcetra.grant_lease", "etcd3py.lease_rpc", "etcd3.lease_rpc")
async def lease_rpc(ctx: Ctx) -> None:
    client = ctx.client
    grant = await client.lease_grant(10)
    assert grant.ttl == 10
    assert grant.id in await client.leases()
    await client.put(ctx.key("a"), "v", lease=grant.id)
    assert await client.lease_keepalive_once(grant.id) == 10
    info = await client.lease_time_to_live(grant.id, keys=True)
    assert (info.granted_ttl, info.keys) == (10, [ctx.key("a").encode()])
    await client.lease_revoke(grant.id)
    assert await client.get(ctx.key("a")) is None


@row("etcetra.revoke_lease", "aetcd.lease_revoke")
async def lease_revoke(ctx: Ctx) -> None:
    client = ctx.client
    grant = await client.lease_grant(10)
    await client.lease_revoke(grant.id)
    assert (await client.lease_time_to_live(grant.id)).ttl == -1
    with pytest.raises(LeaseNotFoundError):
        await client.lease_revoke(grant.id)
    async with client.lease(10) as lease:  # the scoped way: revoked when the block exits
        pass
    assert (await client.lease_time_to_live(lease.id)).ttl == -1


@row("etcetra.keepalive_task", "etcd3py.lease_keepalive")
async def lease_kept_alive(ctx: Ctx) -> None:
    client = ctx.client
    async with client.lease(2) as lease:  # kept alive by the client's keepalive stream
        assert lease.deadline > anyio.current_time()
        assert await lease.remaining_ttl() > 0
    # A lease granted elsewhere, adopted by ID (etcetra's task, etcd3-py's new=False): kept
    # alive for the block, not revoked when it ends (cancel_keepalive()).
    granted = await client.lease_grant(10)
    async with client.keepalive(granted.id, interval=0.1) as adopted:
        before = adopted.deadline
        with anyio.fail_after(5):
            while adopted.deadline == before:  # noqa: ASYNC110 -- poll, bounded
                await anyio.sleep(0.01)
    assert await adopted.remaining_ttl() > 0
    async with client.lease(10) as revoked:  # revoke() from inside: no error on exit
        await revoked.revoke()
    assert await revoked.remaining_ttl() == -1
    await client.lease_revoke(granted.id)
    # Lost while the block runs (here: revoked behind its back): the block is cancelled and
    # LeaseExpiredError raised from the async with, as itself.
    with pytest.raises(LeaseExpiredError):  # noqa: PT012 -- raised by the async with itself
        async with client.lease(2) as lease:
            await client.lease_revoke(lease.id)
            await anyio.sleep_forever()


@row("aetcd.lease", "etcd3py.lease_util")
async def lease_object(ctx: Ctx) -> None:
    client = ctx.client
    wanted = 0x1000 + uuid.uuid4().int % 2**40
    async with client.lease(10, id=wanted) as lease:
        assert (lease.id, lease.ttl) == (wanted, 10)
        await client.put(ctx.key("a"), "v", lease=lease)
    assert await client.get(ctx.key("a")) is None


@row("aetcd.lease_refresh")
async def lease_refresh(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        assert await lease.keepalive_once() == 10


@row("aetcd.lease_remaining_ttl")
async def lease_remaining_ttl(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        assert 0 < await lease.remaining_ttl() <= 10
    assert await lease.remaining_ttl() == -1


@row("aetcd.lease_granted_ttl")
async def lease_granted_ttl(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        assert await lease.granted_ttl() == 10


@row("aetcd.lease_keys")
async def lease_keys(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        assert await lease.keys() == []
        await ctx.client.put(ctx.key("b"), "v", lease=lease)
        await ctx.client.put(ctx.key("a"), "v", lease=lease)
        assert sorted(await lease.keys()) == [ctx.key("a").encode(), ctx.key("b").encode()]


@row("aetcd.get_lease_info")
async def lease_info(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        await ctx.client.put(ctx.key("a"), "v", lease=lease)
        info = await ctx.client.lease_time_to_live(lease.id, keys=True)
        assert (info.id, info.granted_ttl, info.keys) == (lease.id, 10, [ctx.key("a").encode()])
        assert 0 < info.ttl <= 10


@row("etcd3py.lease_alive")
async def lease_alive(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        assert lease.lost is None
        assert await lease.remaining_ttl() > 0
    assert await lease.remaining_ttl() == -1


@row("etcd3py.lease_jammed")
async def lease_jammed(ctx: Ctx) -> None:
    async with ctx.client.lease(10) as lease:
        # seconds the lease is guaranteed to live, by the last answered keepalive
        assert 0 < lease.deadline - anyio.current_time() <= 10


# ---------------------------------------------------------------------------- locks


@row("gw.lock")
async def lock_try(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")
    async with client.lock(name, ttl=10) as lock:
        assert await lock.is_acquired()
        assert await lock.refresh() == 10
        # A try-lock: "acquire() returned False" is TimeoutError at once.
        with pytest.raises(TimeoutError):
            async with client.lock(name, timeout=0):
                pytest.fail("the lock is held")
    assert not await lock.is_acquired()


@row("etcetra.with_lock")
async def lock_with_timeout_and_ttl(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")
    async with client.lock(name, ttl=10, timeout=5) as lock:
        assert lock.key.startswith(name.encode() + b"/")
        # etcd's own v3lock service (what etcetra uses) waits for our lock, and vice versa
        async with client.lease(10) as other:
            with pytest.raises(TimeoutError), anyio.fail_after(SHORT):
                await client.lock_acquire(name, lease=other)


@row("aetcd.lock", "etcd3.lock", "etcd3py.lock_util")
async def lock_scope(ctx: Ctx) -> None:
    client, name, key = ctx.client, ctx.key("lock"), ctx.key("guarded")
    async with client.lock(name, ttl=10) as lock:
        result = await client.txn(compare=[lock.is_owner()], success=[txn.put(key, "1")])
        assert result.succeeded
        assert lock.revision > 0  # a fencing token
    assert not (await client.txn(compare=[lock.is_owner()])).succeeded


@row("aetcd.lock_acquire", "etcd3py.lock_acquire")
async def lock_acquire_timeout(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")
    release = anyio.Event()

    async def hold(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with client.lock(name):
            task_status.started()
            await release.wait()

    async with anyio.create_task_group() as tg:
        await tg.start(hold)
        with pytest.raises(TimeoutError):
            async with client.lock(name, timeout=SHORT):
                pytest.fail("the lock is held")
        with pytest.raises(TimeoutError):  # block=False
            async with client.lock(name, timeout=0):
                pytest.fail("the lock is held")
        # the waiters that gave up left no key behind: only the holder is queued
        assert (await client.get_prefix(name + "/", count_only=True)).count == 1
        release.set()
        async with client.lock(name, timeout=5) as lock:
            assert await lock.is_acquired()


@row("aetcd.lock_release")
async def lock_release(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")
    async with client.lock(name) as lock:
        assert await client.get(lock.key) is not None
    assert await client.get(lock.key) is None
    assert (await client.get_prefix(name + "/", count_only=True)).count == 0


@row("aetcd.lock_refresh")
async def lock_refresh(ctx: Ctx) -> None:
    async with ctx.client.lock(ctx.key("lock"), ttl=10) as lock:
        assert await lock.refresh() == 10
    with pytest.raises(RuntimeError):
        await lock.refresh()


@row("aetcd.lock_is_acquired")
async def lock_is_acquired(ctx: Ctx) -> None:
    async with ctx.client.lock(ctx.key("lock")) as lock:
        assert await lock.is_acquired()
    assert not await lock.is_acquired()


@row("etcd3py.lock_reentrant")
async def lock_reentrant(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")

    async def other_task() -> None:
        with pytest.raises(TimeoutError):
            async with client.lock(name, reentrant=True, timeout=SHORT):
                pytest.fail("another task entered a lock held by this one")

    async with client.lock(name, reentrant=True) as outer:
        with anyio.fail_after(2):  # would deadlock without reentrant=True
            async with client.lock(name, reentrant=True) as inner:
                assert (inner.key, inner.revision) == (outer.key, outer.revision)
                assert await inner.is_acquired()
        assert await outer.is_acquired()  # the inner block did not release it
        async with anyio.create_task_group() as tg:
            tg.start_soon(other_task)
    assert not await outer.is_acquired()


@row("etcd3py.lock_holders")
async def lock_holders(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")
    async with client.lock(name) as lock:
        page = await client.get_prefix(name + "/", sort_target="create", limit=1)
        assert [kv.key for kv in page.kvs] == [lock.key]  # the holder
        assert page.count == 1  # holders and waiters


@row("etcd3py.lock_wait")
async def lock_wait(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")
    release = anyio.Event()

    async def hold(*, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with client.lock(name):
            task_status.started()
            await release.wait()

    async with anyio.create_task_group() as tg:
        await tg.start(hold)
        page = await client.get_prefix(name + "/", sort_target="create", limit=1)
        holder = page.kvs[0]
        release.set()
        event = await client.watch_once(
            holder.key, start_revision=page.header.revision + 1, filters=[Filter.NO_PUT]
        )
        assert event.type is EventType.DELETE


@row("etcd3py.lock_rpc")
async def lock_rpc(ctx: Ctx) -> None:
    client, name = ctx.client, ctx.key("lock")
    async with client.lease(10) as lease:
        key = await client.lock_acquire(name, lease=lease)
        assert key.startswith(name.encode() + b"/")
        # the recipe and the service share the keys: client.lock() waits for it
        with pytest.raises(TimeoutError):
            async with client.lock(name, timeout=SHORT):
                pytest.fail("the lock is held")
        await client.lock_release(key)
        async with client.lock(name, timeout=5):
            pass


# ---------------------------------------------------------------------------- watch


@row("gw.watch_prefix", "etcetra.watch_prefix", "aetcd.watch_prefix")
async def watch_prefix(ctx: Ctx) -> None:
    client = ctx.client
    async with client.watch(ctx.prefix, prefix=True, prev_kv=True) as events:
        await client.put(ctx.key("a"), "1")
        await client.put(ctx.key("a"), "2")
        await client.delete(ctx.key("a"))
        put1, put2, deleted = [await anext(events) for _ in range(3)]
    assert (put1.type, put1.kv.value, put1.prev_kv) == (EventType.PUT, b"1", None)
    assert put2.prev_kv is not None
    assert (put2.kv.value, put2.prev_kv.value) == (b"2", b"1")
    assert deleted.type is EventType.DELETE
    assert deleted.kv.key == ctx.key("a").encode()


@row("gw.watch", "etcetra.watch", "aetcd.watch", "etcd3.watch")
async def watch_key(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    async with client.watch(key) as events:  # leaving the block cancels the watch
        await client.put(key, "1")
        await client.put(ctx.key("other"), "x")
        await client.put(key, "2")
        assert [(await anext(events)).kv.value for _ in range(2)] == [b"1", b"2"]


@row("gw.watch_once", "aetcd.watch_once", "etcd3.watch_once")
async def watch_once(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    with pytest.raises(TimeoutError), anyio.fail_after(SHORT):
        await client.watch_once(key)
    revision = (await client.put(key, "1")).header.revision
    event = await client.watch_once(key, start_revision=revision)
    assert (event.type, event.kv.value, event.revision) == (EventType.PUT, b"1", revision)
    await client.delete(key)
    event = await client.watch_once(
        key,
        start_revision=revision,
        progress_notify=True,
        fragment=True,
        filters=["noput"],
        prev_kv=True,
    )
    assert event.type is EventType.DELETE
    assert event.prev_kv is not None
    assert event.prev_kv.value == b"1"


@row("gw.watch_prefix_once", "aetcd.watch_prefix_once")
async def watch_prefix_once(ctx: Ctx) -> None:
    client = ctx.client
    with anyio.move_on_after(SHORT) as scope:
        await client.watch_once(ctx.prefix, prefix=True)
    assert scope.cancelled_caught
    revision = (await client.put(ctx.key("b"), "1")).header.revision
    event = await client.watch_once(ctx.prefix, prefix=True, start_revision=revision)
    assert event.kv.key == ctx.key("b").encode()


@row("etcetra.watch_ready")
async def watch_ready(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    seen: list[bytes] = []

    async def watcher(
        *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with client.watch(key) as events:
            task_status.started()  # the watch is established on the server here
            seen.append((await anext(events)).kv.value)

    async with anyio.create_task_group() as tg:
        await tg.start(watcher)
        await client.put(key, "first")  # committed after start(): certainly delivered
    assert seen == [b"first"]


@row("etcetra.watch_filters", "etcd3py.watcher_event_type")
async def watch_filters(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    for names in ([Filter.NO_PUT], ["noput"], ["NOPUT"], ["no_put"]):
        async with client.watch(key, filters=names) as deletes:
            await client.put(key, "1")
            await client.delete(key)
            event = await anext(deletes)
        assert event.type is EventType.DELETE
    async with client.watch(key, filters=["nodelete"]) as puts:
        await client.delete(key)
        await client.put(key, "2")
        assert (await anext(puts)).type is EventType.PUT
    with pytest.raises(ValueError, match="noput"):
        await client.watch_once(key, filters=["no-put-please"])


@row("aetcd.watch_kind")
async def watch_kind(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    async with client.watch(key, filters=["no_delete"]) as puts:
        await client.put(key, "1")
        await client.delete(key)
        await client.put(key, "2")
        events = [await anext(puts) for _ in range(2)]
    assert [(e.type, e.kv.value) for e in events] == [(EventType.PUT, b"1"), (EventType.PUT, b"2")]


@row("etcetra.progress_notify")
async def watch_progress(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    async with client.watch(key, progress_notify=True) as events:
        batches = events.batches()
        revision = (await client.put(ctx.key("other"), "x")).header.revision
        await events.request_progress()
        batch = await anext(batches)
        while batch.revision < revision:  # an earlier notification may come first
            batch = await anext(batches)
    assert batch.is_progress
    assert events.revision >= revision


@row("aetcd.watch_fragment")
async def watch_fragment(ctx: Ctx) -> None:
    client = ctx.client
    big = b"x" * (100 << 10)
    keys = [ctx.key(f"{i:02}") for i in range(10)]
    for key in keys:
        await client.put(key, big)
    # One revision whose response (values and prev values: 2 MiB) exceeds etcd's 1.5 MiB
    # message limit: etcd sends it in fragments, reassembled here into one batch.
    async with client.watch(ctx.prefix, prefix=True, prev_kv=True, fragment=True) as events:
        result = await client.txn(success=[txn.put(k, big) for k in keys])
        batch = await anext(events.batches())
    assert [e.kv.key for e in batch.events] == [k.encode() for k in keys]
    assert {e.kv.mod_revision for e in batch.events} == {result.header.revision}


@row("aetcd.watch_id")
async def watch_ids(ctx: Ctx) -> None:
    client = ctx.client
    async with client.watch(ctx.key("a")) as first:
        async with client.watch(ctx.key("b")) as second:
            await client.put(ctx.key("b"), "b")
            assert (await anext(second)).kv.value == b"b"
        # the second watch was cancelled by leaving its block; the first one goes on
        await client.put(ctx.key("a"), "a")
        assert (await anext(first)).kv.value == b"a"


@row("etcd3.watch_response")
async def watch_batches(ctx: Ctx) -> None:
    client = ctx.client
    async with client.watch(ctx.prefix, prefix=True) as events:
        result = await client.txn(success=[txn.put(ctx.key("a"), "1"), txn.put(ctx.key("b"), "2")])
        batch = await anext(events.batches())
    assert batch.revision == result.header.revision
    assert [e.kv.key for e in batch.events] == [ctx.key("a").encode(), ctx.key("b").encode()]


@row("etcd3.add_watch_callback", "etcd3.cancel_watch", "etcd3py.watcher_daemon")
async def watch_in_a_task(ctx: Ctx) -> None:
    client, key = ctx.client, ctx.key("a")
    seen: list[bytes] = []
    two = anyio.Event()

    async def on_events(
        *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with client.watch(key) as events:
            task_status.started()
            async for event in events:  # the "callback" is the loop body
                seen.append(event.kv.value)
                if len(seen) == 2:
                    two.set()

    async with anyio.create_task_group() as tg:
        await tg.start(on_events)  # add_watch_callback
        await client.put(key, "1")
        await client.put(key, "2")
        await two.wait()
        tg.cancel_scope.cancel()  # cancel_watch / stop()
    assert seen == [b"1", b"2"]


@row("etcd3py.watcher")
async def watch_by_pattern(ctx: Ctx) -> None:
    client = ctx.client
    async with watch_matching(client, ctx.prefix, re.escape(ctx.prefix) + r"job/\d+$") as events:
        await client.put(ctx.key("job/x"), "no")
        await client.put(ctx.key("job/12/log"), "no")
        await client.put(ctx.key("job/7"), "yes")
        event = await anext(events)
    assert event.kv.key == ctx.key("job/7").encode()
    with pytest.raises(TypeError):
        async with watch_matching(client, ctx.prefix, 42):  # type: ignore[arg-type]
            pass


@row("etcd3py.watch_once")
async def watch_once_by_pattern(ctx: Ctx) -> None:
    client = ctx.client
    pattern = re.compile(re.escape(ctx.prefix).encode() + rb"done/")
    with anyio.move_on_after(SHORT) as scope:  # etcd3-py returns None on timeout
        async with watch_matching(client, ctx.prefix, pattern) as events:
            await anext(events)
    assert scope.cancelled_caught
    with anyio.fail_after(5):
        async with watch_matching(
            client, ctx.prefix, pattern, filters=[Filter.NO_DELETE]
        ) as events:
            await client.put(ctx.key("todo/1"), "x")
            await client.put(ctx.key("done/1"), "x")
            event = await anext(events)
    assert event.kv.key == ctx.key("done/1").encode()


# ------------------------------------------------------------------------ elections


@row("etcetra.election_campaign")
async def election_campaign(ctx: Ctx) -> None:
    election = ctx.client.election(ctx.key("election"))
    async with election.campaign(b"node-1", ttl=10) as leadership:
        leader = await election.leader()
        assert leader is not None
        assert (leader.key, leader.value) == (leadership.key, b"node-1")
        with pytest.raises(TimeoutError), anyio.fail_after(SHORT):
            async with election.campaign(b"node-2", ttl=10):
                pytest.fail("two leaders")
    # The v3election service: the server runs the campaign, with the caller's lease.
    client, name = ctx.client, ctx.key("raw")
    with pytest.raises(ValueError, match="lease"):
        await client.election_campaign(name, "v", lease=0)
    async with (
        client.lease(10) as first,
        client.lease(10) as second,
        client.watch(name + "/", prefix=True) as events,
    ):
        won = await client.election_campaign(name, "node-1", lease=first)
        assert won == etcdanyio.LeaderKey(
            name.encode(), b"%s/%x" % (name.encode(), first.id), won.revision, first.id
        )
        assert (await anext(events)).kv.key == won.key
        kv = await client.election(name).leader()  # the recipe sees the same election
        assert kv is not None
        assert (kv.key, kv.value, kv.create_revision) == (won.key, b"node-1", won.revision)
        # A second candidate waits; cancelling its wait withdraws it on the server.
        async with anyio.create_task_group() as tg:

            async def candidate() -> None:
                await client.election_campaign(name, "node-2", lease=second)
                pytest.fail("two leaders")  # pragma: no cover

            tg.start_soon(candidate)
            waiting = await anext(events)
            assert waiting.kv.lease == second.id
            tg.cancel_scope.cancel()
        withdrawn = await anext(events)
        assert (withdrawn.type, withdrawn.kv.key) == (EventType.DELETE, waiting.kv.key)
        await client.election_resign(won)
        assert await client.election_leader(name) is None


@row("etcetra.election_proclaim")
async def election_proclaim(ctx: Ctx) -> None:
    election = ctx.client.election(ctx.key("election"))
    async with election.campaign(b"v1", ttl=10) as leadership:
        await leadership.proclaim(b"v2")
        leader = await election.leader()
        assert leader is not None
        assert leader.value == b"v2"
    client, name = ctx.client, ctx.key("raw")
    async with client.lease(10) as lease:
        key = await client.election_campaign(name, "v1", lease=lease)
        await client.election_proclaim(key, "v2")
        current = await client.election_leader(name)
        assert current is not None
        assert (current.key, current.value) == (key.key, b"v2")
        await client.election_resign(key)
        with pytest.raises(etcdanyio.ElectionNotLeaderError) as lost:
            await client.election_proclaim(key, "v3")
        assert lost.value.message == "election: not leader"
        with pytest.raises(TypeError, match="LeaderKey"):
            await client.election_proclaim(key.key, "v3")  # type: ignore[arg-type]


@row("etcetra.election_resign")
async def election_resign(ctx: Ctx) -> None:
    election = ctx.client.election(ctx.key("election"))
    async with election.campaign(b"v1", ttl=10) as leadership:
        await leadership.resign()
        assert await election.leader() is None
        with pytest.raises(etcdanyio.NotLeaderError):
            await leadership.proclaim(b"v2")
    client, name = ctx.client, ctx.key("raw")
    async with client.lease(10) as lease:
        key = await client.election_campaign(name, "v1", lease=lease)
        await client.election_resign(key)
        assert await client.election_leader(name) is None
        assert not await client.get_prefix(name + "/")  # its key is gone
        await client.election_resign(key)  # resigning again does nothing


@row("etcetra.election_leader")
async def election_leader(ctx: Ctx) -> None:
    election = ctx.client.election(ctx.key("election"))
    assert await election.leader() is None
    async with election.campaign(b"v1", ttl=10) as leadership:
        leader = await election.leader()
        assert leader is not None
        assert leader.value == b"v1"
        raw = await ctx.client.election_leader(ctx.key("election"))  # the Leader RPC
        assert raw == leader
        assert raw.key == leadership.key
    assert await election.leader() is None
    assert await ctx.client.election_leader(ctx.key("election")) is None


@row("etcetra.election_observe")
async def election_observe(ctx: Ctx) -> None:
    election = ctx.client.election(ctx.key("election"))
    async with election.observe() as leaders:
        assert await anext(leaders) is None
        async with election.campaign(b"v1", ttl=10) as leadership:
            first = await anext(leaders)
            assert first is not None
            assert first.value == b"v1"
            await leadership.proclaim(b"v2")
            second = await anext(leaders)
            assert second is not None
            assert second.value == b"v2"
        assert await anext(leaders) is None
    client, name = ctx.client, ctx.key("raw")
    async with client.lease(10) as lease:
        key = await client.election_campaign(name, "v1", lease=lease)
        async with client.election_observe(name) as observed:  # the Observe RPC
            assert (await anext(observed)).value == b"v1"
            await client.election_proclaim(key, "v2")
            changed = await anext(observed)
            assert (changed.key, changed.value) == (key.key, b"v2")
        await client.election_resign(key)


# ------------------------------------------------------------- cluster, maintenance


@row("gw.members", "aetcd.members", "etcd3.members")
async def members(ctx: Ctx) -> None:
    [member] = await ctx.client.members()
    assert member.client_urls == ctx.etcd_server.endpoints
    assert member.peer_urls
    assert member.name == "m0"
    assert not member.is_learner


@row("gw.status", "aetcd.status", "etcd3.status")
async def status(ctx: Ctx) -> None:
    status = await ctx.client.status()
    assert status.version.startswith("3.")
    assert status.db_size > 0
    assert status.raft_index > 0
    assert status.raft_term > 0
    by_id = {m.id: m for m in await ctx.client.members()}
    assert status.leader in by_id  # the leader is an ID: look the member up
    leader = await ctx.client.leader()  # or ask for it as a Member
    assert leader == by_id[status.leader]
    assert leader.name == "m0"
    assert await ctx.client.leader(ctx.etcd_server.endpoint) == leader


@row("aetcd.member_add", "etcd3.member_ops", "etcd3py.cluster")
async def member_add_update_remove(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        # A learner: it does not count towards the quorum of the one-member scratch cluster.
        added = await client.member_add([f"http://127.0.0.1:{_free_port()}"], learner=True)
        try:
            assert added.member.is_learner
            assert added.member.id in {m.id for m in added.members}
            new_url = f"http://127.0.0.1:{_free_port()}"
            updated = await client.member_update(added.member.id, [new_url])
            assert [m.peer_urls for m in updated if m.id == added.member.id] == [[new_url]]
            assert await client.alarms(added.member.id) == []  # python-etcd3's active_alarms()
        finally:
            left = await client.member_remove(added.member.id)
        assert added.member.id not in {m.id for m in left}


@row("aetcd.member_remove")
async def member_remove(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        added = await client.member_add([f"http://127.0.0.1:{_free_port()}"], learner=True)
        await client.member_remove(added.member.id)
        assert added.member.id not in {m.id for m in await client.members()}
        with pytest.raises(etcdanyio.MemberNotFoundError):
            await client.member_remove(added.member.id)


@row("aetcd.member_update")
async def member_update(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        added = await client.member_add([f"http://127.0.0.1:{_free_port()}"], learner=True)
        try:
            url = f"http://127.0.0.1:{_free_port()}"
            await client.member_update(added.member.id, [url])
            [member] = [m for m in await client.members() if m.id == added.member.id]
            assert member.peer_urls == [url]
        finally:
            await client.member_remove(added.member.id)


@row("aetcd.compact", "etcd3.compact", "etcd3py.compact")
async def compact(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        first = (await client.put(ctx.key("a"), "1")).header.revision
        second = (await client.put(ctx.key("a"), "2")).header.revision
        await client.compact(second, physical=True)
        with pytest.raises(CompactedError):
            await client.get(ctx.key("a"), revision=first)
        async with client.watch(ctx.key("a"), start_revision=first) as events:
            with pytest.raises(WatchCompactedError) as caught:
                await anext(events)
        assert caught.value.compact_revision == second


@row("aetcd.defragment", "etcd3.defragment")
async def defragment(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        await client.defragment()
        status = await client.status()
        assert status.db_size_in_use <= status.db_size


@row("aetcd.hash", "etcd3.hash")
async def hashes(ctx: Ctx) -> None:
    assert isinstance(await ctx.client.hash(), int)
    revision = (await ctx.client.put(ctx.key("a"), "1")).header.revision
    one = await ctx.client.hash_kv(revision)
    two = await ctx.client.hash_kv(revision)
    assert one.hash == two.hash


async def _nospace_drill(client: Client, key: str) -> None:
    member = (await client.status()).member_id
    try:
        assert await client.alarm_activate(member, AlarmType.NOSPACE) == [
            etcdanyio.Alarm(member, AlarmType.NOSPACE)
        ]
        assert etcdanyio.Alarm(member, AlarmType.NOSPACE) in await client.alarms()
        assert await client.alarms(member, AlarmType.NOSPACE) == [
            etcdanyio.Alarm(member, AlarmType.NOSPACE)
        ]
        assert await client.alarms(member_id=member, alarm="corrupt") == []
        assert await client.alarms(member_id=member + 1) == []
        with pytest.raises(NoSpaceError):
            await client.put(key, "v")
        assert not (await client.health()).healthy
    finally:
        disarmed = await client.alarm_disarm(member, AlarmType.NOSPACE)
    assert disarmed == [etcdanyio.Alarm(member, AlarmType.NOSPACE)]
    assert await client.alarms() == []
    await client.put(key, "v")


@row("aetcd.alarm_create", "aetcd.alarm_list", "aetcd.alarm_disarm", "etcd3.alarms")
@row("etcd3py.alarms")
async def alarms(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        await _nospace_drill(client, ctx.key("a"))
        with pytest.raises(ValueError, match="must not be 0"):
            await client.alarm_activate(0)


@row("aetcd.snapshot", "etcd3.snapshot", "etcd3py.maintenance")
async def snapshot(ctx: Ctx) -> None:
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        await client.put(ctx.key("a"), "1")
        sink = io.BytesIO()
        size = await client.snapshot(sink)
        assert size == len(sink.getvalue()) > 0
        assert isinstance(await client.hash(), int)
        await client.defragment()
        assert (await client.status()).db_size > 0


@row("etcd3py.version")
async def version(ctx: Ctx) -> None:
    result = await ctx.client.version()
    assert result.server == (await ctx.client.status()).version
    assert result.cluster.startswith(result.server.rsplit(".", 1)[0])


@row("etcd3py.health")
async def health(ctx: Ctx) -> None:
    assert (await ctx.client.http_health()).healthy
    assert (await ctx.client.health()).healthy
    async with etcdanyio.open_etcd(ctx.scratch.endpoints) as client:
        member = (await client.status()).member_id
        await client.alarm_activate(member, AlarmType.NOSPACE)
        try:
            result = await client.http_health()
            assert not result.healthy
            assert "NOSPACE" in result.reason
        finally:
            await client.alarm_disarm(member, AlarmType.NOSPACE)


@row("etcd3py.metrics")
async def metrics(ctx: Ctx) -> None:
    text = await ctx.client.metrics()
    assert re.search(r"^etcd_server_has_leader 1$", text, re.MULTILINE)
    assert "etcd_server_has_leader" in await ctx.client.metrics(ctx.etcd_server.endpoint)


# --------------------------------------------------------------------------- errors


@row("etcd3py.errors", "etcetra.errors")
async def typed_errors(ctx: Ctx) -> None:
    client = ctx.client
    with pytest.raises(FutureRevisionError) as future:
        await client.get(ctx.key("a"), revision=2**62)
    assert future.value.message == "etcdserver: mvcc: required revision is a future revision"
    assert future.value.status is Status.OUT_OF_RANGE
    with pytest.raises(LeaseNotFoundError) as missing:
        await client.lease_revoke(0x7FFF_FFFF_FFFF_0001)
    assert missing.value.message == "etcdserver: requested lease not found"
    assert isinstance(missing.value, etcdanyio.LeaseError)  # the family of lease errors
    assert isinstance(missing.value, RpcError)
    assert isinstance(missing.value, EtcdError)
    # A real error survives pickling (to cross a process boundary) with its fields.
    again = pickle.loads(pickle.dumps(missing.value))
    assert type(again) is LeaseNotFoundError
    assert (again.status, again.message, again.applied) == (
        Status.NOT_FOUND,
        "etcdserver: requested lease not found",
        missing.value.applied,
    )
    with pytest.raises(etcdanyio.UserNotFoundError) as user:
        await client.user_get(f"nobody-{uuid.uuid4().hex}")
    assert isinstance(user.value, etcdanyio.AuthError)
    assert user.value.message == "etcdserver: user name not found"
    with pytest.raises(etcdanyio.KeyNotFoundError):
        await client.put(ctx.key("absent"), ignore_value=True)


@row("aetcd.errors", "etcd3.errors")
async def errors_and_timeouts(ctx: Ctx) -> None:
    client = ctx.client
    grant = await client.lease_grant(10)
    try:
        with pytest.raises(etcdanyio.LeaseExistsError) as duplicate:
            await client.lease_grant(10, id=grant.id)
        assert duplicate.value.message == "etcdserver: lease already exists"
        assert duplicate.value.applied is False
    finally:
        await client.lease_revoke(grant.id)
    with pytest.raises(TimeoutError), anyio.fail_after(SHORT):
        await client.watch_once(ctx.key("never"))
    async with etcdanyio.open_etcd(f"127.0.0.1:{_free_port()}", connect_timeout=1) as nowhere:
        with pytest.raises(ConnectionFailedError) as failed:
            await nowhere.get("k")
        assert failed.value.applied is False


# ---------------------------------------------------------------- the document itself

_ID = re.compile(r"`([a-z0-9]+\.[a-z0-9_]+)`")


def document_rows() -> list[str]:
    """The test ID in the last column of every table row of docs/migrating.md, in order."""
    ids: list[str] = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[-1] == "test":
            continue  # a header row
        match = _ID.fullmatch(cells[-1])
        assert match, f"a table row of {DOC.name} without a test ID in its last column: {line}"
        ids.append(match.group(1))
    return ids


def test_every_row_has_a_test() -> None:
    ids = document_rows()
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"rows listed twice in {DOC.name}: {duplicates}"
    assert sorted(set(ids) - set(ROWS)) == [], "rows without a test"
    assert sorted(set(ROWS) - set(ids)) == [], "tests without a row"


# ---------------------------------------------------------------- staying synchronous


def _sync_client(ctx: Ctx) -> etcdanyio.sync.Client:
    return etcdanyio.sync.Client(ctx.etcd_server.endpoints, timeout=5)


@row("gw.sync", "etcd3py.sync", "etcd3.sync")
async def sync_client(ctx: Ctx) -> None:
    def blocking() -> None:
        client = _sync_client(ctx)
        try:
            client.put(ctx.key("a"), "1")
            kv = client.get(ctx.key("a"))
            assert kv is not None
            assert kv.value == b"1"
            with client.lease(10) as lease:
                client.put(ctx.key("leased"), "v", lease=lease)
            assert client.get(ctx.key("leased")) is None  # revoked with the block
            with client.lock(ctx.key("lock"), ttl=10, timeout=5) as lock:
                assert client.txn(compare=[lock.is_owner()]).succeeded
            with pytest.raises(TimeoutError):
                client.watch_once(ctx.key("never"), timeout=SHORT)
        finally:
            client.close()
        client.close()  # idempotent

    await anyio.to_thread.run_sync(blocking)
    kv = await ctx.client.get(ctx.key("a"))  # the async client sees the same data
    assert kv is not None


@row("etcd3py.sync_callback", "etcd3.sync_watch_callback")
async def sync_watch_callback(ctx: Ctx) -> None:
    def blocking() -> list[bytes]:
        seen: list[bytes] = []
        second = threading.Event()

        def callback(event: etcdanyio.Event) -> None:
            seen.append(event.kv.value)
            if len(seen) == 2:
                second.set()

        with etcdanyio.sync.open_etcd(ctx.etcd_server.endpoints, timeout=5) as client:
            watch_id = client.add_watch_prefix_callback(ctx.key(""), callback)
            client.put(ctx.key("a"), "1")
            client.put(ctx.key("b"), "2")
            assert second.wait(ROW_TIMEOUT / 2)
            client.cancel_watch(watch_id)
        return seen

    assert await anyio.to_thread.run_sync(blocking) == [b"1", b"2"]


# ------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def _frozen_heap() -> Iterator[None]:
    """
    The leak check collects garbage twice per test, and each full collection walks the whole
    heap (~70 ms here): over 300 rows that is most of the run. Freeze what exists before this
    module's tests so that collections walk only what the tests allocate (which is what the
    leak check needs collected), and unfreeze afterwards.
    """
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def scratch() -> Iterator[EtcdServer]:
    """A member of this module's own, for rows that change cluster-wide state."""
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    """A member serving clients over mutual TLS, with a trustme CA."""
    directory = tmp_path_factory.mktemp("parity-tls")
    ca = trustme.CA()
    ca_file = str(directory / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    files: list[str] = []
    for name, identity in (("server", "127.0.0.1"), ("client", "etcdanyio-parity")):
        leaf = ca.issue_cert(identity)
        files += [str(directory / f"{name}.pem"), str(directory / f"{name}.key")]
        leaf.cert_chain_pems[0].write_to_path(files[-2])
        leaf.private_key_pem.write_to_path(files[-1])
    server_files = TLSFiles(
        files[0],
        files[1],
        ca_file,
        client_cert_auth=True,
        client_cert_file=files[2],
        client_key_file=files[3],
    )
    with EtcdServer(tls=server_files) as server:
        yield Tls(server, ca_file, files[2], files[3])


@pytest.mark.parametrize("row_id", sorted(ROWS))
async def test_row(row_id: str, etcd_server: EtcdServer, scratch: EtcdServer, tls: Tls) -> None:
    with anyio.fail_after(ROW_TIMEOUT):
        async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
            prefix = f"test_parity/{row_id}/{uuid.uuid4().hex}/"
            await ROWS[row_id](Ctx(client, prefix, etcd_server, scratch, tls))

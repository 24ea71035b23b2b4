"""
Authentication against real etcd (reliability.md §2.6 S40-S43, §2.7, §2.8).

One member for the module, with etcd's default simple tokens, ``--auth-token-ttl 2`` (a token
idle for 2 s is forgotten by etcd's 1 s sweep, so after 3.5 s it is certainly gone) and
``--bcrypt-cost 4`` (a fast Authenticate). The module sets up ``root`` and a limited user, whose
role may read and write ``allowed/`` only, through etcdanyio, then enables auth. A second member
with JWT tokens (which carry the auth store's revision) provokes ``auth: revision in header is
old`` for real.

Covered: every Auth RPC and its effect on what a user may do (key, prefix, range; revoke; delete;
change password); token expiry with exactly one shared re-authentication (S40), counted by
wrapping ``Core.authenticate``; watches and lease keepalives across token expiry and a broken
connection (S41); typed, unretried permission errors (S42); a wrong password that never leaks
(S43); the auth-store-revision path; the retry logic over every message of ``REAUTHENTICATE``;
etcdctl as an independent oracle. Waiting out the token TTL is the only sleep: it is the fault.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import json
import logging
import re
import sys
import traceback
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import etcdanyio
from etcdanyio import (
    AuthenticationError,
    EtcdError,
    InvalidAuthTokenError,
    Permission,
    PermissionDeniedError,
    RolePermission,
    RpcError,
    Status,
    txn,
)
from etcdanyio._core import Core, Credentials
from etcdanyio._error_table import REAUTHENTICATE
from etcdanyio._grpc import GrpcError
from etcdanyio.testing import EtcdProcessError, EtcdServer

from ._kit.faultproxy import FaultProxy, open_fault_proxy

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from contextlib import AbstractAsyncContextManager
    from pathlib import Path

    from etcdanyio.client import Client

pytestmark = pytest.mark.integration

TOKEN_TTL = 2
#: idle time after which a simple token has certainly expired: TTL + etcd's 1 s sweep + margin
EXPIRED = TOKEN_TTL + 1.5
SERVER_ARGS = [
    *("--auth-token", "simple", "--auth-token-ttl", str(TOKEN_TTL)),
    *("--bcrypt-cost", "4"),
]

ROOT_PASSWORD = f"root-{uuid.uuid4().hex}"
LIMITED = "limited"
LIMITED_PASSWORD = f"limited-{uuid.uuid4().hex}"
LIMITED_ROLE = "limited-role"
#: the limited role may read and write this prefix, nothing else
ALLOWED = "allowed/"
FORBIDDEN = "forbidden/"

PERMISSION_DENIED = "etcdserver: permission denied"
BAD_CREDENTIALS = "etcdserver: authentication failed, invalid user ID or password"
#: etcd 3.5.20+ / main, and etcd 3.4 and 3.5.1 (code UNKNOWN)
OLD_AUTH_REVISION = {"etcdserver: revision of auth store is old", "auth: revision in header is old"}
PUT = "/etcdserverpb.KV/Put"


# ------------------------------------------------------------------------------------ servers


async def _set_up_auth(endpoint: str) -> None:
    """``root`` (role ``root``), the limited user and role, then auth on: all through etcdanyio."""
    async with etcdanyio.open_etcd(endpoint) as client:
        await client.user_add("root", ROOT_PASSWORD)
        await client.user_grant_role("root", "root")
        await client.role_add(LIMITED_ROLE)
        await client.role_grant_permission(
            LIMITED_ROLE, ALLOWED, prefix=True, permission=Permission.READWRITE
        )
        await client.user_add(LIMITED, LIMITED_PASSWORD)
        await client.user_grant_role(LIMITED, LIMITED_ROLE)
        await client.auth_enable()


@contextlib.contextmanager
def _serve_with_auth(server: EtcdServer) -> Iterator[EtcdServer]:
    with server:
        # In a thread of its own: no event loop of the test runner is in the way.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(anyio.run, _set_up_auth, server.endpoint).result(timeout=30)
        yield server


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    with _serve_with_auth(EtcdServer(extra_args=SERVER_ARGS)) as server:
        yield server


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """A member with JWT tokens: each token carries the auth store revision it was issued at."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    directory: Path = tmp_path_factory.mktemp("jwt")
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = directory / "jwt.key", directory / "jwt.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    token = f"jwt,pub-key={public},priv-key={private},sign-method=ES256,ttl=10m"
    args = ["--auth-token", token, "--bcrypt-cost", "4"]
    with _serve_with_auth(EtcdServer(extra_args=args)) as server:
        yield server


# ------------------------------------------------------------------------------------ helpers


@contextlib.asynccontextmanager
async def _fault_proxy(target: str) -> AsyncIterator[FaultProxy]:
    """``open_fault_proxy``, re-raising what the block raised as itself, not in a group."""
    try:
        async with open_fault_proxy(target) as proxy:
            yield proxy
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group
        raise


def _tag() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix the limited user may use."""
    return f"{ALLOWED}{_tag()}/"


def _as_root(server: EtcdServer) -> AbstractAsyncContextManager[Client]:
    return etcdanyio.open_etcd(server.endpoint, username="root", password=ROOT_PASSWORD)


def _as_limited(endpoint: str) -> AbstractAsyncContextManager[Client]:
    return etcdanyio.open_etcd(endpoint, username=LIMITED, password=LIMITED_PASSWORD)


class AuthCounter:
    """Every Authenticate RPC (``Core.authenticate``) and every re-authentication request."""

    def __init__(self) -> None:
        self.authenticated: list[Core] = []
        self.reauthenticate_requests: list[Core] = []

    def of(self, client: Client) -> int:
        """How many times ``client`` authenticated (opening it counts once)."""
        return sum(c is client._core for c in self.authenticated)

    def requests_of(self, client: Client) -> int:
        """How many calls of ``client`` asked for a re-authentication (a stale token)."""
        return sum(c is client._core for c in self.reauthenticate_requests)


@pytest.fixture
def auth_counter(monkeypatch: pytest.MonkeyPatch) -> AuthCounter:
    counter = AuthCounter()
    authenticate, reauthenticate = Core.authenticate, Core.reauthenticate

    async def counting_authenticate(self: Core) -> None:
        counter.authenticated.append(self)
        await authenticate(self)

    async def counting_reauthenticate(self: Core, stale: bytes) -> None:
        counter.reauthenticate_requests.append(self)
        await reauthenticate(self, stale)

    monkeypatch.setattr(Core, "authenticate", counting_authenticate)
    monkeypatch.setattr(Core, "reauthenticate", counting_reauthenticate)
    return counter


_HANDLED = re.compile(
    r'grpc_server_handled_total\{grpc_code="(\w+)",grpc_method="(\w+)",.*\} (\S+)'
)


def _handled(server: EtcdServer) -> dict[tuple[str, str], int]:
    """``(method, code) -> count`` of finished gRPC calls, from the member's /metrics."""
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(m[2], m[1]): int(float(m[3])) for m in _HANDLED.finditer(text)}


async def _ahandled(server: EtcdServer) -> dict[tuple[str, str], int]:
    return await anyio.to_thread.run_sync(_handled, server)


async def _etcdctl(server: EtcdServer, *args: str) -> str:
    """etcdctl as ``root``: the independent oracle."""
    run = functools.partial(server.etcdctl, "--user", f"root:{ROOT_PASSWORD}", *args)
    return await anyio.to_thread.run_sync(run)


async def _etcdctl_kvs(server: EtcdServer, key: str, *flags: str) -> list[dict[str, object]]:
    reply = json.loads(await _etcdctl(server, "get", key, *flags, "-w", "json"))
    kvs: list[dict[str, object]] = reply.get("kvs", [])
    for kv in kvs:
        for field in ("key", "value"):
            kv[field] = base64.b64decode(str(kv.get(field, "")))
    return kvs


async def _take(events: etcdanyio.Watch, count: int) -> list[tuple[bytes, bytes, int]]:
    """The next ``count`` events as ``(key, value, mod_revision)``."""
    got: list[tuple[bytes, bytes, int]] = []
    async for event in events:
        got.append((event.kv.key, event.kv.value, event.kv.mod_revision))
        if len(got) == count:
            break
    return got


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything in its ``__cause__``/``__context__`` chain."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
    return seen


def _assert_permission_denied(exc: BaseException) -> None:
    assert type(exc) is PermissionDeniedError, repr(exc)
    assert exc.message == PERMISSION_DENIED
    assert exc.status is Status.PERMISSION_DENIED
    assert exc.applied is False


# --------------------------------------------------------------------- Auth RPCs: users, roles


def test_credentials_hide_the_password() -> None:
    credentials = Credentials("someone", "hunter2-secret")
    assert "hunter2-secret" not in repr(credentials)
    assert "hunter2-secret" not in str(credentials)
    assert "someone" in repr(credentials)


async def test_auth_status_after_setup(server: EtcdServer) -> None:
    with anyio.fail_after(5):
        async with _as_root(server) as root:
            status = await root.auth_status()
            assert status.enabled is True
            assert status.auth_revision > 0
            assert status.header.revision > 0
            assert {"root", LIMITED} <= set(await root.user_list())
            assert LIMITED_ROLE in await root.role_list()  # etcd does not list "root"
            assert await root.user_get("root") == ["root"]
            assert await root.user_get(LIMITED) == [LIMITED_ROLE]
            assert await root.role_get(LIMITED_ROLE) == [
                RolePermission(Permission.READWRITE, ALLOWED.encode(), b"allowed0")
            ]
            # etcdctl reads the same auth store.
            role = await _etcdctl(server, "role", "get", LIMITED_ROLE)
            assert f"[{ALLOWED}, allowed0) (prefix {ALLOWED})" in role


async def test_roles_and_permissions_by_key_prefix_and_range(server: EtcdServer) -> None:
    tag = _tag()
    role, user, password = f"role-{tag}", f"user-{tag}", f"pw-{tag}"
    base = f"perm/{tag}/"
    key, pfx, start, end = f"{base}k", f"{base}p/", f"{base}ra", f"{base}rm"
    with anyio.fail_after(10):
        async with _as_root(server) as root:
            revision = (await root.auth_status()).auth_revision
            await root.role_add(role)
            assert role in await root.role_list()
            assert await root.role_get(role) == []
            assert (await root.auth_status()).auth_revision > revision

            await root.role_grant_permission(role, key, permission=Permission.READ)
            await root.role_grant_permission(role, pfx, prefix=True, permission=Permission.WRITE)
            await root.role_grant_permission(role, start, end=end, permission="readwrite")
            assert set(await root.role_get(role)) == {
                RolePermission(Permission.READ, key.encode(), b""),
                RolePermission(Permission.WRITE, pfx.encode(), f"{base}p0".encode()),
                RolePermission(Permission.READWRITE, start.encode(), end.encode()),
            }
            shown = await _etcdctl(server, "role", "get", role)
            assert shown.startswith(f"Role {role}\n")
            read, write = shown.split("KV Write:")
            assert f"\t{key}\n" in read
            assert f"[{start}, {end})" in read
            assert pfx not in read
            assert f"[{pfx}, {base}p0) (prefix {pfx})" in write
            assert f"[{start}, {end})" in write

            await root.user_add(user, password)
            await root.user_grant_role(user, role)
            assert await root.user_get(user) == [role]

            async with etcdanyio.open_etcd(
                server.endpoint, username=user, password=password
            ) as client:
                # key: read only
                assert await client.get(key) is None
                with pytest.raises(PermissionDeniedError) as caught:
                    await client.put(key, "x")
                _assert_permission_denied(caught.value)
                # prefix: write only
                await client.put(f"{pfx}a", "written")
                with pytest.raises(PermissionDeniedError):
                    await client.get(f"{pfx}a")
                with pytest.raises(PermissionDeniedError):  # just past the prefix
                    await client.put(f"{base}p0", "x")
                # range [start, end): read and write, the end excluded
                await client.put(f"{base}rb", "in range")
                kv = await client.get(f"{base}rb")
                assert kv is not None
                assert kv.value == b"in range"
                for outside in (end, f"{base}r", f"{base}rz"):
                    with pytest.raises(PermissionDeniedError):
                        await client.put(outside, "x")
                # etcdctl (as root) sees what the user wrote.
                assert await _etcdctl(server, "get", f"{pfx}a", "--print-value-only") == (
                    "written\n"
                )

                # Revoking exactly the range takes it away, at once.
                await root.role_revoke_permission(role, start, end=end)
                assert RolePermission(Permission.READWRITE, start.encode(), end.encode()) not in (
                    await root.role_get(role)
                )
                with pytest.raises(PermissionDeniedError):
                    await client.get(f"{base}rb")
                await root.role_revoke_permission(role, pfx, prefix=True)
                with pytest.raises(PermissionDeniedError):
                    await client.put(f"{pfx}a", "x")
                assert await root.role_get(role) == [
                    RolePermission(Permission.READ, key.encode(), b"")
                ]

                # Revoking the role from the user takes the rest away.
                await root.user_revoke_role(user, role)
                assert await root.user_get(user) == []
                with pytest.raises(PermissionDeniedError):
                    await client.get(key)
                await root.user_grant_role(user, role)
                assert await client.get(key) is None

                # Deleting the role also takes it from its users.
                await root.role_delete(role)
                assert role not in await root.role_list()
                assert await root.user_get(user) == []
                with pytest.raises(PermissionDeniedError):
                    await client.get(key)

                # Errors name etcd's reason verbatim.
                with pytest.raises(RpcError) as missing:
                    await root.role_get(role)
                assert missing.value.message == "etcdserver: role name not found"
                assert missing.value.status is Status.FAILED_PRECONDITION
                with pytest.raises(RpcError) as not_granted:
                    await root.role_revoke_permission(LIMITED_ROLE, f"{base}nothing")
                assert not_granted.value.message == (
                    "etcdserver: permission is not granted to the role"
                )
            await root.user_delete(user)


async def test_users(server: EtcdServer) -> None:
    tag = _tag()
    user, nopassword = f"user-{tag}", f"cert-only-{tag}"
    with anyio.fail_after(10):
        async with _as_root(server) as root:
            await root.user_add(user, f"pw-{tag}")
            await root.user_add(nopassword, None)  # TLS client certificates only
            users = await root.user_list()
            assert {user, nopassword} <= set(users)
            assert users == sorted(users)
            assert await root.user_get(user) == []
            assert await root.user_get(nopassword) == []

            await root.user_grant_role(user, LIMITED_ROLE)
            assert await root.user_get(user) == [LIMITED_ROLE]
            with pytest.raises(RpcError) as unknown_role:
                await root.user_grant_role(user, f"no-such-role-{tag}")
            assert unknown_role.value.message == "etcdserver: role name not found"
            with pytest.raises(RpcError) as not_granted:
                await root.user_revoke_role(user, "root")
            assert not_granted.value.message == "etcdserver: role is not granted to the user"
            await root.user_revoke_role(user, LIMITED_ROLE)
            assert await root.user_get(user) == []

            with pytest.raises(RpcError) as duplicate:
                await root.user_add(user, "other")
            assert duplicate.value.message == "etcdserver: user name already exists"
            assert duplicate.value.status is Status.FAILED_PRECONDITION
            assert duplicate.value.applied is False

            # A user without a password cannot authenticate with one.
            with pytest.raises(EtcdError) as refused:
                async with etcdanyio.open_etcd(
                    server.endpoint, username=nopassword, password="guess"
                ):
                    pytest.fail("authenticated a user that has no password")
            assert "no password user" in refused.value.message

            await root.user_delete(user)
            await root.user_delete(nopassword)
            assert not {user, nopassword} & set(await root.user_list())
            with pytest.raises(RpcError) as deleted:
                await root.user_get(user)
            assert deleted.value.message == "etcdserver: user name not found"
            # A deleted user cannot log in.
            with pytest.raises(AuthenticationError):
                async with etcdanyio.open_etcd(
                    server.endpoint, username=user, password=f"pw-{tag}"
                ):
                    pytest.fail("a deleted user authenticated")


async def test_change_password(server: EtcdServer, prefix: str) -> None:
    tag = _tag()
    user, old, new = f"user-{tag}", f"old-{tag}", f"new-{tag}"
    with anyio.fail_after(10):
        async with _as_root(server) as root:
            await root.user_add(user, old)
            await root.user_grant_role(user, LIMITED_ROLE)
            async with etcdanyio.open_etcd(server.endpoint, username=user, password=old) as stale:
                await stale.put(f"{prefix}k", "before")
                await root.user_change_password(user, new)

                with pytest.raises(AuthenticationError) as caught:
                    async with etcdanyio.open_etcd(server.endpoint, username=user, password=old):
                        pytest.fail("the old password still works")
                assert type(caught.value) is AuthenticationError
                assert caught.value.message == BAD_CREDENTIALS
                assert all(old not in repr(e) and old not in str(e) for e in _chain(caught.value))

                async with etcdanyio.open_etcd(
                    server.endpoint, username=user, password=new
                ) as fresh:
                    await fresh.put(f"{prefix}k", "after")
                    kv = await fresh.get(f"{prefix}k")
                    assert kv is not None
                    assert kv.value == b"after"

                # etcd dropped the user's tokens: the open client's re-authentication with the
                # old password fails, typed, once (no loop).
                with pytest.raises(AuthenticationError) as stale_error:
                    await stale.get(f"{prefix}k")
                assert stale_error.value.message == BAD_CREDENTIALS
            await root.user_delete(user)
        assert await _etcdctl(server, "get", f"{prefix}k", "--print-value-only") == "after\n"


async def test_auth_disable_and_enable(server: EtcdServer, auth_counter: AuthCounter) -> None:
    key = f"open/{_tag()}"
    with anyio.fail_after(10):
        async with _as_root(server) as root:
            try:
                await root.auth_disable()
                async with etcdanyio.open_etcd(server.endpoint) as anonymous:
                    assert (await anonymous.auth_status()).enabled is False
                    await anonymous.put(key, "no auth needed")  # anyone may write now
                    await anonymous.auth_enable()
                    with pytest.raises(EtcdError):
                        await anonymous.get(key)
            finally:
                with anyio.move_on_after(5, shield=True):
                    await _ensure_auth_enabled(server)
            # Enabling auth dropped every token: root's next call re-authenticates once.
            before = auth_counter.of(root)
            assert (await root.auth_status()).enabled is True
            kv = await root.get(key)
            assert kv is not None
            assert kv.value == b"no auth needed"
            assert auth_counter.of(root) == before + 1


async def _ensure_auth_enabled(server: EtcdServer) -> None:
    """Whatever a test did, leave auth on for the others."""
    try:
        async with etcdanyio.open_etcd(server.endpoint) as anonymous:
            await anonymous.auth_enable()
    except EtcdError:
        pass


async def test_client_with_credentials_keeps_working_after_auth_disable(
    server: EtcdServer,
) -> None:
    key = f"open/{_tag()}"
    with anyio.fail_after(10):
        async with _as_root(server) as root:
            try:
                await root.auth_disable()
                await root.put(key, "v")
                assert (await root.auth_status()).enabled is False
            finally:
                with anyio.move_on_after(5, shield=True):
                    await _ensure_auth_enabled(server)


async def test_no_credentials_is_an_authentication_error(server: EtcdServer) -> None:
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as anonymous:
            with pytest.raises(AuthenticationError) as caught:
                await anonymous.get(f"{ALLOWED}x")
            assert caught.value.message == "etcdserver: user name is empty"
            assert caught.value.applied is False


# ------------------------------------------------------------------- S40: token expiry, re-auth


async def test_token_expiry_reauthenticates_exactly_once(
    server: EtcdServer, prefix: str, auth_counter: AuthCounter
) -> None:
    """S40: one idle client, then 20 concurrent tasks on another, each after one re-auth."""
    with anyio.fail_after(EXPIRED + 10):
        async with _as_limited(server.endpoint) as single, _as_limited(server.endpoint) as many:
            await single.put(f"{prefix}single", "0")
            await many.get(f"{prefix}x")
            assert auth_counter.of(single) == auth_counter.of(many) == 1
            assert auth_counter.reauthenticate_requests == []

            await anyio.sleep(EXPIRED)  # the fault: both tokens expire

            # A write is retried: etcd refused it before applying it.
            result = await single.put(f"{prefix}single", "1")
            assert auth_counter.of(single) == 2
            assert auth_counter.requests_of(single) == 1
            kv = await single.get(f"{prefix}single")
            assert kv is not None
            assert (kv.value, kv.version) == (b"1", 2)
            assert kv.mod_revision == result.header.revision

            # 20 tasks hit the expired token at once and share one re-authentication.
            got: dict[int, etcdanyio.KeyValue | None] = {}

            async def writer(i: int) -> None:
                await many.put(f"{prefix}w{i:02}", f"value {i}")

            async def reader(i: int) -> None:
                got[i] = await many.get(f"{prefix}single")

            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(writer, i)
                    tg.start_soon(reader, i)
            assert auth_counter.of(many) == 2, "exactly one re-authentication for 20 tasks"
            assert auth_counter.requests_of(many) > 1, "the tasks met the expired token together"
            assert all(kv is not None and kv.value == b"1" for kv in got.values())
            assert len(got) == 10

        # etcdctl: each write landed exactly once.
        kvs = await _etcdctl_kvs(server, f"{prefix}w", "--prefix")
        assert [(kv["key"], kv["value"], kv["version"]) for kv in kvs] == [
            (f"{prefix}w{i:02}".encode(), f"value {i}".encode(), 1) for i in range(10)
        ]


# ----------------------------------------------------- S41: watches and leases across expiry


async def test_watches_across_token_expiry(server: EtcdServer, prefix: str) -> None:
    """
    S41, for two clients whose tokens expire during the same wait: ``resumed`` loses its
    connection (proxy reset) and its watch must resume where it was; ``extended`` creates a
    second watch on its open Watch stream. Neither may see an error, a gap or a duplicate.
    """
    with anyio.fail_after(EXPIRED + 10):
        async with (
            _fault_proxy(server.endpoint) as proxy,
            _as_root(server) as root,  # writes straight to the member
            _as_limited(proxy.endpoint) as resumed,
            _as_limited(server.endpoint) as extended,
            resumed.watch(prefix, prefix=True) as events,
            extended.watch(prefix, prefix=True) as first,
        ):
            expected: list[tuple[bytes, bytes, int]] = []

            async def put(key: str, value: str) -> None:
                result = await root.put(key, value)
                expected.append((key.encode(), value.encode(), result.header.revision))

            for i in range(2):
                await put(f"{prefix}{i}", f"v{i}")
            assert await _take(events, 2) == expected
            assert await _take(first, 2) == expected

            await anyio.sleep(EXPIRED)  # the fault: both clients' tokens expire
            proxy.reset()
            for i in range(2, 5):  # written while the watch reconnects
                await put(f"{prefix}{i}", f"v{i}")
            assert await _take(events, 3) == expected[2:]  # no gap, no duplicate, no error
            assert proxy.accepted >= 2

            async with extended.watch(f"{prefix}k") as second:
                await put(f"{prefix}k", "v")
                assert await _take(second, 1) == expected[5:]
            assert await _take(first, 4) == expected[2:]


async def test_lease_and_keepalive_survive_token_expiry(
    server: EtcdServer, prefix: str, auth_counter: AuthCounter
) -> None:
    """A lease (TTL 2) held for 5 s while the token (TTL 2) expires and the connection breaks."""
    with anyio.fail_after(15):
        async with _fault_proxy(server.endpoint) as proxy, _as_limited(proxy.endpoint) as c:
            async with c.lease(ttl=2) as lease:
                assert lease.ttl == 2
                await c.put(f"{prefix}leased", "alive", lease=lease)
                await anyio.sleep(EXPIRED)  # the fault: the token expires; keepalives go on
                proxy.cut()  # the keepalive stream must reopen, with a stale token
                await anyio.sleep(5 - EXPIRED)
                assert lease.lost is None

                # The unary token is refreshed once, by whichever call meets it first.
                info = await lease.time_to_live(keys=True)
                assert info.ttl > 0
                assert info.granted_ttl == 2
                assert info.keys == [f"{prefix}leased".encode()]
                kv = await c.get(f"{prefix}leased")
                assert kv is not None
                assert (kv.value, kv.lease) == (b"alive", lease.id)
                await c.put(f"{prefix}second", "also", lease=lease)
                assert auth_counter.of(c) == 2
                assert proxy.accepted >= 2

                # etcdctl (as root) agrees with what the client wrote.
                kvs = await _etcdctl_kvs(server, prefix, "--prefix")
                assert [(kv["key"], kv["value"], kv["lease"]) for kv in kvs] == [
                    (f"{prefix}leased".encode(), b"alive", lease.id),
                    (f"{prefix}second".encode(), b"also", lease.id),
                ]
            # Revoked on exit: the keys went with it.
            assert (await c.get_prefix(prefix)).kvs == []


# ------------------------------------------------------------------ S42: permission denied


async def test_permission_denied_is_typed_and_not_retried(
    server: EtcdServer, prefix: str, auth_counter: AuthCounter
) -> None:
    """S42: get, put, delete, txn and watch outside the role's range."""
    key = f"{FORBIDDEN}{_tag()}"
    with anyio.fail_after(10):
        async with _as_limited(server.endpoint) as client:
            before = await _ahandled(server)
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "Range": lambda: client.get(key),
                "Put": lambda: client.put(key, "x"),
                "DeleteRange": lambda: client.delete(key),
                "Txn": lambda: client.txn(
                    compare=[txn.version(f"{prefix}k") == 0],
                    success=[txn.put(key, "x")],
                    failure=[],
                ),
            }
            for call in calls.values():
                with pytest.raises(PermissionDeniedError) as caught:
                    await call()
                _assert_permission_denied(caught.value)
            after = await _ahandled(server)
            for method in calls:  # each was sent once: not retried
                counted = after.get((method, "PermissionDenied"), 0)
                assert counted - before.get((method, "PermissionDenied"), 0) == 1, method
            assert auth_counter.of(client) == 1, "a denial is not a reason to re-authenticate"

            entered = False
            with pytest.raises(PermissionDeniedError) as watch_error:
                async with client.watch(FORBIDDEN, prefix=True):
                    entered = True
            assert not entered, "the body must not start"
            _assert_permission_denied(watch_error.value)

            # etcd cannot tell a stale token from a real denial on a watch create (#12385): one
            # re-authentication and one more create are allowed, no more.
            assert auth_counter.of(client) <= 2
            # The client, and its shared watch stream, still work where the role allows.
            async with client.watch(prefix, prefix=True) as events:
                result = await client.put(f"{prefix}k", "fine")
                assert await _take(events, 1) == [
                    (f"{prefix}k".encode(), b"fine", result.header.revision)
                ]
        # The denial is the server's, not the client's invention.
        with pytest.raises(EtcdProcessError, match="permission denied"):
            await anyio.to_thread.run_sync(
                functools.partial(server.etcdctl, "--user", f"{LIMITED}:{LIMITED_PASSWORD}"),
                "get",
                key,
            )


# ---------------------------------------------------------------------- S43: wrong password


@pytest.mark.parametrize("username", [LIMITED, "nobody-at-all"], ids=["known", "unknown"])
async def test_wrong_password_raises_and_never_leaks(
    server: EtcdServer,
    username: str,
    auth_counter: AuthCounter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = f"Wrong-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(5):
        before = await _ahandled(server)
        entered = False
        with pytest.raises(AuthenticationError) as caught:
            async with etcdanyio.open_etcd(server.endpoint, username=username, password=password):
                entered = True
        after = await _ahandled(server)
    assert not entered, "raised by open_etcd, before the body"
    error = caught.value
    assert type(error) is AuthenticationError
    assert error.message == BAD_CREDENTIALS
    assert error.status is Status.INVALID_ARGUMENT
    assert error.applied is False
    # Asked once, not retried.
    assert len(auth_counter.authenticated) == 1
    key = ("Authenticate", "InvalidArgument")
    assert after.get(key, 0) - before.get(key, 0) == 1

    chain = _chain(error)
    for exc in chain:
        assert password not in str(exc), repr(exc)
        assert password not in repr(exc), repr(exc)
        assert password not in repr(getattr(exc, "args", ()))
    assert password not in "".join(traceback.format_exception(error))
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + (record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(record.exc_info[1]))
        assert password not in text, record


# --------------------------------------------- auth store revision: real (JWT) and every message


async def test_old_auth_revision_reauthenticates_once(
    jwt_server: EtcdServer, auth_counter: AuthCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JWT token names the auth revision it was issued at: any auth change makes it stale."""
    prefix = f"{ALLOWED}{_tag()}/"
    with anyio.fail_after(10):
        async with _as_root(jwt_server) as root, _as_limited(jwt_server.endpoint) as client:
            seen: list[str] = []
            unary = client._core.channel.unary

            async def spying(path: str, request: bytes, **kwargs: Any) -> bytes:
                try:
                    return await unary(path, request, **kwargs)
                except GrpcError as exc:
                    seen.append(exc.message)
                    raise

            monkeypatch.setattr(client._core.channel, "unary", spying)
            first = await client.put(f"{prefix}k", "1")
            revision = (await root.auth_status()).auth_revision

            await root.role_add(f"bump-{_tag()}")  # the auth store moves on
            assert (await root.auth_status()).auth_revision > revision
            second = await client.put(f"{prefix}k", "2")  # a write: refused before apply
            assert len(seen) == 1
            assert seen[0] in OLD_AUTH_REVISION
            assert auth_counter.of(client) == 2

            await root.role_add(f"bump-{_tag()}")
            kv = await client.get(f"{prefix}k")
            assert kv is not None
            assert (kv.value, kv.version) == (b"2", 2)
            assert kv.create_revision == first.header.revision
            assert kv.mod_revision == second.header.revision
            assert len(seen) == 2
            assert seen[1] in OLD_AUTH_REVISION
            assert auth_counter.of(client) == 3


async def test_watch_created_after_auth_store_change(jwt_server: EtcdServer) -> None:
    prefix = f"{ALLOWED}{_tag()}/"
    with anyio.fail_after(10):
        async with _as_root(jwt_server) as root, _as_limited(jwt_server.endpoint) as client:
            await client.put(f"{prefix}k", "1")
            await root.role_add(f"bump-{_tag()}")  # the client's token is now stale
            async with client.watch(prefix, prefix=True) as events:
                result = await root.put(f"{prefix}k", "2")
                assert await _take(events, 1) == [
                    (f"{prefix}k".encode(), b"2", result.header.revision)
                ]


_MESSAGES = [
    pytest.param(Status.UNAUTHENTICATED, "etcdserver: invalid auth token", id="invalid-token"),
    pytest.param(
        Status.INVALID_ARGUMENT, "etcdserver: revision of auth store is old", id="old-3.5.20"
    ),
    pytest.param(Status.UNKNOWN, "auth: revision in header is old", id="old-3.5.1"),
    pytest.param(Status.INVALID_ARGUMENT, "etcdserver: user name is empty", id="no-token"),
]


def test_the_messages_cover_reauthenticate() -> None:
    assert {p.values[1] for p in _MESSAGES} == REAUTHENTICATE


class FlakyPut:
    """Stands in for ``Channel.unary``: the first ``failures`` Puts fail with one gRPC error."""

    def __init__(self, client: Client, status: Status, message: str, failures: int) -> None:
        self._unary = client._core.channel.unary
        self._error = (status, message)
        self._failures = failures
        #: the metadata (token) of every Put attempt
        self.attempts: list[bytes] = []

    async def __call__(
        self, path: str, request: bytes, *, metadata: bytes = b"", **kwargs: Any
    ) -> bytes:
        if path == PUT:
            self.attempts.append(metadata)
            if len(self.attempts) <= self._failures:
                raise GrpcError(*self._error)
        return await self._unary(path, request, metadata=metadata, **kwargs)


@pytest.mark.parametrize(("status", "message"), _MESSAGES)
async def test_each_reauthenticate_message_retries_once_with_a_fresh_token(
    server: EtcdServer,
    prefix: str,
    status: Status,
    message: str,
    auth_counter: AuthCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with anyio.fail_after(5):
        async with _as_limited(server.endpoint) as client:
            flaky = FlakyPut(client, status, message, failures=1)
            monkeypatch.setattr(client._core.channel, "unary", flaky)
            result = await client.put(f"{prefix}k", "once")
            assert auth_counter.of(client) == 2
            assert len(flaky.attempts) == 2
            assert flaky.attempts[1] != flaky.attempts[0], "retried with the new token"
            kv = await client.get(f"{prefix}k")
            assert kv is not None
            assert (kv.value, kv.version) == (b"once", 1)
            assert kv.mod_revision == result.header.revision


@pytest.mark.parametrize(
    ("status", "message"),
    [
        _MESSAGES[0],
        _MESSAGES[1],
        _MESSAGES[2],
        _MESSAGES[3],
    ],
)
async def test_reauthentication_is_tried_only_once(
    server: EtcdServer,
    prefix: str,
    status: Status,
    message: str,
    auth_counter: AuthCounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with anyio.fail_after(5):
        async with _as_limited(server.endpoint) as client:
            flaky = FlakyPut(client, status, message, failures=100)
            monkeypatch.setattr(client._core.channel, "unary", flaky)
            with pytest.raises(EtcdError) as caught:
                await client.put(f"{prefix}k", "never")
            assert auth_counter.of(client) == 2, "one re-authentication, no loop"
            assert len(flaky.attempts) == 2
            assert caught.value.message == message
            if message != "etcdserver: user name is empty":
                assert isinstance(caught.value, InvalidAuthTokenError)
            assert caught.value.applied is False
            assert await client.get(f"{prefix}k") is None

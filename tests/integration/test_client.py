"""The whole stack against a real etcd: client -> gRPC -> our HTTP/2 core -> etcd."""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import pytest

import etcdanyio
from etcdanyio.testing import EtcdServer

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> bytes:
    return f"test/{uuid.uuid4().hex}/".encode()


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


async def test_put_get_delete(client: etcdanyio.Client, prefix: bytes) -> None:
    put = await client.put(prefix + b"a", "hello")
    assert put.header.revision > 0
    kv = await client.get(prefix + b"a")
    assert kv is not None
    assert (kv.key, kv.value, kv.version) == (prefix + b"a", b"hello", 1)
    assert kv.create_revision == kv.mod_revision == put.header.revision

    again = await client.put(prefix + b"a", b"world", prev_kv=True)
    assert again.prev_kv is not None
    assert again.prev_kv.value == b"hello"

    listing = await client.get_prefix(prefix)
    assert [kv.value for kv in listing.kvs] == [b"world"]
    assert listing.count == 1

    deleted = await client.delete(prefix + b"a", prev_kv=True)
    assert deleted.deleted == 1
    assert deleted.prev_kvs[0].value == b"world"
    assert await client.get(prefix + b"a") is None


async def test_server_error_is_typed_and_verbatim(client: etcdanyio.Client) -> None:
    with pytest.raises(etcdanyio.FutureRevisionError) as info:
        await client.get("x", revision=2**62)
    assert info.value.message == "etcdserver: mvcc: required revision is a future revision"
    assert info.value.status is etcdanyio.Status.OUT_OF_RANGE
    assert info.value.applied is False


async def test_bad_input_raises_before_io(client: etcdanyio.Client) -> None:
    with pytest.raises(TypeError, match=r"key must be str or bytes, got 3\.5 \(float\)"):
        await client.put(3.5, "v")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key must not be empty"):
        await client.get("")
    with pytest.raises(ValueError, match="revision must not be negative"):
        await client.get("k", revision=-1)


async def test_64_tasks_200_puts_one_connection(client: etcdanyio.Client, prefix: bytes) -> None:
    await client.get("warm-up")
    connection = client._core.channel.connection
    assert connection is not None

    async def writer(task: int) -> None:
        for i in range(200):
            await client.put(prefix + b"%02d/%03d" % (task, i), b"v" * 64)

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for task in range(64):
                tg.start_soon(writer, task)

    result = await client.get_prefix(prefix, count_only=True)
    assert result.count == 64 * 200
    assert client._core.channel.connection is connection  # every call shared one connection
    await client.delete_prefix(prefix)


async def test_50_mib_range_streams_through_flow_control(
    client: etcdanyio.Client, prefix: bytes
) -> None:
    size = 1_250_000  # under etcd's 1.5 MiB request limit
    values = {prefix + b"%02d" % i: os.urandom(16) * (size // 16) for i in range(40)}
    with anyio.fail_after(60):
        for key, value in values.items():
            await client.put(key, value)
        result = await client.get_prefix(prefix)
    assert len(result.kvs) == 40
    assert sum(len(kv.value) for kv in result.kvs) == 40 * size  # ~50 MB in one response
    assert all(kv.value == values[kv.key] for kv in result.kvs)
    await client.delete_prefix(prefix)


class _RecordingProxy:
    """A loopback TCP proxy that keeps what the client sent."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.upstream = bytearray()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        async with listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._handle)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        async with client, await anyio.connect_tcp("127.0.0.1", self.target_port) as server:

            async def pump(
                source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream, record: bool
            ) -> None:
                try:
                    async for chunk in source:
                        if record:
                            self.upstream += chunk
                        await sink.send(chunk)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
                tg.cancel_scope.cancel()

            async with anyio.create_task_group() as tg:
                tg.start_soon(pump, client, server, True)
                tg.start_soon(pump, server, client, False)


async def test_fail_after_sends_grpc_timeout_and_raises_timeout_error() -> None:
    async with EtcdServer() as server:
        port = int(server.endpoint.rsplit(":", 1)[1])
        proxy = _RecordingProxy(port)
        async with anyio.create_task_group() as tg:
            proxy_port = await tg.start(proxy.serve)
            async with etcdanyio.open_etcd(f"127.0.0.1:{proxy_port}") as client:
                await client.put("k", "v")
                assert b"grpc-timeout" not in proxy.upstream
                server.pause()
                try:
                    with pytest.raises(TimeoutError):
                        with anyio.fail_after(0.5):
                            await client.get("k")
                finally:
                    server.resume()
                # The deadline went to etcd as a literal header (never huffman-coded).
                assert b"grpc-timeout" in proxy.upstream
                assert (await client.get("k")) is not None
            tg.cancel_scope.cancel()


async def test_client_timeout_option_raises_timeout_error() -> None:
    async with (
        EtcdServer() as server,
        etcdanyio.open_etcd(server.endpoints, timeout=0.5) as client,
    ):
        await client.put("k", "v")
        server.pause()
        try:
            with pytest.raises(TimeoutError):
                await client.get("k")
        finally:
            server.resume()


async def test_survives_member_kill_and_restart() -> None:
    async with (
        EtcdServer() as server,
        etcdanyio.open_etcd(server.endpoints, connect_timeout=1.0) as client,
    ):
        await client.put("k", "before")
        server.kill()
        with pytest.raises(etcdanyio.ConnectionFailedError) as info:
            await client.put("k", "lost")
        assert info.value.applied in (None, False)
        with pytest.raises(etcdanyio.ConnectionFailedError):
            await client.get("k")  # reads retry, but the member is gone
        await server.arestart()
        kv = None
        with anyio.fail_after(10):
            while kv is None:  # poll with a deadline: the next calls reconnect
                try:
                    kv = await client.get("k")
                except etcdanyio.ConnectionFailedError:
                    await anyio.sleep(0.05)
        assert kv.value == b"before"
        await client.put("k", "after")
        assert (await client.get("k")) is not None


async def test_errors_leave_open_etcd_as_themselves(etcd_server: EtcdServer) -> None:
    with pytest.raises(KeyError):
        async with etcdanyio.open_etcd(etcd_server.endpoints):
            raise KeyError("mine")
    with pytest.raises(etcdanyio.FutureRevisionError):
        async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
            await client.get("k", revision=2**62)


async def test_an_rpc_the_server_lacks_names_the_version_it_needs(
    client: etcdanyio.Client,
) -> None:
    # etcd 3.7 adds KV.RangeStream; the 3.5 server under test answers UNIMPLEMENTED.
    with pytest.raises(etcdanyio.UnsupportedError) as info:
        await client._core.call_raw("/etcdserverpb.KV/RangeStream", b"", repeatable=True)
    assert "RangeStream" in info.value.message
    assert "needs etcd 3.7 or newer" in info.value.message
    assert info.value.status is etcdanyio.Status.UNIMPLEMENTED

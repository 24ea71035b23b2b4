"""The fault proxy of the test kit, against a real etcd: pass, cut, reset, stall, refuse, exit."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

import etcdanyio

from ._kit.faultproxy import FaultProxy, open_fault_proxy
from ._kit.oracle import Oracle

if TYPE_CHECKING:
    from etcdanyio.testing import EtcdServer

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> bytes:
    return f"test/{uuid.uuid4().hex}/".encode()


async def _wait_no_conns(proxy: FaultProxy) -> None:
    with anyio.fail_after(1):
        while proxy.conns:  # noqa: ASYNC110 -- proxy state has no event: poll with a deadline
            await anyio.sleep(0.005)


async def test_pass_through_put_and_counters(etcd_server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(etcd_server.endpoint)
    with anyio.fail_after(5):
        async with open_fault_proxy(etcd_server.endpoint) as proxy:
            assert proxy.port
            assert proxy.endpoint == f"http://127.0.0.1:{proxy.port}"
            async with etcdanyio.open_etcd(proxy.endpoint) as client:
                result = await client.put(prefix + b"k", b"through the proxy")
                assert len(proxy.conns) == 1
            assert proxy.accepted == 1
            assert proxy.bytes_up > 0
            assert proxy.bytes_down > 0
            await _wait_no_conns(proxy)  # the client really closed its connection
    got = await anyio.to_thread.run_sync(oracle.get, prefix + b"k")
    assert got == (b"through the proxy", result.header.revision)


async def test_cut_then_next_call_reconnects(etcd_server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(5):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
        ):
            await client.put(prefix + b"k", b"1")
            proxy.cut()
            await _wait_no_conns(proxy)
            assert await client.get(prefix + b"missing") is None  # idempotent: reconnects
            await client.put(prefix + b"k", b"2")
            kv = await client.get(prefix + b"k")
            assert kv is not None
            assert kv.value == b"2"
            assert proxy.accepted == 2


async def test_reset_closes_with_rst_and_client_recovers(
    etcd_server: EtcdServer, prefix: bytes
) -> None:
    with anyio.fail_after(5):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
        ):
            await client.put(prefix + b"k", b"1")
            proxy.reset()
            await _wait_no_conns(proxy)
            kv = await client.get(prefix + b"k")
            assert kv is not None
            assert kv.value == b"1"
            assert proxy.accepted == 2


@pytest.mark.parametrize(
    ("fault", "seen"), [("cut", anyio.EndOfStream), ("reset", anyio.BrokenResourceError)]
)
async def test_cut_sends_fin_and_reset_sends_rst(
    etcd_server: EtcdServer, fault: str, seen: type[Exception]
) -> None:
    with anyio.fail_after(5):
        async with open_fault_proxy(etcd_server.endpoint) as proxy:
            stream = await anyio.connect_tcp("127.0.0.1", proxy.port)
            async with stream:
                with anyio.fail_after(1):
                    while not proxy.conns:  # noqa: ASYNC110 -- poll with a deadline
                        await anyio.sleep(0.005)
                getattr(proxy, fault)()
                with pytest.raises(seen):  # EOF after FIN; ECONNRESET after RST
                    await stream.receive()
            await _wait_no_conns(proxy)


async def test_stall_times_out_a_bounded_call_then_heals(
    etcd_server: EtcdServer, prefix: bytes
) -> None:
    with anyio.fail_after(5):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
        ):
            await client.put(prefix + b"k", b"1")
            proxy.set_mode("stall")
            start = anyio.current_time()
            with pytest.raises(TimeoutError), anyio.fail_after(0.3):
                await client.get(prefix + b"k")
            assert anyio.current_time() - start < 1.0
            proxy.heal()
            kv = await client.get(prefix + b"k")
            assert kv is not None
            assert kv.value == b"1"


async def test_blackhole_and_delay(etcd_server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(5):
        async with (
            open_fault_proxy(etcd_server.endpoint) as proxy,
            etcdanyio.open_etcd(proxy.endpoint) as client,
        ):
            await client.put(prefix + b"k", b"1")
            proxy.set_mode("blackhole")
            with pytest.raises(TimeoutError), anyio.fail_after(0.2):
                await client.get(prefix + b"k")
            # The blackholed connection lost bytes mid-stream: start from a fresh one.
            proxy.heal()
            proxy.cut()
            await _wait_no_conns(proxy)
            proxy.set_mode("delay", 0.1)
            start = anyio.current_time()
            kv = await client.get(prefix + b"k")
            assert kv is not None
            assert kv.value == b"1"
            assert anyio.current_time() - start >= 0.2  # a request and its response, each held


async def test_refuse_accepts_then_closes(etcd_server: EtcdServer) -> None:
    with anyio.fail_after(5):
        async with open_fault_proxy(etcd_server.endpoint) as proxy:
            proxy.refuse = True
            stream = await anyio.connect_tcp("127.0.0.1", proxy.port)
            async with stream:
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
            assert proxy.accepted == 1
            assert not proxy.conns


async def test_proxy_task_group_exits_with_open_connections(etcd_server: EtcdServer) -> None:
    with anyio.fail_after(5):
        async with open_fault_proxy(etcd_server.endpoint) as proxy:
            stream = await anyio.connect_tcp("127.0.0.1", proxy.port)
            with anyio.fail_after(1):
                while not proxy.conns:  # noqa: ASYNC110 -- poll with a deadline
                    await anyio.sleep(0.005)
        # The proxy's scope closed both sides of the pair: the client sees the end.
        async with stream:
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()


def test_rejects_non_loopback_target() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("http://10.0.0.1:2379")
    with pytest.raises(ValueError, match="mode"):
        FaultProxy("127.0.0.1:1").set_mode("sideways")  # type: ignore[arg-type]

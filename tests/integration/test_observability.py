"""
Traces, metrics, statistics and logs against real etcd (issue #19): a unary call, a failover in
a 3-member cluster, and a watch resumed across a member restart, each on both backends.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import etcdanyio
from etcdanyio.telemetry import OpenTelemetryObserver, Rpc, RpcObserver
from etcdanyio.testing import EtcdServer

from ._kit.helpers import ask

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opentelemetry.sdk.trace import ReadableSpan

    from etcdanyio.testing import EtcdCluster

pytestmark = pytest.mark.integration


class Recorder(RpcObserver):
    def __init__(self) -> None:
        self.finished: list[Rpc] = []
        self.events: list[tuple[str, str]] = []

    def rpc_event(self, rpc: Rpc, name: str, attributes: dict[str, object]) -> None:
        self.events.append((rpc.method, name))

    def rpc_finished(self, rpc: Rpc) -> None:
        self.finished.append(rpc)


class Otel:
    """OpenTelemetry's SDK with in-memory exporters, as an observer of one client."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.metrics = InMemoryMetricReader()
        self.observer = OpenTelemetryObserver(
            tracer_provider=tracer_provider,
            meter_provider=MeterProvider(metric_readers=[self.metrics]),
        )

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def durations(self) -> int:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return sum(
            point.count  # type: ignore[union-attr,misc]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
            if metric.name == "rpc.client.duration"
            for point in metric.data.data_points
        )


@pytest.fixture(scope="module")
def member() -> Iterator[EtcdServer]:
    """A member of this module's own: one test restarts it."""
    with EtcdServer() as server:
        yield server


async def test_unary_calls_are_traced_and_timed(member: EtcdServer) -> None:
    otel, recorder = Otel(), Recorder()
    port = int(member.endpoint.rsplit(":", 1)[1])
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(
            member.endpoint, observers=[otel.observer, recorder]
        ) as client:
            await client.put("obs/k", "v")
            assert (await client.get("obs/k")) is not None
            with pytest.raises(etcdanyio.LeaseNotFoundError):
                await client.lease_revoke(0x0B5)
    (put,) = otel.finished("etcdserverpb.KV/Put")
    attributes = dict(put.attributes or {})
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == port
    assert attributes["rpc.grpc.status_code"] == 0
    (revoke,) = otel.finished("etcdserverpb.Lease/LeaseRevoke")
    assert dict(revoke.attributes or {})["rpc.grpc.status_code"] == 5  # NOT_FOUND
    assert dict(revoke.attributes or {})["error.type"] == "LeaseNotFoundError"
    assert otel.durations() == 3
    put_rpc = next(r for r in recorder.finished if r.method == "Put")
    assert put_rpc.request_size > 0
    assert put_rpc.response_size > 0
    assert put_rpc.endpoint == member.endpoint


async def test_statistics_of_watches_and_leases(member: EtcdServer) -> None:
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(member.endpoint) as client:
            stats = client.statistics()
            assert (stats.connections, stats.watches, stats.leases_kept_alive) == (0, 0, 0)
            assert stats.most_lagging_watch is None
            async with (
                client.lease(30) as lease,
                client.watch("obs/stats/", prefix=True, max_buffered=100) as events,
            ):
                revision = 0
                for i in range(5):
                    revision = (
                        await client.put(f"obs/stats/{i}", "v", lease=lease)
                    ).header.revision
                # Wait until the watch holds every event (read one, then look).
                first = await events.__anext__()
                assert first.kv.key == b"obs/stats/0"
                while client.statistics().most_lagging_watch.buffered < 4:  # type: ignore[union-attr]  # noqa: ASYNC110
                    await anyio.sleep(0.01)
                stats = client.statistics()
                lag = stats.most_lagging_watch
                assert lag is not None
                assert (lag.key, lag.buffered, lag.suspended) == (b"obs/stats/", 4, False)
                assert lag.next_revision == revision + 1
                assert stats.watches == 1
                assert stats.leases_kept_alive == 1
                assert stats.nearest_lease_deadline is not None
                assert 0 < stats.nearest_lease_deadline <= 30
                assert stats.connections == 1
                assert stats.calls_in_flight >= 2  # the watch and keepalive streams
                assert stats.connected_endpoint == member.endpoint
            assert client.statistics().leases_kept_alive == 0


async def test_a_watch_resume_is_seen(member: EtcdServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="etcdanyio")
    recorder, otel = Recorder(), Otel()
    with anyio.fail_after(30):
        async with (
            etcdanyio.open_etcd(member.endpoint, observers=[recorder, otel.observer]) as client,
            client.watch("obs/resume/", prefix=True) as events,
        ):
            await client.put("obs/resume/a", "1")
            assert (await events.__anext__()).kv.value == b"1"
            await ask(member.restart)
            await client.put("obs/resume/a", "2")
            assert (await events.__anext__()).kv.value == b"2"
            stats = client.statistics()
            assert stats.watch_resumes == 1
            assert stats.connects >= 2
    watch_streams = [r for r in recorder.finished if r.path == "/etcdserverpb.Watch/Watch"]
    assert len(watch_streams) >= 2  # the one the restart broke, and the resumed one
    assert watch_streams[0].kind == "stream"
    assert watch_streams[0].error is not None
    spans = otel.finished("etcdserverpb.Watch/Watch")
    assert len(spans) >= 2  # a stream span each, the broken one an error
    assert spans[0].status.status_code.name == "ERROR"
    assert any("resuming watches=1" in r.getMessage() for r in caplog.records)
    assert all(r.levelno <= logging.INFO for r in caplog.records if "resuming" in r.getMessage())


@pytest.mark.slow
async def test_a_failover_is_seen(
    etcd_cluster: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="etcdanyio")
    otel = Otel()
    endpoints = etcd_cluster.endpoints
    with anyio.fail_after(30):
        async with etcdanyio.open_etcd(endpoints, observers=[otel.observer]) as client:
            await client.put("obs/failover", "1")
            assert client.statistics().connected_endpoint == endpoints[0]
            await ask(etcd_cluster.kill, 0)
            assert (await client.get("obs/failover")) is not None  # a read: retried elsewhere
            stats = client.statistics()
            assert stats.failovers >= 1
            assert stats.connected_endpoint in endpoints[1:]
    ports = [
        dict(s.attributes or {})["server.port"] for s in otel.finished("etcdserverpb.KV/Range")
    ]
    assert ports[-1] != int(endpoints[0].rsplit(":", 1)[1])
    assert any(
        r.levelno == logging.INFO and endpoints[0].rsplit("//", 1)[1] in r.getMessage()
        for r in caplog.records
        if r.name == "etcdanyio.grpc"
    )

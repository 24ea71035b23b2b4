"""
The hook point of telemetry against an in-memory HTTP/2 peer: every attempt, retry and failover
of a call is seen, an observer that fails never breaks a call, and OpenTelemetry records spans
(children of the caller's span) and durations (issue #19).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import etcdanyio
from etcdanyio._grpc import Channel, Endpoint, Status
from etcdanyio.client import Client
from etcdanyio.telemetry import OpenTelemetryObserver, Rpc, RpcObserver

from ..h2peer import H2Peer, PeerStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskGroup
    from anyio.streams.stapled import StapledObjectStream

pytestmark = pytest.mark.unit

TIMEOUT = 5
A, B = Endpoint("a", 2379), Endpoint("b", 2379)
Clients = tuple[Client, "Recorder", InMemorySpanExporter, InMemoryMetricReader]


class Recorder(RpcObserver):
    def __init__(self) -> None:
        self.started: list[Rpc] = []
        self.events: list[tuple[str, dict[str, object]]] = []
        self.finished: list[Rpc] = []

    def rpc_started(self, rpc: Rpc) -> None:
        self.started.append(rpc)

    def rpc_event(self, rpc: Rpc, name: str, attributes: dict[str, object]) -> None:
        self.events.append((name, attributes))

    def rpc_finished(self, rpc: Rpc) -> None:
        self.finished.append(rpc)


class Broken(RpcObserver):
    def rpc_started(self, rpc: Rpc) -> None:
        raise RuntimeError("observer bug")

    def rpc_finished(self, rpc: Rpc) -> None:
        raise RuntimeError("observer bug")


def handle(peer: H2Peer, stream: PeerStream, endpoint: Endpoint) -> None:
    if endpoint == A:  # a member that lost its leader: etcd answers UNAVAILABLE
        peer.reply(
            stream.stream_id, status=int(Status.UNAVAILABLE), message="etcdserver: no leader"
        )
    else:
        peer.reply(stream.stream_id, b"")  # an empty RangeResponse: the key does not exist


@pytest.fixture
async def clients() -> AsyncIterator[
    tuple[Client, Recorder, InMemorySpanExporter, InMemoryMetricReader]
]:
    recorder = Recorder()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    otel = OpenTelemetryObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)

    async def dial(endpoint: Endpoint, tg: TaskGroup) -> StapledObjectStream[bytes]:
        peer = H2Peer(lambda p, s: handle(p, s, endpoint))
        transport = peer.connect()
        tg.start_soon(peer.serve)
        return transport

    async with anyio.create_task_group() as tg:
        channel = Channel([A, B], tg, connect=lambda endpoint: dial(endpoint, tg))
        try:
            client = Client(channel, tg, timeout=None, observers=[Broken(), recorder, otel])
            yield client, recorder, exporter, reader
        finally:
            await channel.aclose()
            tg.cancel_scope.cancel()


async def test_a_call_is_seen_with_its_retry_and_failover(
    clients: Clients,
) -> None:
    client, recorder, exporter, reader = clients
    with anyio.fail_after(TIMEOUT):
        assert await client.get("k") is None  # the failing observer broke nothing
    (rpc,) = recorder.finished
    assert rpc.path == "/etcdserverpb.KV/Range"
    assert (rpc.service, rpc.method, rpc.kind) == ("etcdserverpb.KV", "Range", "unary")
    assert rpc.attempts == 2
    assert rpc.endpoint == "http://b:2379"
    assert rpc.status == 0
    assert rpc.error is None
    assert rpc.request_size > 0
    assert rpc.duration > 0
    names = [name for name, _ in recorder.events]
    assert names == ["failover", "retry"]
    assert recorder.events[0][1] == {"from_endpoint": "http://a:2379"}
    assert client.statistics().failovers == 1

    (span,) = exporter.get_finished_spans()
    assert span.name == "etcdserverpb.KV/Range"
    assert span.kind == trace.SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["rpc.system"] == "grpc"
    assert attributes["rpc.service"] == "etcdserverpb.KV"
    assert attributes["rpc.method"] == "Range"
    assert attributes["server.address"] == "b"
    assert attributes["server.port"] == 2379
    assert attributes["rpc.grpc.status_code"] == 0
    assert [event.name for event in span.events] == ["failover", "retry"]

    metrics = reader.get_metrics_data()
    assert metrics is not None
    (histogram,) = [
        m
        for rm in metrics.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "rpc.client.duration"
    ]
    (point,) = histogram.data.data_points
    assert point.count == 1  # type: ignore[union-attr]


async def test_a_failed_call_is_an_error_span_in_the_callers_trace(
    clients: Clients,
) -> None:
    client, recorder, exporter, _ = clients
    client._core.channel.retry.max_attempts = 1  # A's UNAVAILABLE is final
    provider = TracerProvider()
    caller = provider.get_tracer("caller").start_span("handler")
    with (
        anyio.fail_after(TIMEOUT),
        trace.use_span(caller, end_on_exit=True),
        pytest.raises(etcdanyio.NoLeaderError),
    ):
        await client.get("k")
    (rpc,) = recorder.finished
    assert rpc.status == int(Status.UNAVAILABLE)
    assert isinstance(rpc.error, etcdanyio.NoLeaderError)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == trace.StatusCode.ERROR
    assert dict(span.attributes or {})["error.type"] == "NoLeaderError"
    assert span.parent is not None
    assert span.parent.span_id == caller.get_span_context().span_id
    assert span.context.trace_id == caller.get_span_context().trace_id


async def test_no_observer_means_no_record() -> None:
    with anyio.fail_after(TIMEOUT):
        async with etcdanyio.open_etcd("127.0.0.1:1", opentelemetry=False) as client:
            assert client._core.observers == ()
            assert client._core.channel.stream_observer is None


async def test_observers_are_checked() -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(TypeError, match="RpcObserver"):
        async with etcdanyio.open_etcd("127.0.0.1:1", observers=[print]):  # type: ignore[list-item]
            pytest.fail("the block must not run")

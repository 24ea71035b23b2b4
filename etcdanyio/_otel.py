"""
OpenTelemetry instrumentation (the optional extra ``etcdanyio[otel]``, ``opentelemetry-api``
only): a span and a duration measurement per RPC, following OpenTelemetry's RPC semantic
conventions, recorded through the tracer and meter providers the application configured.

Imported only when OpenTelemetry is used: ``import etcdanyio`` never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, StatusCode

from . import __version__
from ._telemetry import RpcObserver

if TYPE_CHECKING:
    from ._telemetry import Rpc

_SCOPE = "etcdanyio"

#: gRPC status codes by number, for ``rpc.grpc.status_code`` and the span's description
_OK = 0


class OpenTelemetryObserver(RpcObserver):
    """
    Records every RPC as a ``CLIENT`` span named ``etcdserverpb.KV/Range`` (a child of the
    caller's current span), with retries and failovers as span events, and its duration in the
    ``rpc.client.duration`` histogram (milliseconds). Attributes: ``rpc.system`` (``grpc``),
    ``rpc.service``, ``rpc.method``, ``server.address``, ``server.port``,
    ``rpc.grpc.status_code``, and ``error.type`` on failure.

    :param tracer_provider: default: the global one (``opentelemetry.trace``)
    :param meter_provider: default: the global one (``opentelemetry.metrics``)
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        self._duration = meter.create_histogram(
            "rpc.client.duration",
            unit="ms",
            description="Duration of outbound RPCs, from the first attempt to the answer",
        )

    def rpc_started(self, rpc: Rpc) -> None:
        attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            "rpc.service": rpc.service,
            "rpc.method": rpc.method,
        }
        span = self._tracer.start_span(
            f"{rpc.service}/{rpc.method}", kind=SpanKind.CLIENT, attributes=attributes
        )
        rpc.state[self] = span

    def rpc_event(self, rpc: Rpc, name: str, attributes: dict[str, object]) -> None:
        span = rpc.state.get(self)
        if span is not None:
            span.add_event(name, {k: _value(v) for k, v in attributes.items()})

    def rpc_finished(self, rpc: Rpc) -> None:
        attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            "rpc.service": rpc.service,
            "rpc.method": rpc.method,
        }
        host, port = _address(rpc.endpoint)
        if host:
            attributes["server.address"] = host
            attributes["server.port"] = port
        if rpc.status is not None:
            attributes["rpc.grpc.status_code"] = rpc.status
        if rpc.error is not None:
            attributes["error.type"] = type(rpc.error).__qualname__
        self._duration.record(rpc.duration * 1000.0, attributes)
        span = rpc.state.pop(self, None)
        if span is None:
            return
        span.set_attributes(attributes)
        if rpc.attempts > 1:
            span.set_attribute("etcdanyio.attempts", rpc.attempts)
        if rpc.error is not None:
            span.set_status(StatusCode.ERROR, str(rpc.error))
        span.end()


def _value(value: object) -> str | int | float | bool:
    return value if isinstance(value, (str, int, float, bool)) else repr(value)


def _address(endpoint: str) -> tuple[str, int]:
    """``("host", port)`` of ``http(s)://host:port`` (IPv6 without brackets)."""
    if not endpoint:
        return "", 0
    authority = endpoint.partition("://")[2]
    host, _, port = authority.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def configured() -> bool:
    """Whether the application installed an SDK's tracer or meter provider (not the no-op)."""
    tracing = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return tracing or type(metrics.get_meter_provider()).__name__ != "_ProxyMeterProvider"

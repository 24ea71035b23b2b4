"""
Observability: see every RPC of a client, count what it does, trace it with OpenTelemetry.

.. code-block:: python

    class Timing(etcdanyio.telemetry.RpcObserver):
        def rpc_finished(self, rpc: etcdanyio.telemetry.Rpc) -> None:
            print(rpc.method, rpc.endpoint, rpc.attempts, rpc.status, rpc.duration)

    async with etcdanyio.open_etcd(observers=[Timing()]) as client:
        ...
        print(client.statistics())

With ``opentelemetry-api`` installed (``pip install 'etcdanyio[otel]'``) and an SDK configured
by the application, every client records spans and durations by itself; see
``docs/observability.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._telemetry import ClientStatistics, Rpc, RpcObserver, WatchLag

if TYPE_CHECKING:
    from ._otel import OpenTelemetryObserver

__all__ = ["ClientStatistics", "OpenTelemetryObserver", "Rpc", "RpcObserver", "WatchLag"]


def __getattr__(name: str) -> Any:
    # OpenTelemetryObserver needs opentelemetry-api: imported only when asked for.
    if name == "OpenTelemetryObserver":
        from ._otel import OpenTelemetryObserver

        return OpenTelemetryObserver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

import typing as _typing

from ._telemetry import ClientStatistics as ClientStatistics
from ._telemetry import Rpc as Rpc
from ._telemetry import RpcObserver as RpcObserver
from ._telemetry import WatchLag as WatchLag

if _typing.TYPE_CHECKING:
    from ._otel import OpenTelemetryObserver as OpenTelemetryObserver

__all__ = ["ClientStatistics", "OpenTelemetryObserver", "Rpc", "RpcObserver", "WatchLag"]


def __getattr__(name: str) -> object:
    # OpenTelemetryObserver needs opentelemetry-api: imported only when asked for.
    if name == "OpenTelemetryObserver":
        from ._otel import OpenTelemetryObserver

        return OpenTelemetryObserver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

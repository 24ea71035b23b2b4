"""
What telemetry costs per call: serial gets with no observer, with a no-op observer, and with
OpenTelemetry's SDK recording spans and durations (batch span processor, in-memory exporter).

    python benchmarks/bench_telemetry.py [--ops N] [--rounds N] [--endpoints URL]

Prints client CPU per get (µs) and gets/s for each, on asyncio and trio, from one run: compare
rows with each other, not with other runs.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import anyio

import etcdanyio
from etcdanyio.telemetry import RpcObserver
from etcdanyio.testing import EtcdServer


def otel_observer() -> RpcObserver:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    from etcdanyio.telemetry import OpenTelemetryObserver

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return OpenTelemetryObserver(tracer_provider=tracer_provider, meter_provider=meter_provider)


async def serial_gets(endpoints: list[str], ops: int, mode: str) -> tuple[float, float]:
    observers: list[RpcObserver] = {
        "none": [],
        "no-op observer": [RpcObserver()],
        "OpenTelemetry SDK": [otel_observer()],
    }[mode]
    async with etcdanyio.open_etcd(endpoints, observers=observers, opentelemetry=False) as c:
        await c.put("bench/telemetry", "v")
        for _ in range(100):  # warm up
            await c.get("bench/telemetry")
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(ops):
            await c.get("bench/telemetry")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return ops / wall, cpu / ops * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--endpoints")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.endpoints:
            endpoints = args.endpoints.split(",")
        else:
            endpoints = stack.enter_context(EtcdServer()).endpoints
        print(f"{'telemetry':<20} {'backend':<8} {'gets/s':>8} {'CPU µs/get':>11}")
        for backend in ("asyncio", "trio"):
            modes = ("none", "no-op observer", "OpenTelemetry SDK")
            results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            for _ in range(args.rounds):  # interleaved, so that load drifts hit every mode
                for mode in modes:
                    results[mode].append(
                        anyio.run(serial_gets, endpoints, args.ops, mode, backend=backend)
                    )
            for mode, runs in results.items():
                rate = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                print(f"{mode:<20} {backend:<8} {rate:>8,.0f} {cpu:>11.1f}")


if __name__ == "__main__":
    main()

"""
etcdanyio's own throughput and client CPU per operation against a local etcd.

    python benchmarks/bench_etcdanyio.py [--ops N] [--endpoints URL]

Starts a throwaway etcd (``etcdanyio.testing.EtcdServer``) unless
``--endpoints`` is given, then runs each workload on asyncio and on trio, in
alternation, and prints ops/s and client CPU microseconds per operation (this
process's own CPU time: user + system, etcd's is not included). Machines here
are noisy: compare ratios measured in the same run, not absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import anyio

import etcdanyio
from etcdanyio.testing import EtcdServer

Workload = Callable[[etcdanyio.Client, int], Awaitable[None]]
VALUE = b"v" * 64


async def serial_put(client: etcdanyio.Client, ops: int) -> None:
    for i in range(ops):
        await client.put(b"bench/serial/%d" % (i % 100), VALUE)


async def serial_get(client: etcdanyio.Client, ops: int) -> None:
    for i in range(ops):
        await client.get(b"bench/serial/%d" % (i % 100))


def concurrent(single: Callable[[etcdanyio.Client, int], Awaitable[object]]) -> Workload:
    async def run(client: etcdanyio.Client, ops: int) -> None:
        per_task = ops // 64

        async def worker(task: int) -> None:
            for i in range(per_task):
                await single(client, task * per_task + i)

        async with anyio.create_task_group() as tg:
            for task in range(64):
                tg.start_soon(worker, task)

    return run


async def _put_one(client: etcdanyio.Client, i: int) -> None:
    await client.put(b"bench/concurrent/%d" % (i % 1000), VALUE)


async def _get_one(client: etcdanyio.Client, i: int) -> None:
    await client.get(b"bench/serial/%d" % (i % 100))


WORKLOADS: dict[str, tuple[Workload, int]] = {
    "serial put": (serial_put, 1),
    "serial get": (serial_get, 1),
    "64 concurrent puts": (concurrent(_put_one), 4),
    "64 concurrent gets": (concurrent(_get_one), 4),
}


async def measure(endpoints: list[str], workload: Workload, ops: int) -> tuple[float, float]:
    async with etcdanyio.open_etcd(endpoints) as client:
        await client.put(b"bench/serial/0", VALUE)
        await workload(client, min(ops, 200))  # warm up
        wall = time.perf_counter()
        cpu = time.process_time()
        await workload(client, ops)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
    return ops / wall, cpu / ops * 1e6


def run_all(endpoints: list[str], ops: int, repeats: int) -> None:
    print(f"{'workload':<22} {'backend':<8} {'ops/s':>9} {'CPU us/op':>10}")
    for name, (workload, scale) in WORKLOADS.items():
        results: dict[str, list[tuple[float, float]]] = {"asyncio": [], "trio": []}
        for _ in range(repeats):
            for backend in results:  # alternate backends within each repeat
                results[backend].append(
                    anyio.run(measure, endpoints, workload, ops * scale, backend=backend)
                )
        for backend, runs in results.items():
            rate = statistics.median(r[0] for r in runs)
            cpu = statistics.median(r[1] for r in runs)
            print(f"{name:<22} {backend:<8} {rate:>9,.0f} {cpu:>10.1f}")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per serial run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cell (median)")
    parser.add_argument("--endpoints", help="use this etcd instead of a throwaway one")
    args = parser.parse_args()
    if args.endpoints:
        run_all(args.endpoints.split(","), args.ops, args.repeats)
    else:
        with EtcdServer() as server:
            run_all(server.endpoints, args.ops, args.repeats)


if __name__ == "__main__":
    main()

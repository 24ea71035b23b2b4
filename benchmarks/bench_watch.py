"""
Watch delivery: events/s and client CPU per delivered event, 1 and 100 watchers.

    python benchmarks/bench_watch.py [--events N] [--endpoints URL]

Writes happen in transactions of 100 puts (one revision, 100 events), from the
same process, so the CPU figure includes the (small) cost of writing. Every
watcher watches the same prefix, so with 100 watchers each event is delivered
100 times; the rate counts deliveries. Compare numbers within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import anyio

import etcdanyio
from etcdanyio import txn
from etcdanyio.testing import EtcdServer


async def measure(
    endpoints: list[str], watchers: int, events: int, batches: bool
) -> tuple[float, float]:
    prefix = b"bench/watch/%d/" % time.monotonic_ns()
    value = b"v" * 64
    async with etcdanyio.open_etcd(endpoints) as client:
        done = anyio.Event()
        remaining = watchers * events

        async def consume(watch: etcdanyio.Watch) -> None:
            nonlocal remaining
            if batches:
                async for batch in watch.batches():
                    remaining -= len(batch.events)
                    if remaining <= 0:
                        done.set()
            else:
                async for _ in watch:
                    remaining -= 1
                    if remaining <= 0:
                        done.set()

        async with anyio.create_task_group() as tg:
            contexts = []
            for _ in range(watchers):
                cm = client.watch(prefix, prefix=True, max_buffered=10 * events)
                contexts.append(cm)
                tg.start_soon(consume, await cm.__aenter__())
            wall = time.perf_counter()
            cpu = time.process_time()
            for start in range(0, events, 100):
                await client.txn(
                    success=[
                        txn.put(prefix + b"%08d" % i, value)
                        for i in range(start, min(start + 100, events))
                    ]
                )
            await done.wait()
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - wall
            tg.cancel_scope.cancel()
            for cm in contexts:
                await cm.__aexit__(None, None, None)
        await client.delete_prefix(prefix)
    delivered = watchers * events
    return delivered / wall, cpu / delivered * 1e6


def run_all(endpoints: list[str], events: int, repeats: int) -> None:
    print(f"{'watchers':>8} {'mode':<7} {'backend':<8} {'events/s':>10} {'CPU us/event':>13}")
    for watchers in (1, 100):
        for batches in (False, True):
            results: dict[str, list[tuple[float, float]]] = {"asyncio": [], "trio": []}
            n = events if watchers == 1 else max(events // 20, 100)
            for _ in range(repeats):
                for backend in results:
                    results[backend].append(
                        anyio.run(measure, endpoints, watchers, n, batches, backend=backend)
                    )
            for backend, runs in results.items():
                rate = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                mode = "batches" if batches else "events"
                print(f"{watchers:>8} {mode:<7} {backend:<8} {rate:>10,.0f} {cpu:>13.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--endpoints")
    args = parser.parse_args()
    if args.endpoints:
        run_all(args.endpoints.split(","), args.events, args.repeats)
    else:
        with EtcdServer() as server:
            run_all(server.endpoints, args.events, args.repeats)


if __name__ == "__main__":
    main()

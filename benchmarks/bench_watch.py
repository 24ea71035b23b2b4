"""
Watch delivery: events/s and client CPU per delivered event, 1 and 100 watchers.

    python benchmarks/bench_watch.py [--events N] [--endpoints URL] [--catch-up]

The catch-up scenario measures a watcher that lagged (its buffer full, suspended on the
server) reading everything written meanwhile, against one whose buffer never filled.

Writes happen in transactions of 100 puts (one revision, 100 events), from the
same process, so the CPU figure includes the (small) cost of writing. Every
watcher watches the same prefix, so with 100 watchers each event is delivered
100 times; the rate counts deliveries. Compare numbers within one run only.
"""

from __future__ import annotations

import argparse
import contextlib
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


async def catch_up(
    endpoints: list[str], events: int, max_buffered: int | None, per_txn: int
) -> float:
    """
    A watcher that lagged: ``events`` are written (``per_txn`` puts per revision) while its
    consumer reads nothing, so its buffer (``max_buffered``) fills and it is suspended on the
    server; then the consumer reads everything. Returns events/s of that catching up.

    With ``max_buffered=None``, the reference: a watcher that never suspends, created after
    the writes from their first revision, so that etcd serves it the same history.
    """
    prefix = b"bench/catchup/%d/" % time.monotonic_ns()
    value = b"v" * 64
    async with etcdanyio.open_etcd(endpoints) as client:
        async with contextlib.AsyncExitStack() as stack:
            first = 0
            if max_buffered is not None:
                watch = await stack.enter_async_context(
                    client.watch(prefix, prefix=True, max_buffered=max_buffered)
                )
            for start in range(0, events, per_txn):
                result = await client.txn(
                    success=[
                        txn.put(prefix + b"%08d" % i, value)
                        for i in range(start, min(start + per_txn, events))
                    ]
                )
                first = first or result.header.revision
            wall = time.perf_counter()
            if max_buffered is None:
                watch = await stack.enter_async_context(
                    client.watch(
                        prefix, prefix=True, start_revision=first, max_buffered=10 * events
                    )
                )
            remaining = events
            async for batch in watch.batches():
                remaining -= len(batch.events)
                if remaining <= 0:
                    break
            wall = time.perf_counter() - wall
        await client.delete_prefix(prefix)
    return events / wall


def run_catch_up(endpoints: list[str], events: int, repeats: int) -> None:
    print(f"\n{'catch-up':<22} {'backend':<8} {'events/s':>10} {'vs unsuspended':>15}")
    for per_txn in (1, 10):
        for backend in ("asyncio", "trio"):
            rates: dict[int | None, float] = {}
            for bound in (None, 100, 1000):
                rates[bound] = statistics.median(
                    anyio.run(catch_up, endpoints, events, bound, per_txn, backend=backend)
                    for _ in range(repeats)
                )
            for bound, rate in rates.items():
                label = f"{per_txn}/rev max_buf={bound or 'never full'}"
                ratio = rate / rates[None]
                print(f"{label:<22} {backend:<8} {rate:>10,.0f} {ratio:>14.2f}x")


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
    parser.add_argument("--catch-up", action="store_true", help="only the lagging-watcher scenario")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.endpoints:
            endpoints = args.endpoints.split(",")
        else:
            endpoints = stack.enter_context(EtcdServer()).endpoints
        if not args.catch_up:
            run_all(endpoints, args.events, args.repeats)
        run_catch_up(endpoints, min(args.events, 10_000), args.repeats)


if __name__ == "__main__":
    main()

"""
``client.mirror()``: initial load (time, peak RSS, bytes per key) against a plain paginated
``get_prefix`` of the same keys, update throughput while a writer runs, and ns per lookup.

    python benchmarks/bench_mirror.py [--keys N] [--value-size B] [--backend asyncio|trio]

Starts its own etcd (``--unsafe-no-fsync``) unless ``--endpoints`` is given. Each initial load
runs in a fresh subprocess so that its peak RSS is its own; "bytes per key" is the RSS the
loaded copy holds (after the load, minus before), divided by the number of keys. Compare
numbers within one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

import etcdanyio
from etcdanyio import txn
from etcdanyio.testing import EtcdServer

if TYPE_CHECKING:
    from collections.abc import Sequence

PREFIX = b"bench/mirror/"
ROOT = Path(__file__).resolve().parents[1]


def _rss() -> int:
    """Current resident set size in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


async def child(kind: str, endpoints: str, page_size: int) -> dict[str, float]:
    """One initial load in this process: ``get`` (paginated get_prefix) or ``mirror``."""
    async with etcdanyio.open_etcd(endpoints) as client:
        await client.get("warm-up")
        before = _rss()
        start = time.perf_counter()
        if kind == "get":
            copy = {kv.key: kv async for kv in client.iter_prefix(PREFIX, page_size=page_size)}
            seconds = time.perf_counter() - start
            keys = len(copy)
            held = _rss() - before
        else:
            async with client.mirror(PREFIX, prefix=True, page_size=page_size) as mirror:
                seconds = time.perf_counter() - start
                keys = len(mirror)
                held = _rss() - before
    return {"seconds": seconds, "keys": keys, "held": held, "peak": _peak() - before}


async def fill(endpoints: str, keys: int, value: bytes) -> None:
    async with etcdanyio.open_etcd(endpoints) as client:
        await client.delete_prefix(PREFIX)
        for start in range(0, keys, 100):
            ops = [
                txn.put(PREFIX + b"%08d" % i, value) for i in range(start, min(start + 100, keys))
            ]
            await client.txn(success=ops)


async def updates_and_lookups(endpoints: str, updates: int, value: bytes) -> dict[str, float]:
    async with (
        etcdanyio.open_etcd(endpoints) as client,
        client.mirror(PREFIX, prefix=True) as mirror,
    ):
        keys = [kv.key for kv in mirror.values()]
        # Update throughput: transactions of 100 puts; changes applied per second, from the
        # first write until the mirror reflects the last one.
        start = time.perf_counter()
        last = 0
        for n in range(0, updates, 100):
            ops = [txn.put(keys[(n + i) % len(keys)], value) for i in range(100)]
            last = (await client.txn(success=ops)).header.revision
        await mirror.wait_for_revision(last)
        applied = updates / (time.perf_counter() - start)
        # With a changes() consumer as well (prev_kv filled in, one update per revision).
        changes = mirror.changes(max_buffered=updates + 100)
        start = time.perf_counter()
        for n in range(0, updates, 100):
            ops = [txn.put(keys[(n + i) % len(keys)], value) for i in range(100)]
            last = (await client.txn(success=ops)).header.revision
        async for update in changes:
            if update.revision >= last:
                break
        with_changes = updates / (time.perf_counter() - start)
        # Lookups: ns per mirror[key] (bytes and str keys) against a plain dict.
        sample = random.Random(1).choices(keys, k=200_000)
        str_sample = [k.decode() for k in sample]
        plain = dict(mirror.items())

        def per_lookup(table: object, sample: Sequence[object]) -> float:
            begin = time.perf_counter_ns()
            for key in sample:
                table[key]  # type: ignore[index]
            return (time.perf_counter_ns() - begin) / len(sample)

        return {
            "applied_per_s": applied,
            "applied_with_changes_per_s": with_changes,
            "ns_mirror_bytes": per_lookup(mirror, sample),
            "ns_mirror_str": per_lookup(mirror, str_sample),
            "ns_dict": per_lookup(plain, sample),
        }


def run_child(kind: str, endpoints: str, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--endpoints", endpoints,
         "--page-size", str(args.page_size), "--backend", args.backend],
        capture_output=True, text=True, check=True, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--value-size", type=int, default=64)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--backend", default="asyncio")
    parser.add_argument("--endpoints")
    parser.add_argument("--child", choices=["get", "mirror"])
    args = parser.parse_args()
    if args.child:
        result = anyio.run(child, args.child, args.endpoints, args.page_size, backend=args.backend)
        print(json.dumps(result))
        return
    value = b"v" * args.value_size
    with EtcdServer(
        extra_args=["--unsafe-no-fsync", "--quota-backend-bytes", str(8 << 30)]
    ) as server:
        endpoints = args.endpoints or server.endpoint
        anyio.run(fill, endpoints, args.keys, value, backend=args.backend)
        print(f"{args.keys} keys, {args.value_size} B values, page size {args.page_size}, "
              f"backend {args.backend}")  # fmt: skip
        print(f"{'initial load':<28} {'seconds':>8} {'keys/s':>9} {'peak RSS MB':>12} {'B/key':>7}")
        for kind, label in (("get", "paginated get_prefix -> dict"), ("mirror", "client.mirror()")):
            r = run_child(kind, endpoints, args)
            print(f"{label:<28} {r['seconds']:>8.2f} {r['keys'] / r['seconds']:>9.0f} "
                  f"{r['peak'] / 2**20:>12.1f} {r['held'] / r['keys']:>7.0f}")  # fmt: skip
        u = anyio.run(updates_and_lookups, endpoints, args.updates, value, backend=args.backend)
        print(f"updates applied: {u['applied_per_s']:.0f} changes/s "
              f"({u['applied_with_changes_per_s']:.0f}/s with a changes() consumer)")  # fmt: skip
        print(f"lookup: mirror[bytes] {u['ns_mirror_bytes']:.0f} ns, mirror[str] "
              f"{u['ns_mirror_str']:.0f} ns, plain dict {u['ns_dict']:.0f} ns")  # fmt: skip


if __name__ == "__main__":
    main()

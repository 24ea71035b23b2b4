"""
Lock hand-over latency and the client CPU cost of keeping many leases alive.

    python benchmarks/bench_locks.py [--handovers N] [--leases N] [--seconds S] [--endpoints URL]

Starts a throwaway etcd (``etcdanyio.testing.EtcdServer``) unless ``--endpoints`` is given, then,
on asyncio and on trio:

- **hand-over**: three contenders, each on its own client, take one lock in turns with
  ``client.lock()`` (a lease of its own per acquisition, as by default). A holder keeps the lock
  10 ms, long enough for the others to queue up, so every release has a waiter. The latency is
  the time from the holder leaving its block (release starts: delete its key) to the next
  holder's body starting (it saw the deletion, checked the queue and its own key). Median and
  p99 over ``--handovers`` hand-overs.
- **keepalive**: ``--leases`` leases of TTL 5 on one client, all on its one LeaseKeepAlive
  stream, for ``--seconds`` seconds. The keepalives etcd received are counted from its
  ``/metrics`` (``grpc_server_msg_received_total``), not by the client; client CPU is this
  process's CPU time (user + system; etcd's is not included), reported per keepalive round (one
  keepalive for every lease), per lease per second, and per keepalive, next to an idle client's
  CPU over the same time.

Machines here are noisy: compare numbers from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import statistics
import time
import urllib.request

import anyio
import anyio.abc
import anyio.to_thread

import etcdanyio
from etcdanyio.testing import EtcdServer

BACKENDS = ("asyncio", "trio")
HOLD = 0.010


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def handover(endpoints: list[str], handovers: int, contenders: int = 3) -> list[float]:
    """Latencies (s) from one holder's release to the next holder's entry."""
    name = f"bench/lock/{time.monotonic_ns()}"
    latencies: list[float] = []
    released_at: float | None = None
    done = anyio.Event()

    async def contend(client: etcdanyio.Client) -> None:
        nonlocal released_at
        while not done.is_set():
            async with client.lock(name, ttl=10):
                if released_at is not None:
                    latencies.append(time.perf_counter() - released_at)
                    released_at = None
                    if len(latencies) >= handovers:
                        done.set()
                        return
                await anyio.sleep(HOLD)  # the others queue up meanwhile
                released_at = time.perf_counter()  # leaving the block releases the lock

    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(etcdanyio.open_etcd(endpoints))
            for _ in range(contenders)
        ]
        async with anyio.create_task_group() as tg:
            for client in clients:
                tg.start_soon(contend, client)
    return latencies


def keepalives_received(endpoint: str) -> int:
    """LeaseKeepAlive requests etcd has received so far (all streams)."""
    with urllib.request.urlopen(f"{endpoint}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    pattern = r'^grpc_server_msg_received_total\{[^}]*grpc_method="LeaseKeepAlive"[^}]*\} (\S+)$'
    return sum(int(float(m[1])) for m in re.finditer(pattern, text, re.MULTILINE))


async def keepalive_cost(endpoint: str, leases: int, seconds: float) -> dict[str, float]:
    """Client CPU of keeping ``leases`` leases of TTL 5 alive for ``seconds`` s."""
    held: list[etcdanyio.Lease] = []
    stop = anyio.Event()
    granting = anyio.Semaphore(20)  # grants in flight at a time

    async def hold(client: etcdanyio.Client, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        # One task per lease, as an application would hold them (nesting 1,000 lease scopes in
        # one task nests 1,000 cancel scopes, too deep for trio's deadline lookup).
        await granting.acquire()
        granted = False
        try:
            async with client.lease(5) as lease:
                granted = True
                granting.release()
                held.append(lease)
                task_status.started()
                await stop.wait()
        finally:
            if not granted:
                granting.release()

    async with etcdanyio.open_etcd(endpoint) as client:
        await client.get("bench/connect")
        cpu = time.process_time()
        await anyio.sleep(seconds)
        idle = time.process_time() - cpu
        async with anyio.create_task_group() as tg:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as starting:
                    for _ in range(leases):
                        starting.start_soon(tg.start, hold, client)
            await anyio.sleep(5 / 3)  # one keepalive round after the last grant: steady state
            before = await anyio.to_thread.run_sync(keepalives_received, endpoint)
            wall, cpu = time.perf_counter(), time.process_time()
            await anyio.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = await anyio.to_thread.run_sync(keepalives_received, endpoint)
            lost = sum(lease.lost is not None for lease in held)
            stop.set()
    sent = after - before
    rounds = sent / leases
    return {
        "keepalives": sent,
        "rounds": rounds,
        "cpu_s": cpu,
        "idle_cpu_s": idle,
        "ms_per_round": cpu / rounds * 1e3,
        "us_per_lease_s": cpu / (leases * wall) * 1e6,
        "us_per_keepalive": cpu / sent * 1e6,
        "lost": lost,
    }


def run_all(endpoints: list[str], handovers: int, leases: int, seconds: float) -> None:
    print(f"lock hand-over, {handovers} hand-overs, 3 contenders on their own clients")
    print(f"{'backend':<8} {'median ms':>10} {'p99 ms':>8} {'max ms':>8}")
    for backend in BACKENDS:
        latencies = anyio.run(handover, endpoints, handovers, backend=backend)
        ms = [x * 1e3 for x in latencies]
        print(
            f"{backend:<8} {statistics.median(ms):>10.2f} {percentile(ms, 0.99):>8.2f}"
            f" {max(ms):>8.2f}"
        )
    print()
    print(f"keepalive, {leases} leases of TTL 5 on one client, {seconds:.0f} s")
    print(
        f"{'backend':<8} {'keepalives':>10} {'rounds':>6} {'CPU s':>6} {'idle CPU s':>10}"
        f" {'ms/round':>8} {'us/lease/s':>10} {'us/keepalive':>12} {'lost':>4}"
    )
    for backend in BACKENDS:
        r = anyio.run(keepalive_cost, endpoints[0], leases, seconds, backend=backend)
        print(
            f"{backend:<8} {r['keepalives']:>10,.0f} {r['rounds']:>6.1f} {r['cpu_s']:>6.2f}"
            f" {r['idle_cpu_s']:>10.3f} {r['ms_per_round']:>8.2f} {r['us_per_lease_s']:>10.1f}"
            f" {r['us_per_keepalive']:>12.1f} {r['lost']:>4.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--handovers", type=int, default=200)
    parser.add_argument("--leases", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--endpoints")
    args = parser.parse_args()
    if args.endpoints:
        run_all(args.endpoints.split(","), args.handovers, args.leases, args.seconds)
    else:
        with EtcdServer() as server:
            run_all(server.endpoints, args.handovers, args.leases, args.seconds)


if __name__ == "__main__":
    main()

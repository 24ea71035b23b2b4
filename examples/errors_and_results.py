"""
Reads that keep their revision, results as sequences, typed errors by family, and etcd's
v3election service called directly with a leader key that any task could use.

    ETCD_ENDPOINTS=http://127.0.0.1:2379 python examples/errors_and_results.py [asyncio|trio]
"""

from __future__ import annotations

import os
import pickle
import sys

import anyio

import etcdanyio


async def main() -> None:
    endpoints = os.environ.get("ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    async with etcdanyio.open_etcd(endpoints, namespace="examples/errors/") as client:
        await client.delete_prefix("")
        # get_result() is get() with the header: the revision a create must compare with.
        read = await client.get_result("config")
        print(f"config exists: {bool(read)}, read at revision {read.header.revision}")
        for name in ("a", "b", "c"):
            await client.put(f"items/{name}", name.upper())
        items = await client.get_prefix("items/")
        print(f"{len(items)} items, first {items[0].key!r}, values {[kv.value for kv in items]}")

        # Every etcd error string has its class; families catch groups of them.
        try:
            await client.user_get("nobody")
        except etcdanyio.AuthError as exc:
            print(f"{type(exc).__name__}: {exc.message!r}, applied={exc.applied}")
            twin = pickle.loads(pickle.dumps(exc))  # errors cross process boundaries
            print(f"unpickled: {twin!r}")

        # The v3election service: the server campaigns with our lease.
        async with client.lease(ttl=10) as lease:
            leader = await client.election_campaign("leader", "node-1", lease=lease)
            await client.election_proclaim(leader, "node-1 v2")
            current = await client.election_leader("leader")
            print(f"leader key {leader.key!r} says {current.value if current else None!r}")
            await client.election_resign(leader)
        await client.delete_prefix("")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")

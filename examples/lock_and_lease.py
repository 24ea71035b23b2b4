"""
A lease keeps a service registration alive; a lock serialises a critical section.

    ETCD_ENDPOINTS=http://127.0.0.1:2379 python examples/lock_and_lease.py [asyncio|trio]
"""

from __future__ import annotations

import os
import sys

import anyio

import etcdanyio
from etcdanyio import txn


async def main() -> None:
    endpoints = os.environ.get("ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    async with etcdanyio.open_etcd(endpoints, namespace="examples/lock/") as client:
        async with client.lease(ttl=5) as lease:
            await client.put("services/api", "10.0.0.1:8080", lease=lease)
            info = await lease.time_to_live(keys=True)
            print(f"lease {lease.id:x}: ttl {info.ttl} s, keys {info.keys}")
        print("after revoke:", await client.get("services/api"))

        counter = 0

        async def worker(name: str) -> None:
            nonlocal counter
            with anyio.fail_after(10):
                async with client.lock("counter", ttl=5) as lock:
                    # Fence the write with the lock: it only applies while we hold it.
                    result = await client.txn(
                        compare=[lock.is_owner()],
                        success=[txn.put("counter", str(counter + 1))],
                    )
                    assert result.succeeded
                    counter += 1
                    print(f"{name} held the lock (revision {lock.revision})")

        async with anyio.create_task_group() as tg:
            for name in ("a", "b", "c"):
                tg.start_soon(worker, name)
        kv = await client.get("counter")
        print("counter =", kv.value if kv else None)
        await client.delete_prefix("")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")

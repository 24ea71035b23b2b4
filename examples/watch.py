"""
Watch a prefix while another task writes to it.

    ETCD_ENDPOINTS=http://127.0.0.1:2379 python examples/watch.py [asyncio|trio]
"""

from __future__ import annotations

import os
import sys

import anyio

import etcdanyio


async def main() -> None:
    endpoints = os.environ.get("ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    async with etcdanyio.open_etcd(endpoints, namespace="examples/watch/") as client:
        await client.delete_prefix("")
        with anyio.fail_after(10):
            async with client.watch("jobs/", prefix=True, prev_kv=True) as events:

                async def producer() -> None:
                    for n in range(3):
                        await client.put(f"jobs/{n}", "queued")
                    await client.put("jobs/0", "done")
                    await client.delete("jobs/1")

                async with anyio.create_task_group() as tg:
                    tg.start_soon(producer)
                    seen = 0
                    async for event in events:
                        kind, kv = event.type.name, event.kv
                        before = event.prev_kv.value if event.prev_kv else None
                        print(f"{kind:6} {kv.key!r} {kv.value!r} was {before!r}")
                        seen += 1
                        if seen == 5:
                            break


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")

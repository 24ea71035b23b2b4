"""
Service discovery with a mirror: instances register under a lease, a client keeps a local,
always-current table of them and reacts to every change.

    ETCD_ENDPOINTS=http://127.0.0.1:2379 python examples/service_discovery.py [asyncio|trio]
"""

from __future__ import annotations

import os
import sys

import anyio

import etcdanyio


async def register(client: etcdanyio.Client, name: str, address: str, gone: anyio.Event) -> None:
    """One service instance: its key lives as long as its lease (and this task)."""
    async with client.lease(ttl=5) as lease:
        await client.put(f"services/api/{name}", address, lease=lease)
        await gone.wait()  # leaving the block revokes the lease: the key disappears


async def main() -> None:
    endpoints = os.environ.get("ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    async with etcdanyio.open_etcd(endpoints, namespace="examples/discovery/") as client:
        await client.delete_prefix("")
        with anyio.fail_after(10):
            async with client.mirror("services/api/", prefix=True) as instances:
                print(f"at revision {instances.revision}: {len(instances)} instance(s)")
                changes = instances.changes()
                stop = {name: anyio.Event() for name in ("a", "b", "c")}
                async with anyio.create_task_group() as tg:
                    for n, name in enumerate(stop):
                        tg.start_soon(register, client, name, f"10.0.0.{n + 1}:8080", stop[name])
                    seen = 0
                    async for update in changes:
                        for event in update.events:
                            what = "up  " if event.type is etcdanyio.EventType.PUT else "down"
                            print(f"{what} {event.kv.key.decode()} {event.kv.value.decode()}")
                        seen += len(update.events)
                        # Look-ups are local dictionary reads: no request to etcd. The mirror
                        # itself may already be ahead of the update being handled.
                        table = sorted(kv.value.decode() for kv in instances.values())
                        print(f"  update {update.revision}, mirror {instances.revision}: {table}")
                        if seen == 3:
                            stop["b"].set()  # instance b shuts down
                        if seen == 4:
                            break
                    for flag in stop.values():
                        flag.set()
                # Current as of now on the server, proven without re-reading the table.
                await instances.sync()
                print(f"at revision {instances.revision}: {len(instances)} instance(s)")


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")

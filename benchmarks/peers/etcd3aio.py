"""
etcd3aio (asyncio, grpcio's ``grpc.aio``), run inside ``benchmarks/.venvs/etcd3aio``.

    python -m benchmarks.peers.etcd3aio --endpoint URL --workload NAME --ops N
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ._harness import LEASE_TTL, AsyncioLoop, DriverInfo, emit_versions, parse_args, run_async

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Callable, Sequence

INFO = DriverInfo(
    ["etcd3aio", "grpcio", "protobuf"],
    notes={
        "watch-1": "raw WatchResponse per iteration",
        "watch-100": "one gRPC stream per watcher",
    },
)


class _Etcd3aio:
    def __init__(self, client: Any, prefix_range_end: Callable[[bytes], bytes]) -> None:
        self._kv = client.kv
        self._lease = client.lease
        self._watch = client.watch
        self._range_end = prefix_range_end

    async def put(self, key: bytes, value: bytes) -> None:
        await self._kv.put(key, value)

    async def get(self, key: bytes) -> None:
        await self._kv.get(key)  # linearizable (serializable=False is the default)

    async def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        response = await self._kv.txn(
            compare=[self._kv.txn_compare_value(key, old)], success=[self._kv.txn_op_put(key, new)]
        )
        return bool(response.succeeded)

    async def lease_grant_revoke(self) -> None:
        grant = await self._lease.grant(LEASE_TTL)
        await self._lease.revoke(grant.ID)

    async def read_range(self, prefix: bytes) -> int:
        count = 0
        response = await self._kv.get(prefix, range_end=self._range_end(prefix))
        for kv in response.kvs:  # raw protobuf KeyValue messages
            _ = kv.key, kv.value
            count += 1
        return count

    async def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        await self._kv.txn(compare=[], success=[self._kv.txn_op_put(k, v) for k, v in items])

    @asynccontextmanager
    async def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> AsyncIterator[None]:
        async def consume(index: int) -> None:
            # An async generator of WatchResponse; the stream opens on first iteration.
            async for response in self._watch.watch(prefix, range_end=self._range_end(prefix)):
                if response.events:
                    for event in response.events:
                        _ = event.kv.key, event.kv.value
                    deliver(index, len(response.events))

        tasks = [asyncio.create_task(consume(i)) for i in range(count)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()


async def _main(args: argparse.Namespace) -> None:
    import etcd3aio  # type: ignore[import-not-found]  # installed only in benchmarks/.venvs/etcd3aio

    if args.workload == "versions":
        emit_versions(INFO)
    async with etcd3aio.Etcd3Client([f"{args.host}:{args.port}"]) as client:
        peer = _Etcd3aio(client, etcd3aio.prefix_range_end)
        await run_async(peer, AsyncioLoop(), args, INFO)


if __name__ == "__main__":
    asyncio.run(_main(parse_args()))

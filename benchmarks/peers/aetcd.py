"""
aetcd (asyncio, grpcio's ``grpc.aio``), run inside ``benchmarks/.venvs/aetcd``.

    python -m benchmarks.peers.aetcd --endpoint URL --workload NAME --ops N
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
    ["aetcd", "grpcio", "protobuf"],
    notes={
        "watch-1": "one event per iteration (no batch API)",
        "watch-100": "one event per iteration; one shared stream",
    },
)


class _Aetcd:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._tx = client.transactions

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.put(key, value)

    async def get(self, key: bytes) -> None:
        await self._client.get(key)  # linearizable (serializable=False is the default)

    async def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        succeeded, _ = await self._client.transaction(
            compare=[self._tx.value(key) == old], success=[self._tx.put(key, new)], failure=[]
        )
        return bool(succeeded)

    async def lease_grant_revoke(self) -> None:
        lease = await self._client.lease(LEASE_TTL)
        await self._client.revoke_lease(lease.id)

    async def read_range(self, prefix: bytes) -> int:
        count = 0
        for kv in await self._client.get_prefix(prefix):  # KeyValue wrappers
            _ = kv.key, kv.value
            count += 1
        return count

    async def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        success = [self._tx.put(key, value) for key, value in items]
        await self._client.transaction(compare=[], success=success, failure=[])

    @asynccontextmanager
    async def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> AsyncIterator[None]:
        # watch_prefix returns once the server confirmed the watch.
        watches = [await self._client.watch_prefix(prefix) for _ in range(count)]

        async def consume(index: int, watch: Any) -> None:
            async for event in watch:
                _ = event.kv.key, event.kv.value
                deliver(index, 1)

        tasks = [asyncio.create_task(consume(i, w)) for i, w in enumerate(watches)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()


async def _main(args: argparse.Namespace) -> None:
    import aetcd  # type: ignore[import-not-found]  # installed only in benchmarks/.venvs/aetcd

    if args.workload == "versions":
        emit_versions(INFO)
    async with aetcd.Client(host=args.host, port=args.port) as client:
        await run_async(_Aetcd(client), AsyncioLoop(), args, INFO)


if __name__ == "__main__":
    asyncio.run(_main(parse_args()))

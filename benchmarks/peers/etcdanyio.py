"""
etcdanyio itself, on asyncio or trio, in the main environment.

    python -m benchmarks.peers.etcdanyio --backend trio --endpoint URL --workload NAME --ops N

Watches use ``Watch.batches()``: a server response's events at once.
"""

from __future__ import annotations

import functools
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

import etcdanyio
from etcdanyio import txn
from etcdanyio._speedups import COMPILED

from ._harness import LEASE_TTL, DriverInfo, _finish, parse_args, run_async, versions

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Callable, Coroutine, Sequence

    from ._harness import AsyncEvent

INFO = DriverInfo(["etcdanyio", "anyio", "trio", "betterproto2"])


class _AnyioLoop:
    async def gather(self, jobs: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
        async with anyio.create_task_group() as tg:
            for job in jobs:
                tg.start_soon(job)

    def event(self) -> AsyncEvent:
        return anyio.Event()

    async def wait(self, event: AsyncEvent, limit: float) -> bool:
        with anyio.move_on_after(limit):
            await event.wait()
            return True
        return False

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class _Etcdanyio:
    def __init__(self, client: etcdanyio.Client, watch_buffer: int) -> None:
        self._client = client
        self._watch_buffer = watch_buffer

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.put(key, value)

    async def get(self, key: bytes) -> None:
        await self._client.get(key)  # linearizable by default

    async def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        result = await self._client.txn(
            compare=[txn.value(key) == old], success=[txn.put(key, new)]
        )
        return result.succeeded

    async def lease_grant_revoke(self) -> None:
        grant = await self._client.lease_grant(LEASE_TTL)
        await self._client.lease_revoke(grant.id)

    async def read_range(self, prefix: bytes) -> int:
        count = 0
        for kv in (await self._client.get_prefix(prefix)).kvs:
            _ = kv.key, kv.value
            count += 1
        return count

    async def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        await self._client.txn(success=[txn.put(key, value) for key, value in items])

    @asynccontextmanager
    async def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> AsyncIterator[None]:
        async def consume(index: int, watch: etcdanyio.Watch) -> None:
            async for batch in watch.batches():
                if batch.events:
                    for event in batch.events:
                        _ = event.kv.key, event.kv.value
                    deliver(index, len(batch.events))

        async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
            for i in range(count):
                # The block starts once the server confirmed the watch.
                cm = self._client.watch(prefix, prefix=True, max_buffered=self._watch_buffer)
                tg.start_soon(consume, i, await stack.enter_async_context(cm))
            yield
            tg.cancel_scope.cancel()


async def _main(args: argparse.Namespace) -> None:
    if args.workload == "versions":
        # which build of the codec ran: compiled (mypyc) or pure Python (ETCDANYIO_PURE_PYTHON=1)
        _finish({"versions": {**versions(INFO), "codec": "mypyc" if COMPILED else "pure"}})
    async with etcdanyio.open_etcd(args.endpoint) as client:
        peer = _Etcdanyio(client, watch_buffer=max(10_000, 2 * args.ops))
        await run_async(peer, _AnyioLoop(), args, INFO)


if __name__ == "__main__":
    arguments = parse_args()
    anyio.run(functools.partial(_main, arguments), backend=arguments.backend)

"""
etcetra (asyncio, grpcio's ``grpc.aio``; str keys and values), run inside
``benchmarks/.venvs/etcetra``.

    python -m benchmarks.peers.etcetra --endpoint URL --workload NAME --ops N

Its ``get()`` and ``get_prefix()`` always send ``serializable=True`` (a read
from the member's local state, no quorum round), so those two workloads are
marked and not counted when choosing the best peer. Its watch cannot tell when
the server confirmed the watch (``ready_event`` is set once the request is
written) and its ``start_revision`` is unusable (it assigns a ``str`` to an
int64 field), so the harness's sentinel handshake is what makes it safe.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from ._harness import LEASE_TTL, AsyncioLoop, DriverInfo, emit_versions, parse_args, run_async

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator, Callable, Sequence

SERIALIZABLE = "serializable: etcetra's get() always is; not counted as best peer"
INFO = DriverInfo(
    ["etcetra", "grpcio", "protobuf"],
    notes={
        "serial-get": SERIALIZABLE,
        "concurrent-get": SERIALIZABLE,
        "range-10k": "serializable (get_prefix always is); not counted as best peer",
        "watch-1": "one event per iteration (no batch API)",
        "watch-100": "one event per iteration; one gRPC stream per watcher",
    },
    incomparable=["serial-get", "concurrent-get", "range-10k"],
)


class _Etcetra:
    def __init__(self, communicator: Any, compare_key: Any) -> None:
        self._c = communicator
        self._compare_key = compare_key

    async def put(self, key: bytes, value: bytes) -> None:
        await self._c.put(key.decode(), value.decode())

    async def get(self, key: bytes) -> None:
        await self._c.get(key.decode())

    async def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        skey, snew = key.decode(), new.decode()

        def build(success: Any, failure: Any) -> None:
            success.put(skey, snew)

        compare = self._compare_key(skey).value == old.decode()
        result = await self._c.txn_compare([compare], build)
        return bool(result.success)

    async def lease_grant_revoke(self) -> None:
        lease_id = await self._c.grant_lease(LEASE_TTL)
        await self._c.revoke_lease(lease_id)

    async def read_range(self, prefix: bytes) -> int:
        count = 0
        for key, value in (await self._c.get_prefix(prefix.decode())).items():  # decoded str
            _ = key, value
            count += 1
        return count

    async def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        decoded = [(key.decode(), value.decode()) for key, value in items]

        def build(action: Any) -> None:
            for key, value in decoded:
                action.put(key, value)

        await self._c.txn(build)

    @asynccontextmanager
    async def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> AsyncIterator[None]:
        async def consume(index: int) -> None:
            async for event in self._c.watch_prefix(prefix.decode()):  # one stream each
                _ = event.key, event.value
                deliver(index, 1)

        tasks = [asyncio.create_task(consume(i)) for i in range(count)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()


async def _main(args: argparse.Namespace) -> None:
    import etcetra  # type: ignore[import-not-found]  # installed only in benchmarks/.venvs/etcetra

    if args.workload == "versions":
        emit_versions(INFO)
    client = etcetra.EtcdClient(etcetra.HostPortPair(args.host, args.port))
    async with client.connect() as communicator:
        peer = _Etcetra(communicator, etcetra.CompareKey)
        await run_async(peer, AsyncioLoop(), args, INFO)


if __name__ == "__main__":
    asyncio.run(_main(parse_args()))

"""
etcdanyio's blocking client (``etcdanyio.sync``), on asyncio or trio, in the main environment.

    python -m benchmarks.peers.etcdanyio_sync --backend trio --endpoint URL --workload NAME

The async client runs on an event loop thread; every call hops onto it. The 64-concurrent
workloads run on 64 threads sharing one client, as python-etcd3's and etcd3gw's do. Watches
use ``add_watch_prefix_callback``: callbacks on the client's callback thread.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

import etcdanyio.sync
from etcdanyio import txn

from ._harness import LEASE_TTL, DriverInfo, emit_versions, parse_args, run_sync

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence

    from etcdanyio import Event

THREADS = "64 threads, one client"
INFO = DriverInfo(
    ["etcdanyio", "anyio", "trio", "betterproto2"],
    notes={
        "concurrent-put": THREADS,
        "concurrent-get": THREADS,
        "watch-1": "callbacks on the client's callback thread",
        "watch-100": "callbacks on the client's callback thread",
    },
)


class _EtcdanyioSync:
    def __init__(self, client: etcdanyio.sync.Client) -> None:
        self._client = client

    def put(self, key: bytes, value: bytes) -> None:
        self._client.put(key, value)

    def get(self, key: bytes) -> None:
        self._client.get(key)  # linearizable by default

    def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        result = self._client.txn(compare=[txn.value(key) == old], success=[txn.put(key, new)])
        return result.succeeded

    def lease_grant_revoke(self) -> None:
        grant = self._client.lease_grant(LEASE_TTL)
        self._client.lease_revoke(grant.id)

    def read_range(self, prefix: bytes) -> int:
        count = 0
        for kv in self._client.get_prefix(prefix).kvs:
            _ = kv.key, kv.value
            count += 1
        return count

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        self._client.txn(success=[txn.put(key, value) for key, value in items])

    @contextmanager
    def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> Iterator[None]:
        def callback_for(index: int) -> Callable[[Event], None]:
            def callback(event: Event) -> None:
                _ = event.kv.key, event.kv.value
                deliver(index, 1)

            return callback

        # Each add_watch_prefix_callback returns once the server confirmed the watch.
        ids = [
            self._client.add_watch_prefix_callback(prefix, callback_for(i)) for i in range(count)
        ]
        try:
            yield
        finally:
            for watch_id in ids:
                self._client.cancel_watch(watch_id)


def _main(args: argparse.Namespace) -> None:
    if args.workload == "versions":
        emit_versions(INFO)
    client = etcdanyio.sync.Client(args.endpoint, backend=args.backend)
    run_sync(_EtcdanyioSync(client), args, INFO)


if __name__ == "__main__":
    _main(parse_args())

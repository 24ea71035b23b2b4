"""
python-etcd3 (PyPI ``etcd3``; blocking, grpcio), run inside
``benchmarks/.venvs/python-etcd3``.

    python -m benchmarks.peers.python_etcd3 --endpoint URL --workload NAME --ops N

It has no async API, so the 64-concurrent workloads run on 64 threads sharing
one client (one gRPC channel). Its generated ``_pb2`` modules predate protobuf
4, so it is installed with ``protobuf<4``, which has no compiled extension for
this Python: every message is encoded and decoded in pure Python. (With a
current protobuf it imports only under
``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``, which is pure Python too.)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._harness import LEASE_TTL, DriverInfo, emit_versions, parse_args, run_sync

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence

THREADS = "64 threads (no async API)"
INFO = DriverInfo(
    ["etcd3", "grpcio", "protobuf"],
    notes={
        "concurrent-put": THREADS,
        "concurrent-get": THREADS,
        "range-10k": "pure-Python protobuf decode",
        "watch-1": "callbacks on its watch thread",
        "watch-100": "callbacks on its watch thread; one shared stream",
    },
)


class _PythonEtcd3:
    def __init__(self, client: Any) -> None:
        self._client = client
        self._tx = client.transactions

    def put(self, key: bytes, value: bytes) -> None:
        self._client.put(key, value)

    def get(self, key: bytes) -> None:
        self._client.get(key)  # linearizable (serializable=False is the default)

    def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        succeeded, _ = self._client.transaction(
            compare=[self._tx.value(key) == old], success=[self._tx.put(key, new)], failure=[]
        )
        return bool(succeeded)

    def lease_grant_revoke(self) -> None:
        lease = self._client.lease(LEASE_TTL)
        self._client.revoke_lease(lease.id)

    def read_range(self, prefix: bytes) -> int:
        count = 0
        for value, meta in self._client.get_prefix(prefix):  # (value, KVMetadata)
            _ = meta.key, value
            count += 1
        return count

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        success = [self._tx.put(key, value) for key, value in items]
        self._client.transaction(compare=[], success=success, failure=[])

    @contextmanager
    def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> Iterator[None]:
        def callback_for(index: int) -> Callable[[Any], None]:
            def callback(response: Any) -> None:
                if not isinstance(response, Exception):  # an error ends in a harness timeout
                    for event in response.events:
                        _ = event.key, event.value
                    deliver(index, len(response.events))

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
    import etcd3  # type: ignore[import-not-found]  # installed only in benchmarks/.venvs/python-etcd3

    if args.workload == "versions":
        emit_versions(INFO)
    run_sync(_PythonEtcd3(etcd3.client(host=args.host, port=args.port)), args, INFO)


if __name__ == "__main__":
    _main(parse_args())

"""
etcd3gw (blocking; etcd's JSON gateway over ``requests``), run inside
``benchmarks/.venvs/etcd3gw``.

    python -m benchmarks.peers.etcd3gw --endpoint URL --workload NAME --ops N

It has no async API, so the 64-concurrent workloads run on 64 threads sharing
one client, whose ``requests`` connection pool is sized to 64 (the default of
10 would open and discard a TCP connection for most calls). Watches use
``etcd3gw.watch.Watcher`` with a callback, the layer under ``watch_prefix()``:
one streaming HTTP request and a two-thread pool per watcher, one callback per
event (``watch_prefix()`` adds a queue and would need a consumer thread each).
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._harness import LEASE_TTL, DriverInfo, emit_versions, parse_args, run_sync

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator, Sequence

THREADS = "64 threads (no async API); HTTP pool of 64"
INFO = DriverInfo(
    ["etcd3gw", "requests", "urllib3"],
    notes={
        "concurrent-put": THREADS,
        "concurrent-get": THREADS,
        "range-10k": "JSON + base64",
        "watch-1": "HTTP stream; one callback per event",
        "watch-100": "one HTTP stream + 2 threads per watcher",
    },
)


class _Etcd3gw:
    def __init__(self, client: Any, utils: Any, watcher: Any) -> None:
        self._client = client
        self._encode = utils._encode  # base64, as the client's own calls do
        self._range_end = utils._increment_last_byte
        self._watcher = watcher

    def put(self, key: bytes, value: bytes) -> None:
        self._client.put(key, value)

    def get(self, key: bytes) -> None:
        self._client.get(key)  # linearizable (serializable is not sent)

    def cas(self, key: bytes, old: bytes, new: bytes) -> bool:
        k = self._encode(key)
        txn = {
            "compare": [
                {"key": k, "result": "EQUAL", "target": "VALUE", "value": self._encode(old)}
            ],
            "success": [{"request_put": {"key": k, "value": self._encode(new)}}],
            "failure": [],
        }
        return bool(self._client.transaction(txn).get("succeeded", False))

    def lease_grant_revoke(self) -> None:
        self._client.lease(LEASE_TTL).revoke()

    def read_range(self, prefix: bytes) -> int:
        count = 0
        for value, meta in self._client.get_prefix(prefix):  # (value, dict), base64-decoded
            _ = meta["key"], value
            count += 1
        return count

    def put_many(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        puts = [
            {"request_put": {"key": self._encode(key), "value": self._encode(value)}}
            for key, value in items
        ]
        self._client.transaction({"compare": [], "success": puts, "failure": []})

    @contextmanager
    def watchers(
        self, prefix: bytes, count: int, deliver: Callable[[int, int], None]
    ) -> Iterator[None]:
        def callback_for(index: int) -> Callable[[Any], None]:
            def callback(event: Any) -> None:
                _ = event["kv"]["key"], event["kv"].get("value")
                deliver(index, 1)

            return callback

        range_end = self._range_end(prefix)
        watchers = [
            self._watcher(self._client, prefix, callback_for(i), range_end=range_end)
            for i in range(count)
        ]
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.stop()


def _main(args: argparse.Namespace) -> None:
    import etcd3gw  # type: ignore[import-not-found]  # installed only in benchmarks/.venvs/etcd3gw

    # By name: requests may or may not be in the main environment (mypy's view).
    requests = importlib.import_module("requests")
    utils, watch = (importlib.import_module(f"etcd3gw.{name}") for name in ("utils", "watch"))

    if args.workload == "versions":
        emit_versions(INFO)
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
    client = etcd3gw.client(host=args.host, port=args.port, session=session)
    run_sync(_Etcd3gw(client, utils, watch.Watcher), args, INFO)


if __name__ == "__main__":
    _main(parse_args())

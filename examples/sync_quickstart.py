"""
The blocking client (``etcdanyio.sync``) from plain threaded code: KV, a transaction, a watch,
a lease, a lock shared by threads, an election, and a callback watch.

    ETCD_ENDPOINTS=http://127.0.0.1:2379 python examples/sync_quickstart.py [asyncio|trio]

The argument picks the event loop the client runs on in its background thread.
"""

from __future__ import annotations

import os
import sys
import threading

import etcdanyio
import etcdanyio.sync
from etcdanyio import txn


def main(backend: str) -> None:
    endpoints = os.environ.get("ETCD_ENDPOINTS", "http://127.0.0.1:2379")
    with etcdanyio.sync.open_etcd(
        endpoints, backend=backend, timeout=5, namespace="examples/sync/"
    ) as client:
        client.delete_prefix("")
        client.put("greeting", "hello")
        kv = client.get("greeting")
        print(f"greeting = {kv.value if kv else None!r}")

        swapped = client.txn(
            compare=[txn.value("greeting") == "hello"],
            success=[txn.put("greeting", "hello, threads")],
        )
        print(f"swapped: {swapped.succeeded}")

        with client.watch("jobs/", prefix=True) as events:
            client.put("jobs/1", "queued")
            event = events.get(timeout=5)  # None if nothing came in time
            assert event is not None
            print(f"watched {event.type.name} {event.kv.key!r}")
            print(f"then, within 0.1 s: {events.get(timeout=0.1)}")

        with client.lease(ttl=10) as lease:
            client.put("service/a", "10.0.0.1", lease=lease)
            print(f"lease {lease.id:#x}, {lease.remaining_ttl()} s left, lost: {lease.lost}")
        print(f"after the lease: {client.get('service/a')}")

        client.put("counter", "0")

        def work() -> None:
            for _ in range(5):
                with client.lock("counter-lock", ttl=10, timeout=30) as lock:
                    current = client.get("counter")
                    assert current is not None
                    client.txn(
                        compare=[lock.is_owner()],  # fails if the lock was lost meanwhile
                        success=[txn.put("counter", str(int(current.value) + 1))],
                    )

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counter = client.get("counter")
        print(f"counter = {counter.value if counter else None!r} (4 threads x 5 under the lock)")

        election = client.election("leader")
        with election.campaign(b"node-1", ttl=10) as leadership:
            leadership.proclaim(b"node-1 v2")
            leader = election.leader()
            print(f"leader: {leader.value if leader else None!r}")

        seen = threading.Event()

        def on_change(event: etcdanyio.Event) -> None:  # runs on the client's callback thread
            print(f"callback: {event.kv.value!r}")
            seen.set()

        watch_id = client.add_watch_callback("config", on_change)
        client.put("config", "v1")
        seen.wait(5)
        client.cancel_watch(watch_id)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "asyncio")

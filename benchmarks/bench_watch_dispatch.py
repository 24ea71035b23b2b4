"""
The watch stream's reader without a server: decode and dispatch, µs per WatchResponse.

    python benchmarks/bench_watch_dispatch.py [--repeats N] [--count N]

Feeds pre-encoded responses to ``WatchStream._reader`` through a stand-in call: events for
one of 100 live watchers (1 and 100 events per response), and a progress answer for all
100. The best of ``--repeats`` runs is shown (the machine's noise only adds).
"""

from __future__ import annotations

import argparse
import time

import anyio

from etcdanyio._keys import Namespace
from etcdanyio._lazy import etcdserverpb as pb
from etcdanyio._pb import mvccpb
from etcdanyio._speedups import codec
from etcdanyio._watch_stream import Watcher, WatchStream


class _Channel:
    current_endpoint = None


class _Call:
    """Hands out the recorded messages, then ends the stream."""

    def __init__(self, messages: list[bytes]) -> None:
        self._messages = iter(messages)

    async def recv_message(self) -> bytes | None:
        return next(self._messages, None)


def _response(watch_id: int, revision: int, events: int) -> bytes:
    return bytes(
        pb.WatchResponse(
            header=pb.ResponseHeader(cluster_id=1, member_id=2, revision=revision, raft_term=3),
            watch_id=watch_id,
            events=[
                mvccpb.Event(
                    kv=mvccpb.KeyValue(
                        key=b"bench/key/%08d" % i,
                        value=b"v" * 64,
                        create_revision=revision,
                        mod_revision=revision,
                        version=1,
                    )
                )
                for i in range(events)
            ],
        )
    )


async def scenario(events: int, count: int, progress: bool) -> float:
    async def reauthenticate(stale: bytes) -> None:
        pass

    stream = WatchStream(
        _Channel(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Namespace(),
        metadata=lambda: b"",
        reauthenticate=reauthenticate,
    )
    watchers = []
    for _ in range(100):
        watcher = Watcher(
            stream,
            key=b"bench/",
            range_end=b"bench0",
            start_revision=0,
            prev_kv=False,
            progress_notify=False,
            filters=[],
            fragment=False,
            max_buffered=1 << 40,
        )
        stream._live.add(watcher)
        stream._create(watcher)
        watchers.append(watcher)
    for watcher in watchers:
        assert watcher.watch_id is not None
        stream._dispatch(
            codec.decode_watch_response(
                bytes(
                    pb.WatchResponse(
                        header=pb.ResponseHeader(revision=1),
                        watch_id=watcher.watch_id,
                        created=True,
                    )
                )
            )
        )
    target = watchers[0]
    assert target.watch_id is not None
    if progress:
        messages = [_response(-1, 2 + i, 0) for i in range(count)]
    else:
        messages = [_response(target.watch_id, 2 + i, events) for i in range(count)]
    call = _Call(messages)
    start = time.perf_counter()
    await stream._reader(call)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    delivered = len(target.batches)
    assert delivered in (count, 1), delivered  # progress answers collapse
    return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()
    print(f"{'scenario':<28} {'backend':<8} {'us/response':>12}")
    for label, events, count, progress in (
        ("1 event/response", 1, args.count, False),
        ("100 events/response", 100, args.count // 20, False),
        ("progress to 100 watchers", 0, args.count // 20, True),
    ):
        for backend in ("asyncio", "trio"):
            best = min(
                anyio.run(scenario, events, count, progress, backend=backend)
                for _ in range(args.repeats)
            )
            print(f"{label:<28} {backend:<8} {best:>12.3f}")


if __name__ == "__main__":
    main()

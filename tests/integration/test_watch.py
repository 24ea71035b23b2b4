"""
Watches against real etcd: events, ranges, history, filters, the shared stream, progress,
compaction, and faults (proxy resets, member restart and stop, 2,000 watches, a slow consumer,
fragmented responses).

What was delivered is checked against the ground truth read through the JSON gateway (the
oracle, which shares no code with the client) by the validators of ``_kit.checkers``. Server-side
leaks are read from etcd's gauges ``etcd_debugging_mvcc_watch_stream_total`` and
``etcd_debugging_mvcc_watcher_total``; tasks and sockets by the autouse leak check.
"""

from __future__ import annotations

import base64
import functools
import urllib.request
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

import etcdanyio
from etcdanyio import EventType, Filter, txn
from etcdanyio.testing import EtcdCluster, EtcdServer

from ._kit import checkers
from ._kit.checkers import WatchRecord, WatchSpec, read_history, validate_watch
from ._kit.faultproxy import open_fault_proxies, open_fault_proxy
from ._kit.oracle import Oracle, prefix_range_end

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from etcdanyio.testing import EtcdMember

pytestmark = pytest.mark.integration

# One member for the module: metrics for the leak gauges, progress notifications every 200 ms,
# and a request limit (3.5 MB) that lets one transaction carry three 1 MB values.
SERVER_ARGS = [
    *("--experimental-watch-progress-notify-interval", "200ms"),
    *("--max-request-bytes", "3500000"),
]
GAUGES = ("etcd_debugging_mvcc_watch_stream_total", "etcd_debugging_mvcc_watcher_total")


@pytest.fixture(scope="module")
def server() -> Iterator[EtcdServer]:
    with EtcdServer(metrics=True, extra_args=SERVER_ARGS) as server:
        yield server


@pytest.fixture
def prefix() -> bytes:
    return f"watch/{uuid.uuid4().hex}/".encode()


# ------------------------------------------------------------------------------------ helpers


def _check_kv(kv: etcdanyio.KeyValue) -> checkers.KV:
    return checkers.KV(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def _check_event(event: etcdanyio.Event) -> checkers.Event:
    kind: checkers.EventType = "PUT" if event.type is EventType.PUT else "DELETE"
    prev = _check_kv(event.prev_kv) if event.prev_kv is not None else None
    return checkers.Event(kind, _check_kv(event.kv), prev)


def _response(batch: etcdanyio.WatchBatch) -> checkers.Response:
    return checkers.Response(tuple(_check_event(e) for e in batch.events), batch.revision)


def _spec(
    key: bytes,
    *,
    prefix: bool = False,
    start_revision: int = 0,
    prev_kv: bool = False,
    no_put: bool = False,
    no_delete: bool = False,
) -> WatchSpec:
    return WatchSpec(
        key,
        prefix_range_end(key) if prefix else b"",
        start_revision=start_revision,
        prev_kv=prev_kv,
        no_put=no_put,
        no_delete=no_delete,
    )


def _record(watch: etcdanyio.Watch, spec: WatchSpec) -> WatchRecord:
    return WatchRecord(spec, created_revision=watch.created_revision)


async def _collect(watch: etcdanyio.Watch, record: WatchRecord, *, until: int) -> None:
    """Record batches until everything up to revision ``until`` was delivered."""
    if record.responses and record.responses[-1].revision >= until:
        return
    async for batch in watch.batches():
        record.responses.append(_response(batch))
        if batch.revision >= until:
            return


async def _truth(oracle: Oracle, prefix: bytes, since: int) -> list[checkers.Event]:
    """The ground truth of ``prefix`` from revision ``since``, through the gateway."""
    read = functools.partial(
        read_history, oracle, prefix, prefix_range_end(prefix), start_revision=since
    )
    return await anyio.to_thread.run_sync(read)


async def _revision(oracle: Oracle) -> int:
    return await anyio.to_thread.run_sync(oracle.revision)


async def _oput(oracle: Oracle, key: bytes, value: bytes) -> int:
    return await anyio.to_thread.run_sync(oracle.put, key, value)


def _metrics(member: EtcdMember) -> tuple[int, int]:
    url = member.metrics_url or member.client_url
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    values = dict.fromkeys(GAUGES, 0)
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in values:
            values[name] = int(float(value))
    return values[GAUGES[0]], values[GAUGES[1]]


async def _gauges(server: EtcdCluster, index: int = 0) -> tuple[int, int]:
    """``(watch streams, watchers)`` open on member ``index``."""
    return await anyio.to_thread.run_sync(_metrics, server.members[index])


async def _wait_gauges(server: EtcdCluster, expected: tuple[int, int], within: float) -> None:
    seen = await _gauges(server)
    with anyio.move_on_after(within):
        while seen != expected:
            await anyio.sleep(0.02)  # server-side state has no event: poll with a deadline
            seen = await _gauges(server)
    assert seen == expected, f"(watch streams, watchers) {seen}, expected {expected}"


async def _wait_until(predicate: Callable[[], bool], within: float) -> None:
    with anyio.fail_after(within):
        while not predicate():  # noqa: ASYNC110 -- no event to wait on: poll with a deadline
            await anyio.sleep(0.005)


def _suspended(watch: etcdanyio.Watch) -> bool:
    """Whether the watch's server-side watch is paused until its buffer drains."""
    return watch._watcher.suspended


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------------- basics


async def test_put_and_delete_events_with_prev_kv(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    key = prefix + b"k"
    since = await _revision(oracle)
    with anyio.fail_after(5):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(key, prev_kv=True) as with_prev,
            client.watch(key) as without,
        ):
            created = with_prev.created_revision
            assert created >= since
            r1 = (await client.put(key, "v1")).header.revision
            r2 = (await client.put(key, b"v2")).header.revision
            r3 = (await client.delete(key)).header.revision
            await client.put(prefix + b"other", "not watched")
            events = [await with_prev.__anext__() for _ in range(3)]
            plain = [await without.__anext__() for _ in range(3)]
            assert with_prev.revision == r3

    assert [e.type for e in events] == [EventType.PUT, EventType.PUT, EventType.DELETE]
    assert [e.revision for e in events] == [r1, r2, r3]
    first, second, deleted = events
    assert (first.kv.key, first.kv.value, first.kv.version) == (key, b"v1", 1)
    assert first.kv.create_revision == first.kv.mod_revision == r1
    assert first.prev_kv is None
    assert (second.kv.value, second.kv.version, second.kv.create_revision) == (b"v2", 2, r1)
    assert second.prev_kv is not None
    assert (second.prev_kv.value, second.prev_kv.mod_revision) == (b"v1", r1)
    assert (deleted.kv.key, deleted.kv.value, deleted.kv.mod_revision) == (key, b"", r3)
    assert deleted.prev_kv is not None
    assert (deleted.prev_kv.value, deleted.prev_kv.version) == (b"v2", 2)
    assert [e.prev_kv for e in plain] == [None, None, None]
    assert [e.kv for e in plain] == [e.kv for e in events]

    truth = await _truth(oracle, prefix, since)
    for watched, spec in ((events, _spec(key, prev_kv=True)), (plain, _spec(key))):
        responses = [checkers.Response((_check_event(e),), e.revision) for e in watched]
        validate_watch(WatchRecord(spec, responses, created_revision=created), truth)


async def test_prefix_and_end_ranges(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    keys = [b"0", b"a", b"a/1", b"a/2/x", b"a0", b"b", b"c", b"c\xff", b"d", b"e"]
    with anyio.fail_after(5):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(prefix + b"a/", prefix=True) as by_prefix,
            client.watch(prefix + b"b", end=prefix + b"d") as by_range,
            client.watch(prefix + b"d", end=b"\0") as to_the_end,
        ):
            rev = {key: (await client.put(prefix + key, key)).header.revision for key in keys}
            stop = await _oput(oracle, prefix_range_end(prefix) + b"/after", b"x")
            records = {
                "prefix": _record(by_prefix, _spec(prefix + b"a/", prefix=True)),
                "range": _record(by_range, WatchSpec(prefix + b"b", prefix + b"d")),
                "end": _record(to_the_end, WatchSpec(prefix + b"d", b"\0")),
            }
            await _collect(by_prefix, records["prefix"], until=rev[b"a/2/x"])
            await _collect(by_range, records["range"], until=rev[b"c\xff"])
            await _collect(to_the_end, records["end"], until=stop)

    def got(name: str) -> list[bytes]:
        return [e.key[len(prefix) :] for e in records[name].events]

    assert got("prefix") == [b"a/1", b"a/2/x"]
    assert got("range") == [b"b", b"c", b"c\xff"]
    assert got("end")[:2] == [b"d", b"e"]
    assert records["end"].events[-1].key == prefix_range_end(prefix) + b"/after"
    truth = await _truth(oracle, prefix, since)
    validate_watch(records["prefix"], truth)
    validate_watch(records["range"], truth)


async def test_start_revision_replays_history_then_goes_live(
    server: EtcdServer, prefix: bytes
) -> None:
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            revisions = [
                (await client.put(prefix + b"k", f"v{i}")).header.revision for i in range(5)
            ]
            await client.delete(prefix + b"k")
            spec = _spec(prefix, prefix=True, start_revision=revisions[1], prev_kv=True)
            async with client.watch(
                prefix, prefix=True, start_revision=revisions[1], prev_kv=True
            ) as w:
                record = _record(w, spec)
                live = (await client.put(prefix + b"later", "live")).header.revision
                await _collect(w, record, until=live)
    events = record.events
    assert [e.revision for e in events] == [*revisions[1:], revisions[-1] + 1, live]
    assert events[0].kv.value == b"v1"
    assert events[0].prev_kv is not None
    assert events[0].prev_kv.value == b"v0"  # history carries prev_kv too
    validate_watch(record, await _truth(oracle, prefix, since))


@pytest.mark.parametrize(
    ("filters", "kept"),
    [
        pytest.param([Filter.NO_PUT], [EventType.DELETE], id="no_put"),
        pytest.param(["no_delete"], [EventType.PUT], id="no_delete-by-name"),
        pytest.param([Filter.NO_PUT, Filter.NO_DELETE], [], id="both"),
    ],
)
async def test_filters(
    server: EtcdServer, prefix: bytes, filters: list[Filter | str], kept: list[EventType]
) -> None:
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    spec = _spec(
        prefix,
        prefix=True,
        no_put=EventType.PUT not in kept,
        no_delete=EventType.DELETE not in kept,
    )
    with anyio.fail_after(5):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(prefix, prefix=True, filters=filters) as filtered,
            client.watch(prefix, prefix=True) as everything,
        ):
            await client.put(prefix + b"a", "1")
            await client.put(prefix + b"a", "2")
            await client.delete(prefix + b"a")
            last = (await client.put(prefix + b"b", "3")).header.revision
            record = _record(filtered, spec)
            await _collect(everything, _record(everything, spec), until=last)
            await filtered.request_progress()  # proves nothing more is coming
            await _collect(filtered, record, until=last)
    types = [e.type for e in record.events]
    assert types == [t for t in ["PUT", "PUT", "DELETE", "PUT"] if EventType[t] in kept]
    validate_watch(record, await _truth(oracle, prefix, since))


async def test_bad_arguments_raise_before_io(server: EtcdServer) -> None:
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            with pytest.raises(ValueError, match="must sort after the start key"):
                async with client.watch("b", end="a"):
                    pass
            with pytest.raises(ValueError, match="must not be empty"):
                async with client.watch(""):
                    pass
            with pytest.raises(ValueError, match="start_revision"):
                async with client.watch("k", start_revision=0):
                    pass
            with pytest.raises(ValueError, match="filters"):
                async with client.watch("k", filters=["no_such_filter"]):
                    pass
            with pytest.raises(ValueError, match="max_buffered"):
                async with client.watch("k", max_buffered=0):
                    pass
            assert client._core.watch_stream is None or client._core.watch_stream.watchers == 0


# ------------------------------------------------------------------- the shared Watch stream


async def test_watches_share_one_stream_and_are_cancelled_on_exit(
    server: EtcdServer, prefix: bytes
) -> None:
    base_streams, base_watchers = await _gauges(server)
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            async with client.watch(prefix + b"a") as a:
                async with client.watch(prefix + b"b") as b, client.watch(prefix, prefix=True) as c:
                    await _wait_gauges(server, (base_streams + 1, base_watchers + 3), 1)
                    ra = (await client.put(prefix + b"a", "1")).header.revision
                    rb = (await client.put(prefix + b"b", "2")).header.revision
                    assert (await a.__anext__()).revision == ra
                    assert (await b.__anext__()).revision == rb
                    assert [(await c.__anext__()).revision for _ in range(2)] == [ra, rb]
                # Leaving a block cancels that watch on the server; the stream stays.
                await _wait_gauges(server, (base_streams + 1, base_watchers + 1), 1)
                rc = (await client.put(prefix + b"a", "3")).header.revision
                assert (await a.__anext__()).revision == rc
            # No watch left: the stream itself is closed, the client still open.
            await _wait_gauges(server, (base_streams, base_watchers), 1)
            async with client.watch(prefix + b"again"):
                await _wait_gauges(server, (base_streams + 1, base_watchers + 1), 1)
        await _wait_gauges(server, (base_streams, base_watchers), 1)


async def test_txn_events_arrive_in_one_batch(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            await client.put(prefix + b"gone", "x")
            spec = _spec(prefix, prefix=True, prev_kv=True)
            async with client.watch(prefix, prefix=True, prev_kv=True) as w:
                record = _record(w, spec)
                result = await client.txn(
                    success=[
                        txn.put(prefix + b"1", "a"),
                        txn.put(prefix + b"2", "b"),
                        txn.put(prefix + b"3", "c"),
                        txn.delete(prefix + b"gone"),
                    ]
                )
                assert result.succeeded
                after = (await client.put(prefix + b"4", "d")).header.revision
                await _collect(w, record, until=after)
    revision = result.header.revision
    first = record.responses[0]
    assert [e.revision for e in first.events] == [revision] * 4
    assert [(e.type, e.key) for e in first.events] == [
        ("PUT", prefix + b"1"),
        ("PUT", prefix + b"2"),
        ("PUT", prefix + b"3"),
        ("DELETE", prefix + b"gone"),
    ]
    validate_watch(record, await _truth(oracle, prefix, since))


# ---------------------------------------------------------------------------------- progress


async def test_progress_notifications_advance(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    with anyio.fail_after(5):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(prefix + b"k", progress_notify=True) as w,
        ):
            record = _record(w, _spec(prefix + b"k"))
            progress: list[int] = []
            batches = w.batches()
            for i in range(3):
                # An event, then the store moves on outside the watch: the next periodic
                # notification (every 200 ms) vouches for the newer revision.
                await client.put(prefix + b"k", b"%d" % i)
                moved = (await client.put(prefix + b"elsewhere", b"%d" % i)).header.revision
                async for batch in batches:
                    record.responses.append(_response(batch))
                    if batch.is_progress and batch.revision >= moved:
                        progress.append(batch.revision)
                        break
            assert w.revision >= progress[-1]
    assert progress == sorted(progress)
    assert progress[0] < progress[1] < progress[2]
    assert len(record.events) == 3
    validate_watch(record, await _truth(oracle, prefix, since))


async def test_progress_notifications_on_an_idle_store(server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(1):  # about 5 notifications at 200 ms
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(prefix + b"k", progress_notify=True) as w,
        ):
            batch = await w.batches().__anext__()
    assert batch.is_progress
    assert batch.revision >= w.created_revision


async def test_request_progress(server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(5):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(prefix + b"quiet") as w,
        ):
            moved = (await client.put(prefix + b"elsewhere", "x")).header.revision
            assert w.revision < moved
            await w.request_progress()
            batch = await w.batches().__anext__()
            assert batch.is_progress
            assert batch.events == []
            assert batch.revision >= moved
            assert w.revision >= moved
            # Nothing is lost by the jump: an event right after still arrives.
            after = (await client.put(prefix + b"quiet", "y")).header.revision
            event = await w.__anext__()
            assert event.revision == after


async def test_request_progress_while_catching_up_loses_nothing(
    server: EtcdServer, prefix: bytes
) -> None:
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            revisions = [
                (await client.put(prefix + b"%d" % i, "v")).header.revision for i in range(50)
            ]
            async with client.watch(prefix, prefix=True, start_revision=revisions[0]) as w:
                await w.request_progress()  # the history is still being sent
                got: list[int] = []
                async for batch in w.batches():
                    got += [e.revision for e in batch.events]
                    if batch.revision >= revisions[-1]:
                        break
    assert got == revisions


async def test_watch_once(server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            start = (await client.put(prefix + b"before", "x")).header.revision + 1
            got: list[etcdanyio.Event] = []

            async def waiter() -> None:
                got.append(await client.watch_once(prefix, prefix=True, start_revision=start))

            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                revision = (await client.put(prefix + b"k", "v")).header.revision
            assert got[0].revision == revision
            assert got[0].kv.key == prefix + b"k"
            # From history: the first event at or after the start revision.
            first = await client.watch_once(prefix + b"k", start_revision=start - 1, prev_kv=True)
            assert (first.revision, first.kv.value, first.prev_kv) == (revision, b"v", None)
            assert client._core.watch_stream is not None
            assert client._core.watch_stream.watchers == 0


async def test_namespace_strips_keys_in_events(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    with anyio.fail_after(5):
        async with (
            etcdanyio.open_etcd(server.endpoint, namespace=prefix + b"ns/") as client,
            client.watch("k", prev_kv=True) as one,
            client.watch("", prefix=True) as everything,
        ):
            await _oput(oracle, prefix + b"outside", b"not in the namespace")
            await _oput(oracle, prefix + b"ns/k", b"1")
            await _oput(oracle, prefix + b"ns/k", b"2")
            last = await _oput(oracle, prefix + b"ns/sub/x", b"3")
            events = [await one.__anext__() for _ in range(2)]
            record = WatchRecord(WatchSpec(b"\0", b"\0"))
            await _collect(everything, record, until=last)
    assert [e.kv.key for e in events] == [b"k", b"k"]
    assert events[1].prev_kv is not None
    assert events[1].prev_kv.key == b"k"
    assert [e.key for e in record.events] == [b"k", b"k", b"sub/x"]


async def test_create_rejected_by_the_server_raises_from_async_with(
    server: EtcdServer, prefix: bytes
) -> None:
    # etcd refuses a create request above its gRPC limit (--max-request-bytes + 512 KiB) by
    # ending the whole stream; an empty range (created + canceled) is refused before any I/O.
    with anyio.fail_after(5):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(prefix + b"ok") as survivor,
        ):
            with pytest.raises(etcdanyio.RequestTooLargeError) as info:
                async with client.watch(prefix + b"x" * 4_200_000):
                    pytest.fail("the body must not run")
            assert "received message larger than max" in info.value.message
            # The other watch on the same stream was resumed, not lost.
            revision = (await client.put(prefix + b"ok", "v")).header.revision
            assert (await survivor.__anext__()).revision == revision
            assert client._core.watch_stream is not None
            assert client._core.watch_stream.watchers == 1


async def test_fragmented_responses_are_reassembled(
    server: EtcdServer, prefix: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Three 1 MB values in one transaction (near the 3.5 MB request limit); with prev_kv the
    # response is about 6 MB, above the limit, so etcd sends it in fragments.
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    values = [bytes([65 + i]) * 1_000_000 for i in range(3)]
    with anyio.fail_after(10):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            await client.txn(success=[txn.put(prefix + b"%d" % i, values[i]) for i in range(3)])
            spec = _spec(prefix, prefix=True, prev_kv=True)
            async with client.watch(prefix, prefix=True, prev_kv=True, fragment=True) as w:
                seen: list[tuple[int, bool]] = []
                on_events = w._watcher.on_events

                def spy(events: list[etcdanyio.Event], fragment: bool) -> bool | None:
                    seen.append((len(events), fragment))
                    return on_events(events, fragment)

                monkeypatch.setattr(w._watcher, "on_events", spy)
                record = _record(w, spec)
                rotated = [txn.put(prefix + b"%d" % i, values[(i + 1) % 3]) for i in range(3)]
                revision = (await client.txn(success=rotated)).header.revision
                await _collect(w, record, until=revision)
    assert len(seen) >= 2
    assert all(fragment for _, fragment in seen[:-1])
    assert not seen[-1][1]
    assert sum(n for n, _ in seen) == 3
    assert len(record.responses) == 1  # reassembled: one batch, one revision
    batch = record.responses[0]
    assert [len(e.kv.value) for e in batch.events] == [1_000_000] * 3
    assert [e.prev_kv.value[:1] if e.prev_kv else b"" for e in batch.events] == [b"A", b"B", b"C"]
    validate_watch(record, await _truth(oracle, prefix, since))


# ------------------------------------------------------------------------------- compaction


async def test_s20_compacted_start_revision(server: EtcdServer, prefix: bytes) -> None:
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            first = (await client.put(prefix + b"k", "1")).header.revision
            await client.put(prefix + b"k", "2")
            compacted = (await client.put(prefix + b"k", "3")).header.revision
            await client.compact(compacted)
            async with client.watch(prefix + b"bystander"):
                async with client.watch(prefix + b"k", start_revision=first) as w:
                    with pytest.raises(etcdanyio.WatchCompactedError) as info:
                        await w.__anext__()
                    assert info.value.compact_revision == compacted
                    with pytest.raises(etcdanyio.WatchCompactedError):
                        await w.__anext__()  # the iterator stays closed
                    with pytest.raises(etcdanyio.WatchCompactedError):
                        await w.batches().__anext__()
                assert client._core.watch_stream is not None
                assert client._core.watch_stream.watchers == 1


async def test_s20_compacted_watch_leaves_no_server_watcher(
    server: EtcdServer, prefix: bytes
) -> None:
    with anyio.fail_after(5):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            first = (await client.put(prefix + b"k", "1")).header.revision
            compacted = (await client.put(prefix + b"k", "2")).header.revision
            await client.compact(compacted)
            async with client.watch(prefix + b"bystander"):  # keeps the stream open
                baseline = await _gauges(server)
                async with client.watch(prefix + b"k", start_revision=first) as w:
                    with pytest.raises(etcdanyio.WatchCompactedError):
                        await w.__anext__()
                await _wait_gauges(server, baseline, 1)


# ------------------------------------------------------------------------------------ faults


async def test_s6_proxy_resets_mid_watch(server: EtcdServer, prefix: bytes) -> None:
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    a, b = prefix + b"a/", prefix + b"b/"
    with anyio.fail_after(10):
        async with open_fault_proxy(server.endpoint) as proxy:
            async with (
                etcdanyio.open_etcd(proxy.endpoint) as client,
                client.watch(a, prefix=True, prev_kv=True) as wa,
                client.watch(b, prefix=True) as wb,
            ):
                ra = _record(wa, _spec(a, prefix=True, prev_kv=True))
                rb = _record(wb, _spec(b, prefix=True))
                last_a = last_b = 0
                for i in range(50):
                    if i % 10 == 9:  # an atomic transaction of three keys
                        ops = [
                            {"request_put": {"key": _b64(a + b"t%d" % j), "value": _b64(b"%d" % i)}}
                            for j in range(3)
                        ]
                        reply = await anyio.to_thread.run_sync(
                            oracle.call, "kv/txn", {"success": ops}
                        )
                        last_a = int(reply["header"]["revision"])
                    elif i % 7 == 6:  # delete a key written before
                        reply = await anyio.to_thread.run_sync(
                            oracle.call, "kv/deleterange", {"key": _b64(a + b"%d" % (i % 3))}
                        )
                        assert reply.get("deleted") == "1"
                        last_a = int(reply["header"]["revision"])
                    elif i % 5 == 4:
                        last_b = await _oput(oracle, b + b"%d" % i, b"b:%d" % i)
                    else:
                        last_a = await _oput(oracle, a + b"%d" % (i % 3), b"a:%d" % i)
                    if i in (12, 25, 37):
                        # Reset a live connection (the client reconnects by itself after a
                        # backoff); the next writes land while the watches are away.
                        await _wait_until(lambda: len(proxy.conns) == 1, 2)
                        proxy.reset()
                        if i == 25:
                            await _collect(wa, ra, until=last_a)
                await _collect(wa, ra, until=last_a)
                await _collect(wb, rb, until=last_b)
            assert proxy.accepted == 4  # reconnected after every reset
            await _wait_until(lambda: not proxy.conns, 0.5)  # the client closed its connection
    truth = await _truth(oracle, prefix, since)
    assert len(ra.events) == len([e for e in truth if e.key.startswith(a)]) == 56
    assert len(rb.events) == len([e for e in truth if e.key.startswith(b)]) == 4
    validate_watch(ra, truth)
    validate_watch(rb, truth)


async def test_restart_of_the_only_member_mid_watch(prefix: bytes) -> None:
    with anyio.fail_after(20):
        async with EtcdServer() as member:
            oracle = Oracle(member.endpoint)
            since = await _revision(oracle)
            async with (
                etcdanyio.open_etcd(member.endpoint) as client,
                client.watch(prefix, prefix=True, prev_kv=True) as w,
            ):
                record = _record(w, _spec(prefix, prefix=True, prev_kv=True))
                for i in range(10):
                    last = await _oput(oracle, prefix + b"%d" % (i % 4), b"before:%d" % i)
                await _collect(w, record, until=last - 3)  # some delivered, some buffered
                await member.arestart()
                for i in range(10):
                    last = await _oput(oracle, prefix + b"%d" % (i % 4), b"after:%d" % i)
                await _collect(w, record, until=last)
            truth = await _truth(oracle, prefix, since)
    assert len(record.events) == 20
    validate_watch(record, truth)


async def _pinned(client: etcdanyio.Client) -> str:
    await client.get("pin")  # make sure a connection is up
    endpoint = client._core.channel.current_endpoint
    assert endpoint is not None
    return str(endpoint)


@pytest.mark.slow
async def test_s21_watch_fails_over_when_its_member_stops(prefix: bytes) -> None:
    with anyio.fail_after(20):
        async with EtcdCluster(3) as cluster:
            oracle = Oracle(cluster.members[1].endpoint)
            since = await _revision(oracle)
            async with (
                etcdanyio.open_etcd(cluster.endpoints) as client,
                client.watch(prefix, prefix=True) as w,
            ):
                record = _record(w, _spec(prefix, prefix=True))
                assert await _pinned(client) == cluster.members[0].endpoint
                for i in range(3):
                    last = await _oput(oracle, prefix + b"%d" % i, b"before")
                await _collect(w, record, until=last)
                await anyio.to_thread.run_sync(cluster.stop, 0)
                for i in range(5):
                    last = await _oput(oracle, prefix + b"%d" % i, b"after")
                await _collect(w, record, until=last)
                assert await _pinned(client) != cluster.members[0].endpoint
            truth = await _truth(oracle, prefix, since)
    assert len(record.events) == 8
    validate_watch(record, truth)


@pytest.mark.slow
async def test_s21_resume_past_a_compaction_raises(prefix: bytes) -> None:
    # The watch's member stops; meanwhile 5 puts and a compaction at the third happen on the
    # others. The resumed watch needs revisions that are gone: WatchCompactedError after every
    # event delivered before the stop. (The other proxies refuse until the compaction is done,
    # so the watch cannot fail over early and simply deliver everything.)
    with anyio.fail_after(20):
        async with (
            EtcdCluster(3) as cluster,
            open_fault_proxies(*cluster.endpoints) as proxies,
        ):
            oracle = Oracle(cluster.members[1].endpoint)
            since = await _revision(oracle)
            async with (
                etcdanyio.open_etcd([p.endpoint for p in proxies]) as client,
                client.watch(prefix, prefix=True) as w,
            ):
                record = _record(w, _spec(prefix, prefix=True))
                assert await _pinned(client) == proxies[0].endpoint
                for i in range(2):
                    last = await _oput(oracle, prefix + b"%d" % i, b"before")
                await _collect(w, record, until=last)
                proxies[1].refuse = proxies[2].refuse = True
                await anyio.to_thread.run_sync(cluster.stop, 0)
                after = [await _oput(oracle, prefix + b"%d" % i, b"after") for i in range(5)]
                truth = await _truth(oracle, prefix, since)  # before compacting
                await anyio.to_thread.run_sync(oracle.compact, after[2])
                proxies[1].refuse = proxies[2].refuse = False
                with pytest.raises(etcdanyio.WatchCompactedError) as info:
                    await _collect(w, record, until=after[-1])
                record.compact_revision = info.value.compact_revision
    assert info.value.compact_revision == after[2]
    assert len(record.events) == 2
    validate_watch(record, truth)


@pytest.mark.slow
async def test_s51_2000_watches_cut_then_close(server: EtcdServer, prefix: bytes) -> None:
    count = 2000
    baseline = await _gauges(server)
    with anyio.fail_after(20):
        async with open_fault_proxy(server.endpoint) as proxy:
            async with (
                etcdanyio.open_etcd(proxy.endpoint) as client,
                anyio.create_task_group() as holders,
            ):
                created = 0
                all_created = anyio.Event()

                async def hold(i: int) -> None:
                    nonlocal created
                    async with client.watch(prefix + b"%d" % i):
                        created += 1
                        if created == count:
                            all_created.set()
                        await anyio.sleep_forever()

                for i in range(count):
                    holders.start_soon(hold, i)
                await all_created.wait()
                await _wait_gauges(server, (baseline[0] + 1, baseline[1] + count), 2)
                proxy.cut()
                # Close while the client is re-creating the 2,000 watches.
                await _wait_until(lambda: proxy.accepted >= 2, 2)
                start = anyio.current_time()
                holders.cancel_scope.cancel()
            closed_in = anyio.current_time() - start
            await _wait_until(lambda: not proxy.conns, 0.5)
        await _wait_gauges(server, baseline, 1)
    assert closed_in < 2, f"closing took {closed_in:.2f} s"


@pytest.mark.slow
async def test_1000_watches_each_get_their_own_events(server: EtcdServer, prefix: bytes) -> None:
    count = 1000
    baseline = await _gauges(server)
    got: dict[int, etcdanyio.Event] = {}
    with anyio.fail_after(20):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            anyio.create_task_group() as tg,
        ):
            created = 0
            all_created = anyio.Event()

            async def watch_one(i: int) -> None:
                nonlocal created
                async with client.watch(prefix + b"%d" % i) as w:
                    created += 1
                    if created == count:
                        all_created.set()
                    got[i] = await w.__anext__()

            for i in range(count):
                tg.start_soon(watch_one, i)
            await all_created.wait()
            assert client._core.watch_stream is not None
            assert client._core.watch_stream.watchers == count
            await _wait_gauges(server, (baseline[0] + 1, baseline[1] + count), 2)

            async def writer(first: int) -> None:
                for i in range(first, count, 20):
                    await client.put(prefix + b"%d" % i, b"value %d" % i)

            for first in range(20):
                tg.start_soon(writer, first)
        await _wait_gauges(server, baseline, 1)
    assert sorted(got) == list(range(count))
    for i, event in got.items():
        assert (event.kv.key, event.kv.value) == (prefix + b"%d" % i, b"value %d" % i)


async def _write_many(client: etcdanyio.Client, prefix: bytes, count: int, tasks: int) -> int:
    last = 0

    async def writer(first: int) -> None:
        nonlocal last
        for i in range(first, count, tasks):
            revision = (await client.put(prefix + b"%04d" % i, b"%d" % i)).header.revision
            last = max(last, revision)

    async with anyio.create_task_group() as tg:
        for first in range(tasks):
            tg.start_soon(writer, first)
    return last


@pytest.mark.slow
async def test_s52_slow_consumer_does_not_stall_others_and_loses_nothing(
    server: EtcdServer, prefix: bytes
) -> None:
    oracle = Oracle(server.endpoint)
    since = await _revision(oracle)
    bound = 50
    baseline = await _gauges(server)
    spec = _spec(prefix, prefix=True)
    with anyio.fail_after(20):
        async with etcdanyio.open_etcd(server.endpoint) as client:
            async with (
                client.watch(prefix, prefix=True, max_buffered=bound) as slow,
                client.watch(prefix, prefix=True) as fast,
            ):
                fast_record, slow_record = _record(fast, spec), _record(slow, spec)
                peak = 0
                async with anyio.create_task_group() as tg:
                    last = 0

                    async def write() -> None:
                        nonlocal last
                        last = await _write_many(client, prefix, 1000, 16)

                    tg.start_soon(write)
                    start = anyio.current_time()
                    async for batch in fast.batches():
                        fast_record.responses.append(_response(batch))
                        buffered = slow._watcher.buffered
                        assert buffered == sum(len(b.events) for b in slow._watcher.batches)
                        peak = max(peak, buffered)
                        if len(fast_record.events) == 1000:
                            break
                    fast_took = anyio.current_time() - start
                assert peak <= bound + 1000  # the bound plus one response (see the next test)
                assert _suspended(slow)  # its server-side watch was cancelled ...
                await _wait_gauges(server, (baseline[0] + 1, baseline[1] + 1), 1)
                # ... and is created again from where it stopped once its consumer drains.
                await _collect(slow, slow_record, until=last)
                assert not _suspended(slow)
            truth = await _truth(oracle, prefix, since)
    assert fast_took < 5
    assert len(slow_record.events) == len(fast_record.events) == 1000
    validate_watch(fast_record, truth)
    validate_watch(slow_record, truth)


@pytest.mark.slow
async def test_s52_slow_consumer_buffer_stays_bounded_while_draining(
    server: EtcdServer, prefix: bytes
) -> None:
    bound = 50
    with anyio.fail_after(20):
        async with (
            etcdanyio.open_etcd(server.endpoint) as client,
            client.watch(prefix, prefix=True, max_buffered=bound) as slow,
        ):
            last = await _write_many(client, prefix, 500, 16)
            await _wait_until(lambda: _suspended(slow), 2)
            peak = 0
            async for batch in slow.batches():
                peak = max(peak, slow._watcher.buffered + len(batch.events))
                if batch.revision >= last:
                    break
    # What arrived is kept: at most the bound plus one response, and etcd sends a watch that
    # catches up at most 1,000 revisions (here one event each) in a response.
    assert peak <= bound + 1000, f"{peak} events buffered for max_buffered={bound}"

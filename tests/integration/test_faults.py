"""
The fault scenarios of reliability.md §2.6 against real etcd: S1-S5, S7 and S9 on one member
behind a fault proxy; S10-S16 on three members with a proxy in front of each; and a kill of the
pinned member under 64 concurrent writers and a watch.

Every operation of the client under test is recorded (``_kit.history``) and judged against the
ground truth read through the JSON gateway (``_kit.checkers.read_history``), never through the
client: the write-outcome and revision checkers of ``_kit.opcheckers``, the watch validators of
``_kit.checkers``, the lease-timing checker. Clients use the settings of §2.6 (PING after 0.5 s
of silence, answered within 0.5 s; a 2 s default deadline), so members are started with
``--grpc-keepalive-min-time 100ms`` (etcd refuses more frequent PINGs than every 5 s by default).

Each scenario is bounded (``pytest.mark.timeout``: the §2.6 budget doubled for CI slack) and
seeded: the seed is printed (``FAULT_SEED=<n>`` replays it) and seeds the client's jitter too.
Failover times are printed as ``failover <what>: <seconds>``.

Every scenario also runs against etcd 3.4 when its binary is there: ``$ETCD34_BIN``, or
``.etcd34/usr/bin/etcd`` as ``scripts/fetch-etcd34.sh`` unpacks it (Debian's etcd-server).

S13 needs a peer partition: :class:`PeerProxy` carries the raft traffic of the cluster (each
member advertises one of its ports as its peer URL) and tags every connection with the member it
goes to and the member it comes from (etcd's ``X-Server-From`` header), so that one member can be
cut off from its peers in both directions while its clients still reach it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import re
import socket
import ssl
import struct
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from unittest import mock

import anyio
import anyio.abc
import pytest
import trustme
from anyio.abc import SocketAttribute

import etcdanyio
from etcdanyio import EventType
from etcdanyio._error_table import translate
from etcdanyio._grpc import GrpcError, TransportError
from etcdanyio._grpc._headers import encode_metadata
from etcdanyio._pb import etcdserverpb as pb
from etcdanyio.testing import EtcdCluster, EtcdMember, EtcdServer, TLSFiles

from ._kit import checkers
from ._kit.checkers import WatchRecord, WatchSpec, read_history, validate_watch
from ._kit.faultproxy import FaultProxy, open_fault_proxies, open_fault_proxy
from ._kit.history import Op, Recorder
from ._kit.opcheckers import LeaseRecord, check_leases, check_revisions, check_writes, validate_ops
from ._kit.oracle import Oracle, prefix_range_end

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from ._kit.helpers import ask

pytestmark = pytest.mark.integration

#: members accept the clients' 0.5 s PINGs (etcd's default minimum interval is 5 s)
MEMBER_ARGS = ("--grpc-keepalive-min-time", "100ms")
#: the client settings of §2.6
CLIENT: dict[str, Any] = {
    "timeout": 2.0,
    "connect_timeout": 1.0,
    "keepalive_interval": 0.5,
    "keepalive_timeout": 0.5,
}
#: what a recorded operation may raise (anything else fails the test)
EXPECTED = (etcdanyio.EtcdError, TimeoutError)
HASLEADER = encode_metadata([("hasleader", "true")])
ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------- etcd versions


def _etcd34() -> str | None:
    """The etcd 3.4 binary: ``$ETCD34_BIN``, else ``.etcd34/usr/bin/etcd`` in the repo."""
    for candidate in (os.environ.get("ETCD34_BIN"), str(ROOT / ".etcd34" / "usr" / "bin" / "etcd")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session", params=["3.5", "3.4"], ids=["etcd3.5", "etcd3.4"])
def etcd_binary(request: pytest.FixtureRequest) -> str | None:
    """The etcd binary of one version (``None``: the default, 3.5); skips 3.4 if absent."""
    if request.param == "3.5":
        return None
    binary = _etcd34()
    if binary is None:
        pytest.skip(
            "etcd 3.4 not found: set $ETCD34_BIN or run scripts/fetch-etcd34.sh "
            "(apt-get download etcd-server; dpkg -x) to unpack it into .etcd34/"
        )
    return binary


@pytest.fixture(scope="module")
def server(etcd_binary: str | None) -> Iterator[EtcdServer]:
    """One member of each available etcd version, for the single-member scenarios."""
    with EtcdServer(extra_args=MEMBER_ARGS, binary=etcd_binary) as server:
        yield server


@pytest.fixture(scope="module")
def versioned_server(server: EtcdServer) -> EtcdServer:
    return server


# ------------------------------------------------------------------------------ helpers


@pytest.fixture
def rng() -> random.Random:
    """The scenario's random source; the seed is printed and also seeds the client's jitter."""
    seed = int(os.environ.get("FAULT_SEED") or random.SystemRandom().randrange(2**32))
    say(f"seed={seed} (FAULT_SEED={seed} replays it)")
    random.seed(seed)
    return random.Random(seed)


@pytest.fixture
def prefix() -> bytes:
    return f"faults/{uuid.uuid4().hex}/".encode()


def say(text: object) -> None:
    """Print for the report (shown with ``-s``, or on failure): seeds, timings, counts."""
    print(text)  # noqa: T201


def report(what: str, seconds: float) -> None:
    say(f"failover {what}: {seconds:.3f} s")


async def until(predicate: Callable[[], bool], within: float, what: str = "condition") -> float:
    """Poll ``predicate`` until true; return when it became true (``anyio.current_time()``)."""
    with anyio.move_on_after(within):
        while not predicate():  # noqa: ASYNC110 -- no event to wait on: poll with a deadline
            await anyio.sleep(0.005)
        return anyio.current_time()
    raise TimeoutError(f"{what}: not within {within} s")


def open_client(endpoints: str | Sequence[str], **options: Any) -> Any:
    return etcdanyio.open_etcd(endpoints, **{**CLIENT, **options})


def pinned(client: etcdanyio.Client) -> str | None:
    endpoint = client._core.channel.current_endpoint
    return None if endpoint is None else str(endpoint)


async def truth(oracle: Oracle, prefix: bytes, since: int = 1) -> list[checkers.Event]:
    read = functools.partial(
        read_history, oracle, prefix, prefix_range_end(prefix), start_revision=since
    )
    return cast("list[checkers.Event]", await anyio.to_thread.run_sync(read))


def _kv(kv: etcdanyio.KeyValue) -> checkers.KV:
    return checkers.KV(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def _event(event: etcdanyio.Event) -> checkers.Event:
    kind: checkers.EventType = "PUT" if event.type is EventType.PUT else "DELETE"
    return checkers.Event(
        kind, _kv(event.kv), None if event.prev_kv is None else _kv(event.prev_kv)
    )


class WatchLog:
    """A watch's batches recorded by a background task, with when each arrived."""

    def __init__(self, watch: etcdanyio.Watch, spec: WatchSpec) -> None:
        self.watch = watch
        self.record = WatchRecord(spec, created_revision=watch.created_revision)
        #: ``(anyio.current_time(), batch revision)`` of every batch
        self.arrivals: list[tuple[float, int]] = []

    async def run(self) -> None:
        async for batch in self.watch.batches():
            self.record.responses.append(
                checkers.Response(tuple(_event(e) for e in batch.events), batch.revision)
            )
            self.arrivals.append((anyio.current_time(), batch.revision))

    @property
    def revision(self) -> int:
        return self.arrivals[-1][1] if self.arrivals else 0

    async def reached(self, revision: int, within: float) -> float:
        """Wait until everything up to ``revision`` arrived; return when it did."""
        await until(lambda: self.revision >= revision, within, f"watch delivers {revision}")
        return next(t for t, r in self.arrivals if r >= revision)


@asynccontextmanager
async def logged_watch(
    client: etcdanyio.Client, prefix: bytes, **options: Any
) -> AsyncIterator[WatchLog]:
    """A prefix watch with its :class:`WatchLog` running for the block."""
    spec = WatchSpec(prefix, prefix_range_end(prefix), prev_kv=bool(options.get("prev_kv")))
    async with client.watch(prefix, prefix=True, **options) as watch:
        log = WatchLog(watch, spec)
        async with anyio.create_task_group() as tg:
            tg.start_soon(log.run)
            yield log
            tg.cancel_scope.cancel()


def check_exact(log: WatchLog, history: list[checkers.Event]) -> None:
    """
    The watch validators, and: the watch delivered exactly the history from its start up to
    the last revision it vouched for (tests wait for their last write before they close it).
    """
    validate_watch(log.record, history)
    first, last = log.record.first_revision, log.revision
    expected = [e.identity for e in history if first <= e.revision <= last]
    assert [e.identity for e in log.record.events] == expected


def check_history(recorder: Recorder, history: list[checkers.Event], *, since: int = 1) -> None:
    """Write outcomes and revision linearizability over everything recorded."""
    try:
        validate_ops(
            check_writes(recorder.ops, history),
            check_revisions(recorder.ops, history, since=since),
        )
    except AssertionError:
        say(recorder.to_json())
        raise


def assert_typed_errors(ops: Sequence[Op]) -> None:
    """Every failed write says whether it took effect: ``.applied`` is ``False`` or ``None``."""
    for op in ops:
        if op.error is None:
            continue
        assert isinstance(op.error, EXPECTED), op.describe()
        applied = getattr(op.error, "applied", None)
        assert applied in (False, None), f"{op.describe()}: applied={applied!r}"


async def metric(url: str, name: str, method: str) -> int:
    """The sum of ``name{grpc_method=method}`` in ``url``/metrics (all codes)."""

    def read() -> int:
        import urllib.request

        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        pattern = re.compile(rf'^{name}{{[^}}]*grpc_method="{method}"[^}}]*}} (\S+)$', re.M)
        return sum(int(float(value)) for value in pattern.findall(text))

    return cast("int", await anyio.to_thread.run_sync(read))


async def put_with_hasleader(client: etcdanyio.Client, key: bytes, value: bytes) -> None:
    """A put sent with ``hasleader: true`` (the client sends it only on streams)."""
    request = bytes(pb.PutRequest(key=key, value=value))
    try:
        await client._core.channel.unary(
            "/etcdserverpb.KV/Put", request, metadata=HASLEADER, repeatable=False
        )
    except (GrpcError, TransportError) as exc:
        raise translate(exc, write=True) from exc


# ---------------------------------------------------------------------------- load loops


async def put_loop(
    client: etcdanyio.Client,
    recorder: Recorder,
    keys: Sequence[bytes],
    process: int,
    stop: anyio.Event,
    *,
    pause: float = 0.0,
) -> None:
    """Put unique values (``"<process>:<seq>"``) until ``stop``; back off 10 ms after an error."""
    seq = 0
    while not stop.is_set():
        key = keys[seq % len(keys)]
        op = await recorder.put(client, key, b"%d:%d" % (process, seq), process=process)
        seq += 1
        if op.error is not None:
            await anyio.sleep(0.01)
        elif pause:
            await anyio.sleep(pause)


async def get_loop(
    client: etcdanyio.Client,
    recorder: Recorder,
    keys: Sequence[bytes],
    process: int,
    stop: anyio.Event,
    *,
    pause: float = 0.0,
) -> None:
    seq = 0
    while not stop.is_set():
        op = await recorder.get(client, keys[seq % len(keys)], process=process)
        seq += 1
        if op.error is not None:
            await anyio.sleep(0.01)
        elif pause:
            await anyio.sleep(pause)


# ================================================================ A. one member + a proxy


@pytest.mark.timeout(6)
async def test_s1_cut_while_idle(
    versioned_server: EtcdServer, prefix: bytes, rng: random.Random
) -> None:
    oracle = Oracle(versioned_server.endpoint)
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"k"
    with anyio.fail_after(3):
        async with (
            open_fault_proxy(versioned_server.endpoint) as proxy,
            open_client(proxy.endpoint) as client,
        ):
            assert (await recorder.put(client, key, b"0:0")).outcome == "ok"
            connection = client._core.channel.connection
            assert connection is not None
            proxy.cut()
            # The client notices the FIN by itself, before any call.
            await until(lambda: connection.error is not None, 1, "the client sees the FIN")
            got = await recorder.get(client, key, process=1)
            put = await recorder.put(client, key, b"0:1")
            assert (got.outcome, got.read) == ("ok", (b"0:0", recorder.ops[0].revision))
            assert put.outcome == "ok", put.describe()
            assert proxy.accepted == 2
            # And cut just before a put: nothing was sent on the dead connection.
            connection = client._core.channel.connection
            assert connection is not None
            proxy.cut()
            await until(lambda: connection.error is not None, 1, "the client sees the FIN")
            again = await recorder.put(client, key, b"0:2")
            assert again.outcome == "ok", again.describe()
            assert proxy.accepted == 3
    check_history(recorder, await truth(oracle, prefix))


@pytest.mark.timeout(10)
async def test_s2_put_loop_under_resets(
    server: EtcdServer, prefix: bytes, rng: random.Random
) -> None:
    # TestKVPutAtMostOnce: every put races ten resets of every connection, 5 ms apart.
    oracle = Oracle(server.endpoint)
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"k"
    with anyio.fail_after(8):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            open_client(proxy.endpoint) as client,
        ):

            async def resetter() -> None:
                await anyio.sleep(rng.uniform(0, 0.002))
                for _ in range(10):
                    proxy.reset()
                    await anyio.sleep(0.005)

            for seq in range(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(resetter)
                    await recorder.put(client, key, b"0:%d" % seq)
    say(f"{recorder.counts()} connections: {proxy.accepted}")
    assert_typed_errors(recorder.ops)
    history = await truth(oracle, prefix)
    check_history(recorder, history)
    final = await ask(oracle.range_prefix, key)
    assert (final[0].version if final else 0) <= 20


@pytest.mark.timeout(6)
async def test_s3_stall_during_a_get(
    versioned_server: EtcdServer, prefix: bytes, rng: random.Random
) -> None:
    oracle = Oracle(versioned_server.endpoint)
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"k"
    stall = rng.uniform(0.25, 0.35)
    with anyio.fail_after(3):
        async with (
            open_fault_proxy(versioned_server.endpoint) as proxy,
            open_client(proxy.endpoint) as client,
            anyio.create_task_group() as tg,
        ):
            await recorder.put(client, key, b"0:0")
            proxy.set_mode("stall")
            tg.start_soon(recorder.get, client, key)
            await anyio.sleep(stall)
            proxy.heal()
    (_, got) = recorder.ops
    assert got.outcome == "ok", got.describe()
    assert got.return_t - got.call_t >= stall * 0.9e9
    assert got.read == await ask(functools.partial(oracle.get, key, revision=got.revision))
    check_history(recorder, await truth(oracle, prefix))


@pytest.mark.slow
@pytest.mark.timeout(10)
async def test_s4_blackhole_with_an_idle_watch(
    server: EtcdServer, prefix: bytes, rng: random.Random
) -> None:
    oracle = Oracle(server.endpoint)
    since = await ask(oracle.revision)
    with anyio.fail_after(5):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            open_client(proxy.endpoint) as client,
            logged_watch(client, prefix) as log,
        ):
            first = await ask(oracle.put, prefix + b"a", b"before")
            await log.reached(first, 1)
            accepted = proxy.accepted
            start = anyio.current_time()
            proxy.set_mode("blackhole")
            written = [await ask(oracle.put, prefix + b"b%d" % i, b"during") for i in range(3)]
            detected = await until(lambda: proxy.accepted > accepted, 2, "a new connection")
            report("blackhole -> dead connection detected (PING)", detected - start)
            # §2.6: PING after 0.5 s of silence, 0.5 s for its answer, then the watch's
            # reconnect backoff (50-100 ms): detected within 1.5 s.
            assert detected - start <= 1.5
            await anyio.sleep(max(0.0, 1.5 - (anyio.current_time() - start)))
            proxy.heal()
            delivered = await log.reached(written[-1], 3)
            report("blackhole (1.5 s) -> watch resumed", delivered - start)
    check_exact(log, await truth(oracle, prefix, since))
    assert len(log.record.events) == 4


#: an HTTP/2 PING frame: a 9-byte header and 8 bytes of payload
PING_SIZE = 17


async def next_ping(proxy: FaultProxy, within: float, *, acked: bool = False) -> float:
    """
    When the client's next PING passed the proxy (a write of exactly one PING frame); with
    ``acked``, wait for the server's PING ACK too.
    """
    with anyio.fail_after(within):
        while True:
            up, down = proxy.bytes_up, proxy.bytes_down
            seen = await until(lambda: proxy.bytes_up > up, within, "a write")  # noqa: B023
            if proxy.bytes_up - up == PING_SIZE:
                if acked:
                    await until(lambda: proxy.bytes_down >= down + PING_SIZE, within, "ACK")  # noqa: B023
                return seen


@pytest.mark.slow
@pytest.mark.timeout(8)
async def test_s4_ping_follows_the_last_read(server: EtcdServer, prefix: bytes) -> None:
    # An idle watch: the client's only writes are its keepalive PINGs. Right after a PING's
    # answer (a read), an event arrives (another read); the next PING is due 0.5 s after it.
    oracle = Oracle(server.endpoint)
    interval = CLIENT["keepalive_interval"]
    with anyio.fail_after(4):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            open_client(proxy.endpoint) as client,
            logged_watch(client, prefix) as log,
        ):
            gaps = []
            for i in range(2):
                await next_ping(proxy, 2, acked=True)
                revision = await ask(oracle.put, prefix + b"%d" % i, b"v")
                delivered = await log.reached(revision, 1)
                gaps.append(await next_ping(proxy, 2) - delivered)
    say(f"last read -> next PING: {', '.join(f'{g:.3f}' for g in gaps)} s")
    assert max(gaps) <= interval + 0.15


@pytest.mark.timeout(6)
async def test_s5_delay_honours_the_deadline(server: EtcdServer, prefix: bytes) -> None:
    key = prefix + b"k"
    with anyio.fail_after(4):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            open_client(proxy.endpoint) as client,
        ):
            await client.put(key, b"v")
            started = await metric(server.endpoint, "grpc_server_started_total", "Range")
            handled = await metric(server.endpoint, "grpc_server_handled_total", "Range")
            assert started == handled
            proxy.set_mode("delay", 0.2)
            begin = anyio.current_time()
            with pytest.raises(TimeoutError), anyio.fail_after(0.1):
                await client.get(key)
            assert anyio.current_time() - begin < 0.2
            # The server saw the call start and end (cancelled by RST_STREAM or its deadline).
            with anyio.fail_after(2):
                handled_now = functools.partial(
                    metric, server.endpoint, "grpc_server_handled_total", "Range"
                )
                while await handled_now() <= handled:  # noqa: ASYNC110 -- server state has no event: poll with a deadline
                    await anyio.sleep(0.02)
            assert (
                await metric(server.endpoint, "grpc_server_started_total", "Range") == started + 1
            )
            with anyio.fail_after(2):
                kv = await client.get(key)
            assert kv is not None
            assert kv.value == b"v"


@pytest.mark.timeout(8)
async def test_s7_refused_for_a_second(
    server: EtcdServer, prefix: bytes, rng: random.Random
) -> None:
    key = prefix + b"k"
    errors: list[BaseException] = []
    with anyio.fail_after(4):
        async with (
            open_fault_proxy(server.endpoint) as proxy,
            open_client(proxy.endpoint) as client,
        ):
            await client.put(key, b"v")
            before = proxy.accepted
            proxy.refuse = True
            proxy.cut()
            with anyio.move_on_after(1.0):
                while True:
                    try:
                        await client.get(key)
                    except (etcdanyio.ConnectionFailedError, TimeoutError) as exc:
                        errors.append(exc)
            proxy.refuse = False
            during = proxy.accepted - before
            start = anyio.current_time()
            kv = await client.get(key)
            report("refusing proxy healed -> first call served", anyio.current_time() - start)
            assert kv is not None
    say(f"dials during the 1 s window: {during}; errors: {len(errors)}")
    assert errors, "calls inside the window must fail"
    assert all(getattr(e, "applied", False) is False for e in errors)
    assert during <= 40  # backoff with jitter: no hot reconnect loop


class Certs:
    """A trustme CA, and a server certificate for 127.0.0.1 it issued, as PEM files."""

    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = str(directory / "ca.pem")
        self.cert_file = str(directory / "server.pem")
        self.key_file = str(directory / "server.key")
        ca.cert_pem.write_to_path(self.ca_file)
        leaf.cert_chain_pems[0].write_to_path(self.cert_file)
        leaf.private_key_pem.write_to_path(self.key_file)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EtcdServer, Certs]]:
    certs = Certs(tmp_path_factory.mktemp("faults-tls"))
    files = TLSFiles(certs.cert_file, certs.key_file, certs.ca_file)
    with EtcdServer(tls=files, extra_args=MEMBER_ARGS) as server:
        yield server, certs


@pytest.mark.timeout(8)
async def test_s9_tls_resets_in_the_handshake_and_mid_call(
    tls_server: tuple[EtcdServer, Certs], prefix: bytes, rng: random.Random
) -> None:
    server, certs = tls_server
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"k"
    context = ssl.create_default_context(cafile=certs.ca_file)
    with anyio.fail_after(4):
        async with (
            open_fault_proxies(server.endpoint, server.endpoint) as proxies,
            open_client(
                [f"https://127.0.0.1:{p.port}" for p in proxies], ssl_context=context
            ) as client,
            anyio.create_task_group() as tg,
        ):
            # 1. The first proxy holds the ClientHello, then resets: the dial moves on.
            first, second = proxies
            first.set_mode("stall")
            tg.start_soon(recorder.put, client, key, b"0:0")
            await until(lambda: len(first.conns) == 1, 1, "the TLS dial reaches the proxy")
            await anyio.sleep(0.05)
            first.reset()
            first.heal()
            await until(lambda: len(recorder.ops) == 1 and recorder.ops[0].return_t > 0, 2)
            assert recorder.ops[0].outcome == "ok", recorder.ops[0].describe()  # never sent
            assert pinned(client) == f"https://127.0.0.1:{second.port}"
            # 2. A get in flight when the connection is reset is retried (on the first proxy).
            second.set_mode("stall")
            tg.start_soon(recorder.get, client, key)
            await anyio.sleep(0.05)
            second.reset()
            second.heal()
            await until(lambda: len(recorder.ops) == 2 and recorder.ops[1].return_t > 0, 2)
            assert recorder.ops[1].outcome == "ok", recorder.ops[1].describe()
            assert pinned(client) == f"https://127.0.0.1:{first.port}"
            # 3. A put in flight when the connection is reset: ok or unknown, never retried.
            first.set_mode("stall")
            tg.start_soon(recorder.put, client, key, b"0:1")
            await anyio.sleep(0.05)
            first.reset()
            first.heal()
            await until(lambda: len(recorder.ops) == 3 and recorder.ops[2].return_t > 0, 2)
            assert recorder.ops[2].outcome in ("ok", "unknown"), recorder.ops[2].describe()
            assert (await recorder.get(client, key)).outcome == "ok"
    assert_typed_errors(recorder.ops)
    check_history(recorder, await ask(_https_history, server.endpoint, certs.ca_file, prefix))


def _https_history(endpoint: str, ca_file: str, prefix: bytes) -> list[checkers.Event]:
    """``read_history`` through a member that serves its gateway over TLS only."""
    import urllib.request

    context = ssl.create_default_context(cafile=ca_file)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    with mock.patch("urllib.request.urlopen", opener.open):
        return read_history(Oracle(endpoint), prefix, prefix_range_end(prefix))


# ======================================================== B. three members, a proxy each


@asynccontextmanager
async def proxied_cluster(
    binary: str | None = None, extra_args: Sequence[str] = ()
) -> AsyncIterator[tuple[EtcdCluster, list[FaultProxy]]]:
    """Three members (started one after another), and a fault proxy in front of each."""
    async with (
        EtcdCluster(3, extra_args=[*MEMBER_ARGS, *extra_args], binary=binary) as cluster,
        open_fault_proxies(*cluster.endpoints) as proxies,
    ):
        yield cluster, proxies


def ordered(proxies: Sequence[FaultProxy], first: int) -> list[str]:
    """The proxy endpoints with member ``first``'s first: the client pins to it."""
    return [proxies[first].endpoint] + [p.endpoint for i, p in enumerate(proxies) if i != first]


def oracle_keys(prefix: bytes) -> Callable[[checkers.Event], bool]:
    """Events the oracle wrote (under ``<prefix>o/``), which no client sent."""
    return lambda event: event.key.startswith(prefix + b"o/")


def first_ok_after(ops: Sequence[Op], moment: int, kind: str) -> Op | None:
    done = [op for op in ops if op.kind == kind and op.outcome == "ok" and op.call_t >= moment]
    return min(done, key=lambda op: op.return_t, default=None)


def check_all(
    recorder: Recorder, history: list[checkers.Event], prefix: bytes, *, since: int = 1
) -> None:
    try:
        validate_ops(
            check_writes(recorder.ops, history, ignore=oracle_keys(prefix)),
            check_revisions(recorder.ops, history, since=since),
        )
    except AssertionError:
        say(recorder.to_json())
        raise


@pytest.mark.slow
@pytest.mark.timeout(12)
async def test_s10_kill_the_pinned_follower(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"k"
    with anyio.fail_after(8):
        async with proxied_cluster(etcd_binary) as (cluster, proxies):
            leader = await cluster.aleader()
            victim = rng.choice([i for i in range(3) if i != leader])
            oracle = Oracle(cluster.members[leader].endpoint)
            since = await ask(oracle.revision)
            async with (
                open_client(ordered(proxies, victim)) as client,
                logged_watch(client, prefix) as log,
                anyio.create_task_group() as tg,
            ):
                await recorder.put(client, key, b"0:0")
                assert pinned(client) == proxies[victim].endpoint
                await log.reached(await ask(oracle.put, prefix + b"o/0", b"before"), 2)
                # A get and a put in flight (held by the proxy) when the member dies.
                proxies[victim].set_mode("stall")
                tg.start_soon(functools.partial(recorder.get, client, key, process=1))
                tg.start_soon(functools.partial(recorder.put, client, key, b"2:0", process=2))
                await anyio.sleep(0.05)
                start, start_ns = anyio.current_time(), time.monotonic_ns()
                await ask(cluster.kill, victim)
                proxies[victim].heal()
                after = await ask(oracle.put, prefix + b"o/1", b"after")
                watch_back = await log.reached(after, 3) - start
                await until(lambda: all(op.return_t for op in recorder.ops), 3, "calls return")
                (got,) = [op for op in recorder.ops if op.process == 1]
                (put,) = [op for op in recorder.ops if op.process == 2]
                assert got.outcome == "ok", got.describe()  # retried on another member
                assert put.outcome in ("ok", "unknown"), put.describe()
                assert pinned(client) != proxies[victim].endpoint
                last = await recorder.put(client, key, b"0:1")
                await log.reached(last.revision, 2)
            history = await truth(oracle, prefix, since)
    report("kill pinned follower -> in-flight get answered", (got.return_t - start_ns) / 1e9)
    report("kill pinned follower -> watch delivers", watch_back)
    assert (got.return_t - start_ns) / 1e9 <= 1.5
    assert watch_back <= 1.5
    assert_typed_errors(recorder.ops)
    check_all(recorder, history, prefix, since=since)
    check_exact(log, history)


@pytest.mark.slow
@pytest.mark.timeout(16)
async def test_s11_kill_the_leader_under_puts_and_gets(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    recorder = Recorder(expected=EXPECTED)
    keys = [prefix + b"k%d" % i for i in range(3)]
    with anyio.fail_after(10):
        async with proxied_cluster(etcd_binary) as (cluster, proxies):
            leader = await cluster.aleader()
            oracle = Oracle(cluster.members[(leader + 1) % 3].endpoint)
            since = await ask(oracle.revision)
            stop = anyio.Event()
            async with (
                open_client(ordered(proxies, leader)) as client,
                anyio.create_task_group() as tg,
            ):
                begin = anyio.current_time()
                tg.start_soon(put_loop, client, recorder, keys, 0, stop)
                tg.start_soon(get_loop, client, recorder, keys, 1, stop)
                await anyio.sleep(0.5 + rng.uniform(0, 0.3))
                assert pinned(client) == proxies[leader].endpoint
                await ask(cluster.kill, leader)
                killed_ns = time.monotonic_ns()
                await anyio.sleep(2.0 - (anyio.current_time() - begin))
                stop.set()
            history = await truth(oracle, prefix, since)
    say(recorder.counts())
    errors = {f"{op.kind} {type(op.error).__name__}: {op.error}" for op in recorder.ops if op.error}
    say("\n".join(sorted(errors)))
    # A put sent to a follower just before it noticed the leader's death is forwarded into the
    # void and waits out its deadline (2 s): the one put loop may not get another through.
    put = first_ok_after(recorder.ops, killed_ns, "put")
    get = first_ok_after(recorder.ops, killed_ns, "get")
    assert get is not None, "no get succeeded after the election"
    report("kill leader -> client readable", (get.return_t - killed_ns) / 1e9)
    if put is not None:
        report("kill leader -> client writable", (put.return_t - killed_ns) / 1e9)
    assert not [op for op in recorder.ops if op.kind == "get" and op.outcome != "ok"]
    assert_typed_errors(recorder.ops)
    check_all(recorder, history, prefix, since=since)


class LeaseSampler:
    """Follows a lease's local deadline: each move is an answered keepalive."""

    def __init__(self, lease: etcdanyio.Lease) -> None:
        self.lease = lease
        self.renewed: list[int] = []  # send times of answered keepalives (monotonic ns)
        self.answered: list[int] = []

    async def run(self) -> None:
        deadline = self.lease.deadline
        while True:
            await anyio.sleep(0.01)
            if self.lease.deadline != deadline:
                deadline = self.lease.deadline
                now_ns, now = time.monotonic_ns(), anyio.current_time()
                sent = deadline - self.lease.ttl  # the send time of the answered keepalive
                self.renewed.append(now_ns - int((now - sent) * 1e9))
                self.answered.append(now_ns)


@pytest.mark.slow
@pytest.mark.timeout(16)
async def test_s12_pause_the_pinned_member(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"leased"
    pause = 2.0
    with anyio.fail_after(12):
        async with proxied_cluster(etcd_binary) as (cluster, proxies):
            frozen = await cluster.aleader()  # the leader: its followers elect a new one
            oracle = Oracle(cluster.members[(frozen + 1) % 3].endpoint)
            since = await ask(oracle.revision)
            async with (
                open_client(ordered(proxies, frozen)) as client,
                client.lease(3) as lease,
                logged_watch(client, prefix) as log,
                anyio.create_task_group() as tg,
            ):
                # the grant was sent TTL before the lease's first local deadline
                granted_ns = time.monotonic_ns() - int(
                    (anyio.current_time() - lease.deadline + lease.ttl) * 1e9
                )
                sampler = LeaseSampler(lease)
                tg.start_soon(sampler.run)
                await recorder.call(
                    0, "put", key, b"0:0", lambda: client.put(key, b"0:0", lease=lease)
                )
                await log.reached(await ask(oracle.put, prefix + b"o/0", b"before"), 2)
                assert pinned(client) == proxies[frozen].endpoint
                start, paused_ns = anyio.current_time(), time.monotonic_ns()
                await ask(cluster.pause, frozen)
                await cluster.aleader(2)  # a write before the election would wait 5 s
                after = await ask(oracle.put, prefix + b"o/1", b"during")
                dials = proxies[frozen].accepted
                watch_back = await log.reached(after, 4) - start
                redials = proxies[frozen].accepted - dials
                await anyio.sleep(max(0.0, pause - (anyio.current_time() - start)))
                resumed_ns = time.monotonic_ns()
                await ask(cluster.resume, frozen)
                await cluster.await_ready(5)
                ttl = await lease.time_to_live()
                assert ttl.ttl > 0
                for i in range(3):
                    await recorder.get(client, key, process=1)
                    await recorder.put(client, prefix + b"k", b"0:%d" % (i + 1))
                last = await ask(oracle.put, prefix + b"o/2", b"after")
                await log.reached(last, 2)
                tg.cancel_scope.cancel()
            revoked_ns = time.monotonic_ns()
            history = await truth(oracle, prefix, since)
    report("SIGSTOP pinned leader -> watch delivers", watch_back)
    say(f"dials to the frozen member after the PING failed: {redials}")
    during = [t for t in sampler.renewed if paused_ns < t < resumed_ns]
    assert during, "the lease was not renewed elsewhere while its member was frozen"
    assert [op.outcome for op in recorder.ops] == ["ok"] * len(recorder.ops)
    check_all(recorder, history, prefix, since=since)
    check_exact(log, history)
    record = LeaseRecord(
        lease.id,
        3,
        (key,),
        granted_t=granted_ns,
        renewed=sampler.renewed,
        answered=sampler.answered,
        revoked_t=revoked_ns,
        leader_changed=True,
    )
    validate_ops(check_leases([record], recorder.ops, history))
    # PING detection (<= 1 s + the 0.5 s keepalive window) + backoff: well under 2 s, unless
    # the client dials the frozen member again first and waits out connect_timeout (1 s).
    assert redials == 0, f"the watch redialled the frozen member {redials} time(s)"
    assert watch_back <= 2.0, f"the watch came back only after {watch_back:.2f} s"


class _PeerLink:
    """One proxied peer connection: where it goes, and (once seen) which member opened it."""

    def __init__(self, client: anyio.abc.SocketStream, target: int) -> None:
        self.client = client
        self.target = target
        #: the opener's member ID in hex, from its requests' ``X-Server-From`` header
        self.source: str | None = None
        self.scope = anyio.CancelScope()
        self.rst = False
        self.tail = b""


_SERVER_FROM = re.compile(rb"\r\nX-Server-From: *([0-9a-fA-F]+)\r\n", re.IGNORECASE)
_LINGER_RST = struct.pack("ii", 1, 0)


class PeerProxy:
    """
    The raft (peer) traffic of a cluster through user space, so that one member can be cut off
    from its peers while its clients still reach it.

    Each member advertises one port of this proxy as its peer URL. A connection to that port
    goes to that member; the member that opened it names itself in the ``X-Server-From`` header
    of its raft requests (streams, pipeline and snapshots; probes and version checks carry no
    header and pass unless they go to an isolated member). :meth:`isolate` resets every link
    from or to the member and refuses new ones, in both directions.
    """

    def __init__(self, size: int) -> None:
        self.ports = [0] * size
        #: the members' real peer ports (set as they are launched)
        self.targets = [0] * size
        #: member ID (hex) -> index, set once the cluster is up
        self.ids: dict[str, int] = {}
        self.isolated: set[int] = set()
        self.links: set[_PeerLink] = set()
        #: links cut because they touched an isolated member
        self.cut = 0

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.ports[index]}"

    def _blocked(self, link: _PeerLink) -> bool:
        source = self.ids.get(link.source.lower()) if link.source else None
        return link.target in self.isolated or source in self.isolated

    def isolate(self, index: int) -> None:
        self.isolated.add(index)
        for link in list(self.links):
            if self._blocked(link):
                self._drop(link)

    def heal(self) -> None:
        self.isolated.clear()

    def _drop(self, link: _PeerLink) -> None:
        self.cut += 1
        link.rst = True
        link.scope.cancel()

    async def serve(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with contextlib.AsyncExitStack() as stack, anyio.create_task_group() as tg:
            for index in range(len(self.ports)):
                multi = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
                await stack.enter_async_context(multi)
                listener = cast("anyio.abc.SocketListener", multi.listeners[0])
                self.ports[index] = listener.extra(SocketAttribute.local_port)
                tg.start_soon(self._accept, listener, index, tg)
            task_status.started()
            await anyio.sleep_forever()

    async def _accept(
        self, listener: anyio.abc.SocketListener, index: int, tg: anyio.abc.TaskGroup
    ) -> None:
        while True:
            stream = await listener.accept()
            tg.start_soon(self._handle, stream, index)

    async def _handle(self, client: anyio.abc.SocketStream, target: int) -> None:
        link = _PeerLink(client, target)
        self.links.add(link)
        upstream: anyio.abc.SocketStream | None = None
        try:
            with link.scope:
                if self._blocked(link):
                    link.rst = True
                    return
                try:
                    upstream = await anyio.connect_tcp("127.0.0.1", self.targets[target])
                except OSError:
                    link.rst = True
                    return
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, link, client, upstream, True)
                    tg.start_soon(self._pump, link, upstream, client, False)
        finally:
            with anyio.CancelScope(shield=True):
                for stream in (client, upstream):
                    if stream is not None:
                        if link.rst:
                            with contextlib.suppress(OSError):
                                sock = stream.extra(SocketAttribute.raw_socket)
                                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                        await anyio.aclose_forcefully(stream)
            self.links.discard(link)

    async def _pump(
        self,
        link: _PeerLink,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
        up: bool,
    ) -> None:
        try:
            while True:
                data = await source.receive(65536)
                if up and link.source is None:
                    found = _SERVER_FROM.search(link.tail + data)
                    link.tail = data[-64:]
                    if found is not None:
                        link.source = found.group(1).decode()
                        if self._blocked(link):
                            self._drop(link)
                            return
                await sink.send(data)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        link.scope.cancel()


class PeerProxiedCluster(EtcdCluster):
    """An :class:`EtcdCluster` whose members advertise :class:`PeerProxy` ports to each other."""

    def __init__(self, peers: PeerProxy, **options: Any) -> None:
        super().__init__(len(peers.ports), **options)
        self.peers = peers

    def _launch(self, binary: str, member: EtcdMember, state: str) -> None:
        for i, each in enumerate(self.members):
            self.peers.targets[i] = int(each.peer_url.rpartition(":")[2])
        index = self.members.index(member)
        urls = [self.peers.url(i) for i in range(len(self.members))]
        spawn = member._spawn

        def advertise_proxy(argv: list[str]) -> None:
            argv = list(argv)
            for k in range(1, len(argv)):
                if argv[k - 1] == "--initial-advertise-peer-urls":
                    argv[k] = urls[index]
                elif argv[k - 1] == "--initial-cluster":
                    argv[k] = ",".join(
                        f"{m.name}={u}" for m, u in zip(self.members, urls, strict=True)
                    )
            spawn(argv)

        with mock.patch.object(member, "_spawn", advertise_proxy):
            super()._launch(binary, member, state)


@asynccontextmanager
async def peer_proxied_cluster(
    binary: str | None = None,
) -> AsyncIterator[tuple[PeerProxiedCluster, PeerProxy]]:
    async with anyio.create_task_group() as tg:
        peers = PeerProxy(3)
        await tg.start(peers.serve)
        async with PeerProxiedCluster(peers, extra_args=MEMBER_ARGS, binary=binary) as cluster:
            peers.ids = {format(cluster.member_id(i), "x"): i for i in range(3)}
            yield cluster, peers
        tg.cancel_scope.cancel()


async def leader_of(member: EtcdMember) -> int:
    """The leader ``member`` itself reports (0: none), through its own gateway."""
    status = await ask(Oracle(member.endpoint, timeout=1).status)
    return status.leader


@pytest.mark.slow
@pytest.mark.timeout(12)
async def test_s13_peer_partition_of_the_pinned_member(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"k"
    with anyio.fail_after(10):
        async with (
            peer_proxied_cluster(etcd_binary) as (cluster, peers),
            open_fault_proxies(*cluster.endpoints) as proxies,
        ):
            leader = await cluster.aleader()
            cut_off = rng.choice([i for i in range(3) if i != leader])
            oracle = Oracle(cluster.members[leader].endpoint)
            since = await ask(oracle.revision)
            async with (
                open_client(ordered(proxies, cut_off)) as client,
                open_client(proxies[cut_off].endpoint) as direct,
                logged_watch(client, prefix) as log,
            ):
                await recorder.put(client, key, b"0:0")
                await direct.get(key)  # connected before the partition
                assert pinned(client) == proxies[cut_off].endpoint
                await log.reached(await ask(oracle.put, prefix + b"o/0", b"before"), 2)
                start = anyio.current_time()
                peers.isolate(cut_off)
                after = await ask(oracle.put, prefix + b"o/1", b"during")
                # The member loses its leader (its client traffic still flows) ...
                with anyio.fail_after(2):
                    while await leader_of(cluster.members[cut_off]):  # noqa: ASYNC110 -- server state has no event: poll with a deadline
                        await anyio.sleep(0.02)
                no_leader = anyio.current_time() - start
                # ... refuses a hasleader unary call at once ...
                begin = time.monotonic()
                op = recorder.begin(2, "put", key, b"2:0")
                with pytest.raises(etcdanyio.NoLeaderError) as info:
                    await put_with_hasleader(direct, key, b"2:0")
                recorder.failed(op, info.value)
                refused_in = time.monotonic() - begin
                # ... and cancels the hasleader watch stream: the watch moves on.
                switched = await log.reached(after, 3) - start
                assert pinned(client) != proxies[cut_off].endpoint
                last = await recorder.put(client, key, b"0:1")
                await log.reached(last.revision, 2)
                peers.heal()
                await cluster.await_ready(5)
            history = await truth(oracle, prefix, since)
    report("peer partition -> isolated member reports no leader", no_leader)
    report("peer partition -> watch switched to another member", switched)
    say(f"hasleader put refused in {refused_in * 1000:.1f} ms; peer links cut: {peers.cut}")
    assert refused_in < 0.1
    assert switched <= 2.0
    assert (key, b"2:0") not in {(e.key, e.kv.value) for e in history}  # NoLeaderError: not applied
    check_all(recorder, history, prefix, since=since)
    check_exact(log, history)


@pytest.mark.slow
@pytest.mark.timeout(20)
async def test_s14_quorum_loss_and_recovery(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    recorder = Recorder(expected=EXPECTED)
    key = prefix + b"k"
    with anyio.fail_after(16):
        async with proxied_cluster(etcd_binary) as (cluster, proxies):
            leader = await cluster.aleader()
            survivor = rng.choice([i for i in range(3) if i != leader])
            dead = [i for i in range(3) if i != survivor]
            oracle = Oracle(cluster.members[survivor].endpoint)
            since = await ask(oracle.revision)
            async with (
                open_client(ordered(proxies, survivor)) as client,
                open_client(proxies[survivor].endpoint) as direct,
                logged_watch(client, prefix) as log,
            ):
                first = await recorder.put(client, key, b"0:0")
                await direct.get(key)  # connected before the quorum loss
                await log.reached(first.revision, 2)
                start = anyio.current_time()
                for i in dead:
                    await ask(cluster.kill, i)
                with anyio.fail_after(2):
                    while await leader_of(cluster.members[survivor]):  # noqa: ASYNC110 -- server state has no event: poll with a deadline
                        await anyio.sleep(0.02)
                no_leader = anyio.current_time() - start
                # hasleader: refused at once, certainly not applied.
                begin = time.monotonic()
                op = recorder.begin(2, "put", key, b"2:0")
                with pytest.raises(etcdanyio.NoLeaderError) as info:
                    await put_with_hasleader(direct, key, b"2:0")
                recorder.failed(op, info.value)
                refused_in = time.monotonic() - begin
                # Without it, a put would block 5.5 s: bounded here (an unknown outcome).
                with pytest.raises(TimeoutError), anyio.fail_after(1):
                    await recorder.put(direct, key, b"3:0", process=3)
                # A serializable read is still served by the survivor.
                stale = await recorder.get(direct, key, process=4, serializable=True)
                assert (stale.outcome, stale.read) == ("ok", (b"0:0", first.revision))
                await anyio.sleep(max(0.0, 1.5 - (anyio.current_time() - start)))
                for i in dead:
                    await cluster.arestart(i)
                restored = anyio.current_time()
                after = await ask(oracle.put, prefix + b"o/after", b"v")
                resumed = await log.reached(after, 5) - restored
                last = await recorder.put(client, key, b"0:1")
                assert last.outcome == "ok", last.describe()
                await log.reached(last.revision, 2)
            history = await truth(oracle, prefix, since)
    report("kill 2 of 3 -> survivor reports no leader", no_leader)
    report("quorum restored -> require-leader watch resumed", resumed)
    say(f"hasleader put refused in {refused_in * 1000:.1f} ms")
    assert refused_in < 0.1
    assert (key, b"2:0") not in {(e.key, e.kv.value) for e in history}  # NoLeaderError: not applied
    check_all(recorder, history, prefix, since=since)
    check_exact(log, history)


@pytest.mark.slow
@pytest.mark.timeout(12)
async def test_s15_move_leader_five_times_under_load(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    recorder = Recorder(expected=EXPECTED)
    keys = [prefix + b"k%d" % i for i in range(4)]
    moves: list[float] = []
    with anyio.fail_after(10):
        async with proxied_cluster(etcd_binary) as (cluster, proxies):
            oracle = Oracle(cluster.members[0].endpoint)
            since = await ask(oracle.revision)
            stop = anyio.Event()
            async with (
                open_client([p.endpoint for p in proxies]) as client,
                logged_watch(client, prefix) as log,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(
                    functools.partial(put_loop, pause=0.002), client, recorder, keys, 0, stop
                )
                tg.start_soon(
                    functools.partial(get_loop, pause=0.002), client, recorder, keys, 1, stop
                )
                for _ in range(5):
                    leader = await cluster.aleader()
                    target = rng.choice([i for i in range(3) if i != leader])
                    begin = anyio.current_time()
                    await ask(
                        Oracle(cluster.members[leader].endpoint).call,
                        "maintenance/transfer-leadership",
                        {"targetID": str(cluster.member_id(target))},
                    )
                    with anyio.fail_after(2):
                        while await cluster.aleader() != target:  # noqa: ASYNC110 -- server state has no event: poll with a deadline
                            await anyio.sleep(0.01)
                    moves.append(anyio.current_time() - begin)
                    await anyio.sleep(rng.uniform(0.05, 0.15))
                stop.set()
                await until(lambda: all(op.return_t for op in recorder.ops), 3, "loops end")
                history = await truth(oracle, prefix, since)
                await log.reached(history[-1].revision, 3)
                tg.cancel_scope.cancel()
    say(f"{recorder.counts()} moves: {', '.join(f'{m:.3f}' for m in moves)}")
    gets = [op for op in recorder.ops if op.kind == "get"]
    assert gets
    assert all(op.outcome == "ok" for op in gets), [op.describe() for op in gets if op.error]
    puts = [op for op in recorder.ops if op.kind == "put"]
    assert all(op.outcome in ("ok", "unknown") for op in puts)
    assert_typed_errors(recorder.ops)
    check_all(recorder, history, prefix, since=since)
    check_exact(log, history)


async def snapshots_received(member: EtcdMember) -> int:
    """How many raft snapshots ``member`` received from its leader (its metrics)."""

    def read() -> int:
        import urllib.request

        with urllib.request.urlopen(f"{member.endpoint}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        found = re.findall(r"^etcd_network_snapshot_receive_success{[^}]*} (\S+)$", text, re.M)
        return sum(int(float(value)) for value in found)

    return cast("int", await anyio.to_thread.run_sync(read))


def _put_many(endpoints: list[str], prefix: bytes, count: int) -> None:
    """``count`` puts under ``prefix`` by 32 tasks of a client of its own (blocking)."""

    async def main() -> None:
        async with etcdanyio.open_etcd(endpoints, timeout=5) as client:

            async def writer(w: int) -> None:
                for j in range(w, count, 32):
                    await client.put(prefix + b"%d" % j, b"x")

            async with anyio.create_task_group() as tg:
                for w in range(32):
                    tg.start_soon(writer, w)

    anyio.run(main, backend="trio")


@pytest.mark.slow
@pytest.mark.timeout(16)
async def test_s16_watch_moves_onto_a_member_restored_from_a_snapshot(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    # etcd 3.5 keeps 5,000 raft entries after each snapshot for slow followers, so the member
    # must miss more than that (and --snapshot-count 100) to be sent a snapshot on rejoin.
    bulk = prefix[:-1] + b"-bulk/"
    recorder = Recorder(expected=EXPECTED)
    with anyio.fail_after(14):
        async with proxied_cluster(etcd_binary, extra_args=["--snapshot-count", "100"]) as (
            cluster,
            proxies,
        ):
            leader = await cluster.aleader()
            rejoiner = rng.choice([i for i in range(3) if i != leader])
            other = next(i for i in range(3) if i not in (leader, rejoiner))
            oracle = Oracle(cluster.members[leader].endpoint)
            since = await ask(oracle.revision)
            async with (
                open_client(ordered(proxies, rejoiner)) as client,
                logged_watch(client, prefix, prev_kv=True) as log,
            ):
                for i in range(3):
                    last = await recorder.put(client, prefix + b"k%d" % i, b"0:%d" % i)
                await log.reached(last.revision, 2)
                await ask(cluster.kill, rejoiner)  # the watch fails over

                # The bulk goes through a client of its own, in a thread with its own event
                # loop (asyncio's debug mode would make 5,400 puts slow); meanwhile the client
                # under test puts a watched key now and then.
                live = [cluster.members[i].endpoint for i in (leader, other)]
                bulk_done = anyio.Event()

                async def bulk_writes() -> None:
                    await anyio.to_thread.run_sync(_put_many, live, bulk, 5400)
                    bulk_done.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(bulk_writes)
                    seq = 0
                    while not bulk_done.is_set():
                        await recorder.put(client, prefix + b"k%d" % (seq % 3), b"1:%d" % seq)
                        seq += 1
                        await anyio.sleep(0.05)
                await cluster.arestart(rejoiner)
                assert await snapshots_received(cluster.members[rejoiner]) >= 1
                # Move the watch onto the rejoined member: the others refuse for a moment.
                for i in (leader, other):
                    proxies[i].refuse = True
                    proxies[i].cut()
                begin = anyio.current_time()
                await until(
                    lambda: pinned(client) == proxies[rejoiner].endpoint, 3, "the watch moves"
                )
                for i in (leader, other):
                    proxies[i].refuse = False
                for i in range(5):
                    last = await recorder.put(client, prefix + b"k%d" % (i % 3), b"2:%d" % i)
                await log.reached(last.revision, 3)
                moved = anyio.current_time() - begin
                dropped = log.watch._watcher.duplicates_dropped
                history = await truth(oracle, prefix, since)
            await ask(oracle.delete_prefix, bulk)
    say(f"watch moved onto the rejoined member and caught up in {moved:.3f} s")
    say(f"events at or below the last delivered revision dropped by the client: {dropped}")
    revisions = [e.revision for e in log.record.events]
    assert revisions == sorted(revisions)
    assert len(set(revisions)) == len(revisions)  # one event per revision here: no repeats
    assert_typed_errors(recorder.ops)
    check_all(recorder, history, prefix, since=since)
    check_exact(log, history)


@pytest.mark.slow
@pytest.mark.timeout(16)
async def test_kill_the_pinned_member_under_64_writers_and_a_watch(
    etcd_binary: str | None, prefix: bytes, rng: random.Random
) -> None:
    recorder = Recorder(expected=EXPECTED)
    keys = [prefix + b"w%02d" % i for i in range(16)]
    with anyio.fail_after(12):
        async with proxied_cluster(etcd_binary) as (cluster, proxies):
            victim = await cluster.aleader()
            oracle = Oracle(cluster.members[(victim + 1) % 3].endpoint)
            since = await ask(oracle.revision)
            stop = anyio.Event()
            async with (
                open_client(ordered(proxies, victim)) as client,
                logged_watch(client, prefix, prev_kv=True) as log,
                anyio.create_task_group() as tg,
            ):
                for w in range(64):
                    mine = keys[w % 16 :: 16] + keys[(w + 1) % 16 :: 16]
                    tg.start_soon(put_loop, client, recorder, mine, w, stop)
                await anyio.sleep(0.4 + rng.uniform(0, 0.2))
                assert pinned(client) == proxies[victim].endpoint
                await ask(cluster.kill, victim)
                killed_ns = time.monotonic_ns()
                # Writes a follower forwarded to the dead leader before it noticed are lost and
                # wait out the client's 2 s deadline: keep writing past that.
                await anyio.sleep(2.8)
                stop.set()
                await until(lambda: all(op.return_t for op in recorder.ops), 3, "writers end")
                history = await truth(oracle, prefix, since)
                await log.reached(history[-1].revision, 3)
                tg.cancel_scope.cancel()
    say(recorder.counts())
    errors = {f"{type(op.error).__name__}: {op.error}" for op in recorder.ops if op.error}
    say("\n".join(sorted(errors)))
    put = first_ok_after(recorder.ops, killed_ns, "put")
    assert put is not None, "no write succeeded after the leader was killed"
    report(
        "kill pinned leader (64 writers) -> first write acknowledged",
        (put.return_t - killed_ns) / 1e9,
    )
    acknowledged = len(recorder.select(kind="put", outcome="ok"))
    assert acknowledged > 64
    assert_typed_errors(recorder.ops)
    check_all(recorder, history, prefix, since=since)
    check_exact(log, history)
